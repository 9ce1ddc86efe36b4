"""Folder conversion's file rules, shared by ``rvc convert`` (one machine) and :mod:`rvc_convert.distributed`.

>>> from rvc_convert.folder import audio_files, output_paths
>>> targets = output_paths(audio_files("in/"), "out/", fmt="flac")   # {in/a.wav: out/a.flac, ...}

Which files a folder conversion picks up (every audio file by suffix, hidden files left out, sorted
by name), and where each one goes (``OUTPUT_DIR / f"{stem}.{fmt}"``). Both engines use these, so a
folder converts to the same names whichever runs it.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConvertInputError

__all__ = ["AUDIO_SUFFIXES", "FORMATS", "audio_files", "output_paths", "temp_files"]

FORMATS = ("wav", "flac", "mp3", "ogg", "opus", "m4a")
"""Output formats (``rvc_audio.save_audio``'s)."""

AUDIO_SUFFIXES = frozenset(
    {".wav", ".wave", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".aac"}
    | {".aif", ".aiff", ".wma", ".webm", ".mkv", ".caf", ".mka", ".ac3"}
)
"""Input suffixes a folder conversion picks up (anything FFmpeg decodes)."""


def audio_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The audio files directly in ``folder`` (by suffix, case-insensitive; no hidden files, no
    sub-folders), sorted by name."""
    return sorted(
        p
        for p in Path(folder).iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in AUDIO_SUFFIXES
    )


def output_paths(files: list[Path], output_dir: str | os.PathLike[str], *, fmt: str = "wav") -> dict[Path, Path]:
    """``{input: output_dir / f"{input.stem}.{fmt}"}``, in the order of ``files``.

    Raises:
        ConvertInputError: an unknown ``fmt``, or two inputs that would write the same output
            (``a.wav`` and ``a.flac``).
    """
    if fmt not in FORMATS:
        raise ConvertInputError(f"format {fmt!r}; expected one of {', '.join(FORMATS)}")
    out = Path(output_dir)
    targets: dict[Path, Path] = {}
    seen: dict[Path, Path] = {}
    for f in files:
        t = out / f"{f.stem}.{fmt}"
        if t in seen:
            raise ConvertInputError(f"{seen[t].name} and {f.name} would both be written to {t}; rename one of them")
        seen[t] = f
        targets[f] = t
    return targets


def temp_files(output: Path) -> list[Path]:
    """Temporary files an interrupted write of ``output`` may have left behind (the hidden
    ``.NAME.*.part`` files ``rvc_audio.save_audio`` renames into place)."""
    return sorted(output.parent.glob(f".{output.name}.*.part"))
