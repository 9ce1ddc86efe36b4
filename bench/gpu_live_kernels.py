"""Issue 16: the GPU kernels behind one live block, stage by stage (CUPTI through torch.profiler,
as ``gpu_kernels.py`` does for the pipeline). Each stage is called alone with the stream's own
arguments: wall time (median of warm calls, no profiler), then one profiled call: kernel time,
kernel count, CUDA runtime calls. Then whole ``Stream.process`` calls the same way. Not a test.

    python bench/gpu_live_kernels.py [--block 0.25] [--extra 2.5] [--dtype float16] [--reps 30]
        [--plain-synth]   # the synthesizer's decoder outside the compiled graph (the old wiring)
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time

import rvc_runtime

rvc_runtime.configure_cpu()
rvc_runtime.configure_gpu(compile=True)

import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402
from gpu_kernels import summarize  # noqa: E402  (this folder)

from rvc_audio import load_audio, resample  # noqa: E402
from rvc_convert.bench import build_models, live_converter, signal  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--block", type=float, default=0.25)
    ap.add_argument("--extra", type=float, default=2.5)
    ap.add_argument("--crossfade", type=float, default=0.05)
    ap.add_argument("--dtype", default="float16")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--input", help="speech to feed the stream (default: the bench signal)")
    ap.add_argument("--plain-synth", action="store_true")
    a = ap.parse_args()
    try:
        from torch.profiler import ProfilerActivity, profile  # CUPTI
    except ImportError:  # a dry run of the wiring where torch is missing
        profile = None

    models = build_models(dtype=a.dtype)
    synth = models["synth"]
    if a.plain_synth:
        synth.dec.traceable = lambda *_: False  # type: ignore[method-assign]
    vc, f0_fn = live_converter(models)
    st = vc.stream(
        sample_rate=48000,
        block=a.block,
        crossfade=a.crossfade,
        extra=a.extra,
        seed=0,
        f0_fn=f0_fn,
    )
    sr = 48000
    x = load_audio(a.input, sample_rate=sr) if a.input else resample(signal(8.0, seed=1), 16000, sr)
    x = np.resize(x, 8 * sr).astype(np.float32)
    blocks = [x[i : i + st.block_size] for i in range(0, len(x) - st.block_size, st.block_size)]
    for b in blocks[:20]:  # warm: compiles, plans, a filled buffer
        st.process(b)
    n = st.frames
    feats = np.asarray(vc.embedder(st.input_wav_res), np.float32)
    feats = np.repeat(np.concatenate([feats, feats[-1:]]), 2, axis=0)[:n][None]
    pitch, pitchf = st._pitch(st.settings, 1.0)
    fe = 5120 * ((st.block16 + 800 - 1) // 5120 + 1) - 160
    stages = {
        "features": lambda: mx.eval(vc.embedder.lazy(st.input_wav_res, static_shape=True)),
        "f0": lambda: st.f0_fn(st.input_wav_res[-fe:], fe // 160 + 1),
        "synth": lambda: mx.eval(
            vc.synth(
                feats,
                pitch[None],
                pitchf[None],
                seed=1,
                skip_head=st.skip_head,
                return_length=st.return_length,
                static_shape=True,
            )
        ),
    }
    it = itertools.cycle(blocks)
    stages["process"] = lambda: st.process(next(it))
    res: dict = {"block": a.block, "extra": a.extra, "dtype": a.dtype, "plain_synth": a.plain_synth}
    for name, fn in stages.items():
        for _ in range(3):
            fn()
        ts = []
        for _ in range(a.reps):
            mx.synchronize()
            t0 = time.perf_counter()
            fn()
            mx.synchronize()
            ts.append(1000 * (time.perf_counter() - t0))
        rec = {"wall_p50_ms": round(statistics.median(ts), 2), "wall_max_ms": round(max(ts), 2)}
        if profile is not None:
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                fn()
                mx.synchronize()
            rec.update(summarize(prof, a.top))
        res[name] = rec
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
