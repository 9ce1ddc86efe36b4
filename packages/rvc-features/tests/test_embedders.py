"""Applio's embedders: Hugging Face HuBERT folders loaded without torch, against transformers' goldens.

The fixtures (``shared/fixtures/embedders``, see its README) are a small HubertModel with the real
topology and random weights in three layouts; the goldens are transformers' own outputs.
Tolerances (max abs) are the README's: hidden states 1e-4, final_proj 5e-5.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import rvc_features
from rvc_features import EMBEDDERS, load_embedder
from rvc_features.embedders import embedder_files
from rvc_features.errors import RVCFeaturesError, WeightsFormatError, WeightsNotFoundError

HIDDEN_TOL, PROJ_TOL = 1e-4, 5e-5
INPUTS = ("voice_1s", "voice_2p37s", "voice_4s")
LAYOUTS = ("safetensors", "bin", "bin_legacy")


@pytest.fixture(scope="module")
def emb_dir(fixtures_dir: Path) -> Path:
    d = fixtures_dir / "embedders"
    if not (d / "goldens.npz").is_file():
        pytest.skip(f"embedder fixtures missing: {d}")
    return d


@pytest.fixture(scope="module")
def goldens(emb_dir: Path) -> dict[str, np.ndarray]:
    with np.load(emb_dir / "goldens.npz") as g:
        return {k: g[k] for k in g.files}


def _err(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a.astype(np.float64) - b).max())


def test_public_api() -> None:
    assert len(rvc_features.__all__) <= 7
    assert set(EMBEDDERS) == {
        "contentvec",
        "spin",
        "spin-v2",
        "chinese-hubert-base",
        "japanese-hubert-base",
        "korean-hubert-base",
    }
    assert EMBEDDERS["chinese-hubert-base"] == "chinese_hubert_base"  # Applio's folder names


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_meets_goldens(emb_dir: Path, goldens: dict, layout: str) -> None:
    emb = load_embedder(emb_dir / layout)
    assert (emb.dim, emb.n_layers) == (96, 12)
    for name in INPUTS:
        audio = goldens[f"{name}/audio"]
        h9 = emb.hidden(audio, output_layer=9)
        h12 = emb(audio, version="v2")  # v2: the last layer
        assert _err(h9, goldens[f"{name}/hidden_9"]) <= HIDDEN_TOL, (layout, name)
        assert _err(h12, goldens[f"{name}/hidden_12"]) <= HIDDEN_TOL, (layout, name)
        # the off-by-one layer would be far off (README: > 1e4 x the tolerance)
        assert _err(emb.hidden(audio, output_layer=8), goldens[f"{name}/hidden_9"]) > 0.1
        if layout == "bin_legacy":  # Applio's layout: final_proj in the same file -> v1 = final_proj(layer 9)
            assert _err(emb(audio, version="v1"), goldens[f"{name}/final_proj_9"]) <= PROJ_TOL, name


def test_every_layer_and_mlx_forward(emb_dir: Path, goldens: dict) -> None:
    """All hidden_states[1..12] on the fast path, and mlx-contentvec's own forward on the device."""
    emb = load_embedder(emb_dir / "safetensors")
    audio, every = goldens["voice_1s/audio"], goldens["voice_1s/hidden_all"]
    for layer in range(1, 13):
        assert _err(emb.hidden(audio, output_layer=layer), every[layer]) <= HIDDEN_TOL, layer
    audio = goldens["voice_4s/audio"]
    assert _err(emb.hidden(audio, output_layer=9, fast=False), goldens["voice_4s/hidden_9"]) <= HIDDEN_TOL
    assert _err(emb.hidden(audio, fast=False), goldens["voice_4s/hidden_12"]) <= HIDDEN_TOL


def test_legacy_names_in_safetensors_with_final_proj(emb_dir: Path, goldens: dict, tmp_path: Path) -> None:
    """Either weight-norm spelling in either container: weight_g/weight_v + final_proj in model.safetensors."""
    from safetensors.numpy import save_file

    import rvc_pth

    state = rvc_pth.read_pth(emb_dir / "bin_legacy" / "pytorch_model.bin")
    assert "encoder.pos_conv_embed.conv.weight_g" in state and "final_proj.weight" in state
    shutil.copy(emb_dir / "bin_legacy" / "config.json", tmp_path / "config.json")
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(tmp_path / "model.safetensors"))
    emb = load_embedder(tmp_path / "model.safetensors")  # the path of a file inside the folder works too
    for name in INPUTS:
        audio = goldens[f"{name}/audio"]
        assert _err(emb(audio, version="v1"), goldens[f"{name}/final_proj_9"]) <= PROJ_TOL, name
        assert _err(emb(audio, version="v2"), goldens[f"{name}/hidden_12"]) <= HIDDEN_TOL, name


def test_cached_per_folder(emb_dir: Path) -> None:
    assert load_embedder(emb_dir / "bin") is load_embedder(str(emb_dir / "bin"))
    assert load_embedder(emb_dir / "bin") is not load_embedder(emb_dir / "safetensors")


