#!/usr/bin/env bash
# Issue 17, one run on the lent H200: the PyTorch reference's stages (../shared/anchors/torch_ref.py:
# hubert, rmvpe, synth at 10 s and 60 s, fp32 and fp16, rmvpe/synth also with RVC_CUDA_GRAPH=1) and
# `rvc bench --precision tf32|float16 --seconds 10 --seconds 60 --json`, plus a cold `rvc warmup`,
# all in one process tree, JSON under $OUT.
#
# Here, once, in the repo root (the machine has torch/CUDA 13 but neither our deps nor ../shared):
#   echo /.gpu/ >> .git/info/exclude; rm -rf .gpu; mkdir -p .gpu/whl; cp -r ../shared/anchors .gpu/anchors
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_35_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/whl \
#     mlx==0.32.4 mlx-cuda-13==0.32.4 mlx-contentvec mlx-rmvpe faiss-cpu soxr av \
#     librosa audioread pooch decorator platformdirs
#   (the versions of mlx and mlx-cuda-13 must match; no soundfile: without cffi it breaks transformers)
# Then: run(command="bash bench/gpu_issue17.sh", carry=[".gpu"], timeout_s=600)
# Files back ($OUT): env.txt, torch_ref.jsonl (one line per stage/precision/graph/length),
# rvc_bench_tf32.json, rvc_bench_float16.json, warmup.txt (cold first warm-up, wall seconds), log.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
G=${GPU_DIR:-.gpu}
OUT=${OUT:-/tmp/rvc-issue17}
mkdir -p "$OUT"
LOG=$OUT/log.txt
if ls "$G"/whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/rvc-site \
        "$G"/whl/*.whl >>"$LOG" 2>&1 || { echo "wheel install failed (see log.txt)"; tail -5 "$LOG"; exit 1; }
    export PYTHONPATH=/tmp/rvc-site:${PYTHONPATH:-}
fi
for p in packages/*/src; do export PYTHONPATH=$PWD/$p:${PYTHONPATH:-}; done
export PYTHONUNBUFFERED=1
rvc() { $PY -c "import sys; from rvc_cli.main import app; sys.argv[0] = 'rvc'; app()" "$@"; }

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  $PY -c "import torch, mlx.core as mx, faiss; print('torch', torch.__version__, torch.cuda.is_available()); \
print('MLX', mx.__version__, mx.default_device(), 'faiss', faiss.__version__)"
  git log -1 --format='commit %h %s' 2>/dev/null; } >"$OUT/env.txt" 2>>"$LOG" || { cat "$OUT/env.txt"; exit 1; }
cat "$OUT/env.txt"

REF=$G/anchors/torch_ref.py
[ -f "$REF" ] || { echo "no $REF: copy ../shared/anchors to $G/anchors (see the header)"; exit 1; }
echo "== reference stages (torch_ref.py) =="
for stage in hubert rmvpe synth; do
    for prec in fp32 fp16; do
        $PY "$REF" cuda "$stage" "$prec" 10 60 2>>"$LOG" | tee -a "$OUT/torch_ref.jsonl"
        if [ "$stage" != hubert ]; then
            RVC_CUDA_GRAPH=1 $PY "$REF" cuda "$stage" "$prec" 10 60 2>>"$LOG" | tee -a "$OUT/torch_ref.jsonl"
        fi
    done
done

echo "== cold rvc warmup (float16, 10 s; kernels built in this fresh process) =="
t0=$EPOCHREALTIME
rvc warmup --precision float16 --seconds 10 --json -q >"$OUT/warmup.txt" 2>>"$LOG" || echo "rvc warmup failed (see log.txt)"
$PY -c "print('wall_s', round($EPOCHREALTIME - $t0, 2))" | tee -a "$OUT/warmup.txt"

echo "== rvc bench =="
for prec in tf32 float16; do
    rvc bench --precision "$prec" --seconds 10 --seconds 60 --json -q >"$OUT/rvc_bench_$prec.json" 2>>"$LOG" \
        || echo "rvc bench --precision $prec failed (see log.txt)"
    cat "$OUT/rvc_bench_$prec.json"
done
