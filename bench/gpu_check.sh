#!/usr/bin/env bash
# One call on the lent H200 after `gpu_session.sh stash` (p1, p2; p3 carried here) that re-checks
# a change against both issues: the live rows (0.25 s block fast twice and in real time, the
# 90 ms setting in real time; 60 s of speech each), `rvc bench` float16 and tf32 at 10 / 60 s
# (time and peak memory), and ContentVec's pass-size variants (bench/gpu_cv_ab.py, TF32).
# Each step under what is left of $BUDGET (default 560 s). JSON under $OUT.
source "$(dirname "$0")/gpu_call.sh"
run() { timeout "$(left)" "$@" 2>>"$OUT/log.txt"; }
S=.gpu/p3/speech.wav
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >"$OUT/env.txt"; git log -1 --format=%h >>"$OUT/env.txt"
live() { run python3 bench/live_bench.py --dtype float16 --json --input $S "$@" | tee -a "$OUT/live.jsonl"; }
echo "== live 0.25 fast =="; live --blocks 0.25 --extra 2.5 --seconds 60 --pace fast
echo "== live 0.25 real time =="; live --blocks 0.25 --extra 2.5 --seconds 60 --pace realtime
echo "== live 90 ms real time =="; live --blocks 0.05 --crossfade 0.03 --extra 1.0 --seconds 60 --pace realtime
echo "== live 0.25 fast, again =="; live --blocks 0.25 --extra 2.5 --seconds 60 --pace fast
bench() {  # precision
    run env MLX_ENABLE_TF32=1 python3 -c "import sys; from rvc_cli.main import app; sys.argv[0] = 'rvc'; app()" \
        bench --precision "$1" --seconds 10 --seconds 60 --repeats 3 --json -q >"$OUT/bench_$1.json"
    python3 -c "import json; [print(json.dumps({k: r[k] for k in ('seconds', 'precision', 'contentvec', 'f0', 'index', 'synth', 'other', 'total', 'peak_device_mb')})) for r in json.load(open('$OUT/bench_$1.json'))]" 2>&1
}
echo "== rvc bench float16 =="; bench float16
echo "== ContentVec passes =="; MLX_ENABLE_TF32=1 run python3 bench/gpu_cv_ab.py --seconds 10 37 --variants strided block1024 block4096 | tee "$OUT/cv_ab.jsonl"
echo "== rvc bench tf32 =="; bench tf32
keep_kernels; echo "left $(left) s"; tail -3 "$OUT/log.txt"
