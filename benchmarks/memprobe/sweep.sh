#!/bin/bash
# One fresh process per (library, factory string): memory_usage() beside the process' resident
# growth and the C allocator's live bytes (probe.py). Wheel on PYTHONPATH; data imgsift100k.
#   PYTHONPATH=<wheel> bash benchmarks/memprobe/sweep.sh /tmp/mem.jsonl
OUT=${1:-/tmp/memprobe.jsonl}
PY="$HOME/.cache/vq/peers-venv/bin/python $(dirname "$0")/probe.py"
SPECS=("Flat" "SQ8" "SQ4" "SQfp16" "PQ16" "PQ32x4fs" "RaBitQ" "HNSW32" "HNSW32,SQ8" "HNSW32,PQ16" "IVF1024,Flat" "IVF1024,SQ8" "IVF1024,PQ16" "IVF1024,PQ32x4fs" "IVF1024,RaBitQ" "IVF256,Flat,RFlat" "HNSW32,SQ8,RFlat" "IVF1024,PQ16,Refine(Flat)" "PCA64,IVF256,Flat" "IDMap,Flat" "IDMap2,Flat")
for s in "${SPECS[@]}"; do
  for lib in vq faiss; do
    timeout 900 $PY $lib "$s" 100000 search >> "$OUT" || echo "{\"lib\":\"$lib\",\"spec\":\"$s\",\"error\":\"rc=$?\"}" >> "$OUT"
  done
done
