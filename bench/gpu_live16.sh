#!/usr/bin/env bash
# Issue 16 on the lent H200, one call after `gpu_session.sh stash` (p1, p2; p3 carried here):
# the direct-convolution RMVPE U-Net against cuDNN's (gpu_unet_direct.py), the live stream at
# block 0.25 s (new wiring, then the old one: compiled cuDNN U-Net, decoder outside the block
# graph), the 90 ms setting in real time, and the CUPTI kernels of one block. JSON under $OUT.
# SHORT=1: the new wiring only; LIVE_SECONDS (20): the fast 0.25 s runs; NOKERNELS=1: no CUPTI.
source "$(dirname "$0")/gpu_call.sh"
run() { timeout "$(left)" "$@" 2>>"$OUT/log.txt"; }
S=.gpu/p3/speech.wav
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >"$OUT/env.txt"; git log -1 --format=%h >>"$OUT/env.txt"
[ -z "${SHORT:-}" ] && { echo "== direct U-Net =="; MLX_ENABLE_TF32=${UNET_TF32:-0} run python3 bench/gpu_unet_direct.py --frames 32 160 256 512 --reps 20 | tee "$OUT/unet.jsonl"; }
live() { run python3 bench/live_bench.py --dtype float16 --json --input $S "$@" | tee -a "$OUT/live.jsonl"; }
L=${LIVE_SECONDS:-20}
echo "== live 0.25 new =="; live --blocks 0.25 --extra 2.5 --seconds $L --pace fast
[ -z "${SHORT:-}" ] && { echo "== live 0.25 cuDNN U-Net =="; live --blocks 0.25 --extra 2.5 --seconds $L --pace fast --rmvpe-backend compiled; }
[ -z "${SHORT:-}" ] && { echo "== live 0.25 old =="; live --blocks 0.25 --extra 2.5 --seconds 20 --pace fast --rmvpe-backend compiled --plain-synth; }
echo "== live 0.25 new, again =="; live --blocks 0.25 --extra 2.5 --seconds $L --pace fast
echo "== live 0.25 real time =="; live --blocks 0.25 --extra 2.5 --seconds 60 --pace realtime
echo "== live 90 ms =="; live --blocks 0.05 --crossfade 0.03 --extra 1.0 --seconds 60 --pace realtime
echo "== live 100 ms =="; live --blocks 0.06 --crossfade 0.03 --extra 1.0 --seconds 60 --pace realtime
[ -z "${NOKERNELS:-}" ] && { echo "== block kernels =="; (cd bench && run python3 gpu_live_kernels.py --dtype float16 --input ../$S) | tee "$OUT/live_kernels.jsonl"; }
keep_kernels; echo "left $(left) s"; tail -5 "$OUT/log.txt"
