"""The one weight resolver (order, offline message, checksum), the strict key check, and oneDNN's
convolution against a NumPy statement of it."""

from __future__ import annotations

import hashlib
import socket
import sys
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import numpy as np
import pytest

from rvc_runtime import WeightsSpec, check_keys, onednn, resolve_weights
from rvc_runtime.errors import WeightsChecksumError, WeightsNotFoundError

SPEC = WeightsSpec("toy", "org/toy-weights", "toy/net.bin", "RVC_TOY_WEIGHTS", cli="--toy", expected="a toy file")


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache; the Hub's host does not resolve; no download may happen."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv(SPEC.env, raising=False)

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_download)
    return tmp_path / "hf"


def _put_in_cache(cache: Path, repo: str, filename: str, data: bytes) -> Path:
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text("0123abcd")
    f = root / "snapshots" / "0123abcd" / filename
    f.parent.mkdir(parents=True)
    f.write_bytes(data)
    return f


def test_order_path_env_installed_cache(hub, tmp_path, monkeypatch):
    local, env_file = tmp_path / "a.bin", tmp_path / "b.bin"
    local.write_bytes(b"a")
    env_file.write_bytes(b"b")
    cached = _put_in_cache(hub, SPEC.repo, SPEC.filename, b"c")
    assert resolve_weights(SPEC) == cached
    monkeypatch.setenv(SPEC.env, str(env_file))
    assert resolve_weights(SPEC) == env_file
    assert resolve_weights(SPEC, use_env=False) == cached
    assert resolve_weights(SPEC, local) == local
    with pytest.raises(WeightsNotFoundError, match=r"toy weights file .*nope\.bin \(from weights=\) does not exist"):
        resolve_weights(SPEC, tmp_path / "nope.bin")
    monkeypatch.setenv(SPEC.env, str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match=r"\(from \$RVC_TOY_WEIGHTS\) is a folder"):
        resolve_weights(SPEC)
    # an installed package that ships the file (found, never imported) comes before the cache
    monkeypatch.delenv(SPEC.env)
    pkg = tmp_path / "site" / "toypkg"
    (pkg / "assets").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (pkg / "assets" / "net.bin").write_bytes(b"d")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = WeightsSpec("toy", SPEC.repo, SPEC.filename, SPEC.env, package="toypkg", asset="assets/net.bin")
    assert resolve_weights(spec) == pkg / "assets" / "net.bin" and "toypkg" not in sys.modules


def test_offline_message_names_every_way_out(hub, monkeypatch):
    with pytest.raises(WeightsNotFoundError) as exc:
        resolve_weights(SPEC)
    msg = str(exc.value)
    assert exc.value.reason.startswith("could not download org/toy-weights/toy/net.bin: huggingface.co is unreachable")
    assert "\n" not in msg
    for part in (
        "toy weights not found",
        "rvc models download",
        "RVC_TOY_WEIGHTS",
        "weights=",
        "--toy",
        "org/toy-weights/toy/net.bin",
        "net.bin",
        "a toy file",
        "unreachable",
    ):
        assert part in msg, part
    with pytest.raises(WeightsNotFoundError, match=r"\(downloads are off\)"):
        resolve_weights(SPEC, download=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        WeightsNotFoundError, match=r"\(could not download org/toy-weights/toy/net\.bin: HF_HUB_OFFLINE is set\)"
    ):
        resolve_weights(SPEC)
    assert isinstance(exc.value, FileNotFoundError)


def test_download_and_checksum(hub, tmp_path, monkeypatch):
    data = b"released bytes"
    got = tmp_path / "dl.bin"
    got.write_bytes(data)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [("ok",)])
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo, filename, **k: str(got))
    good = WeightsSpec(**{**SPEC.__dict__, "sha256": hashlib.sha256(data).hexdigest()})
    assert resolve_weights(good) == got
    bad = WeightsSpec(**{**SPEC.__dict__, "sha256": "0" * 64})
    with pytest.raises(WeightsChecksumError, match="sha256"):
        resolve_weights(bad)

    def refused(*args, **kwargs):
        raise OSError("[Errno 111] Connection refused")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refused)
    with pytest.raises(WeightsNotFoundError, match=r"could not download org/toy-weights/toy/net\.bin \(OSError"):
        resolve_weights(SPEC)


def test_check_keys():
    expected = {"a": (2, 3), "b": (4,), "c": (1,), "d": (5,)}
    assert check_keys(expected, dict(expected)) == ""
    got = {"a": (3, 2), "b": (4,), "x": (1,), "step": ()}
    assert check_keys(expected, got, optional=["d"], ignore=["step"]) == (
        "missing: c; unexpected: x; wrong shape: a (3, 2) (expected (2, 3))"
    )
    many = {f"k{i}": (1,) for i in range(9)}
    assert check_keys(many, {}, shown=3) == "missing: k0, k1, k2, ... (9 in all)"


@pytest.mark.skipif(not onednn.available(), reason="oneDNN (onednn-cpu-gomp) not installed")
def test_onednn_conv1d_matches_numpy():
    rng = np.random.default_rng(0)
    cin, cout, k, pad, dil = 5, 7, 3, 2, 2
    w = rng.standard_normal((cout, k, cin)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    x = rng.standard_normal((2, 40, cin)).astype(np.float32)
    xp = np.pad(x.astype(np.float64), ((0, 0), (pad, pad), (0, 0)))
    n = xp.shape[1] - dil * (k - 1)
    ref = sum(np.einsum("bti,oi->bto", xp[:, j * dil : j * dil + n], w[:, j].astype(np.float64)) for j in range(k)) + b
    out = onednn.Conv(w, b, padding=pad, dilation=dil)(x)
    np.testing.assert_allclose(out, ref, atol=2e-5)
    np.testing.assert_allclose(
        onednn.Conv(w, b, padding=pad, dilation=dil)(x, post_ops=(("relu", 0.0),)), np.maximum(ref, 0), atol=2e-5
    )
