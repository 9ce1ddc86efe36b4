"""Speed and memory of the whole pipeline with full-size models (random weights; no files needed).

    uv run python -m rvc_convert.bench [--seconds 10 60] [--precision float32|tf32|float16|bfloat16]
        [--repeats N] [--json]

Per input length, in a fresh process (so peak RSS is that length's): a v2 40 kHz synthesizer
of the real size (the fixture ``v2_f0_40k_fullsize.pth`` when ``../shared/fixtures`` is there,
else the same configuration randomly initialised), ContentVec at its real base size (12 x 768),
a full-width RMVPE and a 20,000 x 768 IVF index, all random. The input is a deterministic
voice-like signal (harmonic glides, noise, pauses). One warm-up conversion of the measured length
first (its time is reported as ``first_call_s``): the measured conversion is a warm one, as the
PyTorch reference's timings (``torch_ref.py``: medians of warm calls).
Reported per stage: seconds of compute (``contentvec``, ``f0``, ``index``, ``synth``,
``other`` = high-pass, splitting, RMS mix, int16), ``total``, ``rtf`` (total / audio seconds) and
``peak_rss_mb``, ``peak_device_mb`` (MLX's allocator during the measured conversion, the
models included: GPU memory on a GPU), ``device``, ``backend`` and ``precision`` (the
synthesizer's ``info``; ``tf32`` = float32 in TF32 on NVIDIA) and ``cpu_seconds`` (process CPU time, all threads).
Timings are measured, never asserted; on a shared machine they are noisy.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["options", "run"]

STAGES = ("contentvec", "f0", "index", "synth", "other")
PRECISIONS = ("float32", "tf32", "float16", "bfloat16")


def _fixture_model() -> Path | None:
    root = Path(os.environ.get("RVC_FIXTURES", Path(__file__).resolve().parents[4] / "shared" / "fixtures"))
    p = root / "reference" / "checkpoints" / "v2_f0_40k_fullsize.pth"
    return p if p.is_file() else None


def signal(seconds: float, *, seed: int = 0) -> np.ndarray:
    """A deterministic voice-like 16 kHz test signal: voiced glides (8 harmonics, 100-300 Hz),
    breath noise and short pauses."""
    rng = np.random.default_rng(seed)
    n = int(16000 * seconds)
    t = np.arange(n) / 16000
    f0 = 180 + 80 * np.sin(2 * np.pi * 0.3 * t) + 20 * np.sin(2 * np.pi * 2.1 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    voiced = sum(np.sin(k * phase) / k for k in range(1, 9))
    gate = (np.sin(2 * np.pi * 0.45 * t) > -0.6).astype(np.float64)
    x = 0.25 * voiced * gate + 0.02 * rng.standard_normal(n)
    return x.astype(np.float32)


def build_models(synth_path: str | None = None, *, dtype: str = "float32") -> dict[str, Any]:
    """Full-size random models: ``synth`` (or the model at ``synth_path``), ``contentvec``,
    ``rmvpe``, ``index``."""
    import rvc_runtime

    rvc_runtime.configure_cpu()  # OpenBLAS and oneDNN, before MLX first loads
    # MLX CUDA: plan cache, kernels on disk, graphs off, memory limit; compiled graphs (rvc warmup's
    # steady state; a process without them: configure_gpu's doc)
    rvc_runtime.configure_gpu(compile=True)
    import mlx.core as mx
    from mlx_contentvec import ContentvecModel

    import rvc_synth
    from rvc_f0.bench import random_model
    from rvc_features import BASE_KWARGS, ContentVec
    from rvc_index import build_index

    from ._backends import lend_cpu_kernels

    mx.random.seed(0)
    # MLX_ENABLE_TF32 as rvc_synth.load(dtype=) fixes it: with a half-precision synthesizer,
    # RMVPE runs in TF32 (the synthesizer is built in float32 below, then cast; ContentVec gets
    # the half precision from pipeline_call's embedder)
    rvc_synth.backends.choose("auto", dtype=dtype)
    path = Path(synth_path) if synth_path else _fixture_model()
    if path is not None:
        synth = rvc_synth.load(path)
    else:
        from rvc_synth.config import KNOWN_CONFIGS, SynthConfig

        synth = rvc_synth.Synthesizer(SynthConfig.from_list(KNOWN_CONFIGS["v2_40k"], version="v2", has_f0=True))
        synth.eval()
    if dtype != "float32":
        synth.set_dtype(dtype)
    # weights made now: a compiled graph re-runs the pending operations of the arrays it captures
    # (the H200's live profile counted 44 zero fills and 45 casts per block from these)
    mx.eval(synth.parameters())
    kw = dict(BASE_KWARGS)
    cvm = ContentvecModel(**kw)
    cvm.eval()
    mx.eval(cvm.parameters())
    rmvpe = lend_cpu_kernels(random_model("rmvpe"))  # full-width RMVPE, random weights
    rows = np.random.default_rng(0).standard_normal((20000, 768)).astype(np.float32)
    return {"synth": synth, "contentvec": ContentVec(cvm, kw, None), "rmvpe": rmvpe, "index": build_index(rows)}


def f0_function(rmvpe: Any) -> Callable[[np.ndarray, int], np.ndarray]:
    """A loaded RMVPE as the pipeline's and ``Stream``'s ``f0_fn``: ``(16 kHz audio, n)`` ->
    ``(n,)`` Hz, the estimate cut or zero-padded to ``n`` frames (``extract_f0``'s rule), with
    ``start`` (:class:`~rvc_convert.pipeline.RMVPEF0`) as a converter's."""
    from .pipeline import RMVPEF0

    return RMVPEF0(rmvpe)


def live_converter(
    models: dict[str, Any], *, index: bool = False
) -> tuple[Any, Callable[[np.ndarray, int], np.ndarray]]:
    """A ``VoiceConverter`` over :func:`build_models`'s models for live streams (the index with
    ``index=True``), and the random full-width RMVPE as the streams' ``f0_fn`` (it has no weights
    file for the converter to load): ``vc.stream(..., f0_fn=f0_fn)``."""
    from ._backends import content_dtype, plan
    from .converter import VoiceConverter
    from .options import ConvertOptions

    synth = models["synth"]
    vc = VoiceConverter(
        synth,
        index=models["index"] if index else None,
        embedder=models["contentvec"].embedder(synth.info.version, dtype=content_dtype(plan(synth))),  # lazy: queued
        options=ConvertOptions(f0_method="pm"),
    )
    return vc, f0_function(models["rmvpe"])


def pipeline_call(models: dict[str, Any], *, content: str | None = None) -> Callable[..., None]:
    """``call(audio_16k, timings=None)``: one conversion of :func:`build_models`'s models through
    the pipeline (seed 0, the default preset), as ``rvc bench`` times it; ContentVec in
    ``content`` precision (default: as ``VoiceConverter`` chooses)."""
    from ._backends import content_dtype, plan
    from .options import ConvertOptions
    from .pipeline import run_pipeline

    synth = models["synth"]
    embedder = models["contentvec"].embedder(synth.info.version, dtype=content or content_dtype(plan(synth)))
    f0_fn = f0_function(models["rmvpe"])

    def call(audio: np.ndarray, timings: dict | None = None) -> None:
        run_pipeline(
            audio,
            synth=synth,
            embedder=embedder,
            f0_fn=f0_fn,
            index=models["index"],
            options=ConvertOptions(seed=0),
            timings=timings,
        )

    return call


def measure(seconds: float, models: dict[str, Any], *, warmup: float | None = None, repeats: int = 1) -> dict[str, Any]:
    """Convert ``seconds`` of the test signal ``repeats`` times (after a warm-up); per-stage
    seconds and RTF, each the median over the repeats (``torch_ref.py`` reports medians too).

    The warm-up converts ``warmup`` seconds: by default the measured length itself (a first
    call at new shapes builds kernels, convolution plans and oneDNN primitives: on a GPU ~1 s
    and more, on a 2-core CPU ~0.2-0.3 s; its wall time is reported as ``first_call_s``); on a
    GPU twice, since the pipeline compiles a chunk length's graphs when it repeats."""
    import mlx.core as mx

    if repeats < 1:
        raise ValueError(f"repeats={repeats!r}; expected at least 1")
    call = pipeline_call(models)
    on_gpu = models["synth"].backend.device == "gpu"
    if warmup is None:
        warmup = seconds
    audio = signal(seconds)  # made before the clock starts (60 s of it took ~0.2 s on a GPU host)
    # the warm-up converts the measured signal itself: its chunk lengths (where the input is cut
    # depends on the audio) are the ones whose graphs GPUs compile on the repeat; another
    # signal's left the first two measured calls uncompiled and tracing (H200, float16 60 s:
    # 305-351 ms where in-process repeats of one signal took 196-213)
    warm = audio if warmup == seconds else signal(warmup, seed=1)
    first_stages: dict[str, float] = {}
    first = time.perf_counter()
    call(warm, first_stages)
    first = time.perf_counter() - first
    if on_gpu:  # GPUs compile a chunk length's graphs when it repeats: that call is a warm-up too
        call(warm)
    mx.reset_peak_memory()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    runs = []
    for _ in range(repeats):
        timings: dict[str, float] = {}
        t, cpu = time.perf_counter(), time.process_time()
        call(audio, timings)
        timings["total"], timings["cpu"] = time.perf_counter() - t, time.process_time() - cpu
        runs.append(timings)
    med = {k: statistics.median(r.get(k, 0.0) for r in runs) for k in (*STAGES, "total", "cpu")}
    total, cpu = med["total"], med["cpu"]
    row: dict[str, Any] = {"seconds": float(seconds)}
    row.update({k: round(med[k], 3) for k in STAGES})
    row["total"] = round(total, 3)
    row["repeats"] = repeats
    row["rtf"] = round(total / seconds, 4)
    row["cpu_seconds"] = round(cpu, 3)  # all threads; wall time above suffers from other processes, this less
    row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    row["rss_before_mb"] = round(base, 1)
    row["peak_device_mb"] = round(mx.get_peak_memory() / 2**20, 1)
    row["device"] = _device_name(models["synth"].backend.device)
    if warmup == seconds:
        row["first_call_s"] = round(first, 3)
        row["first_call_stages"] = {k: round(first_stages.get(k, 0.0), 3) for k in STAGES}  # where it went
    row["backend"] = models["synth"].info.backend
    synth_dtype = str(models["synth"].dtype).rsplit(".", 1)[-1]
    tf32 = models["synth"].info.precision == "tf32" or os.environ.get("MLX_ENABLE_TF32") == "1"
    row["precision"] = precision_label(synth_dtype, tf32=tf32, on_gpu=on_gpu)
    row["tf32_float32_stages"] = on_gpu and os.environ.get("MLX_ENABLE_TF32") == "1"  # ContentVec, RMVPE
    if mx.cuda.is_available():  # rvc_runtime.configure_gpu's settings, as this run had them
        row["cuda_graphs"] = os.environ.get("MLX_USE_CUDA_GRAPHS", "1") != "0"
        row["memory_limit_gb"] = round(mx.get_memory_limit() / 2**30, 2)
    return row


def precision_label(dtype: str, *, tf32: bool, on_gpu: bool) -> str:
    """What a row's synthesizer precision really was: TF32 exists on NVIDIA GPUs only, so a
    ``tf32`` run on the CPU is exact float32 and is labelled so."""
    if dtype != "float32" or not tf32:
        return dtype
    return "tf32" if on_gpu else "float32 (tf32 has no effect on the CPU)"


def _device_name(kind: str) -> str:
    """``"gpu (NVIDIA H100 80GB HBM3)"``, ``"cpu (...)"``: the synthesizer's device and its name."""
    import mlx.core as mx

    try:
        name = mx.device_info().get("device_name")
    except Exception:  # older MLX, or a backend without device info
        name = None
    return f"{kind} ({name})" if name else kind


def run(
    seconds: tuple[float, ...] = (10, 60), *, isolate: bool = True, precision: str = "float32", repeats: int = 1
) -> list[dict[str, Any]]:
    """One row per length: ``seconds``, the stage seconds (``contentvec``, ``f0``, ``index``,
    ``synth``, ``other``), ``total``, ``rtf`` (total seconds per second of audio),
    ``peak_rss_mb`` (peak resident memory of the process), ``rss_before_mb`` (after loading
    the models and the warm-up), ``peak_device_mb``, ``device``, ``precision`` and
    ``first_call_s`` (the warm-up at the measured length: kernel and plan building included);
    with CUDA also ``cuda_graphs`` and ``memory_limit_gb`` (MLX's settings the run had, see
    ``rvc_runtime.configure_gpu``). ``isolate=True`` measures each length in a fresh process
    (``precision="tf32"`` needs it: MLX reads ``MLX_ENABLE_TF32`` once, when it is imported);
    with ``float16``/``bfloat16`` the float32 stages run in TF32 unless ``MLX_ENABLE_TF32=0``
    is set (row key ``tf32_float32_stages``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; expected one of {', '.join(PRECISIONS)}")
    dtype = "float32" if precision == "tf32" else precision
    if not isolate:
        models = build_models(dtype=dtype)
        return [measure(s, models, repeats=repeats) for s in seconds]
    env = _bench_env(precision, os.environ)
    rows = []
    for s in seconds:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "rvc_convert.bench",
                "--one",
                str(float(s)),
                "--dtype",
                dtype,
                "--repeats",
                str(repeats),
            ],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
            raise RuntimeError(f"benchmark of {s:g} s failed: {tail}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return rows


def _bench_env(precision: str, environ: Any) -> dict[str, str]:
    """The measuring process's environment: ``MLX_ENABLE_TF32`` is 1 for ``tf32`` and 0 for
    ``float32`` (exact); half precisions keep a value the caller set, else 1 (the float32
    stages, ContentVec and RMVPE, in TF32, as the reference's default and the synthesizer's
    default with a half dtype; 0 runs them in exact float32)."""
    env = dict(environ)
    if precision in ("float32", "tf32") or "MLX_ENABLE_TF32" not in env:
        env["MLX_ENABLE_TF32"] = "0" if precision == "float32" else "1"
    return env


def options(seconds: float = 10.0, *, sample_rate: int = 40000) -> list[dict[str, Any]]:
    """What each of Applio's options adds to a conversion of ``seconds`` of audio: one row per option,
    ``{"option", "seconds", "rtf"}`` (its own compute, measured once after a warm-up call).

    Audio options run on the test signal (formant shifting and split at 16 kHz, clean audio and
    the effects at ``sample_rate``, a 40 kHz model's output), the f0 options on its 100 Hz curve.
    A hybrid f0 method costs the sum of its methods (rows of ``run``'s ``f0`` column), and split
    audio adds the pipeline's per-segment overhead on top of the row here (the silence search).
    """
    from rvc_audio import effects as fx
    from rvc_audio import resample
    from rvc_f0.applio import autotune_f0, hybrid_median, proposed_pitch_offset

    x16 = signal(seconds)
    x = resample(x16, 16000, sample_rate)
    f0 = np.where(np.arange(int(seconds * 100)) % 7 < 5, 180.0, 0.0).astype(np.float32)
    cases: list[tuple[str, Any]] = [
        ("autotune", lambda: autotune_f0(f0 * 1.03, strength=1.0)),
        ("proposed pitch", lambda: proposed_pitch_offset(f0, threshold=155.0)),
        ("hybrid median (2 curves)", lambda: hybrid_median([f0, f0 * 1.01])),
        ("formant shifting", lambda: fx.shift_formants(x16, quefrency=1.0, timbre=1.2)),
        ("split audio (silence search)", lambda: fx.split_on_silence(x16)),
        ("clean audio", lambda: fx.reduce_noise(x, sample_rate, strength=0.5)),
    ]
    cases += [(f"effect: {cls.NAME}", lambda cls=cls: fx.apply_effects(x, sample_rate, [cls()])) for cls in fx.EFFECTS]
    cases.append(("effects: all ten", lambda: fx.apply_effects(x, sample_rate, [cls() for cls in fx.EFFECTS])))
    rows = []
    for name, fn in cases:
        fn()  # warm-up: library import, first-call setup
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        rows.append({"option": name, "seconds": round(dt, 4), "rtf": round(dt / seconds, 5)})
    return rows


def main(argv: list[str]) -> None:
    repeats = int(argv[argv.index("--repeats") + 1]) if "--repeats" in argv else 1
    if "--one" in argv:
        synth = argv[argv.index("--synth") + 1] if "--synth" in argv else None
        dtype = argv[argv.index("--dtype") + 1] if "--dtype" in argv else "float32"
        models = build_models(synth, dtype=dtype)
        print(json.dumps(measure(float(argv[argv.index("--one") + 1]), models, repeats=repeats)))
        return
    precision = argv[argv.index("--precision") + 1] if "--precision" in argv else "float32"
    secs: tuple[float, ...] = (10.0, 60.0)
    if "--seconds" in argv:
        rest = argv[argv.index("--seconds") + 1 :]
        secs = tuple(float(a) for a in rest[: next((i for i, a in enumerate(rest) if a.startswith("--")), len(rest))])
    rows = run(secs, precision=precision, repeats=repeats)
    if "--json" in argv:
        print(json.dumps(rows, indent=2))
        return
    print(f"{rows[0]['device']}, {rows[0]['precision']}")
    print(
        f"{'audio':>7} "
        + " ".join(f"{k:>10}" for k in (*STAGES, "total"))
        + f" {'peak RSS':>10} {'peak dev':>10}   (s per s of audio)"
    )
    for r in rows:
        d = r["seconds"]
        print(
            f"{d:6.0f}s "
            + " ".join(f"{r[k] / d:10.3f}" for k in (*STAGES, "total"))
            + f" {r['peak_rss_mb']:8.0f}MB {r['peak_device_mb']:8.0f}MB"
            + (f"   first call {r['first_call_s']:.2f} s" if "first_call_s" in r else "")
        )


if __name__ == "__main__":
    main(sys.argv[1:])
