#!/usr/bin/env bash
# Builds, here, what benchmarks/gpu_device.sh runs on the lent GPU machine, whose image has no
# Rust toolchain: the two GPU test binaries and the two GPU examples, stripped, in `.devbin/`
# (ignored by git through .git/info/exclude, carried by the device call). Issue 23.
#
#   bash benchmarks/gpu_devbin.sh
#   then one device call: command `bash benchmarks/gpu_device.sh`, carry [".devbin"]
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.devbin/' .git/info/exclude 2>/dev/null || echo /.devbin/ >> .git/info/exclude
rm -rf .devbin && mkdir -p .devbin

cargo build --release -p vq-gpu --example gpu_flat_bench --example gpu_kmeans_bench
cp target/release/examples/gpu_flat_bench target/release/examples/gpu_kmeans_bench .devbin/

# The integration tests `gpu` of vq-gpu and of vq (feature gpu): both compile to `gpu-<hash>`,
# so each is copied under its crate's name.
test_binary() { # $1: cargo arguments selecting one test target
    # shellcheck disable=SC2086
    cargo test --release $1 --no-run --message-format=json \
        | python3 -c 'import sys, json
for m in map(json.loads, sys.stdin):
    if m.get("executable") and m.get("profile", {}).get("test"):
        print(m["executable"])'
}
cp "$(test_binary '-p vq-gpu --test gpu')" .devbin/vq-gpu-tests
cp "$(test_binary '-p vq --features gpu --test gpu')" .devbin/vq-tests

strip .devbin/*
ls -la .devbin
total=$(du -cb .devbin/* | tail -1 | cut -f1)
echo "gpu_devbin: $((total >> 20)) MiB to carry (a device call carries at most 64 MiB with the tree)"
echo "gpu_devbin: glibc here $(ldd --version | head -1 | grep -oE '[0-9]+\.[0-9]+$')"
