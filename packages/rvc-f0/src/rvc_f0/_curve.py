"""F0 curve files: a CSV of ``time_seconds,hz`` rows that replaces the estimate (classic RVC)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._checks import HOP, SAMPLE_RATE
from .errors import CurveFileError, CurveFileNotFoundError

_FPS = SAMPLE_RATE // HOP  # 100 frames per second


def read_curve(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read ``time_seconds,hz`` rows -> (times s, Hz), both float64, times strictly increasing.

    Blank lines and lines starting with ``#`` are skipped; a first line that is not numeric is
    taken as a header. ``hz = 0`` marks unvoiced points.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        what = "is a directory" if p.is_dir() else "does not exist"
        raise CurveFileNotFoundError(f"F0 curve file {p} {what}; expected a CSV file of time_seconds,hz rows")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CurveFileError(
            f"F0 curve file {p}: cannot be read as text ({exc}); expected a CSV of time_seconds,hz"
        ) from exc
    rows: list[tuple[float, float]] = []
    header_allowed = True
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        first, header_allowed = header_allowed, False
        fields = [f.strip() for f in line.split(",")]
        try:
            if len(fields) != 2:
                raise ValueError
            t, hz = float(fields[0]), float(fields[1])
        except ValueError:
            if first and not any(_is_number(f) for f in fields):
                continue  # a header such as "time_seconds,hz"
            raise CurveFileError(
                f"F0 curve file {p}, line {n}: {line[:60]!r} is not 'time_seconds,hz' "
                "(two numbers separated by a comma)"
            ) from None
        if not (np.isfinite(t) and np.isfinite(hz)) or t < 0 or hz < 0:
            raise CurveFileError(
                f"F0 curve file {p}, line {n}: {line[:60]!r}; expected time >= 0 s and hz >= 0 (0 = unvoiced)"
            )
        if rows and t <= rows[-1][0]:
            raise CurveFileError(
                f"F0 curve file {p}, line {n}: time {t} s does not come after {rows[-1][0]} s; "
                "times must increase strictly"
            )
        rows.append((t, hz))
    if not rows:
        raise CurveFileError(f"F0 curve file {p} holds no time_seconds,hz rows")
    arr = np.asarray(rows, dtype=np.float64)
    return arr[:, 0], arr[:, 1]


def curve_f0(path: str | os.PathLike[str], p_len: int) -> np.ndarray:
    """The curve linearly interpolated onto frame times ``i / 100`` s for ``i < p_len``.

    Frames between the first and last point of the curve follow it (as classic RVC's
    ``np.interp(frame_index, times * 100, hz)``); frames outside its time span are 0 (unvoiced).
    """
    t, hz = read_curve(path)
    frames = np.arange(p_len, dtype=np.float64)
    pos = t * _FPS
    f0 = np.interp(frames, pos, hz)
    eps = 1e-6  # 0.3 s * 100 = 30.000000000000004 must still cover frame 30
    f0[(frames < pos[0] - eps) | (frames > pos[-1] + eps)] = 0.0
    return f0


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
