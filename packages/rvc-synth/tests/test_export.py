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
