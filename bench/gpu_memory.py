"""Where GPU memory and time go, stage by stage (full-size random models, current MLX device).

    python bench/gpu_memory.py [--seconds 10 40] [--convs native gemm] [--chunks -1 500 250] [--hour]

Per stage at the sizes the pipeline feeds them (ContentVec and the synthesizer see one chunk of
at most ~41 s with the fp32 preset; RMVPE sees the whole input, in windows above 32 s): median
milliseconds of warm runs and peak device memory. The synthesizer runs with MLX's own
convolutions (cuDNN) and with rvc-synth's GEMM formulation, several stretch
lengths (run it once with ``MLX_ENABLE_TF32=1`` for TF32: MLX reads it at start). ``--hour``
then converts one hour of audio through the whole pipeline and reports time and peak device
memory. Not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import rvc_runtime

rvc_runtime.configure_cpu()  # OpenBLAS/oneDNN for MLX's CPU paths: must run before MLX is first imported
rvc_runtime.configure_gpu(compile=True)  # MLX CUDA: plan cache, kernels on disk, graphs off, memory limit

import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402

from rvc_convert.bench import build_models, signal  # noqa: E402
from rvc_synth.bench import random_model  # noqa: E402


def timed(fn, repeats: int = 3) -> tuple[float, float]:
    """(median ms, peak device MB) of ``fn`` after one warm-up."""
    mx.eval(fn())
    mx.synchronize()
    mx.clear_cache()
    mx.reset_peak_memory()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        mx.eval(fn())
        mx.synchronize()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1000, mx.get_peak_memory() / 2**20


def synth_rows(seconds: list[float], convs: list[str], chunks: list[int | None]) -> None:
    m = random_model()
    for sec in seconds:
        t = int(sec * 100)
        rng = np.random.default_rng(0)
        x = mx.array(rng.normal(0, 0.5, (1, t, 768)).astype(np.float32))
        f0 = mx.array(np.full((1, t), 200.0, np.float32))
        p = mx.array(np.full((1, t), 100, np.int32))
        tf32 = os.environ.get("MLX_ENABLE_TF32")
        for conv in convs:
            os.environ["RVC_CONV"] = conv
            for chunk in chunks:
                ms, mb = timed(lambda: m(x, p, f0, noise_scale=0, chunk_frames=chunk))  # noqa: B023 (called at once, in this iteration)
                print(
                    f"synth {sec:5.0f}s conv={conv:6s} tf32={tf32} chunk={chunk!s:5s} {ms:9.1f} ms {mb:8.0f} MB",
                    flush=True,
                )
        os.environ.pop("RVC_CONV")
        m_p = m.enc_p(x, p)[0]
        print(f"  enc_p {sec:5.0f}s  %9.1f ms %8.0f MB" % timed(lambda: m.enc_p(x, p)), flush=True)  # noqa: B023 (called at once, in this iteration)
        g = m.emb_g(mx.array([0]))[:, None]
        print(f"  flow  {sec:5.0f}s  %9.1f ms %8.0f MB" % timed(lambda: m.flow.reverse(m_p, g)), flush=True)  # noqa: B023 (called at once, in this iteration)
        print(
            f"  nsf   {sec:5.0f}s  %9.1f ms %8.0f MB" % timed(lambda: m.dec.m_source(f0, upp=400, sr=40000, key=None)),  # noqa: B023 (called at once, in this iteration)
            flush=True,
        )


def stage_rows(seconds: list[float]) -> dict:
    models = build_models()
    cv, rmvpe = models["contentvec"], models["rmvpe"]
    for sec in seconds:
        a = signal(sec)
        print(f"contentvec {sec:5.0f}s  %9.1f ms %8.0f MB" % timed(lambda: mx.array(cv(a, version="v2"))), flush=True)  # noqa: B023 (called at once, in this iteration)
        print(f"rmvpe      {sec:5.0f}s  %9.1f ms %8.0f MB" % timed(lambda: mx.array(rmvpe(a))), flush=True)  # noqa: B023 (called at once, in this iteration)
    return models


def hour(models: dict) -> None:
    from rvc_convert.options import ConvertOptions
    from rvc_convert.pipeline import run_pipeline

    cv, rmvpe = models["contentvec"], models["rmvpe"]
    synth = random_model()

    peaks = {"f0": 0.0, "contentvec": 0.0, "synth/index/other": 0.0}

    def peak_of(stage: str, fn, *args):  # peak of one stage; the peak since the last one: the others
        peaks["synth/index/other"] = max(peaks["synth/index/other"], mx.get_peak_memory() / 2**20)
        mx.reset_peak_memory()
        out = fn(*args)
        peaks[stage] = max(peaks[stage], mx.get_peak_memory() / 2**20)
        mx.reset_peak_memory()
        return out

    def f0_fn(audio_pad: np.ndarray, p_len: int) -> np.ndarray:
        f0 = peak_of("f0", rmvpe, audio_pad.astype(np.float32))
        return np.pad(f0, (0, max(0, p_len - len(f0))))[:p_len]

    x = np.tile(signal(600.0), 6)
    mx.clear_cache()
    mx.reset_peak_memory()
    timings: dict[str, float] = {}
    t = time.perf_counter()
    out, sr = run_pipeline(
        x,
        synth=synth,
        embedder=lambda a: peak_of("contentvec", cv, a),
        f0_fn=f0_fn,
        index=models["index"],
        options=ConvertOptions(seed=0),
        timings=timings,
    )
    total = time.perf_counter() - t
    print(
        f"1 hour: {total:.1f} s (RTF {total / 3600:.4f}), output {len(out) / sr:.1f} s at {sr} Hz, "
        f"peak device memory: synth/index/other {max(peaks['synth/index/other'], mx.get_peak_memory() / 2**20):.0f} MB"
        f", f0 {peaks['f0']:.0f} MB, contentvec {peaks['contentvec']:.0f} MB; "
        f"still allocated after: {mx.get_active_memory() / 2**20:.0f} MB; stages "
        + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()),
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, nargs="+", default=[10, 40])
    ap.add_argument("--hour", action="store_true")
    ap.add_argument("--no-synth", action="store_true")
    ap.add_argument("--convs", nargs="+", default=["native"], help="native (MLX conv) and/or gemm")
    ap.add_argument("--chunks", type=int, nargs="+", default=[-1], help="decoder stretch frames (-1 = default)")
    a = ap.parse_args()
    print(f"device {mx.default_device()}  MLX {mx.__version__}")
    if not a.no_synth:
        synth_rows(a.seconds, a.convs, [None if c < 0 else c for c in a.chunks])
    models = stage_rows(a.seconds)
    if a.hour:
        hour(models)


if __name__ == "__main__":
    main()
