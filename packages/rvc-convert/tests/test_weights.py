"""Weight resolution (option > environment > Hugging Face cache), the offline errors, status,
download failures, and building a voice index."""

from __future__ import annotations

import os
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import numpy as np
import pytest

from rvc_convert import weights
from rvc_convert.errors import ConvertInputError, OutputExistsError, WeightsDownloadError, WeightsNotFoundError


@pytest.fixture()
def empty_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hf"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    for spec in weights.WEIGHTS.values():
        monkeypatch.delenv(spec.env, raising=False)
    return cache


@pytest.fixture()
def offline(monkeypatch):
    """No network: the Hub's host does not resolve (and nothing may really be downloaded)."""
    import socket

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_download)


@pytest.fixture()
def online(monkeypatch):
    import socket

    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [("ok",)])
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


def _put_in_cache(cache: Path, repo: str, filename: str, target: Path) -> Path:
    root = cache / f"models--{repo.replace('/', '--')}"
    snap = root / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("0123abcd")
    (snap / filename).symlink_to(target)
    return snap / filename


def test_nothing_configured_names_the_ways_out(empty_cache, offline):
    for name, spec in weights.WEIGHTS.items():
        with pytest.raises(WeightsNotFoundError) as exc:
            weights.resolve_weights(name)
        msg = str(exc.value)
        assert "rvc models download" in msg and spec.env in msg and f"--{name}" in msg and spec.repo in msg
        assert "unreachable" in msg and "\n" not in msg
        with pytest.raises(WeightsNotFoundError, match="downloads are off"):
            weights.resolve_weights(name, download=False)
    with pytest.raises(WeightsDownloadError, match="huggingface.co is unreachable"):
        weights.download_weights("rmvpe")
    rows = {r["name"]: r for r in weights.weights_status()}
    assert rows["contentvec"] == {
        "name": "contentvec",
        "repo": "lexandstuff/mlx-contentvec",
        "file": "contentvec_base.safetensors",
        "env": "RVC_CONTENTVEC_WEIGHTS",
        "source": None,
        "path": None,
        "cached": False,
        "hub_cached": False,
        "random": False,
    }
    assert rows["rmvpe"]["file"] == "rmvpe.safetensors" and rows["rmvpe"]["cached"] is False


def test_option_then_env_then_cache(empty_cache, extractors_dir, tiny_contentvec_v1, monkeypatch, tmp_path):
    rmvpe = extractors_dir / "rmvpe_random.safetensors"
    cached = _put_in_cache(empty_cache, "lexandstuff/mlx-rmvpe", "rmvpe.safetensors", rmvpe)
    assert weights.resolve_weights("rmvpe") == cached
    row = {r["name"]: r for r in weights.weights_status()}["rmvpe"]
    assert row["source"] == "cache" and row["cached"] and row["path"] == cached
    monkeypatch.setenv("RVC_RMVPE_WEIGHTS", str(rmvpe))
    assert weights.resolve_weights("rmvpe") == rmvpe
    row = {r["name"]: r for r in weights.weights_status()}["rmvpe"]
    assert row["source"] == "env" and row["path"] == rmvpe and row["hub_cached"]
    assert weights.resolve_weights("rmvpe", tiny_contentvec_v1) == tiny_contentvec_v1
    with pytest.raises(WeightsNotFoundError, match=r"rmvpe weights .*nope\.safetensors \(from rmvpe=\) does not exist"):
        weights.resolve_weights("rmvpe", tmp_path / "nope.safetensors")
    monkeypatch.setenv("RVC_RMVPE_WEIGHTS", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match=r"from \$RVC_RMVPE_WEIGHTS\) is a folder"):
        weights.resolve_weights("rmvpe")
    with pytest.raises(ConvertInputError, match="unknown weights"):
        weights.resolve_weights("hubert")


def test_download_failure_is_one_clear_error(empty_cache, online, monkeypatch):
    def refused(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refused)
    with pytest.raises(
        WeightsDownloadError,
        match=r"could not download lexandstuff/mlx-contentvec/contentvec_base"
        r"\.safetensors \(OSError: \[Errno -2\]",
    ) as exc:
        weights.download_weights("all")
    assert isinstance(exc.value, ConnectionError) and "RVC_CONTENTVEC_WEIGHTS" in str(exc.value)


