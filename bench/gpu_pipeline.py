"""Whole pipeline on the current MLX device (full-size random models): per-stage times, RTF,
peak device memory; then a folder of 100 short files through one set of loaded models.

    python bench/gpu_pipeline.py [--seconds 10 60 600] [--dtype float32|float16|bfloat16] [--files 100]
"""

from __future__ import annotations

import argparse
import time

import rvc_runtime

rvc_runtime.configure_cpu()  # OpenBLAS/oneDNN for MLX's CPU paths: must run before MLX is first imported
rvc_runtime.configure_gpu(compile=True)  # MLX CUDA: plan cache, kernels on disk, graphs off, memory limit

import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402

from rvc_audio import highpass  # noqa: E402
from rvc_convert.bench import STAGES, build_models, f0_function, signal  # noqa: E402
from rvc_convert.options import PRESETS, ConvertOptions  # noqa: E402
from rvc_convert.pipeline import SR, chunk_plan, run_pipeline, split_points  # noqa: E402
from rvc_synth.bench import random_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, nargs="+", default=[10, 60])
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--file-seconds", type=float, default=3.0)
    a = ap.parse_args()
    models = build_models()
    models["synth"] = random_model().set_dtype(a.dtype)
    cv, rmvpe, synth = models["contentvec"], models["rmvpe"], models["synth"]

    f0_fn = f0_function(rmvpe)

    def call(audio: np.ndarray, timings: dict | None) -> np.ndarray:
        out, _ = run_pipeline(
            audio,
            synth=synth,
            embedder=lambda x: cv(x, version="v2"),
            f0_fn=f0_fn,
            index=models["index"],
            options=ConvertOptions(seed=0),
            timings=timings,
        )
        return out

    print(f"device {mx.default_device()}  synth dtype {a.dtype}")
    call(signal(2.0, seed=1), None)
    call(signal(2.0, seed=1), None)
    print(f"{'audio':>7} " + " ".join(f"{k:>11}" for k in (*STAGES, "total")) + "    RTF   peak dev MB  (ms)")
    for sec in a.seconds:
        x = signal(sec)
        call(x, None) if sec <= 60 else None  # warm shapes
        mx.reset_peak_memory()
        timings: dict[str, float] = {}
        t = time.perf_counter()
        call(x, timings)
        total = time.perf_counter() - t
        print(
            f"{sec:6.0f}s "
            + " ".join(f"{timings.get(k, 0) * 1000:11.1f}" for k in STAGES)
            + f" {total * 1000:11.1f} {total / sec:7.4f} {mx.get_peak_memory() / 2**20:10.0f}",
            flush=True,
        )
    files = [signal(a.file_seconds, seed=10 + i) for i in range(a.files)]
    t = time.perf_counter()
    for f in files:
        call(f, None)
    folder = time.perf_counter() - t
    one = signal(a.file_seconds * a.files, seed=3)
    t = time.perf_counter()
    call(one, None)
    single = time.perf_counter() - t
    print(
        f"{a.files} files x {a.file_seconds:g} s: {folder:.2f} s ({folder / a.files * 1000:.1f} ms per file, "
        f"RTF {folder / (a.files * a.file_seconds):.4f}); the same audio as one file: {single:.2f} s"
    )
    # Every input is reflect-padded by x_pad seconds on each side and every chunk carries that
    # context, so a file processes more audio than it holds: compare per processed second.
    preset = PRESETS[ConvertOptions().preset]

    def processed(x: np.ndarray) -> int:
        return sum(
            c.end - c.start for c in chunk_plan(len(x), split_points(highpass(x, sample_rate=SR), preset), preset)
        )

    p_folder, p_single = sum(processed(f) for f in files) / SR, processed(one) / SR
    fair = single * p_folder / p_single
    print(
        f"  processed audio (with padding): folder {p_folder:.0f} s, one file {p_single:.0f} s; at the one file's "
        f"speed the folder's compute is {fair:.2f} s, so per-file set-up costs "
        f"{(folder - fair) / a.files * 1000:.1f} ms per file ({(folder - fair) / folder:.0%} of the folder's time)"
    )


if __name__ == "__main__":
    main()
