"""The oneDNN CPU decoder: each layer against the MLX layers, the whole decoder against the
GEMM path, and the goldens on both paths."""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

import rvc_synth
from rvc_runtime import onednn as _dnnl
from rvc_synth.layers import Conv1d, ConvTranspose1d

pytestmark = pytest.mark.skipif(not _dnnl.available(), reason="oneDNN (onednn-cpu-gomp) not installed")
rng = np.random.default_rng(0)


def _layer(layer, cout: int, k: int, cin: int):
    layer.weight = mx.array((rng.standard_normal((cout, k, cin)) / np.sqrt(k * cin)).astype(np.float32))
    if "bias" in layer:
        layer.bias = mx.array(rng.standard_normal(cout).astype(np.float32))
    return layer


@pytest.mark.parametrize(
    "cin, cout, k, stride, pad, dil",
    [
        (64, 64, 11, 1, 25, 5),  # a dilated resblock conv
        (32, 32, 3, 1, 1, 1),
        (1, 128, 80, 40, 20, 1),  # an NSF noise conv
        (192, 512, 7, 1, 3, 1),  # conv_pre
        (32, 1, 7, 1, 3, 1),  # conv_post
    ],
)
def test_conv_and_post_ops_match_mlx(cin: int, cout: int, k: int, stride: int, pad: int, dil: int) -> None:
    layer = _layer(Conv1d(cin, cout, k, stride=stride, padding=pad, dilation=dil), cout, k, cin)
    x = rng.standard_normal((1, 1000, cin)).astype(np.float32)
    ref = np.array(layer(mx.array(x)))
    conv = _dnnl.Conv(np.array(layer.weight), np.array(layer.bias), stride=stride, padding=pad, dilation=dil)
    np.testing.assert_allclose(conv(x), ref, atol=2e-5)
    np.testing.assert_allclose(conv(x, post_ops=(("relu", 0.1),)), np.where(ref > 0, ref, 0.1 * ref), atol=2e-5)
    np.testing.assert_allclose(conv(x, post_ops=(("tanh",),)), np.tanh(ref), atol=2e-5)
    if cin == cout and stride == 1:
        acc = x.copy()
        conv(x, post_ops=(("sum",),), out=acc)
        np.testing.assert_allclose(acc, ref + x, atol=2e-5)
        a, acc = rng.standard_normal(ref.shape).astype(np.float32), x.copy()
        conv(x, post_ops=(("add",), ("sum",), ("linear", 1 / 3, 0.0)), out=acc, add=(a,))
        np.testing.assert_allclose(acc, (ref + a + x) / 3, atol=2e-5)


