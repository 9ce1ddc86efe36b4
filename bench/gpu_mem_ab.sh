#!/usr/bin/env bash
# Issue 17: peak device memory per stage call with MLX CUDA graphs off (MLX_USE_CUDA_GRAPHS=0 took
# the 60 s float16 peak from 3.3 to 6.2 GB), and two bounds on it: smaller command buffers, and
# MLX's memory limit (eval waits for work in flight above it). float16 + TF32 float32 stages,
# bench/gpu_profile17.py --pipeline-only at 60 s; one JSON line per setting in $OUT/mem_ab.jsonl.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/rvc-gpu}
mkdir -p "$OUT"
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 MLX_ENABLE_TF32=1
for p in packages/*/src; do export PYTHONPATH=$PWD/$p:$PYTHONPATH; done
prof() {  # label limit_gb env...
    local label=$1 limit=$2; shift 2
    env "$@" python3 -c "
import sys, runpy
if $limit:
    import mlx.core as mx
    mx.set_memory_limit(int($limit * 2**30))
sys.argv = ['gpu_profile17.py', '--seconds', '10', '60', '--pipeline-only', '--reps', '3', '--json', '--dtype', 'float16']
runpy.run_path('bench/gpu_profile17.py', run_name='__main__')
" 2>>"$OUT/log.txt" | python3 -c "
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print(json.dumps({'label': '$label', 'seconds': r['seconds'], 'ms': r['pipeline_ms'], 'peak_mb': r['pipeline_peak_mb'], 'trace': r['trace_last']}))
" | tee -a "$OUT/mem_ab.jsonl"
}
prof graphs 0 X=1
prof nographs 0 MLX_USE_CUDA_GRAPHS=0
prof nographs_ops50 0 MLX_USE_CUDA_GRAPHS=0 MLX_MAX_OPS_PER_BUFFER=50
prof nographs_limit3 3 MLX_USE_CUDA_GRAPHS=0
prof nographs_limit2 2 MLX_USE_CUDA_GRAPHS=0
tail -2 "$OUT/log.txt"
