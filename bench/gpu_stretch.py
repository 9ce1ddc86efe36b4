"""Synthesizer decoder stretches on a GPU: time per call for chunk lengths, compile on/off,
with and without noise (a key), at pipeline-like lengths. Not a test."""

import os
import statistics
import time

import rvc_synth  # noqa: F401
import mlx.core as mx
import numpy as np
from rvc_synth import generator
from rvc_synth.bench import random_model

m = random_model()
for t in (1200, 4000):
    rng = np.random.default_rng(0)
    x = mx.array(rng.normal(0, 0.5, (1, t, 768)).astype(np.float32))
    f0 = mx.array(np.full((1, t), 200.0, np.float32))
    p = mx.array(np.full((1, t), 100, np.int32))
    for chunk in (250, 500, 1500):
        for comp in ("1",):
            os.environ["RVC_COMPILE"] = comp
            for noise in (0.66666,):
                f = lambda: m(x, p, f0, noise_scale=noise, seed=0, chunk_frames=chunk)  # noqa: E731
                mx.eval(f()); mx.eval(f())
                ts = []
                for _ in range(3):
                    a = time.perf_counter(); mx.eval(f()); mx.synchronize(); ts.append(time.perf_counter() - a)
                print(f"T={t} chunk={chunk} compile={comp} noise={noise}: {statistics.median(ts) * 1000:7.1f} ms", flush=True)
