"""A/B of pipeline settings on the current device: per-stage medians (ms) and peak device memory
for 10 s and 40 s inputs, varying the decoder stretch and the ContentVec forward. Not a test; for choosing GPU defaults.

    python bench/gpu_ab.py
"""

from __future__ import annotations

import functools
import statistics
import time

import rvc_runtime

rvc_runtime.configure_cpu()  # OpenBLAS/oneDNN for MLX's CPU paths: must run before MLX is first imported
rvc_runtime.configure_gpu()  # MLX CUDA: plan cache, kernels on disk, graphs off, memory limit

import mlx.core as mx  # noqa: E402

from rvc_convert.bench import STAGES, build_models, f0_function, signal  # noqa: E402
from rvc_convert.options import ConvertOptions  # noqa: E402
from rvc_convert.pipeline import run_pipeline  # noqa: E402
from rvc_synth import generator  # noqa: E402
from rvc_synth.bench import random_model  # noqa: E402


def main() -> None:
    models = build_models()
    synth, cv, rmvpe = random_model(), models["contentvec"], models["rmvpe"]
    hidden = cv.hidden

    f0_fn = f0_function(rmvpe)

    def call(audio, timings=None):
        run_pipeline(
            audio,
            synth=synth,
            embedder=lambda x: cv(x, version="v2"),
            f0_fn=f0_fn,
            index=models["index"],
            options=ConvertOptions(seed=0),
            timings=timings,
        )

    configs = {
        "default": {},
        "stretch500": {"chunk": 500},
        "cv-upstream": {"cv_fast": False},
    }
    for sec in (10, 40):
        x = signal(sec)
        for name, c in configs.items():
            generator.GPU_EXACT_CHUNK_FRAMES = c.get("chunk", 250)
            cv.hidden = functools.partial(hidden, fast=c.get("cv_fast", True))
            call(x)
            call(x)
            mx.clear_cache()
            mx.reset_peak_memory()
            rows = []
            for _ in range(3):
                t: dict[str, float] = {}
                t0 = time.perf_counter()
                call(x, t)
                t["total"] = time.perf_counter() - t0
                rows.append(t)
            med = {k: statistics.median(r.get(k, 0.0) for r in rows) * 1000 for k in (*STAGES, "total")}
            print(
                f"{sec:3d}s {name:12s} "
                + " ".join(f"{k} {v:6.1f}" for k, v in med.items())
                + f"  peak {mx.get_peak_memory() / 2**20:6.0f} MB",
                flush=True,
            )


if __name__ == "__main__":
    main()
