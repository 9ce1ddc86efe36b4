"""Issue 17: what the pipeline's "other" step is made of on a GPU (``rvc bench``'s column: the
high-pass, the padding, the split points, the RMS mix and the int16 output), each host
function timed where the pipeline calls it (wall ms, median of warm conversions, no added
synchronisation), and the device tail's parts timed apart. Not a test.

    MLX_ENABLE_TF32=1 python bench/gpu_other.py [--seconds 10 60] [--dtype float16] [--reps 5]
"""

# ruff: noqa: B023  (each lambda is timed at once, in the iteration that made it)
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict

import rvc_runtime

rvc_runtime.configure_cpu()
rvc_runtime.configure_gpu(compile=True)

import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402
from gpu_profile17 import med  # noqa: E402  (this folder)

from rvc_convert import _output, pipeline  # noqa: E402
from rvc_convert.bench import build_models, pipeline_call, signal  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, nargs="+", default=[10, 60])
    ap.add_argument("--dtype", default="float16")
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    rec: dict[str, float] = defaultdict(float)

    def timed(name, fn):
        def run(*args, **kw):
            t0 = time.perf_counter()
            out = fn(*args, **kw)
            rec[name] += 1000 * (time.perf_counter() - t0)
            return out

        return run

    for mod, names in (
        (pipeline, ("highpass", "split_points", "chunk_plan", "adjust_f0", "prepare_features")),
        (_output, ("mix_rms", "to_int16", "_frame_rms")),
    ):
        for n in names:
            setattr(mod, n, timed(n, getattr(mod, n)))
    models = build_models(dtype=a.dtype)
    call = pipeline_call(models)
    sr = models["synth"].info.sample_rate
    for sec in a.seconds:
        x = signal(sec)
        call(x)
        call(x)
        rows = []
        for _ in range(a.reps):
            rec.clear()
            t: dict[str, float] = {}
            mx.synchronize()
            t0 = time.perf_counter()
            call(x, t)
            total = 1000 * (time.perf_counter() - t0)
            rows.append({"total": total, **{f"stage_{k}": 1000 * v for k, v in t.items()}, **rec})
        out = {k: round(statistics.median(r.get(k, 0.0) for r in rows), 2) for k in rows[0]}
        # the device tail apart, on an output of this length
        y = mx.array(np.random.default_rng(0).standard_normal(int(sec * sr)).astype(np.float32) * 0.1)
        hp = np.asarray(x, np.float64)
        mx.eval(y)
        parts = {
            "upload_source": lambda: mx.eval(mx.array(np.asarray(hp, np.float32))),
            "mix_rms": lambda: mx.eval(_output.mix_rms(hp, 16000, y, sr, 0.25)),
            "peak_item": lambda: mx.max(mx.abs(y)).item(),
            "int16_readback": lambda: np.array((y * 3000.0).astype(mx.int16)),
            "to_int16": lambda: _output.to_int16(y),
            "sync_only": mx.synchronize,
        }
        for k, fn in parts.items():
            out[f"apart_{k}"] = med(fn, a.reps)[0]
        print(json.dumps({"seconds": sec, "dtype": a.dtype, **out}), flush=True)


if __name__ == "__main__":
    main()
