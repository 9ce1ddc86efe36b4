"""Applio's options around the reference pipeline (spec: ``shared/specs/applio-options.md`` section 0).

Order, as Applio's ``convert_audio``: 16 kHz input -> formant shifting -> peak guard (the caller)
-> [split audio: each non-silent segment through the pipeline on its own] -> pipeline (f0:
proposed pitch, transposition, autotune) -> join -> clean audio -> effects -> int16. With every
option off none of this runs and :func:`~rvc_convert.pipeline.run_pipeline` is called as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from rvc_f0 import postprocess_f0
from rvc_f0.applio import autotune_f0, proposed_pitch_offset

from .options import ConvertOptions

logger = logging.getLogger(__name__)

SR = 16000
RunFloat = Callable[..., tuple[np.ndarray, int]]  # (audio_16k, progress, start=0) -> (float32, rate)


def adjust_f0(raw: np.ndarray, options: ConvertOptions) -> tuple[np.ndarray, np.ndarray]:
    """The pipeline's ``(pitchf, pitch)`` from the raw f0 of the padded input, with proposed pitch and autotune.

    Off: ``postprocess_f0(raw, semitones=pitch)``, the reference. Proposed pitch adds its offset
    (from the raw curve, padding included, as Applio) to ``pitch``; autotune snaps the voiced
    frames after the transposition (Applio 3.3+ drops the transposition when autotune is on, and
    ignores proposed pitch: we do neither) and leaves unvoiced ones at 0, which the reference's
    unvoiced interpolation then fills.
    """
    semitones = options.pitch
    if options.proposed_pitch:
        offset = proposed_pitch_offset(raw, threshold=options.proposed_pitch_threshold)
        logger.info("proposed pitch: %+d semitones (median f0 to %g Hz)", offset, options.proposed_pitch_threshold)
        semitones += offset
    if not options.f0_autotune:
        return postprocess_f0(raw, semitones=semitones)
    f0 = np.asarray(raw, dtype=np.float32) * np.float32(2 ** (semitones / 12))
    return postprocess_f0(autotune_f0(f0, strength=options.f0_autotune_strength), semitones=0)


def pre_process(x16k: np.ndarray, options: ConvertOptions) -> np.ndarray:
    """Formant shifting of the 16 kHz input (before the peak guard, as Applio's ``load_audio_infer``)."""
    if not options.formant_shifting:
        return x16k
    from rvc_audio.effects import shift_formants

    return shift_formants(x16k, quefrency=options.formant_quefrency, timbre=options.formant_timbre, sample_rate=SR)


def needs_float(options: ConvertOptions) -> bool:
    """Whether the output is post-processed (split, clean, effects): the pipeline must then give floats."""
    return bool(options.split_audio or options.clean_audio or options.effects)


def _guard(y: np.ndarray) -> np.ndarray:
    """The pipeline's output peak guard (``to_int16``'s: peak above 0.99 scaled to 0.99), in float."""
    peak = float(np.abs(y).max()) if y.size else 0.0
    return y / np.float32(peak / 0.99) if peak > 0.99 else y


def convert_post(
    run: RunFloat,
    x: np.ndarray,
    options: ConvertOptions,
    progress: Callable[[int, int], None] | None,
    min_samples: int,
) -> tuple[np.ndarray, int]:
    """Split (optional), convert, join, clean, effects; returns ``(int16, rate)``.

    Args:
        run: ``run(audio_16k, progress, start) -> (float32 output, rate)``: the pipeline, float
            output; ``start`` = the input sample the audio begins at (F0 curve times).
        x: (N,) float32 16 kHz, peak-guarded.
        options: the conversion's options.
        progress: per chunk without split; per segment with it.
        min_samples: segments shorter than this (the pipeline's minimum) come out as zeros.
    """
    from rvc_audio import effects as fx

    from .pipeline import to_int16

    if options.split_audio:
        spans = fx.split_on_silence(x)
        logger.info("split audio: %d segment(s)", len(spans))
        if progress is not None:
            progress(0, len(spans))
        pieces: list[np.ndarray | None] = []
        sr = None
        for i, (a, b) in enumerate(spans):
            if b - a >= min_samples:
                y, sr = run(x[a:b], None, a)
                pieces.append(_guard(y))
            else:
                pieces.append(None)  # too short to convert: silence
            if progress is not None:
                progress(i + 1, len(spans))
        if sr is None:  # every segment too short: convert the whole input instead
            y, sr = run(x, None)
            pieces, spans = [_guard(y)], [(0, len(x))]
        ratio = sr / SR
        filled = [np.zeros(int((b - a) * ratio), np.float32) if p is None else p for p, (a, b) in zip(pieces, spans)]
        y = fx.join_segments(filled, spans, n_samples=len(x), sample_rate_in=SR, sample_rate_out=sr)
    else:
        y, sr = run(x, progress)
        y = _guard(y)
    if options.clean_audio:
        y = fx.reduce_noise(y, sr, strength=options.clean_strength)
    if options.effects:
        y = fx.apply_effects(y, sr, options.effects)
    return to_int16(y), sr
