"""Backend selection: chosen once at load (name, ``$RVC_BACKEND``, dtype, tf32), reported in ``info``."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_map

import rvc_synth
from rvc_runtime import onednn as _dnnl
from rvc_synth import backends
from rvc_synth.backends import BACKENDS, Backend, BackendError

TINY = {"max": 1e-4, "snr": 60.0}  # test_parity's tolerance for the tiny variants


def _golden_error(m: rvc_synth.Synthesizer, ref_dir: Path, variant: str) -> tuple[float, float]:
    g = np.load(ref_dir / "synth" / f"{variant}_T64.npz")
    args = (g["phone"], g["pitch"], g["pitchf"]) if "pitch" in g else (g["phone"],)
    out = np.array(m(*args, noise_scale=0)[0], dtype=np.float64)
    ref = g["audio"][0, 0].astype(np.float64)
    return float(np.abs(out - ref).max()), float(10 * np.log10(np.sum(ref**2) / np.sum((out - ref) ** 2)))


def test_auto_picks_the_same_kernels_as_before(ref_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CPU: oneDNN decoder when installed (else the MLX one), GEMM convolutions, NumPy
    transcendentals and attention, two streams, nothing compiled. GPUs: MLX's own kernels."""
    monkeypatch.delenv(backends.ENV_BACKEND, raising=False)
    m = rvc_synth.load(ref_dir / "checkpoints" / "v2_f0_40k.pth")
    b = m.backend
    if mx.default_device() == mx.cpu:
        name = "onednn" if _dnnl.available() else "numpy"
        assert b == Backend(
            name=name,
            device="cpu",
            conv="gemm",
            math="numpy",
            decoder="onednn" if name == "onednn" else "mlx",
            compile="off",
            streams=2,
        )
        assert (m.dec._dnnl() is not None) == _dnnl.available()
    else:
        assert (b.name, b.device, b.conv, b.math, b.decoder, b.compile, b.streams) == (
            "mlx",
            "gpu",
            "native",
            "mlx",
            "mlx",
            "decoder",
            0,
        )
    assert (m.info.backend, m.info.precision) == (b.name, b.precision) and b.precision in ("float32", "tf32")
    # every layer got the model's kernels
    assert m.dec.conv_pre.kernels.conv == m.enc_p.encoder.attn_layers[0].kernels.conv == b.conv
    assert m.flow.flows[0].enc.kernels.math == m.dec.m_source.kernels.math == b.math


@pytest.mark.parametrize("variant", ["v2_f0_40k", "v1_nof0_32k"])
def test_explicit_mlx_backend_meets_the_goldens(ref_dir: Path, variant: str) -> None:
    m = rvc_synth.load(ref_dir / "checkpoints" / f"{variant}.pth", backend="mlx")
    assert m.backend.name == m.info.backend == "mlx" and m.backend.math == "mlx" and m.backend.decoder == "mlx"
    err, snr = _golden_error(m, ref_dir, variant)
    assert err <= TINY["max"] and snr >= TINY["snr"], (err, snr)
    auto = rvc_synth.load(ref_dir / "checkpoints" / f"{variant}.pth")
    err_auto, snr_auto = _golden_error(auto, ref_dir, variant)
    assert err_auto <= TINY["max"] and snr_auto >= TINY["snr"], (err_auto, snr_auto)


