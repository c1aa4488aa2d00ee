#!/usr/bin/env bash
# Runs vq-gpu's CUDA kernels on the CPU (emu.hpp) against plain references, twice: under
# AddressSanitizer + UBSan (out-of-bounds reads and writes of device buffers and of the dynamic
# shared buffer, sized exactly as each launch asks) and under ThreadSanitizer (races between
# the threads of a block: a missing __syncthreads). Needs g++ with C++20; no CUDA, no GPU.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${CUDA_EMU_OUT:-${CARGO_TARGET_DIR:-$here/../../target}/cuda-emu}"
mkdir -p "$out"
python3 "$here/extract.py" "$out/kernels.inc"
flags=(-std=c++20 -O1 -g -ffp-contract=off -pthread -I"$here" -I"$out" -Wall -Wno-unknown-pragmas -Wno-unused-parameter)
g++ "${flags[@]}" -fsanitize=address,undefined -fno-sanitize-recover=all "$here/harness.cpp" -o "$out/harness-asan"
"$out/harness-asan"
g++ "${flags[@]}" -fsanitize=thread "$here/harness.cpp" -o "$out/harness-tsan"
TSAN_OPTIONS="halt_on_error=1" "$out/harness-tsan" --quick
