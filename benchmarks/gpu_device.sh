#!/usr/bin/env bash
# Issue 23's device session in one call: checks, then figures, inside one time budget.
# Build first, here: `bash benchmarks/gpu_devbin.sh`. Then one device call:
#   command: bash benchmarks/gpu_device.sh      carry: [".devbin"]      timeout_s: 600
# Steps, most important first, each under `timeout` and the whole under VQ_DEVICE_SECONDS
# (default 540): the environment; the two GPU test binaries (must pass and print no
# "skipped"); GpuFlat f32 beside torch f32 (k = 10, 100); k-means (GPU fit, 20 iterations,
# beside vq-cluster's CPU fit at 2); GpuFlat f16 beside torch fp16; compute-sanitizer over
# the tests with what time is left. `VQ_DEVICE_STEPS="tests flat"` runs only those steps.
# Everything goes to $OUT (at most 8 files come back); a summary table is printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/vq-device-out}
mkdir -p "$OUT"
budget=${VQ_DEVICE_SECONDS:-540}
steps=${VQ_DEVICE_STEPS:-env tests flat kmeans f16 sanitize}
summary="$OUT/summary.txt"
: > "$summary"
export PYTHONUNBUFFERED=1 RUST_BACKTRACE=1

note() { echo "$*" | tee -a "$summary"; }
left() { echo $((budget - SECONDS)); }
# run_step NAME CAP LOG CMD...: CMD under min(CAP, time left), stdout and stderr to LOG.
run_step() {
    local name=$1 cap=$2 log=$3
    shift 3
    local t=$(( $(left) < cap ? $(left) : cap ))
    if (( t < 10 )); then note "$name: not run, ${t}s left of the budget"; return 1; fi
    local start=$SECONDS
    echo "### $name (cap ${t}s): $*" >> "$log"
    timeout --kill-after=5 "$t" "$@" >> "$log" 2>&1
    local rc=$?
    note "$name: rc $rc in $((SECONDS - start))s$( ((rc == 124)) && echo ' (timed out)')"
    return $rc
}
want() { [[ " $steps " == *" $1 "* ]]; }

# cudarc loads libcuda.so.1, libcublas.so.13 (or .12) and libnvrtc.so.13 (or .12) by name.
# The toolkit's own lib64 goes first: a pip NVRTC newer than the driver writes PTX the driver
# refuses (vq-gpu README, "Known risk"). Other folders only for a library not found there.
libs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64; do
    [[ -d $d ]] && libs="$libs:$d"
done
export LD_LIBRARY_PATH="${libs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for lib in libcuda.so.1 libcublas.so.13 libnvrtc.so.13; do
    found=0
    for d in ${LD_LIBRARY_PATH//:/ }; do [[ -e $d/$lib ]] && found=1; done
    ldconfig -p | grep -q " $lib " && found=1
    if ((found == 0)); then
        d=$(timeout 30 find /usr /opt -xdev -name "$lib" 2>/dev/null | head -1)
        [[ -n $d ]] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$(dirname "$d")"
    fi
done

if want env; then
    {
        date -u; uname -a; ldd --version | head -1
        nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
        echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
        ldconfig -p | grep -E 'libcuda\.so|libcublas\.so|libnvrtc\.so' || true
        for d in ${LD_LIBRARY_PATH//:/ }; do ls "$d" 2>/dev/null | grep -E '^lib(cuda|cublas|nvrtc)\.so' | sed "s|^|$d/|"; done
        nproc; free -g | head -2
        ls -la .devbin
    } > "$OUT/env.txt" 2>&1
    note "env: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -1)"
fi

if want tests; then
    for t in vq-gpu-tests vq-tests; do
        run_step "$t" 240 "$OUT/tests.log" ".devbin/$t" --nocapture --test-threads=1
    done
    skipped=$(grep -c 'skipped' "$OUT/tests.log")
    note "tests: $(grep -E '^test result' "$OUT/tests.log" | tr '\n' ' '); lines saying skipped: $skipped"
fi

flat_pair() { # $1: f32 | f16
    local fp16=""
    [[ $1 == f16 ]] && fp16=--fp16
    run_step "GpuFlat $1" 120 "$OUT/flat.jsonl" .devbin/gpu_flat_bench --storage "$1" --cpu-queries 100 --rounds 3
    run_step "torch $1" 120 "$OUT/flat.jsonl" python3 benchmarks/gpu_flat_torch.py --rounds 3 $fp16
}
want flat && flat_pair f32
want kmeans && run_step kmeans 240 "$OUT/kmeans.jsonl" \
    .devbin/gpu_kmeans_bench --n 1000000 --dim 128 --k 4096 --iterations 20 --cpu-iterations 2
want f16 && flat_pair f16

if want sanitize; then
    # memcheck over the IVF scans, filtered search and the k-means update; racecheck over the
    # selection kernel.
    run_step memcheck 150 "$OUT/sanitizer.log" compute-sanitizer --tool memcheck --error-exitcode 9 \
        .devbin/vq-gpu-tests ivf_ filtered session_update --test-threads=1
    run_step racecheck 120 "$OUT/sanitizer.log" compute-sanitizer --tool racecheck --error-exitcode 9 \
        .devbin/vq-gpu-tests flat_equals --test-threads=1
    note "sanitizer: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer.log" | tr '\n' ' ')"
fi

# The figures, one line each: algo, storage, k, round, QPS, recall against the CPU.
if [[ -s $OUT/flat.jsonl ]]; then
    python3 - "$OUT/flat.jsonl" <<'PY' | tee -a "$summary"
import json, sys
for line in open(sys.argv[1]):
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    print(f'{r["algo"]:<28} k={r["k"]:<4} round={r.get("round", "-")} nq={r["nq"]:<6} qps={r["qps"]:>12,.1f}'
          f' recall_vs_cpu={r.get("recall_vs_cpu", "-")}')
PY
fi
[[ -s $OUT/kmeans.jsonl ]] && grep '^{' "$OUT/kmeans.jsonl" | tee -a "$summary"
note "total ${SECONDS}s"