def test_base_config_parsed(emb_dir: Path) -> None:
    """The full-size config -> the network's architecture and tensor shapes of expected.json."""
    from mlx.utils import tree_flatten
    from mlx_contentvec import ContentvecModel

    from rvc_features.embedders import _config, _hf_to_fairseq, _kwargs

    want = json.loads((emb_dir / "base_config" / "expected.json").read_text())
    kw = _kwargs(emb_dir / "base_config", _config(emb_dir / "base_config"))
    assert (
        kw["encoder_embed_dim"],
        kw["encoder_layers"],
        kw["encoder_attention_heads"],
        kw["encoder_ffn_embed_dim"],
    ) == (want["hidden_size"], want["num_hidden_layers"], want["num_attention_heads"], want["intermediate_size"])
    assert eval(kw["conv_feature_layers"]) == list(zip(want["conv_dim"], want["conv_kernel"], want["conv_stride"]))
    assert (kw["conv_pos"], kw["conv_pos_groups"], kw["conv_bias"]) == (
        want["num_conv_pos_embeddings"],
        want["num_conv_pos_embedding_groups"],
        want["conv_bias"],
    )
    shapes = {k: tuple(v.shape) for k, v in tree_flatten(ContentvecModel(**kw).parameters())}
    n = sum(int(np.prod(s)) for k, s in shapes.items() if k != "encoder.pos_conv.layers.0.module.weight")
    masked = want["hidden_size"]  # masked_spec_embed: in the count, not in the network (training only)
    assert n == want["n_parameters_without_final_proj"] - masked
    tensors = want["tensors"]
    assert _hf_to_fairseq("feature_projection.projection.weight") == "post_extract_proj.weight"
    hf_shape = tensors["encoder.layers.11.feed_forward.intermediate_dense.weight"]
    assert shapes["encoder.layers.11.fc1.weight"] == tuple(hf_shape)


# --- errors: one line, what was found, what is expected --------------------------------------------


def _copy(emb_dir: Path, tmp_path: Path, layout: str = "safetensors") -> Path:
    dst = tmp_path / "emb"
    shutil.copytree(emb_dir / layout, dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    dst.chmod(0o755)
    return dst


def _edit_config(folder: Path, **changes: object) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and isinstance(exc.value, RVCFeaturesError)
    return text


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError) as exc:
        load_embedder(tmp_path / "nope")
    assert "neither a known name" in _one_line(exc) and "config.json" in str(exc.value)


def test_folder_without_config(tmp_path: Path) -> None:
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(WeightsFormatError) as exc:
        load_embedder(tmp_path)
    assert "without config.json" in _one_line(exc)


def test_folder_without_weights(emb_dir: Path, tmp_path: Path) -> None:
    folder = _copy(emb_dir, tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(WeightsNotFoundError) as exc:
        load_embedder(folder)
    assert "no model.safetensors or pytorch_model.bin (found: config.json)" in _one_line(exc)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"do_stable_layer_norm": True}, "do_stable_layer_norm=True"),
        ({"feat_extract_norm": "layer"}, "feat_extract_norm='layer'"),
        ({"conv_pos_batch_norm": True}, "conv_pos_batch_norm=True"),
        ({"model_type": "wav2vec2"}, "model_type='wav2vec2'"),
        ({"hidden_size": "96"}, "hidden_size='96'"),
    ],
)
def test_unsupported_config(emb_dir: Path, tmp_path: Path, change: dict, said: str) -> None:
    folder = _copy(emb_dir, tmp_path)
    _edit_config(folder, **change)
    with pytest.raises(WeightsFormatError) as exc:
        load_embedder(folder)
    assert said in _one_line(exc) and "expected" in str(exc.value)


def test_weights_do_not_fit_config(emb_dir: Path, tmp_path: Path) -> None:
    folder = _copy(emb_dir, tmp_path)
    _edit_config(folder, num_hidden_layers=11)
    with pytest.raises(WeightsFormatError) as exc:
        load_embedder(folder)
    text = _one_line(exc)
    assert "unexpected: encoder.layers.11." in text and "do not fit config.json" in text


def test_not_a_state_dict(emb_dir: Path, tmp_path: Path) -> None:
    folder = _copy(emb_dir, tmp_path, "bin")
    (folder / "pytorch_model.bin").write_bytes(b"not a zip")
    with pytest.raises(WeightsFormatError) as exc:
        load_embedder(folder)
    assert str(folder / "pytorch_model.bin") in _one_line(exc)


def test_v1_without_final_proj(emb_dir: Path, goldens: dict) -> None:
    emb = load_embedder(emb_dir / "safetensors")
    with pytest.raises(WeightsFormatError) as exc:
        emb.embedder("v1")
    assert "no final_proj" in _one_line(exc) and "v2 model" in str(exc.value)


def test_unknown_name_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A named embedder that is not cached, offline: one line naming the download command."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsNotFoundError) as exc:
        load_embedder("spin-v2")
    text = _one_line(exc)
    assert "`rvc models download --embedder spin-v2`" in text and "IAHispano/Applio" in text
    assert "HF_HUB_OFFLINE" in text
    with pytest.raises(WeightsFormatError, match="unknown embedder 'spin-v3'"):
        embedder_files("spin-v3")


def test_named_embedder_from_cache(
    emb_dir: Path, goldens: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A name resolves to the Hugging Face cache's copy of Applio's folder (no network)."""
    from huggingface_hub import constants

    snap = tmp_path / "models--IAHispano--Applio" / "snapshots" / ("0" * 40) / "Resources" / "embedders" / "spin"
    snap.mkdir(parents=True)
    for f in ("config.json", "pytorch_model.bin"):
        shutil.copy(emb_dir / "bin_legacy" / f, snap / f)
    refs = tmp_path / "models--IAHispano--Applio" / "refs"
    refs.mkdir()
    (refs / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert embedder_files("spin", download=False) == snap
    emb = load_embedder("spin")
    audio = goldens["voice_1s/audio"]
    assert _err(emb(audio, version="v1"), goldens["voice_1s/final_proj_9"]) <= PROJ_TOL
