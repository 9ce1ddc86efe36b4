#!/usr/bin/env bash
# Issue 17: MLX CUDA's command-buffer settings A/B on the lent H200 (after gpu_session.sh stash):
# `rvc bench --repeats 3` at 10 s and 60 s for each setting below, float16 (TF32 float32 stages)
# and tf32, one JSON line per run under $OUT/env_ab.jsonl. Found by bench/gpu_kernels.py: every
# stage call's wall time was 2-3x its kernel time, cudaGraphInstantiate/ExecDestroy on each commit
# (fourth session: graphs off became configure_gpu's default; cuDNN's SDPA not yet tried).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/rvc-gpu}
mkdir -p "$OUT"
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 MLX_ENABLE_TF32=1
for p in packages/*/src; do export PYTHONPATH=$PWD/$p:$PYTHONPATH; done
rvc() { python3 -c "import sys; from rvc_cli.main import app; sys.argv[0] = 'rvc'; app()" "$@"; }
run() {  # label precision env...
    local label=$1 prec=$2; shift 2
    env "$@" python3 -c "import sys; from rvc_cli.main import app; sys.argv[0] = 'rvc'; app()" bench \
        --precision "$prec" --seconds 10 --seconds 60 --repeats 3 --json -q 2>>"$OUT/log.txt" \
        | python3 -c "import json, sys; rows = json.load(sys.stdin); print(json.dumps({'label': '$label', 'precision': '$prec', 'rows': [{k: r[k] for k in ('seconds', 'contentvec', 'f0', 'index', 'synth', 'other', 'total', 'peak_device_mb')} for r in rows]}))" \
        | tee -a "$OUT/env_ab.jsonl"
}
# base = configure_gpu's defaults (graphs off since the fourth session, 3 GiB memory limit)
for prec in ${PRECISIONS:-float16 tf32}; do
    run base "$prec" X=1
    run graphs "$prec" MLX_USE_CUDA_GRAPHS=1
    run bigbuf "$prec" MLX_MAX_OPS_PER_BUFFER=1000 MLX_MAX_MB_PER_BUFFER=100000
    run cudnn_sdpa "$prec" MLX_CUDA_USE_CUDNN_SDPA=1
done
[ -n "${PROFILE:-}" ] && MLX_USE_CUDA_GRAPHS=0 python3 bench/gpu_kernels.py --seconds 60 --dtype float16 \
    >"$OUT/k_nographs.jsonl" 2>>"$OUT/log.txt"
tail -2 "$OUT/log.txt"