def test_mlx_attention_projects_qkv_in_one_gemm(ref_dir: Path) -> None:
    """Where MLX runs the attention (GPUs), q/k/v come from one joined GEMM (made when weights
    are loaded or cast): the same heads as three projections (float32 GEMM rounding), and
    weights replaced by hand are noticed (the separate projections run)."""
    m = rvc_synth.load(ref_dir / "checkpoints" / "v2_f0_40k.pth", backend="mlx")
    attn = m.enc_p.encoder.attn_layers[0]
    x = mx.random.normal((1, 37, attn.conv_q.weight.shape[0]), key=mx.random.key(0))
    joined = attn._heads_qkv(x)
    fused = attn.__dict__.pop("_qkv")
    apart = attn._heads_qkv(x)
    for a, b in zip(joined, apart):
        assert a.shape == b.shape == (1, attn.n_heads, 37, x.shape[-1] // attn.n_heads)
        assert np.abs(np.array(a) - np.array(b)).max() <= 1e-6 * np.abs(np.array(b)).max()
    object.__setattr__(attn, "_qkv", fused)
    attn.conv_k.weight = attn.conv_k.weight * 2  # replaced by hand: the joined weights are stale
    stale = np.array(attn._heads_qkv(x)[1])
    attn.__dict__.pop("_qkv")
    np.testing.assert_array_equal(stale, np.array(attn._heads_qkv(x)[1]))
    assert np.abs(stale - np.array(apart[1])).max() > 0.1
    m.set_dtype("float16")  # cast: joined again, in float16
    assert attn.__dict__["_qkv"][1].dtype == mx.float16


def test_numpy_backend_and_switching_back(ref_dir: Path) -> None:
    m = rvc_synth.load(ref_dir / "checkpoints" / "v1_f0_48k.pth", backend="numpy")
    assert (m.backend.name, m.backend.decoder, m.backend.math) == ("numpy", "mlx", "numpy")
    assert m.dec._dnnl() is None
    err, snr = _golden_error(m, ref_dir, "v1_f0_48k")
    assert err <= TINY["max"] and snr >= TINY["snr"]
    m.set_backend("mlx")
    assert m.info.backend == "mlx" and m.dec.ups[0].kernels.math == "mlx"
    err2, snr2 = _golden_error(m, ref_dir, "v1_f0_48k")
    assert err2 <= TINY["max"] and snr2 >= TINY["snr"]


def test_invalid_backend_names_the_valid_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(backends.ENV_BACKEND, raising=False)
    with pytest.raises(BackendError, match="backend='cuda' .*expected one of auto, mlx, numpy, onednn"):
        rvc_synth.load(tmp_path / "missing.pth", backend="cuda")  # before the file is looked at
    with pytest.raises(rvc_synth.RVCSynthError):
        backends.choose("fast")
    with pytest.raises(BackendError, match="dtype='float64'"):
        backends.choose("mlx", dtype="float64")
    assert BACKENDS == ("auto", "mlx", "numpy", "onednn")


def test_onednn_without_the_library_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "_onednn_available", lambda: False)
    with pytest.raises(BackendError, match="pip install onednn-cpu-gomp"):
        backends.choose("onednn")
    if mx.default_device() == mx.cpu:
        assert backends.choose("auto").name == "numpy"


