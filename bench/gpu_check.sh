#!/usr/bin/env bash
# One call on the lent H200 after `gpu_session.sh stash` (p1, p2, p4 kernels; p3 carried here)
# that re-checks a change against both issues, most important first, each step under what is
# left of $BUDGET (default 560 s): the live 0.25 s block (60 s of speech, fast, then in real
# time), `rvc bench
# float16` at 10 / 60 s (time, peak memory), the CUPTI kernels of one block, the reference's
# eager stages (torch_ref.py fp32/fp16), `rvc bench tf32`, the 90 ms setting in real time, the
# 0.25 s block fast again. JSON under $OUT; per-step start times in steps.txt. STEPS picks
# and orders the steps (default: all, in that order; "tests" runs the CUDA-only tests first;
# "first" times a first conversion (run it with COLD=1 on a fresh machine), "coldeager" one with
# empty kernel caches and MLX_DISABLE_COMPILE=1 (then again, caches kept), "warmprof" profiles
# a new process's first conversion with the caches filled (py-spy, .gpu/p5), "prof" the CUPTI
# kernels of every stage call at 10 / 60 s, "refgraph"/"refstrict"/"bexact" the reference's
# CUDA-graph and fp32strict stages and exact float32, "flags" the A/Bs of
# bench/gpu_flags_ab.py, alternated in one process: FLAGSETS="compile stretch f0 memory cv",
# FLAGPRECS="float16 tf32 exact", FLAGSECS="10 60",
# "cvprof" ContentVec's CUPTI kernels at 60 s float16, "other" bench/gpu_other.py,
# "convmem" bench/gpu_conv_memory.py in TF32, exact float32 and float16, "buffers" its whole
# decoder per MLX_MAX_OPS_PER_BUFFER value).
# NOKEEP=1: no kernel caches sent back (room for 8 result files); otherwise the results come
# back as one results.tgz beside the kernel parts (refresh .gpu/p4 with those parts).
source "$(dirname "$0")/gpu_call.sh"
run() { timeout "$(left)" "$@" 2>>"$OUT/log.txt"; }
S=.gpu/p3/speech.wav
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >"$OUT/env.txt"; git log -1 --format=%h >>"$OUT/env.txt"
step() { echo "== $* ==" | tee -a "$OUT/steps.txt"; echo "start $((SECONDS - start)) s" >>"$OUT/steps.txt"; }
live() { run python3 bench/live_bench.py --dtype float16 --json --input $S "$@" | tee -a "$OUT/live.jsonl"; }

