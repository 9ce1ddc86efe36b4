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


def test_float16_folder_loads_in_the_dtype_asked_for(ref_dir: Path, tmp_path: Path) -> None:
    """Issue 21: a float16 export ran in float16 on the CPU (~18x slower) though dtype defaults to float32."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from safetensors.numpy import load_file

    src = ref_dir / "checkpoints" / "v2_f0_40k.pth"
    half = rvc_synth.convert_checkpoint(src, tmp_path / "h", dtype="float16")
    stored = load_file(str(half / "model.safetensors"))
    assert {str(v.dtype) for v in stored.values()} == {"float16"}

    m = rvc_synth.load(half)
    params = dict(tree_flatten(m.parameters()))
    assert {str(v.dtype) for v in params.values()} == {"mlx.core.float32"}
    assert m.dtype == mx.float32 and m.info.precision == "float32"
    for k, v in stored.items():  # the stored values, exactly, in float32
        np.testing.assert_array_equal(np.array(params[k]), v.astype(np.float32))
    assert m.info.stored_dtype == "float16"
    assert rvc_synth.load(src).info.stored_dtype == "float16"  # as RVC's own .pth files
    full = rvc_synth.convert_checkpoint(src, tmp_path / "f")
    assert rvc_synth.load(full).info.stored_dtype == "float32"

    h = rvc_synth.load(half, dtype="float16")
    assert {str(v.dtype) for _, v in tree_flatten(h.parameters())} == {"mlx.core.float16"}
    assert h.info.precision == "float16" and h.info.stored_dtype == "float16"
    for k, v in dict(tree_flatten(h.parameters())).items():
        np.testing.assert_array_equal(np.array(v), stored[k])


def test_half_precision_on_the_cpu_warns_once(ref_dir: Path, tmp_path: Path, caplog, monkeypatch) -> None:
    import logging

    from rvc_synth import model as model_module
    from rvc_synth.backends import DEFAULT_BACKEND  # MLX kernels on the CPU

    monkeypatch.setattr(model_module, "_warned_half_cpu", False)
    src = ref_dir / "checkpoints" / "v1_nof0_32k.pth"
    with caplog.at_level(logging.WARNING, logger="rvc_synth"):
        rvc_synth.load(src, backend=DEFAULT_BACKEND)  # float32: no warning
        assert [r for r in caplog.records if "float32" in r.getMessage() and "CPU" in r.getMessage()] == []
        rvc_synth.load(src, dtype="float16", backend=DEFAULT_BACKEND)
        rvc_synth.load(src, dtype="bfloat16", backend=DEFAULT_BACKEND)
    half = [r for r in caplog.records if r.name == "rvc_synth.model"]
    assert len(half) == 1 and half[0].levelno == logging.WARNING
    assert "float16 on the CPU" in half[0].getMessage() and "dtype='float32'" in half[0].getMessage()
