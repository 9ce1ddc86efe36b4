"""rvc_convert.folder: which files a folder conversion takes and where each goes (both engines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rvc_convert.errors import ConvertInputError
from rvc_convert.folder import audio_files, output_paths, temp_files


def test_audio_files_output_paths_and_temp_files(tmp_path: Path) -> None:
    for name in ("b.WAV", "a.flac", ".hidden.wav", "notes.txt", "c.m4a"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.wav").mkdir()
    files = audio_files(tmp_path)
    assert [p.name for p in files] == ["a.flac", "b.WAV", "c.m4a"]
    out = tmp_path / "out"
    targets = output_paths(files, out, fmt="flac")
    assert [(s.name, str(d.relative_to(tmp_path))) for s, d in targets.items()] == [
        ("a.flac", "out/a.flac"),
        ("b.WAV", "out/b.flac"),
        ("c.m4a", "out/c.flac"),
    ]
    with pytest.raises(ConvertInputError, match="a.flac and a.wav would both be written to"):
        output_paths([tmp_path / "a.flac", tmp_path / "a.wav"], out)
    with pytest.raises(ConvertInputError, match="format 'aiff'"):
        output_paths(files, out, fmt="aiff")
    out.mkdir()
    for name in (".a.flac.1a2b.part", ".a.flac.crash.part", ".ab.flac.1a2b.part", "a.flac"):
        (out / name).write_bytes(b"x")
    assert [p.name for p in temp_files(out / "a.flac")] == [".a.flac.1a2b.part", ".a.flac.crash.part"]
