#!/usr/bin/env bash
# One command for the GPU benchmarks (NVIDIA, MLX CUDA backend):
#     bash bench/gpu.sh            # in a checkout whose Python has mlx[cuda13] (e.g. `uv sync --extra cuda`)
#     WHEELS=/path/to/wheels bash bench/gpu.sh   # offline machine: install mlx + mlx-cuda-13 wheels first
# Prints the synthesizer table (float32 faithful, float32+TF32, float16, bfloat16; 10/60/300 s),
# GPU-vs-CPU parity of the full-size model when a CPU reference exists, and the pipeline table.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -n "${WHEELS:-}" ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/rvc-site "$WHEELS"/*.whl || exit 1
    export PYTHONPATH=/tmp/rvc-site:${PYTHONPATH:-}
fi
for p in packages/*/src; do export PYTHONPATH=$PWD/$p:${PYTHONPATH:-}; done
export PYTHONUNBUFFERED=1
$PY -c "import mlx.core as mx; print('MLX', mx.__version__, mx.default_device())" || exit 1
echo "== synthesizer (full-size v2 40k, random weights) =="
for dt in float32 float16 bfloat16; do $PY -m rvc_synth.bench --seconds 10 60 300 --dtype "$dt"; done
echo "-- float32 with TF32 (faster, less exact) --"
MLX_ENABLE_TF32=1 $PY -m rvc_synth.bench --seconds 10 60 300
if [ -f "${CPU_REF:-}" ]; then $PY bench/gpu_parity.py check "$CPU_REF"; fi
if $PY -c "import rvc_convert.bench" 2>/dev/null; then
    echo "== whole pipeline =="
    $PY -m rvc_convert.bench --seconds 10 60
fi
echo "== where GPU memory goes, per stage (HOUR=1 adds a one-hour conversion) =="
$PY bench/gpu_memory.py --seconds 10 40 $([ "${HOUR:-0}" = 1 ] && echo --hour)
