"""Build the kernels a conversion will need before the first real one (``rvc warmup``).

A first call at new shapes and a new precision builds kernels: MLX compiles its kernels once per
process (source, dtype, shape class), cuDNN builds convolution plans per shape, and on NVIDIA
GPUs the driver JIT-compiles MLX's runtime-generated CUDA into ``~/.nv/ComputeCache`` and MLX
keeps its compiled kernels in ``$MLX_PTX_CACHE_DIR`` (``rvc_runtime.configure_gpu``; both kept
across processes: a first 10 s conversion 78-142 s on a fresh H200, 1.8-3.6 s in the next process). A
warm-up in a container build
therefore makes later first conversions fast; in a long-running process it also fills MLX's own
in-process caches.

Shapes that occur: the input is cut as the reference cuts it (:func:`pipeline.split_points`,
:func:`pipeline.chunk_plan`): an input up to ``x_max`` seconds is one chunk of its length plus
``2 x_pad`` s of padding; longer inputs give chunks of about ``x_center`` s. The synthesizer's
decoder runs in fixed stretches (``rvc_synth``'s chunk frames for the precision) plus a shorter
last one, so any conversion longer than a stretch builds the stretch shape. The warm-up converts
the bench signal at each length asked for (default 10 s, then ``x_max`` s: the longest single
chunk) and reports the chunks it ran.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .options import PRESETS

logger = logging.getLogger(__name__)

__all__ = ["WarmupStep", "warmup", "warmup_plan"]

SR = 16000
WINDOW = 160


@dataclass(frozen=True)
class WarmupStep:
    """One warm-up conversion: ``seconds`` of input (16 kHz), cut into ``chunks`` (padded chunk
    lengths in 16 kHz samples) of ``frames`` 100 Hz synthesizer frames each: the reference's
    ``min(len // 160, 2 n)`` with ``n = (len - 400) // 320 + 1`` content frames (HuBERT's)."""

    seconds: float
    chunks: tuple[int, ...]
    frames: tuple[int, ...]


def _signal(seconds: float) -> np.ndarray:
    from .bench import signal

    return signal(seconds, seed=1)


def warmup_plan(*, seconds: Sequence[float] | None = None, preset: str = "cpu") -> list[WarmupStep]:
    """The conversions :func:`warmup` runs: per length, the chunks the pipeline cuts.

    seconds: input lengths (default: 10 s and the preset's ``x_max``, the longest input that is
    not cut). preset: the chunking preset (``cpu``, ``lowmem``, ``fp16``).
    """
    from .pipeline import chunk_plan, split_points

    p = PRESETS[preset]
    lengths = list(seconds) if seconds else sorted({10.0, float(p.x_max) - 0.5})
    steps = []
    for s in lengths:
        if not s > 0:
            raise ValueError(f"warm-up lengths must be positive seconds, got {s!r}")
        audio = _signal(s)
        plan = chunk_plan(len(audio), split_points(audio, p), p)
        chunks = tuple(c.end - c.start for c in plan)
        frames = tuple(min(n // WINDOW, 2 * ((n - 400) // 320 + 1)) for n in chunks)
        steps.append(WarmupStep(float(s), chunks, frames))
    return steps


def warmup(
    converter: Any = None,
    *,
    precision: str = "float32",
    seconds: Sequence[float] | None = None,
    live_blocks: Sequence[float] = (),
    progress: Callable[[int, int, WarmupStep], None] | None = None,
) -> list[WarmupStep]:
    """Run a short conversion at each length of :func:`warmup_plan` so the kernels are built
    (twice on GPUs, where the pipeline compiles a chunk length's graphs once it repeats).

    Args:
        converter: a :class:`VoiceConverter` (its synthesizer, precision, index and options), or
            None for random full-size models as ``rvc bench`` uses (v2 40 kHz synthesizer,
            ContentVec base, RMVPE, a 20,000 x 768 IVF index).
        precision: with ``converter=None``, the synthesizer's dtype: ``float32``, ``float16`` or
            ``bfloat16`` (``tf32`` is float32 with ``MLX_ENABLE_TF32=1`` set before MLX loads:
            the caller's job, as ``rvc warmup --precision tf32`` does).
        seconds: input lengths (see :func:`warmup_plan`).
        live_blocks: then a live stream per block size (seconds; the stream's other settings at
            their defaults: 48 kHz, crossfade 0.05 s, extra 2.5 s), warmed with
            :meth:`~rvc_convert.stream.Stream.warmup` (GPUs: the live graphs and kernels).
        progress: ``progress(done, total, step)`` after each conversion.

    On GPUs MLX's compile is turned on for the process first and, once every length has run,
    the kernel folder is marked (``rvc_runtime.mark_kernels_built``): later processes then
    compile too, finding the kernels built (``rvc_runtime.configure_gpu``).

    Returns:
        the steps run (lengths and the chunks each was cut into).
    """
    import rvc_runtime

    rvc_runtime.configure_gpu(compile=True)
    if converter is None:
        call, preset, live_vc, live_kw, gpu = _random_models(precision, live=bool(live_blocks))
    else:
        live_vc, live_kw = converter, {}
        preset = converter.options.preset
        gpu = converter.backends.device == "gpu"

        def call(audio: np.ndarray) -> None:
            converter.convert(audio, sample_rate=SR)

    steps = warmup_plan(seconds=seconds, preset=preset)
    for i, step in enumerate(steps):
        logger.info(
            "warm-up %d/%d: %g s (%d chunk(s): %s frames)",
            i + 1,
            len(steps),
            step.seconds,
            len(step.chunks),
            ", ".join(map(str, step.frames)),
        )
        call(_signal(step.seconds))
        if gpu:  # a GPU pipeline compiles a chunk length's graphs when it repeats: built now too
            call(_signal(step.seconds))
        if progress is not None:
            progress(i + 1, len(steps), step)
    for block in live_blocks:
        logger.info("warm-up: live stream, block %g s", block)
        live_vc.stream(block=block, **live_kw).warmup()
    if gpu and rvc_runtime.mark_kernels_built() is None:
        logger.warning("the kernel folder could not be marked: later processes will not use compiled graphs")
    return steps


def _random_models(
    precision: str, *, live: bool = False
) -> tuple[Callable[[np.ndarray], None], str, Any, dict[str, Any], bool]:
    """A conversion function over ``bench``'s random full-size models, its preset, (``live``)
    a ``VoiceConverter`` over the same models with the streams' arguments (RMVPE as the pitch),
    and whether they run on a GPU."""
    from .bench import build_models, live_converter, pipeline_call
    from .options import ConvertOptions

    dtype = "float32" if precision == "tf32" else precision
    if dtype not in ("float32", "float16", "bfloat16"):
        raise ValueError(f"precision={precision!r}; expected float32, tf32, float16 or bfloat16")
    models = build_models(dtype=dtype)
    vc, kw = None, {}
    if live:
        vc, f0_fn = live_converter(models)
        kw = {"f0_fn": f0_fn}
    return pipeline_call(models), ConvertOptions().preset, vc, kw, models["synth"].backend.device == "gpu"
