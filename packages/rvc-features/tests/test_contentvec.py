"""ContentVec through mlx-contentvec against the PyTorch reference goldens (extractors/), the
fast CPU forward against mlx-contentvec's own, strict loading, v1 final_proj handling."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rvc_features import ContentVec, load_contentvec
from rvc_features._contentvec import parse_conv_layers
from rvc_features.errors import WeightsFormatError, WeightsNotFoundError

INPUTS = ("synth_1s", "arctic_3s")


@pytest.fixture(scope="module")
def golden(extractors_dir):
    g = np.load(extractors_dir / "contentvec_golden.npz")
    return {k: g[k] for k in g.files}


@pytest.mark.parametrize("name", INPUTS)
def test_goldens_last_layer9_final_proj(tiny_contentvec_v1, golden, name):
    cv = load_contentvec(tiny_contentvec_v1)
    assert cv.has_final_proj and cv.n_layers == 10 and cv.dim == 64
    audio = golden[f"{name}/audio"]
    n = (len(audio) - 400) // 320 + 1
    last = cv(audio, version="v2")  # v2: the last layer
    layer9 = cv.hidden(audio, output_layer=9)
    v1 = cv(audio, version="v1")  # v1: final_proj(layer 9)
    assert last.shape == (n, 64) and layer9.shape == (n, 64) and v1.shape == (n, 256)
    for got, key in ((last, "last"), (layer9, "layer9"), (v1, "final_proj")):
        err = np.abs(got - golden[f"{name}/{key}"]).max()
        assert err <= 1e-4, (key, err)
    # the off-by-one trap: layer 9 is not the first 256 dims nor layer 8
    assert np.abs(cv.hidden(audio, output_layer=8) - golden[f"{name}/layer9"]).max() > 0.1


def test_fast_forward_equals_mlx_contentvec(tiny_contentvec_v1, golden):
    import mlx.core as mx

    cv = load_contentvec(tiny_contentvec_v1)
    audio = golden["arctic_3s/audio"]
    for layer in (None, 9, 1):
        fast, ref = cv.hidden(audio, output_layer=layer), cv.hidden(audio, output_layer=layer, fast=False)
        assert np.abs(fast - ref).max() <= 2e-5
    # the conv stack streams over blocks of frames: any block size gives the whole-input frames
    whole = np.array(cv._fast.features(audio, block=10**6))
    ref = np.array(cv.model.forward_features(mx.array(audio)[None])[0].T)
    # (float64 group-norm statistics here, float32 there: ~3e-6 relative)
    assert whole.shape == ref.shape == (149, 32) and np.abs(whole - ref).max() <= 1e-5 * np.abs(ref).max()
    for block in (1, 16, 100):
        np.testing.assert_allclose(np.array(cv._fast.features(audio, block=block)), whole, rtol=0, atol=1e-5)


def test_base_size_fast_forward_matches_upstream():
    """At the real width (768, 12 heads, 512-channel convs, k=128/16-group positional conv) the
    fast path (GEMM convs, rational-erf GELU, NumPy attention) equals mlx-contentvec's forward."""
    import mlx.core as mx
    from mlx_contentvec import ContentvecModel

    from rvc_features._contentvec import _kwargs

    kw = _kwargs(None, {"contentvec_kwargs": json.dumps({"encoder_layers": 2})}, None)
    mx.random.seed(3)
    m = ContentvecModel(**kw)
    m.eval()
    cv = ContentVec(m, kw, None)
    audio = (np.random.default_rng(0).standard_normal(16000) * 0.3).astype(np.float32)
    fast, ref = cv.hidden(audio), cv.hidden(audio, fast=False)
    assert fast.shape == (49, 768)
    assert np.abs(fast - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
    # on the CPU with oneDNN installed the conv stack runs there (GELU fused); else on MLX GEMMs
    from rvc_runtime import onednn as _dnnl

    on_dnnl = cv._fast._dnnl_convs()
    assert bool(on_dnnl) == (_dnnl.available() and mx.default_device() == mx.cpu)
    feats = np.array(cv._fast.features(audio))
    cv._fast._dnnl = []
    gemm = np.array(cv._fast.features(audio))
    cv._fast._dnnl = on_dnnl
    assert np.abs(feats - gemm).max() <= 1e-5 * np.abs(gemm).max()


def test_v1_needs_final_proj(extractors_dir):
    cv = load_contentvec(
        extractors_dir / "contentvec_tiny.safetensors",
        kwargs=json.loads((extractors_dir / "contentvec_tiny.json").read_text()),
    )
    assert not cv.has_final_proj
    with pytest.raises(WeightsFormatError, match="import-hubert"):
        cv.embedder("v1")
    with pytest.raises(WeightsFormatError, match="final_proj"):
        cv(np.zeros(16000, np.float32), version="v1")
    assert cv.hidden(np.zeros(399, np.float32)).shape == (0, 64)


def test_strict_loading(tiny_contentvec_v1, tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(tiny_contentvec_v1))
    meta = safe_open(str(tiny_contentvec_v1), "numpy").metadata()
    missing = dict(tensors)
    del missing["encoder.layers.3.fc1.weight"]
    save_file(missing, str(tmp_path / "missing.safetensors"), metadata=meta)
    with pytest.raises(WeightsFormatError, match=r"missing: encoder\.layers\.3\.fc1\.weight"):
        load_contentvec(tmp_path / "missing.safetensors")
    bad = dict(tensors, **{"layer_norm.weight": np.ones(7, np.float32)})
    save_file(bad, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(WeightsFormatError, match="wrong shape: layer_norm.weight"):
        load_contentvec(tmp_path / "bad.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsFormatError, match="not a readable safetensors"):
        load_contentvec(tmp_path / "junk.safetensors")
    with pytest.raises(WeightsNotFoundError):
        load_contentvec(tmp_path / "nope.safetensors")
    # float16 files are upcast
    half = {k: v.astype(np.float16) for k, v in tensors.items()}
    save_file(half, str(tmp_path / "half.safetensors"), metadata=meta)
    cv = load_contentvec(tmp_path / "half.safetensors")
    assert cv(np.zeros(4000, np.float32)).dtype == np.float32


def test_conv_layer_spec_is_parsed_not_evaluated():
    assert parse_conv_layers("[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2")[-1] == (512, 2, 2)
    assert len(parse_conv_layers("[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2")) == 7
    for evil in ("__import__('os').system('echo pwned')", "[(1,2,3)] * 10**9", "[(1, 2)]", "[]"):
        with pytest.raises(WeightsFormatError):
            parse_conv_layers(evil)


@pytest.mark.parametrize("static_shape", [False, True])
def test_gpu_graph_equals_cpu_forward(tiny_contentvec_v1, golden, static_shape, monkeypatch):
    """The GPU forward (one lazy graph, compiled for repeated lengths; MLX's erf in GELU), run
    here on MLX's CPU, equals the CPU forward: last layer, layer 9 and v1's final_proj, through
    the embedder; the positional conv in one matmul (short inputs) or in blocks of taps alike;
    attention as MLX's fused kernel (Metal) or as matmul, softmax, matmul (CUDA) alike."""
    from rvc_features import _cv_fast

    cv = load_contentvec(tiny_contentvec_v1)
    audio = golden["arctic_3s/audio"]
    want = {v: cv(audio, version=v) for v in ("v1", "v2")}
    emb = cv.embedder("v1")
    fast = cv._fast
    was = fast.cpu, fast.gelu
    fast.cpu, fast._dnnl, fast.gelu = False, [], _cv_fast.gelu_erf  # the GPU path, on MLX's CPU device
    try:
        for v in ("v1", "v2"):
            for _ in range(2):  # a compiled graph's second call too
                got = np.array(cv.lazy(audio, version=v, static_shape=static_shape))
                assert got.shape == want[v].shape
                assert np.abs(got - want[v]).max() <= 1e-5 * max(1.0, np.abs(want[v]).max()), v
        np.testing.assert_array_equal(
            np.array(emb.lazy(audio, static_shape=static_shape)),
            np.array(cv.lazy(audio, version="v1", static_shape=static_shape)),
        )
        np.testing.assert_allclose(cv(audio, version="v2"), want["v2"], rtol=0, atol=1e-5 * np.abs(want["v2"]).max())
        if not static_shape:  # the feature extractor in several blocks (long chunks) gives the same
            graph = type(fast)._features_graph
            type(fast)._features_graph = lambda self, x, w0, b0, n, block=0, **kw: graph(self, x, w0, b0, n, 37, **kw)
            try:
                got = np.array(cv.lazy(audio, version="v2"))
            finally:
                type(fast)._features_graph = graph
            assert np.abs(got - want["v2"]).max() <= 1e-5 * max(1.0, np.abs(want["v2"]).max())
            monkeypatch.setattr(_cv_fast, "POS_ONE_PASS_BYTES", 0)  # the taps in blocks of 8 (long inputs)
            got = np.array(cv.lazy(audio, version="v2"))
            assert np.abs(got - want["v2"]).max() <= 1e-5 * max(1.0, np.abs(want["v2"]).max())
        fast.fused_attention = True  # Metal's fused attention kernel (CUDA: matmul, softmax, matmul)
        got = np.array(cv.lazy(audio, version="v2", static_shape=static_shape))
        assert np.abs(got - want["v2"]).max() <= 1e-5 * max(1.0, np.abs(want["v2"]).max())
    finally:
        fast.cpu, fast.gelu = was
        fast.fused_attention = False
        del fast._dnnl
    assert np.abs(emb(audio) - want["v1"]).max() == 0


def test_compiled_graphs_one_per_length_and_bounded(tiny_contentvec_v1, golden, monkeypatch):
    """``static_shape`` keeps one compiled forward per input length (each traced once, so no
    MLX trace cache grows per length), the least recently used dropped beyond ``MAX_GRAPHS``."""
    import mlx.core as mx

    from rvc_features import _cv_fast

    cv = load_contentvec(tiny_contentvec_v1)
    fast = cv._fast
    monkeypatch.setattr(_cv_fast, "MAX_GRAPHS", 3)
    monkeypatch.setattr(fast, "cpu", False)
    monkeypatch.setattr(fast, "_dnnl", [], raising=False)
    audio = golden["arctic_3s/audio"]
    lengths = (16000, 17600, 19200, 16000, 20800)
    for n in lengths:
        got = np.array(fast.lazy(audio[:n], static_shape=True))
        want = np.array(fast.lazy(audio[:n]))  # the graph uncompiled
        assert np.abs(got - want).max() <= 1e-5 * max(1.0, np.abs(want).max())
    assert [k[2] for k in fast._graphs] == [19200, 16000, 20800]  # 17600 dropped, 16000 used again
    key = (len(fast.layers), fast.layer_norm_first, 16000, mx.float32)  # (layers, final, length, dtype)
    first = fast._graphs[key]
    fast.lazy(audio[:16000], static_shape=True)
    assert fast._graphs[key] is first


@pytest.mark.parametrize("layer_norm_first", [False, True])
def test_cpu_encoder_matches_upstream(layer_norm_first, monkeypatch):
    """On the CPU with oneDNN the positional conv and the layers run as oneDNN primitives
    (_cv_cpu); both layer orders, and attention split into groups of heads, equal
    mlx-contentvec's forward."""
    import mlx.core as mx
    from mlx_contentvec import ContentvecModel

    from rvc_features import _cv_cpu
    from rvc_features._contentvec import _kwargs
    from rvc_runtime import onednn as _dnnl

    if not (_dnnl.available() and mx.default_device() == mx.cpu):
        pytest.skip("needs oneDNN and MLX on the CPU")
    kw = _kwargs(None, {"contentvec_kwargs": json.dumps({"encoder_layers": 2})}, None)
    kw["layer_norm_first"] = layer_norm_first
    mx.random.seed(4)
    m = ContentvecModel(**kw)
    m.eval()
    cv = ContentVec(m, kw, None)
    audio = (np.random.default_rng(1).standard_normal(24000) * 0.3).astype(np.float32)
    ref = cv.hidden(audio, fast=False)
    for scores in (_cv_cpu.SCORES, 4 * 74 * 74):  # all 12 heads at once; 4 at a time
        monkeypatch.setattr(_cv_cpu, "SCORES", scores)
        fast = cv.hidden(audio)
        assert cv._fast._cpu_encoder() is not None and fast.shape == ref.shape == (74, 768)
        assert np.abs(fast - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
    assert np.abs(cv.hidden(audio, output_layer=1) - cv.hidden(audio, output_layer=1, fast=False)).max() <= 1e-4 * max(
        1.0, np.abs(ref).max()
    )


def test_gpu_graph_in_half_precision(tiny_contentvec_v1, golden, monkeypatch):
    """``dtype=``: the GPU forward (run here on MLX's CPU) in float16 / bfloat16, as the
    reference's half mode runs HuBERT, keeps the goldens within the half-precision bounds
    measured on this fixture (float16 53-54 dB SNR, bfloat16 36-38 dB), returns float32, keeps
    the first layer in float32; an embedder carries its dtype; float32 stays the float32 graph;
    the CPU forward ignores it."""
    import mlx.core as mx

    from rvc_features import _cv_fast

    cv = load_contentvec(tiny_contentvec_v1)
    audio = golden["arctic_3s/audio"]
    fast = cv._fast
    monkeypatch.setattr(fast, "_dnnl", [], raising=False)
    cpu = cv(audio, version="v2")
    assert np.array_equal(cv(audio, version="v2", dtype="float16"), cpu)  # the CPU forward: float32
    monkeypatch.setattr(fast, "cpu", False)
    monkeypatch.setattr(fast, "gelu", _cv_fast.gelu_erf)
    full = np.array(cv.lazy(audio, version="v2"))
    for dtype, bound_db in (("float16", 50.0), ("bfloat16", 33.0)):
        for static_shape in (False, True):
            for version, key in (("v2", "last"), ("v1", "final_proj")):
                got = np.array(cv.lazy(audio, version=version, static_shape=static_shape, dtype=dtype))
                want = golden[f"arctic_3s/{key}"].astype(np.float64)
                snr = 10 * np.log10((want**2).sum() / ((got - want) ** 2).sum())
                assert got.dtype == np.float32 and snr >= bound_db, (dtype, version, static_shape, snr)
        w = fast.weights(getattr(mx, dtype))
        assert w.layers[0][0].dtype == getattr(mx, dtype) and w.convs[0][2].dtype == mx.float32
        assert fast.weights(getattr(mx, dtype)) is w  # cast once
        emb = cv.embedder("v1", dtype=dtype)
        np.testing.assert_array_equal(np.array(emb.lazy(audio)), np.array(cv.lazy(audio, version="v1", dtype=dtype)))
        np.testing.assert_array_equal(emb(audio), cv(audio, version="v1", dtype=dtype))
    np.testing.assert_array_equal(np.array(cv.lazy(audio, version="v2", dtype="float32")), full)
    with pytest.raises(ValueError, match="float8"):
        cv.lazy(audio, dtype="float8")
    with pytest.raises(ValueError, match="float8"):
        cv.embedder("v2", dtype="float8")
