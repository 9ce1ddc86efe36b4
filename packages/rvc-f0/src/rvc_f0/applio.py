"""Applio's pitch options as pure functions on f0 curves (100 frames per second, Hz, 0 = unvoiced).

* :func:`parse_hybrid` - the estimators of a ``hybrid[a+b(+c)]`` method name.
* :func:`hybrid_median` - combine several curves: per frame, the median over the curves that call
  the frame voiced (Applio 3.1-3.2 took the median over all curves, unvoiced zeros included, so a
  voiced 200 Hz next to an unvoiced 0 became 100 Hz; we leave unvoiced frames out).
* :func:`autotune_f0` - pull voiced frames toward the nearest equal-tempered note (G1..C6).
* :func:`proposed_pitch_offset` - the semitone shift that brings the median f0 to a target.

Spec: ``shared/specs/applio-options.md`` sections 1-3. No model is loaded here; everything is NumPy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._checks import as_f0
from .errors import F0InputError, UnknownMethodError

__all__ = ["AUTOTUNE_NOTES", "autotune_f0", "hybrid_median", "parse_hybrid", "proposed_pitch_offset"]


def _notes() -> np.ndarray:
    notes = np.round(440.0 * 2.0 ** ((np.arange(31, 85) - 69) / 12), 2)  # MIDI 31 (G1) .. 84 (C6)
    notes[76 - 31] = 659.25  # E5: Applio's table stores 659.25, not 659.26
    return notes


AUTOTUNE_NOTES: np.ndarray = _notes()  # (54,) Hz, ascending: 49.0 ... 1046.5
_HYBRID = re.compile(r"^hybrid\[(.*)\]$")


def parse_hybrid(method: str, known: Sequence[str]) -> tuple[str, ...] | None:
    """The estimators named by ``hybrid[a+b(+c...)]``, or None when ``method`` is not a hybrid name.

    Args:
        method: e.g. ``"hybrid[rmvpe+fcpe]"`` (spaces around names are ignored).
        known: the single-estimator names allowed inside (``rvc_f0.METHODS``).

    Raises:
        UnknownMethodError: fewer than two names, an unknown name, or a name given twice.
    """
    m = _HYBRID.match(method.strip()) if isinstance(method, str) else None
    if m is None:
        return None
    names = tuple(n.strip() for n in m.group(1).split("+"))
    bad = [n for n in names if n not in known]
    if bad or len(names) < 2 or len(set(names)) != len(names):
        why = (
            f"{bad[0]!r} is not an f0 method"
            if bad
            else "it names fewer than two methods"
            if len(names) < 2
            else "it names a method twice"
        )
        raise UnknownMethodError(
            f"method={method!r}: {why}; expected hybrid[a+b] or hybrid[a+b+c] of distinct methods among "
            f"{', '.join(known)} (e.g. hybrid[rmvpe+fcpe])"
        )
    return names


def hybrid_median(curves: Sequence[Any]) -> np.ndarray:
    """Per frame, the median of the voiced values (> 0) of several f0 curves; 0 where none is voiced.

    Two voiced curves give their mean, three the middle value; a frame voiced in one curve only
    takes that curve's value.

    Args:
        curves: k (T,) f0 curves in Hz (0 = unvoiced), all of the same length.

    Returns:
        (T,) float32 Hz.
    """
    arrs = [as_f0(c).astype(np.float64) for c in curves]
    if not arrs:
        raise F0InputError("hybrid_median got no curves; expected at least one (T,) f0 curve")
    if len({len(a) for a in arrs}) != 1:
        raise F0InputError(f"f0 curves of lengths {[len(a) for a in arrs]}; expected curves of one length")
    stack = np.stack(arrs)
    voiced = stack > 0
    n = voiced.sum(axis=0)
    s = np.sort(np.where(voiced, stack, np.inf), axis=0)  # voiced values first, ascending
    cols = np.arange(stack.shape[1])
    lo = s[np.maximum((n - 1) // 2, 0), cols]
    hi = s[np.maximum(n // 2, 0), cols]
    return np.where(n > 0, (lo + hi) / 2, 0.0).astype(np.float32)


def autotune_f0(f0: Any, *, strength: float = 1.0) -> np.ndarray:
    """Move every voiced frame toward the nearest note of :data:`AUTOTUNE_NOTES` (Applio's ``autotune_f0``).

    The nearest note is the one at the smallest difference in Hz (ties: the lower note); the new
    value is ``f0 + (note - f0) * strength``. Unlike Applio, unvoiced frames (0 Hz) stay 0 (Applio
    pulls them toward 49 Hz, which makes them voiced for the synthesizer and unprotected).

    Args:
        f0: (T,) Hz, 0 = unvoiced (apply after any transposition: the notes are absolute).
        strength: 0 (unchanged) .. 1 (hard snap).

    Returns:
        (T,) float32 Hz.
    """
    f0 = as_f0(f0).astype(np.float64)
    if isinstance(strength, bool) or not isinstance(strength, (int, float, np.number)) or not 0 <= strength <= 1:
        raise F0InputError(f"strength={strength!r}; expected a number in [0, 1] (1 = hard snap to the note)")
    voiced = f0 > 0
    v = f0[voiced]
    notes = AUTOTUNE_NOTES
    i = np.clip(np.searchsorted(notes, v), 1, len(notes) - 1)  # notes[i-1] < v <= notes[i] (inside)
    lower, upper = notes[i - 1], notes[i]
    nearest = np.where(np.abs(v - lower) <= np.abs(upper - v), lower, upper)
    nearest = np.where(v <= notes[0], notes[0], np.where(v >= notes[-1], notes[-1], nearest))
    out = f0.copy()
    out[voiced] = v + (nearest - v) * float(strength)
    return out.astype(np.float32)


def proposed_pitch_offset(f0: Any, *, threshold: float = 155.0) -> int:
    """Semitones (an integer in -12..12) that bring the curve's median f0 to ``threshold`` Hz.

    Applio's proposed pitch: the voiced values are linearly interpolated over every frame (held
    constant before the first and after the last voiced frame), M is the median of that curve,
    and the offset is ``round(12 log2(threshold / M))`` (half to even), clamped to +-12. Fewer
    than two voiced frames give 0.

    Args:
        f0: (T,) Hz, 0 = unvoiced.
        threshold: the target median in Hz (Applio: 155 for male models, 255 for female ones).
    """
    f0 = as_f0(f0).astype(np.float64)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)) or not threshold > 0:
        raise F0InputError(f"threshold={threshold!r}; expected a target median f0 in Hz > 0 (e.g. 155 or 255)")
    voiced = np.flatnonzero(f0 > 0)
    if voiced.size < 2:
        return 0
    median = float(np.median(np.interp(np.arange(len(f0)), voiced, f0[voiced])))
    if not median > 0:
        return 0
    return int(np.clip(int(np.round(12 * np.log2(threshold / median))), -12, 12))
