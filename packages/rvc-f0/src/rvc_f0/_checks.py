"""Input validation shared by the estimators and the post-processing."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import F0InputError

SAMPLE_RATE = 16000  # every analysis in this package runs at 16 kHz
HOP = 160  # one f0 frame per 160 samples = 10 ms = 100 frames per second
F0_MIN = 50.0  # Hz, the reference's f0_min
F0_MAX = 1100.0  # Hz, the reference's f0_max


def as_audio(audio: Any, *, what: str = "audio_16k") -> np.ndarray:
    """Return ``audio`` as a 1-D finite floating array (no copy when it already is one)."""
    if not isinstance(audio, np.ndarray):
        try:
            audio = np.asarray(audio)
        except Exception as exc:  # ragged lists and the like
            raise F0InputError(f"{what}: cannot turn {type(audio).__name__} into an array ({exc})") from exc
    if audio.ndim != 1:
        raise F0InputError(
            f"{what} has shape {audio.shape}; expected a 1-D mono signal at 16 kHz (mix channels down first, "
            "e.g. rvc_audio.load_audio(path, sample_rate=16000))"
        )
    if not np.issubdtype(audio.dtype, np.floating):
        hint = " (int16 PCM: divide by 32768)" if np.issubdtype(audio.dtype, np.integer) else ""
        raise F0InputError(f"{what} has dtype {audio.dtype}; expected float32 or float64 samples in [-1, 1]{hint}")
    if audio.size == 0:
        raise F0InputError(f"{what} is empty (0 samples); expected at least one sample of 16 kHz audio")
    if not np.all(np.isfinite(audio)):
        raise F0InputError(f"{what} contains NaN or infinite samples; expected finite samples in [-1, 1]")
    return audio


def as_f0(f0: Any, *, what: str = "f0") -> np.ndarray:
    """Return ``f0`` as a 1-D finite non-negative floating array (Hz, 0 = unvoiced)."""
    f0 = np.asarray(f0)
    if f0.ndim != 1:
        raise F0InputError(f"{what} has shape {f0.shape}; expected a 1-D curve in Hz, one value per 10 ms frame")
    if not (np.issubdtype(f0.dtype, np.floating) or np.issubdtype(f0.dtype, np.integer)):
        raise F0InputError(f"{what} has dtype {f0.dtype}; expected float Hz values")
    if not np.all(np.isfinite(f0)) or np.any(f0 < 0):
        raise F0InputError(f"{what} contains NaN, infinite or negative values; expected Hz >= 0 (0 = unvoiced)")
    return f0


def frames_wanted(p_len: Any, n_samples: int) -> int:
    """The reference's frame count: ``p_len`` when given, else ``n_samples // 160``."""
    if p_len is None:
        return n_samples // HOP
    if isinstance(p_len, bool) or not isinstance(p_len, (int, np.integer)) or p_len < 0:
        raise F0InputError(f"p_len={p_len!r}; expected a frame count >= 0 (frames of 10 ms) or None")
    return int(p_len)


def fit_end(f0: np.ndarray, p_len: int) -> np.ndarray:
    """Cut (or zero-pad) at the end to ``p_len`` frames, as ``Pipeline.vc`` truncates pitch to ``p_len``."""
    if len(f0) >= p_len:
        return f0[:p_len]
    return np.pad(f0, (0, p_len - len(f0)))


def fit_centred(f0: np.ndarray, p_len: int) -> np.ndarray:
    """The reference's pm rule: pad ``(p_len - len + 1) // 2`` zeros in front, the rest behind."""
    d = p_len - len(f0)
    if d > 0:
        f0 = np.pad(f0, ((d + 1) // 2, d // 2))
    return fit_end(f0, p_len)