def test_download_uses_hub_and_cache(empty_cache, online, extractors_dir, monkeypatch, tmp_path):
    calls = []

    def fake_download(repo, filename, **kwargs):
        calls.append((repo, filename))
        return str(tmp_path / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    cached = _put_in_cache(
        empty_cache, "lexandstuff/mlx-rmvpe", "rmvpe.safetensors", extractors_dir / "rmvpe_random.safetensors"
    )
    out = weights.download_weights("all")
    assert out == {"contentvec": tmp_path / "contentvec_base.safetensors", "rmvpe": cached}
    assert calls == [("lexandstuff/mlx-contentvec", "contentvec_base.safetensors")]
    # conversion downloads a missing file on first use (when online)
    assert weights.resolve_weights("contentvec") == tmp_path / "contentvec_base.safetensors"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsNotFoundError, match="HF_HUB_OFFLINE"):
        weights.resolve_weights("contentvec")


def test_hub_file_names_are_the_packages_own():
    import mlx_contentvec
    import mlx_rmvpe

    assert (weights.WEIGHTS["contentvec"].repo, weights.WEIGHTS["contentvec"].filename) == (
        mlx_contentvec.HF_REPO_ID,
        mlx_contentvec.HF_WEIGHTS_FILE,
    )
    assert (weights.WEIGHTS["rmvpe"].repo, weights.WEIGHTS["rmvpe"].filename) == (
        mlx_rmvpe.HF_REPO_ID,
        mlx_rmvpe.HF_WEIGHTS_FILE,
    )