def test_environment_override_is_read_at_load_only(ref_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = ref_dir / "checkpoints" / "v2_nof0_32k.pth"
    monkeypatch.setenv(backends.ENV_BACKEND, "mlx")
    m = rvc_synth.load(path)
    assert m.info.backend == "mlx"
    assert rvc_synth.load(path, backend="numpy").info.backend == "numpy"  # an explicit name wins
    monkeypatch.setenv(backends.ENV_BACKEND, "numpy")  # too late for m: nothing reads it in a forward pass
    g = np.load(ref_dir / "synth" / "v2_nof0_32k_T37.npz")
    mx.eval(m(g["phone"], noise_scale=0))
    assert m.info.backend == "mlx" and m.dec.conv_pre.kernels.math == "mlx"
    monkeypatch.setenv(backends.ENV_BACKEND, "turbo")
    with pytest.raises(BackendError, match=r"\$RVC_BACKEND='turbo'.*expected one of auto, mlx, numpy, onednn"):
        rvc_synth.load(path)


def test_precision_is_reported_and_loading_writes_no_environment_on_cpu(ref_dir: Path) -> None:
    before = dict(os.environ)
    m = rvc_synth.load(ref_dir / "checkpoints" / "v2_f0_40k.pth", dtype="float16")
    assert m.info.precision == m.backend.dtype == "float16"
    assert m.backend.chunk_frames == (500 if m.backend.device == "cpu" else 1500)
    m.set_dtype("float32")
    assert m.info.precision in ("float32", "tf32")
    if mx.default_device() == mx.cpu:
        assert dict(os.environ) == before and m.backend.tf32 is False


def test_tf32_setting(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """What ``choose`` does with ``MLX_ENABLE_TF32`` on CUDA (MLX reads it once per process)."""
    env = backends.ENV_TF32
    monkeypatch.delenv(env, raising=False)
    assert backends._tf32(None) is False and os.environ[env] == "0"  # exact by default
    monkeypatch.delenv(env)
    assert backends._tf32(None, half=True) is True and os.environ[env] == "1"  # half: TF32 float32 stages
    assert backends._tf32(None, half=True) is True  # (then kept)
    monkeypatch.setenv(env, "0")
    assert backends._tf32(None, half=True) is False  # the caller's exact float32 is kept
    monkeypatch.delenv(env)
    assert backends._tf32(True) is True and os.environ[env] == "1"
    assert backends._tf32(None) is True  # the caller's value is kept
    with caplog.at_level(logging.WARNING, logger="rvc_synth.backends"):
        assert backends._tf32(False) is True  # too late: reported as it is
    assert "already set" in caplog.text and os.environ[env] == "1"
    b = Backend(
        name="mlx", device="gpu", conv="native", math="mlx", decoder="mlx", compile="decoder", streams=0, tf32=True
    )
    assert (b.precision, b.chunk_frames) == ("tf32", 1500)
    assert b.__class__(**{**b.__dict__, "tf32": False}).chunk_frames == 1200


def test_info_counts_the_parameters_once(ref_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``info.n_params`` is the network's parameter count, counted at the first access only (a
    live stream reads ``info`` every block; the walk took ~3 ms), and a dtype change keeps it."""
    from mlx.utils import tree_flatten

    m = rvc_synth.load(ref_dir / "checkpoints" / "v2_f0_40k.pth")
    want = sum(v.size for _, v in tree_flatten(m.parameters()))
    assert m.info.n_params == want > 0
    monkeypatch.setattr(m, "parameters", lambda: pytest.fail("info walked the parameters again"))
    assert m.info.n_params == want
    monkeypatch.undo()
    m.set_dtype("float16")
    assert m.info.n_params == want and m.info.precision == "float16"


def test_set_dtype_casts_now(ref_dir: Path) -> None:
    """``set_dtype`` evaluates the cast weights: compiled graphs (the decoder's stretches, live
    blocks) capture the weights as they are, and a lazy cast would be repeated at every call."""
    import io

    from mlx.utils import tree_flatten

    m = rvc_synth.load(ref_dir / "checkpoints" / "v2_f0_40k.pth")
    m.set_dtype("float16")
    for name, w in tree_flatten(m.parameters()):
        dot = io.StringIO()
        mx.export_to_dot(dot, w)
        assert w.dtype == mx.float16 and "AsType" not in dot.getvalue(), name


@pytest.mark.parametrize("block", ["1", "2"])
def test_compiled_resblocks_rebuild_residual_sums_same_bits(block: str) -> None:
    """Where the decoder compiles (GPUs), a ResBlock rebuilds its residual sums per use, so each
    use fuses into its consumer's kernel: the result equals the plain running sum to the last bit
    (float32) and the compiled graph has fewer kernels."""
    import io
    import re
    from dataclasses import replace

    from rvc_synth.generator import ResBlock1, ResBlock2
    from rvc_synth.layers import Kernels

    mx.random.seed(0)
    rb = ResBlock1(16, 3, (1, 3, 5)) if block == "1" else ResBlock2(16, 3, (1, 3))
    rb.update(tree_map(lambda a: mx.random.normal(a.shape) * 0.3, rb.parameters()))
    native = Kernels("native", "mlx")  # as on GPUs: the bias is added after the convolution either way
    for _, m in rb.named_modules():
        if "kernels" in dir(type(m)):
            object.__setattr__(m, "kernels", native)
    x = mx.random.normal((1, 40, 16))
    mx.eval(rb.parameters(), x)
    plain = backends.DEFAULT_BACKEND
    compiled = replace(plain, compile="decoder")

    def kernels(out: mx.array) -> int:
        dot = io.StringIO()
        mx.export_to_dot(dot, out)
        views = ("Reshape", "Broadcast", "Slice", "Transpose", "ExpandDims", "Squeeze")
        return sum(1 for op in re.findall(r'label ="?([A-Za-z]+)', dot.getvalue()) if op not in views)

    got, n = {}, {}
    for backend in (plain, compiled):
        object.__setattr__(rb, "backend", backend)
        got[backend.compile] = out = mx.compile(rb)(x)
        n[backend.compile] = kernels(out)  # before evaluation detaches the graph
    np.testing.assert_array_equal(np.array(got["decoder"]), np.array(got["off"]))
    # alone, a step after the first saves its stored sum (in the decoder the last sum also fuses
    # into the average of the ResBlocks: one more)
    assert n["off"] - n["decoder"] == (3 if block == "1" else 2) - 1, n


def test_wn_gate_sliced_before_the_sums_same_bits() -> None:
    """Where MLX runs the WN gate, its halves are sliced before the bias and conditioning are
    added (one fused kernel under compile): the same bits as gating the stored sum."""
    from rvc_synth.flow import WN
    from rvc_synth.layers import Kernels

    mx.random.seed(1)
    wn = WN(16, 5, 3, 8)
    wn.update(tree_map(lambda a: mx.random.normal(a.shape) * 0.3, wn.parameters()))
    x, g = mx.random.normal((1, 30, 16)), mx.random.normal((1, 1, 8))
    mx.eval(wn.parameters(), x, g)
    sliced, stored = Kernels("native", "mlx"), Kernels("native", "mlx")
    stored.math = "stored sum"  # the other branch, with the same MLX gate (gated_mlx)
    out = {}
    for name, kernels in (("sliced", sliced), ("stored", stored)):
        for _, m in wn.named_modules():
            if "kernels" in dir(type(m)):
                object.__setattr__(m, "kernels", kernels)
        out[name] = np.array(mx.compile(wn)(x, g))
    np.testing.assert_array_equal(out["sliced"], out["stored"])


@pytest.mark.parametrize(
    "t, tf32, want",
    [
        (1024, False, 1200),  # one stretch (fits with its halos): unchanged
        (3496, False, 1200),  # 3 x 1200 covers it; 3 x 1166 rounded up to 50 is 1200
        (2557, False, 900),  # 3 stretches of 853 -> 900, not 3 of 1200 (the last pulled inside)
        (2557, True, 1300),  # TF32 (half alike, 1500 frames at most): 2 of 1279 -> 1300
        (6001, True, 1250),  # 5 of 1201 -> 1250
    ],
)
def test_gpu_decoder_stretches_are_equal_and_rounded(t: int, tf32: bool, want: int) -> None:
    """GPUs: a decode that needs several stretches gets equal ones, a multiple of STRETCH_STEP
    frames, no more of them than full-length stretches would take; CPUs keep theirs."""
    from rvc_synth import generator

    halo = 14
    gpu = Backend(
        name="mlx", device="gpu", conv="native", math="mlx", decoder="mlx", compile="decoder", streams=0, tf32=tf32
    )
    cpu = Backend(name="mlx", device="cpu", conv="gemm", math="mlx", decoder="mlx", compile="off", streams=2)
    default = gpu.chunk_frames
    size = generator._chunking(t, None, gpu, halo)
    assert size == want
    assert size + 2 * halo >= t or (size % generator.STRETCH_STEP == 0 and size <= default)
    assert len(generator._stretches(t, size, halo)) == len(generator._stretches(t, default, halo))
    assert generator._chunking(t, 64, gpu, halo) == 64  # an explicit stretch is kept
    assert generator._chunking(t, None, cpu, halo) == min(backends.CPU_CHUNK_FRAMES, -(-t // 2))