benchx() {  # name precision seconds...: rvc bench rows (first call + stages), all lengths in one process; REPEATS (3)
    local name=$1 prec=$2; shift 2; local secs; secs=$(IFS=,; echo "$*")
    local t0=$SECONDS
    run env MLX_ENABLE_TF32=${TF32:-1} python3 -c "import json, rvc_runtime; rvc_runtime.configure_cpu(); rvc_runtime.configure_gpu()
from rvc_convert import bench; print(json.dumps(bench.run(($secs,), isolate=False, precision='$prec', repeats=${REPEATS:-3})))" >"$OUT/bench_$name.json"
    python3 -c "import json; [print(json.dumps({'run': '$name', **{k: r.get(k) for k in ('seconds', 'precision', 'contentvec', 'f0', 'index', 'synth', 'other', 'total', 'peak_device_mb', 'first_call_s', 'first_call_stages')}})) for r in json.load(open('$OUT/bench_$name.json'))]" 2>&1
    echo "process $((SECONDS - t0)) s; MLX kernels $(du -sm ~/.cache/rvc/mlx-kernels 2>/dev/null | cut -f1) MB, ~/.nv $(du -sm ~/.nv 2>/dev/null | cut -f1) MB"
}
first() {  # a fresh machine (COLD=1: empty kernel caches): first float16 conversion, then in a new process
    benchx cold16 float16 10; benchx cached16 float16 10
    local t0=$SECONDS; run env MLX_ENABLE_TF32=1 python3 -c "import sys; from rvc_cli.main import app; sys.argv[0] = 'rvc'; app()" \
        warmup --precision tf32 -q --json | cut -c1-300; echo "rvc warmup tf32: $((SECONDS - t0)) s"
    benchx after_warmup32 tf32 10 60
}
spy_install() {  # py-spy into its own folder: pip --target skips a bin/ that exists (/tmp/site's)
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/spy .gpu/p5/*.whl 2>>"$OUT/log.txt"
}
warmprof() {  # where a new process's first conversion goes once the kernel caches are filled (py-spy, .gpu/p5)
    spy_install
    local rvc="import sys; from rvc_cli.main import app; sys.argv[0] = 'rvc'; app()"
    run env MLX_ENABLE_TF32=1 python3 -c "$rvc" bench --precision float16 --seconds 10 --repeats 1 --json -q >"$OUT/warm1.json"
    # --native at 40 Hz as coldprof; the twelfth session's run at 100 Hz ended in Python's start-up
    # with no output, so without --native if that happens again
    for native in --native ""; do
        run /tmp/spy/bin/py-spy record $native --rate 40 --format raw -o "$OUT/spy_warm.txt" -- env MLX_ENABLE_TF32=1 \
            python3 -c "$rvc" bench --precision float16 --seconds 10 --repeats 1 --json -q >"$OUT/spy_warm.json"
        [ -s "$OUT/spy_warm.json" ] && break
        echo "py-spy record $native: no result"
    done
    python3 -c "import json; r = json.load(open('$OUT/spy_warm.json'))[0]; print(r['first_call_s'], r['first_call_stages'])"
    python3 bench/spy_summary.py "$OUT/spy_warm.txt" run_pipeline rvc_f0 --top ${TOP:-45} | cut -c1-170
    gzip -f "$OUT/spy_warm.txt"
}
coldprof() {  # where a fresh machine's first conversion goes: native stacks (py-spy, carried in .gpu/p5), cold then cached
    spy_install
    for i in cold cached; do
        local t0=$SECONDS
        run /tmp/spy/bin/py-spy record --native --rate 40 --format raw -o "$OUT/spy_$i.txt" -- env MLX_ENABLE_TF32=1 \
            python3 -c "import sys; from rvc_cli.main import app; sys.argv[0] = 'rvc'; app()" \
            bench --precision float16 --seconds 10 --repeats 1 --json -q >"$OUT/spy_$i.json"
        echo "$i: process $((SECONDS - t0)) s: $(python3 -c "import json; r = json.load(open('$OUT/spy_$i.json'))[0]; print(r['first_call_s'], r['first_call_stages'])" 2>&1)"
        gzip -f "$OUT/spy_$i.txt"; ls ~/.cache/rvc/mlx-kernels | tr '\n' ' ' | cut -c1-1500; echo
    done
}
coldeager() {  # first conversions with empty kernel caches and MLX's compile off (AOT kernels only), then again
    local d; d=$(mktemp -d); local secs=${COLDSECS:-10,60}
    local flag=MLX_DISABLE_COMPILE=1; [ "${COLDCOMPILE:-1}" = 0 ] && flag=RVC_COMPILED=1  # MLX: set at all = off
    for i in ${COLDRUNS:-cold warm}; do
        local t0; t0=$(date +%s.%N)
        run env MLX_PTX_CACHE_DIR=$d/k CUDA_CACHE_PATH=$d/nv $flag MLX_ENABLE_TF32=1 python3 -c "import json, rvc_runtime; rvc_runtime.configure_cpu(); rvc_runtime.configure_gpu()
from rvc_convert import bench; print(json.dumps(bench.run(($secs,), isolate=False, precision='float16', repeats=${REPEATS:-3})))" >"$OUT/bench_c${COLDCOMPILE:-1}_$i.json"
        python3 -c "import json; [print(json.dumps({'run': 'c${COLDCOMPILE:-1}_$i', **{k: r.get(k) for k in ('seconds', 'contentvec', 'f0', 'index', 'synth', 'other', 'total', 'peak_device_mb', 'first_call_s', 'first_call_stages')}})) for r in json.load(open('$OUT/bench_c${COLDCOMPILE:-1}_$i.json'))]" 2>&1
        echo "$i: process $(python3 -c "import time; print(round(time.time() - $t0, 1))") s; modules (s after start, MB):"
        for f in $(ls -tr $d/k/*.ptx 2>/dev/null); do python3 -c "import os; print(round(os.path.getmtime('$f') - $t0, 1), round(os.path.getsize('$f') / 1e6, 2), os.path.basename('$f')[:70])"; done
        secs=${secs%%,*}
    done
}
abold() {  # rvc bench float16 10 / 60 s: this tree and the packages in .gpu/old (git archive OLD packages), alternated
    local old=/tmp/site; for p in "$PWD"/.gpu/old/packages/*/src; do old=$p:$old; done
    for r in ${ABROUNDS:-1 2}; do for v in new old; do
        local pp=$PYTHONPATH; [ $v = old ] && pp=$old
        run env PYTHONPATH="$pp" MLX_ENABLE_TF32=1 python3 -c "import json, rvc_runtime; rvc_runtime.configure_cpu(); rvc_runtime.configure_gpu()
from rvc_convert import bench; print(json.dumps(bench.run((10, 60), isolate=False, precision='float16', repeats=${REPEATS:-5})))" >"/tmp/ab_$v$r.json"
        python3 -c "import json; [print(json.dumps({'run': '$v$r', **{k: r.get(k) for k in ('seconds', 'contentvec', 'f0', 'index', 'synth', 'other', 'total', 'peak_device_mb', 'first_call_s')}})) for r in json.load(open('/tmp/ab_$v$r.json'))]" 2>&1
    done; done
}
prof() { (cd bench && run env MLX_ENABLE_TF32=1 python3 gpu_kernels.py --seconds 10 60 --dtype float16 --top 12) | tee "$OUT/kernels.jsonl" | cut -c1-900; }
tests() {  # the device has no fixtures: the tests that build their own index
    run python3 -m pytest -q -p no:cacheprovider packages/rvc-index/tests/test_mlx_search.py \
        -k "cuda or built or ties or direct or groups" 2>&1 | tail -4
    run python3 -m pytest -q -p no:cacheprovider packages/rvc-runtime/tests/test_gather.py 2>&1 | tail -4
    run python3 -m pytest -q -p no:cacheprovider packages/rvc-f0/tests/test_rmvpe.py -k cuda 2>&1 | tail -4
}
ref() {
    for stage in hubert rmvpe synth; do for prec in fp32 fp16; do
        run python3 .gpu/p3/anchors/torch_ref.py cuda "$stage" "$prec" 10 60 | tee -a "$OUT/torch_ref.jsonl"
    done; done
}
refgraph() {  # the reference's stages with its own CUDA-graph replay (RVC_CUDA_GRAPH=1)
    for stage in hubert rmvpe synth; do for prec in fp32 fp16; do
        run env RVC_CUDA_GRAPH=1 python3 .gpu/p3/anchors/torch_ref.py cuda "$stage" "$prec" 10 60 | tee -a "$OUT/torch_ref_graph.jsonl"
    done; done
}
kernels() { (cd bench && run python3 gpu_live_kernels.py --dtype float16 --input ../$S) | tee "$OUT/live_kernels.jsonl" | cut -c1-600; }
n16=0
for s in ${STEPS:-fast rt bench16 kernels ref bench32 rt90 fast}; do
    case $s in
    tests) step CUDA tests; tests ;;
    first) step first conversion; first ;;
    coldeager) step first conversion without compile; coldeager ;;
    coldcompiled) step first conversion compiled, empty caches; COLDCOMPILE=0 COLDSECS=10 coldeager ;;
    abold) step this tree against .gpu/old, alternated; abold ;;
    census) step runtime-compiled modules of a first conversion; run env MLX_PTX_CACHE_DIR="$(mktemp -d)" MLX_DISABLE_COMPILE=1 \
        MLX_ENABLE_TF32=1 python3 bench/gpu_gathers.py --seconds 10 --every-op | tee "$OUT/census.jsonl" | cut -c1-250 ;;
    coldprof) step first conversion profiled; coldprof ;;
    warmprof) step first conversion of a new process profiled; warmprof ;;
    flags) step interleaved A/B; for set in ${FLAGSETS:-compile}; do  # sets: bench/gpu_flags_ab.py
            # precisions: FLAGPRECS (float16, tf32, exact; default the first two, cv float16 only)
            for p in ${FLAGPRECS:-float16 $([ "$set" != cv ] && echo tf32)}; do
                run env MLX_ENABLE_TF32=$([ "$p" = exact ] && echo 0 || echo 1) python3 bench/gpu_flags_ab.py "$set" \
                    "$([ "$p" = float16 ] && echo float16 || echo float32)" ${FLAGSECS:-10 60} | tee -a "$OUT/flags.jsonl"
            done
        done ;;
    convmem) step decoder memory by layer; for p in ${CONVMEM:-tf32:float32 exact:float32 half:float16}; do  # bench/gpu_conv_memory.py
            run env MLX_ENABLE_TF32=$([ "${p%%:*}" = exact ] && echo 0 || echo 1) python3 bench/gpu_conv_memory.py --frames 1200 --dtype "${p#*:}" | tee -a "$OUT/convmem.txt"
        done ;;
    buffers) step decoder memory by command buffer size; for e in ${BUFFERS:-MLX_MAX_OPS_PER_BUFFER=8 MLX_MAX_OPS_PER_BUFFER=20 MLX_MAX_OPS_PER_BUFFER=1000}; do
            for t in 1 0; do run env MLX_ENABLE_TF32=$t $e python3 bench/gpu_conv_memory.py --frames 1200 --whole | grep '^{' | tee -a "$OUT/buffers.jsonl"; done
        done ;;
    parity) step synthesizer GPU vs CPU, 1500 frames; for t in 0 1; do  # .gpu/p3/parity1500.npz: gpu_parity.py write, here
            run env MLX_ENABLE_TF32=$t python3 bench/gpu_parity.py check .gpu/p3/parity1500.npz 1500 | tee -a "$OUT/parity.txt"
        done ;;
    parityeager) step synthesizer GPU vs CPU without compile; for t in 0 1; do
            run env MLX_DISABLE_COMPILE=1 MLX_ENABLE_TF32=$t python3 bench/gpu_parity.py check .gpu/p3/parity1500.npz 1500 | tee -a "$OUT/parity.txt"
        done ;;
    prof) step stage kernels; prof ;;
    cvprof) step ContentVec kernels at 60 s; (cd bench && run env MLX_ENABLE_TF32=1 python3 gpu_kernels.py --seconds 60 --dtype float16 --top 15) >"$OUT/kernels.jsonl"
        python3 -c "import json; [print(json.dumps(c)[:2500]) for l in open('$OUT/kernels.jsonl') for c in json.loads(l)['calls'] if c['stage'] == 'contentvec']" ;;
    other) step the other step in parts; run env MLX_ENABLE_TF32=1 python3 bench/gpu_other.py --reps 5 | tee "$OUT/other.jsonl" ;;
    fast) step live 0.25 fast; live --blocks 0.25 --extra 2.5 --seconds 60 --pace fast ;;
    rt) step live 0.25 real time; live --blocks 0.25 --extra 2.5 --seconds 60 --pace realtime ;;
    bench16 | b16) step rvc bench float16; benchx float16$((++n16)) float16 10 60 ;;
    bench32 | b32) step rvc bench tf32; benchx tf32 tf32 10 60 ;;
    kernels) step block kernels; kernels ;;
    ref) step reference eager; ref ;;
    refgraph) step reference CUDA graphs; refgraph ;;
    bexact) step rvc bench float32; TF32=0 benchx float32 float32 10 60 ;;
    refstrict) step reference eager fp32strict; for st in hubert rmvpe synth; do run python3 .gpu/p3/anchors/torch_ref.py cuda $st fp32strict 10 60 | tee -a "$OUT/torch_ref.jsonl"; done ;;
    rt90) step live 90 ms real time; live --blocks 0.05 --crossfade 0.03 --extra 1.0 --seconds 60 --pace realtime ;;
    esac
done
step end; tail -3 "$OUT/log.txt"
if [ -z "${NOKEEP:-}" ]; then  # 8 files come back a call: the results in one archive, then the kernel parts
    (cd "$OUT" && tar czf results.tgz --remove-files $(ls | grep -v '^kernels.tgz'))
    keep_kernels
fi
echo "left $(left) s"
