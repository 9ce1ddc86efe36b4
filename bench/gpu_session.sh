#!/usr/bin/env bash
# The lent H200 in a few calls (each call's tree is limited to 64 MiB, and mlx-cuda-13's wheel is
# larger: it travels in two parts). Here, once: put the wheels and parts in .gpu/p1..p3 (ignored),
# the anchors in .gpu/p3/anchors and a speech clip in .gpu/p3/speech.wav; then, back to back.
# `bash bench/gpu_wheels.sh` builds p1..p3 (uv.lock's versions; p3 with librosa's wheels for
# the reference's RMVPE):
#   run(carry=[".gpu/p1"], command="bash bench/gpu_session.sh stash")
#   run(carry=[".gpu/p2"], command="bash bench/gpu_session.sh stash")
#   run(carry=[".gpu/p3"], command="bash bench/gpu_session.sh ref")     # torch_ref + rvc bench (issue 17)
#   run(command="bash bench/gpu_session.sh live")                      # live (issue 16)
#   run(command="bash bench/gpu_session.sh trace")                     # each stage call traced in the pipeline
#   run(command="bash bench/gpu_session.sh first")                     # first conversion: cold, then cached
#   run(carry=[".gpu/p3"], command="BUDGET=560 bash bench/gpu_final17.sh")  # issue 17 in one call (after p1, p2)
#   MLX_ENABLE_TF32=1 python3 bench/gpu_kernels.py --seconds 10 60 [--dtype float16]  # CUPTI kernels per stage
# (after the first call, .gpu/p3 stays in /tmp/stash: later calls need no carry while the machine is warm;
# gpu_final17.sh reads .gpu/p3 itself, so it needs the carry)
# JSON and logs come back under $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
S=/tmp/stash
OUT=${OUT:-/tmp/rvc-gpu}
mkdir -p "$S" "$OUT"
for p in .gpu/p1 .gpu/p2 .gpu/p3 .gpu/p4; do [ -d "$p" ] && cp -r "$p"/. "$S"/; done  # p4: kernels.tgz.*
[ "${1:-}" = stash ] && { ls "$S"; exit 0; }
if [ ! -d /tmp/site/mlx ]; then
    mkdir -p /tmp/g/whl
    cat "$S"/mlxcuda.part.* > /tmp/g/whl/mlx_cuda_13-0.32.4-py3-none-manylinux_2_35_x86_64.whl
    cp "$S"/*.whl /tmp/g/whl/
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site /tmp/g/whl/*.whl \
        >"$OUT/install.txt" 2>&1 || { tail -5 "$OUT/install.txt"; exit 1; }
fi
rm -rf /tmp/g/anchors; cp -r "$S/anchors" /tmp/g/anchors 2>/dev/null
export PYTHONPATH=/tmp/site
for p in packages/*/src; do export PYTHONPATH=$PWD/$p:$PYTHONPATH; done
export PYTHONUNBUFFERED=1 GPU_DIR=/tmp/g
rvc() { python3 -c "import sys; from rvc_cli.main import app; sys.argv[0] = 'rvc'; app()" "$@"; }
case "${1:-}" in
ref)
    bash bench/gpu_issue17.sh ;;
live)
    { nvidia-smi --query-gpu=name --format=csv,noheader; } >"$OUT/env.txt"
    for prec in "--dtype float16" "--tf32"; do
        python3 bench/live_bench.py --blocks 0.25 --extra 2.5 --seconds 20 --pace fast $prec --json \
            --input "$S/speech.wav" 2>>"$OUT/log.txt" | tee -a "$OUT/live.jsonl"
        python3 bench/live_bench.py --blocks 0.05 --crossfade 0.03 --extra 1.0 --seconds 60 --pace realtime $prec \
            --json --input "$S/speech.wav" 2>>"$OUT/log.txt" | tee -a "$OUT/live.jsonl"
    done ;;
trace)
    for prec in "--tf32" "--dtype float16"; do
        env MLX_ENABLE_TF32=$([ "$prec" = "--tf32" ] && echo 1 || echo 0) python3 bench/gpu_profile17.py \
            --seconds 10 60 --pipeline-only --json --reps 3 $prec 2>>"$OUT/log.txt" | tee -a "$OUT/trace.jsonl"
    done ;;
first)
    for i in cold cached; do
        rvc bench --precision float16 --seconds 10 --json -q 2>>"$OUT/log.txt" | tee "$OUT/first_$i.json"
    done
    du -sh ~/.cache/rvc/mlx-kernels ~/.nv 2>&1 | tee -a "$OUT/env.txt" ;;
*)
    echo "usage: gpu_session.sh stash|ref|live|trace|first"; exit 2 ;;
esac
