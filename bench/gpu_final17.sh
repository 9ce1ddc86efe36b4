#!/usr/bin/env bash
# Issue 17, one call on the lent H200 after `gpu_session.sh stash` (p1, p2; p3 carried here):
# rvc bench float16 (TF32 float32 stages) and tf32 at 10 s / 60 s, --repeats 3, with the
# reference's eager stages (torch_ref.py, fp32 and fp16) in the same call, and the memory bound
# A/B (MLX's limit: configure_gpu's 3 GiB, none, 2 GiB; per-stage peaks); each step under a
# timeout so the call returns in time. JSON under $OUT.
source "$(dirname "$0")/gpu_call.sh"
bench() {  # precision
    timeout "$(left)" env MLX_ENABLE_TF32=1 python3 -c "import sys; from rvc_cli.main import app; sys.argv[0] = 'rvc'; app()" \
        bench --precision "$1" --seconds 10 --seconds 60 --repeats 3 --json -q >"$OUT/bench_$1.json" 2>>"$OUT/log.txt"
    python3 -c "import json; [print(json.dumps({k: r[k] for k in ('seconds', 'precision', 'contentvec', 'f0', 'index', 'synth', 'other', 'total', 'peak_device_mb')})) for r in json.load(open('$OUT/bench_$1.json'))]" 2>&1
}
mem() {  # label limit_gb (0: none)
    timeout "$(left)" env MLX_ENABLE_TF32=1 python3 -c "
import functools, sys, runpy
import rvc_runtime
rvc_runtime.configure_gpu = functools.partial(rvc_runtime.configure_gpu, memory_limit=($2 or None))
sys.argv = ['gpu_profile17.py', '--seconds', '10', '60', '--pipeline-only', '--reps', '3', '--json', '--dtype', 'float16']
runpy.run_path('bench/gpu_profile17.py', run_name='__main__')
" 2>>"$OUT/log.txt" | python3 -c "
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print(json.dumps({'label': '$1', 'seconds': r['seconds'], 'ms': r['pipeline_ms'], 'trace': r['trace_last']}))
" | tee -a "$OUT/mem_ab.jsonl"
}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >"$OUT/env.txt"; git log -1 --format=%h >>"$OUT/env.txt"
echo "== rvc bench float16 (cold kernels) =="; bench float16
echo "== memory A/B =="; mem limit3 3; mem nolimit 0; mem limit2 2
echo "== reference, eager =="
for stage in hubert rmvpe synth; do for prec in fp32 fp16; do
    timeout "$(left)" python3 .gpu/p3/anchors/torch_ref.py cuda "$stage" "$prec" 10 60 2>>"$OUT/log.txt" | tee -a "$OUT/torch_ref.jsonl"
done; done
echo "== rvc bench tf32 =="; bench tf32
keep_kernels; echo "left $(left) s"; tail -3 "$OUT/log.txt"
