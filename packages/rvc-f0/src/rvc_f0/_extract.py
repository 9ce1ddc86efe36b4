"""``extract_f0``: one entry point, a table of estimators.

Adding an estimator (crepe, fcpe, ...) = one function ``(audio, p_len, options) -> (p_len,) Hz``
and one entry in ``_ESTIMATORS``; option fields it needs go in ``_Options``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _classic
from ._checks import SAMPLE_RATE, as_audio, fit_end, frames_wanted
from ._curve import curve_f0
from .errors import F0InputError, UnknownMethodError


@dataclass(frozen=True)
class _Options:
    threshold: float
    filter_radius: int
    weights: str | os.PathLike[str] | None


def _rmvpe(audio: np.ndarray, p_len: int, opt: _Options) -> np.ndarray:
    from ._rmvpe import load_rmvpe

    f0 = load_rmvpe(opt.weights)(audio, threshold=opt.threshold)  # len // 160 + 1 frames
    return fit_end(f0, p_len)


_ESTIMATORS: dict[str, Callable[[np.ndarray, int, _Options], np.ndarray]] = {
    "rmvpe": _rmvpe,
    "pm": lambda audio, p_len, opt: _classic.pm(audio, p_len),
    "harvest": lambda audio, p_len, opt: _classic.harvest(audio, p_len, filter_radius=opt.filter_radius),
    "dio": lambda audio, p_len, opt: _classic.dio(audio, p_len),
}
METHODS: tuple[str, ...] = tuple(_ESTIMATORS)
_CURVE_SUFFIXES = (".csv", ".txt")


def extract_f0(
    audio_16k: Any,
    *,
    method: str | os.PathLike[str],
    p_len: int | None = None,
    sample_rate: int = SAMPLE_RATE,
    threshold: float = 0.03,
    filter_radius: int = 3,
    weights: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """Estimate f0 of 16 kHz mono audio: one value per 10 ms frame (100 frames per second).

    Args:
        audio_16k: (N,) float32/float64 mono samples at 16 kHz, in [-1, 1].
        method: ``"rmvpe"``, ``"pm"``, ``"harvest"``, ``"dio"`` (see :data:`METHODS`), or the path
            of an F0 curve file (a ``pathlib.Path``, or a string ending in ``.csv``/``.txt``)
            holding ``time_seconds,hz`` rows that replaces the estimate.
        p_len: number of frames wanted; default ``N // 160`` as the reference's pipeline. pm's
            frames are centred (``(p_len - len + 1) // 2`` zeros in front, the rest behind, as
            ``Pipeline.get_f0``); the other methods give ``N // 160 + 1`` frames, cut at the end
            to ``p_len`` (as ``Pipeline.vc`` does), or zero-padded at the end if fewer.
        sample_rate: must be 16000; it is there so a wrong rate fails loudly.
        threshold: rmvpe voicing threshold on the salience peak (reference 0.03).
        filter_radius: harvest only: classic RVC's ``scipy.signal.medfilt(f0, 3)`` runs when
            ``filter_radius > 2`` (its UI default 3); 0-2 turn it off.
        weights: rmvpe only: a local mlx-rmvpe ``.safetensors`` path (see :func:`load_rmvpe`).

    Returns:
        (p_len,) float32 f0 in Hz (estimators search 50-1100 Hz), 0 = unvoiced. Feed it to
        :func:`postprocess_f0`.
    """
    audio = as_audio(audio_16k)
    if sample_rate != SAMPLE_RATE:
        raise F0InputError(
            f"sample_rate={sample_rate}; f0 analysis runs on 16 kHz audio: resample first "
            "(e.g. rvc_audio.resample or rvc_audio.load_audio(path, sample_rate=16000))"
        )
    n = frames_wanted(p_len, len(audio))
    if isinstance(filter_radius, bool) or not isinstance(filter_radius, (int, np.integer)) or filter_radius < 0:
        raise F0InputError(
            f"filter_radius={filter_radius!r}; expected an integer >= 0 (> 2 turns harvest's median filter on)"
        )
    if isinstance(method, str) and method in _ESTIMATORS:
        f0 = _ESTIMATORS[method](audio, n, _Options(threshold, int(filter_radius), weights))
    elif isinstance(method, os.PathLike) or (isinstance(method, str) and method.lower().endswith(_CURVE_SUFFIXES)):
        f0 = curve_f0(method, n)
    else:
        raise UnknownMethodError(
            f"method={method!r} is not an f0 method; expected one of {', '.join(METHODS)}, "
            "or the path of a time_seconds,hz CSV curve file (ending in .csv or .txt, or a pathlib.Path)"
        )
    return np.asarray(f0, dtype=np.float32)