@pytest.mark.parametrize("cin, cout, k, pad", [(16, 16, 3, 1), (32, 16, 3, 1), (32, 16, 1, 0), (16, 3, 3, 1)])
def test_conv2d_and_post_ops_match_mlx(cin: int, cout: int, k: int, pad: int) -> None:
    """2-D (RMVPE's U-Net, lent to rvc-f0 by rvc-convert): relu(conv(x) + b) + add."""
    w = (rng.standard_normal((cout, k, k, cin)) / np.sqrt(k * k * cin)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    x = rng.standard_normal((1, 37, 20, cin)).astype(np.float32)
    ref = np.array(mx.conv2d(mx.array(x), mx.array(w), padding=pad)) + b
    conv = _dnnl.Conv(w, b, padding=pad)
    np.testing.assert_allclose(conv(x), ref, atol=2e-5)
    a = rng.standard_normal(ref.shape).astype(np.float32)
    np.testing.assert_allclose(conv(x, post_ops=(("relu", 0.0), ("add",)), add=(a,)), np.maximum(ref, 0) + a, atol=2e-5)
    with pytest.raises(ValueError, match="input of shape"):
        conv(x[0])


def test_set_weights_keeps_primitives_and_drops_the_numpy_copy() -> None:
    w1, w2 = (rng.standard_normal((2, 48, 3, 32)) / 10).astype(np.float32)
    b = rng.standard_normal(48).astype(np.float32)
    x = rng.standard_normal((1, 300, 32)).astype(np.float32)
    conv = _dnnl.Conv(w1, b, stride=2)
    np.testing.assert_array_equal(conv(x), _dnnl.Conv(w1, b, stride=2)(x))
    assert conv.weight is None  # held once, in oneDNN's layout
    prims = dict(conv._prims)
    conv.set_weights(w2, -b)
    np.testing.assert_array_equal(conv(x), _dnnl.Conv(w2, -b, stride=2)(x))
    assert conv._prims == prims
    np.testing.assert_array_equal(conv(x[:, :200]), _dnnl.Conv(w2, -b, stride=2)(x[:, :200]))  # a new shape
    with pytest.raises(ValueError, match="this convolution has"):
        conv.set_weights(w2[:, :2])


def test_tiles_equal_one_call() -> None:
    layer = _layer(Conv1d(64, 64, 7, dilation=3), 64, 7, 64)
    conv = _dnnl.Conv(np.array(layer.weight), np.array(layer.bias), dilation=3)
    x = rng.standard_normal((1, 3 * 512 + 18, 64)).astype(np.float32)
    np.testing.assert_array_equal(conv(x, tile=512), conv(x))
    with pytest.raises(ValueError, match="whole number of tiles"):
        conv(x[:, :-1], tile=512)


@pytest.mark.parametrize("k, u", [(16, 10), (4, 2), (24, 12), (20, 10), (16, 8)])
def test_polyphase_upsampler_matches_transposed_conv(k: int, u: int) -> None:
    from rvc_synth._cpu_decoder import _polyphase

    layer = _layer(ConvTranspose1d(48, 24, k, stride=u, padding=(k - u) // 2), 24, k, 48)
    x = rng.standard_normal((1, 50, 48)).astype(np.float32)
    ref = np.array(layer(mx.array(x)))[0]
    conv = _polyphase(layer)
    m = conv.m
    xp = np.concatenate([np.zeros((1, m - 1, 48), np.float32), x, np.zeros((1, m - 1, 48), np.float32)], axis=1)
    full = conv(xp).reshape(-1, 24)  # (frames * u, out): the uncropped transposed conv
    np.testing.assert_allclose(full[conv.crop : conv.crop + ref.shape[0]], ref, atol=2e-5)


@pytest.mark.parametrize("variant", ["v2_f0_40k", "v1_f0_48k", "v2_nof0_32k", "v1_nof0_40k"])
def test_decoder_matches_gemm_path(ref_dir: Path, variant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any length (several tiles, partial tiles, several stretches) and speaker conditioning."""
    m = rvc_synth.load(ref_dir / "checkpoints" / f"{variant}.pth", backend="onednn")
    emb = m.emb_g(mx.array([1]))[:, None]
    for t, chunk in ((5, None), (37, None), (230, 64)):
        z = mx.array(rng.normal(size=(1, t, m.config.inter_channels)).astype(np.float32))
        f0 = mx.array(rng.uniform(80, 400, size=(1, t)).astype(np.float32)) if m.info.has_f0 else None
        fast = np.array(m.dec(z, f0, emb, chunk_frames=chunk))
        m.set_backend("numpy")
        ref = np.array(m.dec(z, f0, emb, chunk_frames=chunk))
        m.set_backend("onednn")
        assert fast.shape == ref.shape == (1, t * m.info.hop)
        np.testing.assert_allclose(fast, ref, atol=2e-5)


def test_full_size_golden_on_both_paths(ref_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback (GEMM) path keeps the golden too, now that oneDNN is the default on CPU."""
    m = rvc_synth.load(ref_dir / "checkpoints" / "v2_f0_40k_fullsize.pth", backend="onednn")
    g = np.load(ref_dir / "synth" / "v2_f0_40k_fullsize_T37.npz")
    for conv in ("onednn", "numpy"):
        m.set_backend(conv)
        out = np.array(m(g["phone"], g["pitch"], g["pitchf"], noise_scale=0)[0])
        ref = g["audio"][0, 0]
        assert np.abs(out - ref).max() <= 1e-3, conv
        snr = 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((out - ref) ** 2.0))
        assert snr >= 50.0, conv


def test_primitives_are_shared_across_lengths(ref_dir: Path) -> None:
    """Resblock convolutions run in fixed tiles: a new input length creates no new ones."""
    m = rvc_synth.load(ref_dir / "checkpoints" / "v2_f0_40k.pth", backend="onednn")
    emb = m.emb_g(mx.array([0]))[:, None]

    def run(t: int) -> int:
        z = mx.zeros((1, t, m.config.inter_channels))
        mx.eval(m.dec(z, mx.full((1, t), 150.0), emb))
        dec = m.dec._dnnl()
        return sum(len(c._prims) for pairs in dec.blocks for pair in pairs for c in pair if c is not None)

    first = run(40)
    assert first > 0 and run(41) == first and run(57) == first


def test_batch_and_fallback(ref_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches decode item by item; a oneDNN failure falls back to MLX with the same result."""
    m = rvc_synth.load(ref_dir / "checkpoints" / "v2_f0_40k.pth", backend="onednn")
    emb = m.emb_g(mx.array([0, 1]))[:, None]
    z = mx.array(rng.normal(size=(2, 21, m.config.inter_channels)).astype(np.float32))
    f0 = mx.array(rng.uniform(80, 400, size=(2, 21)).astype(np.float32))
    fast = np.array(m.dec(z, f0, emb))
    m.set_backend("numpy")
    ref = np.array(m.dec(z, f0, emb))
    m.set_backend("onednn")
    np.testing.assert_allclose(fast, ref, atol=2e-5)

    def broken(*args, **kwargs):
        raise _dnnl.DnnlError("oneDNN convolution desc failed (status 3)")

    monkeypatch.setattr(m.dec, "_decode_dnnl", broken)
    np.testing.assert_allclose(np.array(m.dec(z, f0, emb)), ref, atol=2e-5)
    assert m.dec._dnnl() is None  # and it stays off
    object.__delattr__(m.dec, "_dnnl_failed")
