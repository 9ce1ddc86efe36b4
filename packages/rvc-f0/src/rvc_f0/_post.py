"""F0 post-processing of the reference's ``Pipeline.get_f0``: unvoiced handling, transposition,
mel quantisation to the coarse pitch the synthesizer's embedding takes."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ._checks import F0_MAX, F0_MIN, as_f0
from .errors import F0InputError

# float64 scalars as in the reference (np.log of a Python float): under NumPy 2 they promote
# the voiced-frame arithmetic to float64 before it is stored back into the float32 array.
_MEL_MIN = 1127 * np.log(1 + F0_MIN / 700)
_MEL_MAX = 1127 * np.log(1 + F0_MAX / 700)
_MODES = ("interpolate", "keep")


def postprocess_f0(
    f0: Any,
    *,
    semitones: float = 0,
    unvoiced: Literal["interpolate", "keep"] = "interpolate",
) -> tuple[np.ndarray, np.ndarray]:
    """Turn a raw f0 curve into the synthesizer's ``(pitchf, pitch)`` pair.

    Args:
        f0: (T,) Hz per 10 ms frame (100 frames per second of 16 kHz audio), 0 = unvoiced,
            as :func:`extract_f0` returns it.
        semitones: transposition; f0 is multiplied by ``float32(2 ** (semitones / 12))``.
        unvoiced: ``"interpolate"`` (default, the current reference): 0 Hz frames are filled by
            linear interpolation between voiced frames (``np.interp`` over voiced frame indices,
            constant before the first and after the last voiced frame); an all-unvoiced curve
            stays 0. ``"keep"`` (classic RVC): 0 Hz frames stay 0 Hz and get coarse 1, so the
            NSF decoder gets noise excitation there and ``protect`` can act.

    Returns:
        ``(f0, coarse)``: (T,) float32 Hz after interpolation and transposition, and (T,) int32
        coarse pitch in 1..255: ``mel = 1127 ln(1 + f0/700)`` mapped linearly so 50 Hz -> 1 and
        1100 Hz -> 255, clamped to [1, 255] and rounded half to even.
    """
    f0 = as_f0(f0)
    if unvoiced not in _MODES:
        raise F0InputError(f"unvoiced={unvoiced!r}; expected one of {', '.join(map(repr, _MODES))}")
    if isinstance(semitones, bool) or not isinstance(semitones, (int, float, np.integer, np.floating)):
        raise F0InputError(f"semitones={semitones!r}; expected a number (e.g. 12 = one octave up)")
    if not np.isfinite(semitones):
        raise F0InputError(f"semitones={semitones!r}; expected a finite number")
    if unvoiced == "interpolate":
        voiced = np.flatnonzero(f0)
        if voiced.size:  # all-unvoiced: the reference's np.interp raises and it keeps the zeros
            f0 = np.interp(np.arange(len(f0)), voiced, f0[voiced])
    f0 = f0.astype(np.float32) * np.float32(2 ** (semitones / 12))
    return f0, _coarse(f0)


def _coarse(f0: np.ndarray) -> np.ndarray:
    """Mel quantisation exactly as the reference, dtypes included (float32 array, float64 scalars)."""
    mel = 1127 * np.log(1 + f0 / 700)
    voiced = mel > 0
    mel[voiced] = (mel[voiced] - _MEL_MIN) * 254 / (_MEL_MAX - _MEL_MIN) + 1
    mel[mel <= 1] = 1
    mel[mel > 255] = 255
    return np.rint(mel).astype(np.int32)
