"""convert_checkpoint: safetensors + config.json folders, loaded without pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rvc_synth
from rvc_synth.errors import CheckpointNotFoundError, OutputExistsError


def test_export_round_trip(ref_dir: Path, tmp_path: Path) -> None:
    src = ref_dir / "checkpoints" / "v1_f0_48k.pth"
    out = rvc_synth.convert_checkpoint(src, tmp_path / "m")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    g = np.load(ref_dir / "synth" / "v1_f0_48k_T37.npz")
    args = (g["phone"], g["pitch"], g["pitchf"])
    a = np.array(rvc_synth.load(out)(*args, noise_scale=0))
    b = np.array(rvc_synth.load(src)(*args, noise_scale=0))
    np.testing.assert_array_equal(a, b)
    assert rvc_synth.load(out).info.metadata["info"] == "random init seed=0 variant=v1_f0_48k"
    half = rvc_synth.convert_checkpoint(src, tmp_path / "h", dtype="float16")
    c = np.array(rvc_synth.load(half)(*args, noise_scale=0))
    assert np.abs(c - g["audio"][0]).max() < 0.05  # fused weights rounded to fp16


def test_export_refuses_overwrite_and_leaves_nothing(ref_dir: Path, tmp_path: Path) -> None:
    src = ref_dir / "checkpoints" / "v2_nof0_40k.pth"
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(OutputExistsError, match="--force"):
        rvc_synth.convert_checkpoint(src, out)
    assert (out / "keep.txt").exists()
    rvc_synth.convert_checkpoint(src, out, overwrite=True)
    assert not (out / "keep.txt").exists()
    with pytest.raises(CheckpointNotFoundError):
        rvc_synth.convert_checkpoint(tmp_path / "missing.pth", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_folder_without_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="config.json"):
        rvc_synth.load(tmp_path)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_export_follows_the_umask(ref_dir: Path, tmp_path: Path, umask: int) -> None:
    """The folder and its files get the modes any other output gets (not mkdtemp's private 0700)."""
    import os
    import stat

    old = os.umask(umask)
    try:
        out = rvc_synth.convert_checkpoint(ref_dir / "checkpoints" / "v2_nof0_40k.pth", tmp_path / "voice")
        (tmp_path / "plain").mkdir()
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask == stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    for f in sorted(out.iterdir()):
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask == stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
