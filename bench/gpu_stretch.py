"""Synthesizer decoder stretch length on a GPU: median ms and peak device memory per call, at
pipeline-like lengths. ``DTYPE=float16`` / ``MLX_ENABLE_TF32=1`` for the other modes. Not a test.

    python bench/gpu_stretch.py [chunk ...]     # default: 250 500 1000 1500
"""

import os
import statistics
import sys
import time

import rvc_runtime

rvc_runtime.configure_cpu()  # OpenBLAS/oneDNN for MLX's CPU paths: must run before MLX is first imported
rvc_runtime.configure_gpu()  # MLX CUDA: plan cache, kernels on disk, graphs off, memory limit

import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402

from rvc_synth.bench import random_model  # noqa: E402

m = random_model().set_dtype(os.environ.get("DTYPE", "float32"))
chunks = [int(c) for c in sys.argv[1:]] or [250, 500, 1000, 1500]
print(f"dtype {m.dtype} TF32 {os.environ.get('MLX_ENABLE_TF32')}")
for t in (1200, 4300):
    rng = np.random.default_rng(0)
    x = mx.array(rng.normal(0, 0.5, (1, t, 768)).astype(np.float32))
    f0 = mx.array(np.full((1, t), 200.0, np.float32))
    p = mx.array(np.full((1, t), 100, np.int32))
    for chunk in chunks:
        f = lambda: m(x, p, f0, seed=0, chunk_frames=chunk)  # noqa: E731, B023 (called at once, in this iteration)
        mx.eval(f())
        mx.eval(f())
        mx.clear_cache()
        mx.reset_peak_memory()
        ts = []
        for _ in range(3):
            a = time.perf_counter()
            mx.eval(f())
            mx.synchronize()
            ts.append(time.perf_counter() - a)
        print(
            f"T={t} chunk={chunk}: {statistics.median(ts) * 1000:7.1f} ms {mx.get_peak_memory() / 2**20:7.0f} MB",
            flush=True,
        )
