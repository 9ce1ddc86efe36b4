"""The signal-processing estimators: Praat autocorrelation (pm) and WORLD harvest/dio.

Each takes 16 kHz audio and returns exactly ``p_len`` float64 values (Hz, 0 = unvoiced).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import types
import warnings
from typing import Any

import numpy as np

from ._checks import F0_MAX, F0_MIN, SAMPLE_RATE, fit_centred, fit_end


def pm(audio: np.ndarray, p_len: int) -> np.ndarray:
    """Praat ``to_pitch_ac`` as the reference's ``get_f0(..., "pm")``, centred in ``p_len`` frames.

    Audio shorter than 0.06 s (three periods of the 50 Hz floor) cannot be analysed by Praat
    and comes back all unvoiced.
    """
    import parselmouth

    try:
        f0 = (
            parselmouth.Sound(audio.astype(np.float64, copy=False), SAMPLE_RATE)
            .to_pitch_ac(time_step=0.01, voicing_threshold=0.6, pitch_floor=F0_MIN, pitch_ceiling=F0_MAX)
            .selected_array["frequency"]
        )
    except parselmouth.PraatError:
        if len(audio) >= 3 * SAMPLE_RATE / F0_MIN:  # long enough: a real failure, let it surface
            raise
        f0 = np.zeros(0)
    return fit_centred(np.asarray(f0, dtype=np.float64), p_len)


def harvest(audio: np.ndarray, p_len: int, *, filter_radius: int) -> np.ndarray:
    """pyworld harvest + stonemask (10 ms, 50-1100 Hz), then classic RVC's ``medfilt(f0, 3)``
    when ``filter_radius > 2``; ``len // 160 + 1`` frames cut to ``p_len``."""
    pw = _pyworld()
    x = np.ascontiguousarray(audio, dtype=np.float64)
    f0, t = pw.harvest(x, fs=SAMPLE_RATE, f0_ceil=F0_MAX, f0_floor=F0_MIN, frame_period=10)
    f0 = pw.stonemask(x, f0, t, SAMPLE_RATE)
    if filter_radius > 2:
        from scipy.signal import medfilt

        with warnings.catch_warnings():  # 1-2 frames: scipy zero-pads (as the reference) and warns
            warnings.simplefilter("ignore", UserWarning)
            f0 = medfilt(f0, 3)
    return fit_end(f0, p_len)


def dio(audio: np.ndarray, p_len: int) -> np.ndarray:
    """pyworld dio + stonemask (10 ms, 50-1100 Hz) as classic RVC's training-time extractor."""
    pw = _pyworld()
    x = np.ascontiguousarray(audio, dtype=np.float64)
    f0, t = pw.dio(x, fs=SAMPLE_RATE, f0_ceil=F0_MAX, f0_floor=F0_MIN, frame_period=10)
    f0 = pw.stonemask(x, f0, t, SAMPLE_RATE)
    return fit_end(f0, p_len)


def _pyworld() -> Any:
    """Import pyworld. Its 0.3.5 ``__init__`` (the newest release with CPython 3.11+ builds) reads
    its own version through ``pkg_resources``, which setuptools 82 removed: when that import is
    what fails, lend it a minimal stand-in for the duration of the import only."""
    if "pyworld" in sys.modules:
        return sys.modules["pyworld"]
    try:
        return importlib.import_module("pyworld")
    except ModuleNotFoundError as exc:
        if exc.name != "pkg_resources":
            raise
    stub = types.ModuleType("pkg_resources")
    stub.get_distribution = lambda name: types.SimpleNamespace(version=importlib.metadata.version(name))  # type: ignore[attr-defined]
    sys.modules["pkg_resources"] = stub
    try:
        return importlib.import_module("pyworld")
    finally:
        if sys.modules.get("pkg_resources") is stub:
            del sys.modules["pkg_resources"]