def test_build_voice_index(fixtures_dir, tiny_contentvec_v1, tmp_path):
    from rvc_index import FeatureIndex

    audio_dir = tmp_path / "voice"
    audio_dir.mkdir()
    for f in ("arctic_a0007.wav", "speechbrain_LJ050-0131.wav"):
        os.symlink(fixtures_dir / "audio" / f, audio_dir / f)
    (audio_dir / "notes.txt").write_text("not audio")
    seen = []
    out = weights.build_voice_index(
        audio_dir,
        tmp_path / "voice.index",
        version="v1",
        contentvec=tiny_contentvec_v1,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen == [(1, 2), (2, 2)]
    idx = FeatureIndex.load(out)
    assert idx.dim == 256 and idx.ntotal > 500  # 50 frames per second of speech
    with pytest.raises(OutputExistsError):
        weights.build_voice_index(audio_dir, out, version="v1", contentvec=tiny_contentvec_v1)
    with pytest.raises(ConvertInputError, match="no audio files"):
        weights.build_voice_index(tmp_path / "voice" / "..", tmp_path / "x.index", contentvec=tiny_contentvec_v1)
    with pytest.raises(ConvertInputError, match="version"):
        weights.build_voice_index(audio_dir, tmp_path / "y.index", version="v3")


def test_training_pieces_as_rvc_preprocess():
    x = np.random.default_rng(0).standard_normal(16000 * 10) * 0.5
    pieces = weights._training_pieces(x)
    # 3.7 s pieces every 3.4 s while more than 4 s remain, then the rest
    assert [len(p) for p in pieces] == [59200, 59200, 160000 - 2 * 54400]
    p0 = x[:59200]
    np.testing.assert_allclose(pieces[0], p0 / np.abs(p0).max() * 0.675 + 0.25 * p0)


# -- create_random_weights (issue 21: a documented offline path to try the toolkit) ---------------


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> dict[str, Path]:
    return weights.create_random_weights(tmp_path_factory.mktemp("random") / "w")


def test_random_weights_load_as_the_bench_networks(random_weights, extractors_dir):
    """Full size, v1 and v2 features, and the very networks `rvc bench` measures (seed 0)."""
    import mlx.core as mx
    from mlx_contentvec import ContentvecModel

    from rvc_f0 import load_rmvpe
    from rvc_f0.bench import random_model
    from rvc_features import BASE_KWARGS, ContentVec, load_contentvec

    assert sorted(p.name for p in random_weights["contentvec"].parent.iterdir()) == [
        "contentvec_random.safetensors", "rmvpe_random.safetensors"]  # fmt: skip
    assert all(weights.is_random_weights(p) for p in random_weights.values())
    assert not weights.is_random_weights(extractors_dir / "contentvec_tiny.safetensors")
    assert not weights.is_random_weights(extractors_dir / "README.md")

    x = (0.1 * np.random.default_rng(3).standard_normal(8000)).astype(np.float32)
    cv = load_contentvec(random_weights["contentvec"])
    assert (cv.dim, cv.n_layers, cv.has_final_proj) == (768, 12, True)
    mx.random.seed(0)
    ref = ContentVec(ContentvecModel(**BASE_KWARGS), dict(BASE_KWARGS), None)
    np.testing.assert_allclose(cv.hidden(x), ref.hidden(x), rtol=0, atol=1e-5)
    v2, v1 = cv(x, version="v2"), cv(x, version="v1")
    assert v2.shape == (24, 768) and v1.shape == (24, 256)
    w, b = cv.final_proj
    np.testing.assert_allclose(v1, cv.hidden(x, output_layer=9) @ w.T + b, rtol=1e-5, atol=1e-5)

    rmvpe = load_rmvpe(random_weights["rmvpe"])
    np.testing.assert_array_equal(rmvpe.salience(x), random_model("rmvpe").salience(x))


def test_random_weights_refused_without_overwrite_and_labelled(random_weights, empty_cache, monkeypatch, caplog):
    import logging

    before = {k: p.stat().st_mtime_ns for k, p in random_weights.items()}
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        weights.create_random_weights(random_weights["contentvec"].parent)
    assert {k: p.stat().st_mtime_ns for k, p in random_weights.items()} == before
    monkeypatch.setenv("RVC_CONTENTVEC_WEIGHTS", str(random_weights["contentvec"]))
    rows = {r["name"]: r for r in weights.weights_status()}
    assert rows["contentvec"]["random"] is True and rows["rmvpe"]["random"] is False
    with caplog.at_level(logging.WARNING, logger="rvc_convert"):
        assert weights.resolve_weights("rmvpe", random_weights["rmvpe"]) == random_weights["rmvpe"]
    assert any("output is noise" in r.getMessage() for r in caplog.records)


def test_random_weights_written_atomically(tmp_path, monkeypatch):
    import safetensors.numpy

    def broken(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        weights.create_random_weights(tmp_path / "w")
    assert list((tmp_path / "w").iterdir()) == []


def test_every_f0_network_and_embedder_is_covered(empty_cache, online, monkeypatch, tmp_path):
    """`rvc models download`/`list` cover CREPE, FCPE and Applio's embedders (issue 21 item 6)."""
    from rvc_f0.weights import WEIGHTS as F0
    from rvc_features import EMBEDDERS

    assert weights.names() == ["contentvec", "rmvpe", *F0]
    calls = []

    def fake_download(repo, filename, **kwargs):
        calls.append((repo, filename))
        path = tmp_path / "dl" / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    folder = weights.download_embedder("spin-v2")
    assert calls == [
        ("IAHispano/Applio", "Resources/embedders/spin-v2/config.json"),
        ("IAHispano/Applio", "Resources/embedders/spin-v2/pytorch_model.bin"),
    ]
    assert folder == tmp_path / "dl" / "Resources" / "embedders" / "spin-v2"
    with pytest.raises(ConvertInputError, match="unknown embedder 'spin-v9'"):
        weights.download_embedder("spin-v9")
    rows = weights.weights_status(every=True)
    assert [(r["name"], r["kind"], r["fetch"]) for r in rows] == (
        [("contentvec", "extractor", "contentvec"), ("rmvpe", "extractor", "rmvpe")]
        + [(m, "f0", m) for m in F0]
        + [(n, "embedder", f"--embedder {n}") for n in EMBEDDERS if n != "contentvec"]
    )
    assert all(not r["cached"] for r in rows)
    assert [r["name"] for r in weights.weights_status()] == ["contentvec", "rmvpe"]  # the default: unchanged


def test_f0_weights_download_offline(empty_cache, offline, monkeypatch):
    import importlib.util

    if importlib.util.find_spec("torchfcpe") is not None:
        pytest.skip("an installed torchfcpe ships the FCPE weights")
    monkeypatch.delenv("RVC_FCPE_WEIGHTS", raising=False)
    with pytest.raises(WeightsDownloadError, match=r"rvc-mlx/pitch-weights/fcpe/fcpe_c_v001\.pt.*unreachable") as exc:
        weights.download_weights("fcpe")
    assert "--f0-weights" in str(exc.value) and "RVC_FCPE_WEIGHTS" in str(exc.value)
    with pytest.raises(WeightsNotFoundError, match=r"Run `rvc models download fcpe` while online"):
        weights.resolve_weights("fcpe")
