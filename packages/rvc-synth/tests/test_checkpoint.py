"""Checkpoint kinds: inference/training/Applio formats, weight-norm key styles, strict keys, errors."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
import torchpickle
from mlx.utils import tree_flatten

import rvc_synth
from conftest import VARIANTS
from rvc_pth import read_pth
from rvc_synth import UnsupportedCheckpointError
from rvc_synth.checkpoint import read_checkpoint
from rvc_synth.model import sanitize


@pytest.mark.parametrize("variant", VARIANTS + ["v2_f0_40k_fullsize"])
def test_every_parameter_key_matches_checkpoint(ref_dir: Path, variant: str) -> None:
    ckpt = read_checkpoint(ref_dir / "checkpoints" / f"{variant}.pth")
    m = rvc_synth.Synthesizer(ckpt.config)
    params = dict(tree_flatten(m.parameters()))
    raw = {k.replace(".weight_g", ".weight").replace(".weight_v", ".weight") for k in ckpt.weights}
    assert set(params) == raw  # parameter paths are the checkpoint keys (weight norm fused)
    sane = sanitize(ckpt.weights)
    assert {k: tuple(v.shape) for k, v in sane.items()} == {k: tuple(v.shape) for k, v in params.items()}


@pytest.mark.parametrize("variant", VARIANTS)
def test_info(ref_dir: Path, variant: str) -> None:
    version, f0, sr = variant.split("_")
    info = rvc_synth.load(ref_dir / "checkpoints" / f"{variant}.pth").info
    assert (info.version, info.has_f0, info.sample_rate) == (version, f0 == "f0", int(sr[:-1]) * 1000)
    assert info.hop == info.sample_rate // 100 and info.n_speakers == 4
    assert info.feature_dim == (256 if version == "v1" else 768)
    assert info.metadata["info"] == f"random init seed=0 variant={variant}"
    manifest = json.loads((ref_dir / "synth_manifest.json").read_text())
    assert (
        read_checkpoint(ref_dir / "checkpoints" / f"{variant}.pth").config.to_list()
        == manifest["models"][variant]["config"]
    )


def _variant_obj(ref_dir: Path, name: str = "v2_f0_32k") -> dict:
    return read_pth(ref_dir / "checkpoints" / f"{name}.pth")


def _audio(m: rvc_synth.Synthesizer, ref_dir: Path, name: str = "v2_f0_32k") -> np.ndarray:
    g = np.load(ref_dir / "synth" / f"{name}_T37.npz")
    return np.array(m(g["phone"], g["pitch"], g["pitchf"], noise_scale=0))


def test_parametrizations_weight_norm_keys(ref_dir: Path, tmp_path: Path) -> None:
    obj = _variant_obj(ref_dir)
    w = {}
    for k, v in obj["weight"].items():
        if k.endswith(".weight_g"):
            w[k[: -len(".weight_g")] + ".parametrizations.weight.original0"] = v
        elif k.endswith(".weight_v"):
            w[k[: -len(".weight_v")] + ".parametrizations.weight.original1"] = v
        else:
            w[k] = v
    obj["weight"] = w
    p = torchpickle.save(obj, tmp_path / "param.pth")
    base = rvc_synth.load(ref_dir / "checkpoints" / "v2_f0_32k.pth")
    np.testing.assert_array_equal(_audio(rvc_synth.load(p), ref_dir), _audio(base, ref_dir))


def test_applio_keys_kept_and_other_vocoders_refused(ref_dir: Path, tmp_path: Path) -> None:
    obj = _variant_obj(ref_dir)
    obj.update(vocoder="HiFi-GAN", author="someone", embedder_model="contentvec", epoch=100, speakers_id=1)
    m = rvc_synth.load(torchpickle.save(obj, tmp_path / "applio.pth"))
    assert m.info.metadata["author"] == "someone" and m.info.metadata["epoch"] == 100
    obj["vocoder"] = "RefineGAN"
    with pytest.raises(UnsupportedCheckpointError, match="RefineGAN.*only HiFi-GAN"):
        rvc_synth.load(torchpickle.save(obj, tmp_path / "refine.pth"))


def test_speaker_count_from_embedding(ref_dir: Path, tmp_path: Path) -> None:
    obj = _variant_obj(ref_dir)
    obj["config"][-3] = 109  # stored config disagrees; the reference trusts emb_g
    m = rvc_synth.load(torchpickle.save(obj, tmp_path / "spk.pth"))
    assert m.info.n_speakers == 4
    with pytest.raises(ValueError, match="speaker 4 is out of range"):
        _ = m(np.zeros((1, 3, 768), np.float32), np.ones((1, 3)), np.zeros((1, 3)), speaker=4)


def test_resblock_type_2_and_missing_keys(ref_dir: Path) -> None:
    from dataclasses import replace

    ckpt = read_checkpoint(ref_dir / "checkpoints" / "v1_nof0_40k.pth")
    m = rvc_synth.Synthesizer(replace(ckpt.config, resblock="2", resblock_dilation_sizes=((1, 3),) * 3))
    assert "dec.resblocks.0.convs.1.weight" in dict(tree_flatten(m.parameters()))
    with pytest.raises(UnsupportedCheckpointError, match="do not match"):
        m.load_checkpoint_weights(ckpt)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda o: o.pop("config"), "no 'config'"),
        (lambda o: o.__setitem__("config", o["config"][:10]), "10 entries"),
        (lambda o: o.__setitem__("f0", 0), "f0=0"),
        (lambda o: o.__setitem__("version", "v1"), "256-d"),
        (lambda o: o.__setitem__("version", "v3"), "'v3' is unknown"),
        (lambda o: o["weight"].pop("dec.conv_post.weight"), "missing.*conv_post"),
        (lambda o: o["weight"].__setitem__("dec.conv_pre.bias", np.zeros(7, np.float16)), "shape"),
        (lambda o: o.__setitem__("weight", [1, 2]), "state dict"),
        (lambda o: o.clear() or o.__setitem__("foo", 1), "expected an RVC model"),
    ],
)
def test_malformed_checkpoints_fail_clearly(ref_dir: Path, tmp_path: Path, mutate, message: str) -> None:
    obj = _variant_obj(ref_dir)
    mutate(obj)
    with pytest.raises(UnsupportedCheckpointError, match=message):
        rvc_synth.load(torchpickle.save(obj, tmp_path / "bad.pth"))


def test_legacy_format_checkpoint(ref_dir: Path, tmp_path: Path) -> None:
    p = torchpickle.save(_variant_obj(ref_dir), tmp_path / "legacy.pth", legacy=True)
    base = rvc_synth.load(ref_dir / "checkpoints" / "v2_f0_32k.pth")
    np.testing.assert_array_equal(_audio(rvc_synth.load(p), ref_dir), _audio(base, ref_dir))


def test_noise_is_seeded(ref_dir: Path) -> None:
    m = rvc_synth.load(ref_dir / "checkpoints" / "v2_f0_32k.pth")
    g = np.load(ref_dir / "synth" / "v2_f0_32k_T37.npz")
    args = (g["phone"], g["pitch"], g["pitchf"])
    a, b, c = (np.array(m(*args, seed=s)) for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3
    assert np.abs(a - g["audio"][0]).max() > 1e-3  # noise really applied
    np.testing.assert_array_equal(np.array(m(*args, noise_scale=0)), np.array(m(*args, noise_scale=0)))


def test_input_shape_errors(ref_dir: Path) -> None:
    m = rvc_synth.load(ref_dir / "checkpoints" / "v2_f0_32k.pth")
    x = np.zeros((1, 5, 768), np.float32)
    with pytest.raises(ValueError, match=r"expected \(batch, frames, 768\)"):
        m(np.zeros((1, 5, 256), np.float32), np.ones((1, 5)), np.zeros((1, 5)))
    with pytest.raises(ValueError, match="pass both"):
        m(x)
    with pytest.raises(ValueError, match="must both be"):
        m(x, np.ones((1, 4)), np.zeros((1, 5)))
    with pytest.raises(ValueError, match="do not fit"):
        m(x, np.ones((1, 5)), np.zeros((1, 5)), skip_head=3, return_length=3)
    assert isinstance(mx.array(0), mx.array)
