"""Parity with the PyTorch reference goldens: every tiny variant, per stage, plus the full-size model."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

import rvc_synth
from conftest import VARIANTS

TINY = {"max": 1e-4, "snr": 60.0}
FULL = {"max": 1e-3, "snr": 50.0}
_models: dict[str, rvc_synth.Synthesizer] = {}


def model(ref_dir: Path, name: str) -> rvc_synth.Synthesizer:
    if name not in _models:
        _models[name] = rvc_synth.load(ref_dir / "checkpoints" / f"{name}.pth")
    return _models[name]


@contextlib.contextmanager
def conv_path(m: rvc_synth.Synthesizer, conv: str, **fields):
    """Run the (cached) model's decoder on ``"dnnl"`` (oneDNN) or ``"gemm"`` (MLX GEMMs), then
    restore its backend."""
    saved = m.backend
    if conv == "gemm":
        m.set_backend(replace(saved, conv="gemm", decoder="mlx", **fields))
    else:
        m.set_backend(replace(saved, decoder="onednn", **fields))
    try:
        yield m
    finally:
        m.set_backend(saved)


def snr_db(out: np.ndarray, ref: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / max(np.sum((out - ref) ** 2.0), 1e-30)))


def close(out, ref, tol: dict[str, float], what: str) -> None:
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    assert out.shape == ref.shape, what
    err = np.abs(out - ref).max()
    assert err <= tol["max"], f"{what}: max |d| {err:.3g} > {tol['max']}"
    assert snr_db(out, ref) >= tol["snr"], f"{what}: SNR {snr_db(out, ref):.1f} dB"


def inputs(g):
    return (g["phone"], g["pitch"] if "pitch" in g else None, g["pitchf"] if "pitchf" in g else None)


CASES = [(v, t) for v in VARIANTS for t in (37, 64)]


@pytest.mark.parametrize("variant, frames", CASES, ids=[f"{v}_T{t}" for v, t in CASES])
def test_tiny_variant_stages(ref_dir: Path, variant: str, frames: int) -> None:
    m = model(ref_dir, variant)
    g = np.load(ref_dir / "synth" / f"{variant}_T{frames}.npz")
    phone, pitch, f0 = inputs(g)
    emb = m.emb_g(mx.array([int(g["sid"][0])]))
    np.testing.assert_allclose(np.array(emb[0]), g["g"][0, :, 0], atol=1e-6)
    m_p, logs_p = m.enc_p(mx.array(phone), None if pitch is None else mx.array(pitch))
    stage = {"max": 1e-4, "snr": 60.0}
    close(np.array(m_p[0]).T, g["m_p"][0], stage, "m_p")
    close(np.array(logs_p[0]).T, g["logs_p"][0], stage, "logs_p")
    z = m.flow.reverse(m_p, emb[:, None])
    close(np.array(z[0]).T, g["z_flow"][0], stage, "z_flow")
    audio = m(phone, pitch, f0, noise_scale=0)
    close(np.array(audio[0]), g["audio"][0, 0], TINY, "audio")
    if "nsf_excitation" in g:
        har = m.dec.m_source(mx.array(f0), upp=m.info.hop, sr=m.info.sample_rate, key=None)
        close(np.array(har[0, :, 0]), g["nsf_excitation"][0, 0], {"max": 1e-4, "snr": 60}, "nsf_excitation")
    if "audio_sid_alt" in g:
        alt = m(phone, pitch, f0, noise_scale=0, speaker=int(g["sid_alt"][0]))
        close(np.array(alt[0]), g["audio_sid_alt"][0, 0], TINY, "audio, speaker 2")
    if "audio_skip" in g:
        out = m(phone, pitch, f0, noise_scale=0, skip_head=int(g["skip_head"]), return_length=int(g["return_length"]))
        close(np.array(out[0]), g["audio_skip"][0, 0], TINY, "streaming audio")


def test_full_size_model(ref_dir: Path) -> None:
    m = model(ref_dir, "v2_f0_40k_fullsize")
    g = np.load(ref_dir / "synth" / "v2_f0_40k_fullsize_T37.npz")
    phone, pitch, f0 = inputs(g)
    m_p, _ = m.enc_p(mx.array(phone), mx.array(pitch))
    close(np.array(m_p[0]).T, g["m_p"][0], {"max": 1e-4, "snr": 60}, "m_p")
    close(np.array(m(phone, pitch, f0, noise_scale=0)[0]), g["audio"][0, 0], FULL, "audio")
    close(np.array(m(phone, pitch, f0, noise_scale=0, speaker=2)[0]), g["audio_sid_alt"][0, 0], FULL, "speaker 2")
    har = m.dec.m_source(mx.array(f0), upp=400, sr=40000, key=None)
    close(np.array(har[0, :, 0]), g["nsf_excitation"][0, 0], {"max": 1e-4, "snr": 60}, "nsf_excitation")


def test_training_format_checkpoint(ref_dir: Path) -> None:
    """The G checkpoint holds v2_f0_48k's weights before fp16 rounding; config derived from shapes."""
    import json

    from rvc_synth.checkpoint import read_checkpoint

    train = read_checkpoint(ref_dir / "checkpoints" / "train_format_v2_f0_48k_G.pth")
    infer = read_checkpoint(ref_dir / "checkpoints" / "v2_f0_48k.pth")
    manifest = json.loads((ref_dir / "synth_manifest.json").read_text())
    assert train.config.to_list() == manifest["models"]["v2_f0_48k"]["config"]
    assert train.config == infer.config
    assert train.metadata["iteration"] == 2333 and train.metadata["format"] == "training"
    assert set(train.weights) == set(infer.weights)  # enc_q.* dropped
    for k, w in train.weights.items():
        np.testing.assert_array_equal(w.astype(np.float16), infer.weights[k], err_msg=k)
    # run it at fp16-rounded weights: then it is exactly the golden's model
    train.weights = {k: w.astype(np.float16) for k, w in train.weights.items()}
    m = rvc_synth.Synthesizer(train.config)
    m.load_checkpoint_weights(train)
    g = np.load(ref_dir / "synth" / "v2_f0_48k_T37.npz")
    close(np.array(m(*inputs(g), noise_scale=0)[0]), g["audio"][0, 0], TINY, "audio")
    # and loads directly, full precision
    full = rvc_synth.load(ref_dir / "checkpoints" / "train_format_v2_f0_48k_G.pth")
    assert full.info.sample_rate == 48000 and full.info.n_speakers == 4


@pytest.mark.parametrize("dtype, min_snr", [("float16", 40.0), ("bfloat16", 30.0)])
@pytest.mark.parametrize("variant", ["v2_f0_40k", "v1_f0_48k", "v2_nof0_32k"])
def test_half_precision_against_fp32_goldens(ref_dir: Path, variant: str, dtype: str, min_snr: float) -> None:
    """Half precision keeps >= 40 dB (fp16) / >= 30 dB (bf16) against the fp32 goldens."""
    m = rvc_synth.load(ref_dir / "checkpoints" / f"{variant}.pth", dtype=dtype)
    assert m.dtype == getattr(mx, dtype)
    g = np.load(ref_dir / "synth" / f"{variant}_T64.npz")
    out = np.array(m(*inputs(g), noise_scale=0)[0])
    assert out.dtype == np.float32
    assert snr_db(out, g["audio"][0, 0]) >= min_snr


@pytest.mark.parametrize("conv", ["gemm", "dnnl"])
def test_decoder_chunking_is_exact(ref_dir: Path, conv: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoding in stretches with receptive-field halos equals decoding all at once; on GPUs
    TF32 and half-precision stretches are queued two at a time, exact float32 ones one by one."""
    from rvc_runtime import onednn as _dnnl

    if conv == "dnnl" and not _dnnl.available():
        pytest.skip("oneDNN not installed")
    with conv_path(model(ref_dir, "v1_f0_48k"), conv) as m:
        g = np.load(ref_dir / "synth" / "v1_f0_48k_T64.npz")
        z = mx.array(np.random.default_rng(0).normal(size=(1, 64, m.config.inter_channels)).astype(np.float32))
        emb = m.emb_g(mx.array([0]))[:, None]
        f0 = mx.array(g["pitchf"])
        whole = np.array(m.dec(z, f0, emb, chunk_frames=0))
        for size in (7, 16, 30):
            np.testing.assert_allclose(np.array(m.dec(z, f0, emb, chunk_frames=size)), whole, atol=2e-6)
    if conv == "dnnl":
        return
    # as GPUs run them (here on MLX's CPU): stretches compiled, each queued before the one
    # before it is waited for
    with conv_path(m, conv, device="gpu", streams=0, compile="decoder", tf32=True):  # TF32 (half alike)
        waits = []
        eval_ = mx.eval
        monkeypatch.setattr(mx, "eval", lambda *a: waits.append(len(a)) or eval_(*a))
        got = np.array(m.dec(z, f0, emb, chunk_frames=16))
        monkeypatch.setattr(mx, "eval", eval_)
    assert waits == [1, 1, 1]  # stretches 1..3 waited for after 2..4 were queued
    np.testing.assert_allclose(got, whole, atol=2e-6)
    with conv_path(m, conv, device="gpu", streams=0, compile="decoder"):  # exact float32: one at a time
        waits.clear()
        monkeypatch.setattr(mx, "eval", lambda *a: waits.append(len(a)) or eval_(*a))
        got = np.array(m.dec(z, f0, emb, chunk_frames=16))
        monkeypatch.setattr(mx, "eval", eval_)
    assert waits == [1, 1, 1, 1]
    np.testing.assert_allclose(got, whole, atol=2e-6)
    # every stretch has one shape (size + 2 halos), the first and last ones included
    with conv_path(m, conv, compile="off"):  # the spy sees uncompiled calls only (GPUs compile)
        shapes = []
        decode = m.dec._decode
        m.dec._decode = lambda x, har, g: shapes.append(x.shape[1]) or decode(x, har, g)
        try:
            with_spy = np.array(m.dec(z, f0, emb, chunk_frames=16))
        finally:
            del m.dec._decode
    assert shapes == [16 + 2 * m.dec.receptive_radius()] * 4
    np.testing.assert_allclose(with_spy, whole, atol=2e-6)
    # GPUs' default stretches (here 20 frames in steps of 4): equal ones, rounded up to the step
    # (64 frames: 4 stretches of 16, not 3 of 20 and a fourth pulled inside)
    from rvc_synth import backends, generator

    monkeypatch.setattr(backends, "GPU_EXACT_CHUNK_FRAMES", 20)
    monkeypatch.setattr(generator, "STRETCH_STEP", 4)
    with conv_path(m, conv, device="gpu", streams=0, compile="off"):
        shapes.clear()
        m.dec._decode = lambda x, har, g: shapes.append(x.shape[1]) or decode(x, har, g)
        try:
            got = np.array(m.dec(z, f0, emb))
        finally:
            del m.dec._decode
    assert shapes == [16 + 2 * m.dec.receptive_radius()] * 4
    np.testing.assert_allclose(got, whole, atol=2e-6)


def test_attention_query_blocks_are_exact(ref_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rvc_synth import encoder

    m = model(ref_dir, "v2_f0_40k")
    rng = np.random.default_rng(0)
    x = mx.array(rng.normal(size=(1, 150, 768)).astype(np.float32))
    p = mx.array(rng.integers(1, 256, size=(1, 150)))
    whole = np.array(m.enc_p(x, p)[0])
    monkeypatch.setattr(encoder, "QUERY_BLOCK", 32)
    monkeypatch.setattr(encoder, "BLOCK_LOGITS", 0)
    # The same sums, but a BLAS (OpenBLAS on the CPU, cuBLAS on GPUs) blocks and threads them by
    # the number of query rows, so each matmul on the encoder's serial path (per layer: q/k/v,
    # scores, values, output, two feed-forward) may round differently: within 2 ulp each, at the
    # output's scale. Measured: 0 with MLX's bundled BLAS, 1.5e-6 with OpenBLAS.
    serial = 2 + 7 * len(m.enc_p.encoder.attn_layers)
    atol = 2 * serial * float(np.finfo(np.float32).eps) * max(1.0, float(np.abs(whole).max()))
    np.testing.assert_allclose(np.array(m.enc_p(x, p)[0]), whole, rtol=0, atol=atol)


@pytest.mark.parametrize("t, block", [(150, 32), (37, 256), (300, 256), (7, 256), (65, 32), (12, 5)])
def test_numpy_attention_equals_mlx_attention(
    ref_dir: Path, t: int, block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CPU (NumPy) attention and the MLX one (GPUs) agree, relative terms at the edges included."""
    from rvc_synth import encoder

    monkeypatch.setattr(encoder, "QUERY_BLOCK", block)
    attn = model(ref_dir, "v2_f0_40k").enc_p.encoder.attn_layers[0]
    rng = np.random.default_rng(1)
    h, d = attn.n_heads, attn.emb_rel_k.shape[-1]
    q, k, v = (rng.normal(size=(1, h, t, d)).astype(np.float32) for _ in range(3))
    ref = np.concatenate(
        [
            np.array(attn._attend(mx.array(q[:, :, i : i + block]), mx.array(k), mx.array(v), i))
            for i in range(0, t, block)
        ],
        axis=2,
    )
    np.testing.assert_allclose(attn._attend_numpy(q, k, v), ref, rtol=1e-5, atol=1e-5)  # float32 rounding


def _avx512() -> bool:
    try:
        return "avx512f" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _crop_tolerance(m: rvc_synth.Synthesizer, conv: str) -> float:
    """How far a cropped decoder run may be from the whole one, from the arithmetic.

    oneDNN on AVX-512 CPUs computes each output sample with the same instructions whatever the
    input length: bit-identical (0); its AVX2 kernels block by shape (an AVX2-only AMD EPYC: up to
    5.5e-7), within the bound below. A BLAS GEMM (``gemm``) blocks and threads its sums by the matrix
    shape, so the cropped run adds the same products in another order; on CUDA, cuDNN/cuBLAS pick
    kernels by shape likewise. Each of the two runs is then within about one float32 ulp (at the
    output's scale: tanh keeps |y| <= 1, ulp 2**-23) of the exact value per convolution on the
    decoder's serial path (conv_pre, each upsampling and its resblock's convolutions, conv_post),
    so they differ by at most 2 * L ulp (v2: L = 30, 7.2e-6; measured up to 4.1e-6 on the CPU with
    OpenBLAS, 1.2e-6 on an H100)."""
    if conv == "dnnl" and mx.default_device() == mx.cpu and _avx512():
        return 0.0
    cfg = m.dec.cfg
    per_block = max(len(d) for d in cfg.resblock_dilation_sizes) * (2 if cfg.resblock == "1" else 1)
    serial = 2 + len(cfg.upsample_rates) * (1 + per_block)
    return 2 * serial * float(np.finfo(np.float32).eps)


@pytest.mark.parametrize("conv", ["dnnl", "gemm"])
@pytest.mark.parametrize("name", ["v2_f0_40k", "v1_nof0_32k"])
def test_out_frames_are_the_whole_outputs_samples(ref_dir: Path, name: str, conv: str, monkeypatch) -> None:
    """``out_frames=(a, b)`` (what the pipeline keeps of each chunk): the decoder runs on those
    frames and their receptive context only, yet gives the whole output's samples (seeded noise
    included: the NSF source is still drawn over the whole input)."""
    with conv_path(model(ref_dir, name), conv) as m:
        _check_out_frames(m, conv)


def _check_out_frames(m: rvc_synth.Synthesizer, conv: str) -> None:
    rng = np.random.default_rng(5)
    t = 300
    phone = rng.standard_normal((1, t, m.info.feature_dim)).astype(np.float32)
    f0 = np.where(np.arange(t) % 70 < 50, 180 + 40 * np.sin(np.arange(t) / 9), 0).astype(np.float32)
    pitch = np.clip(np.rint(1 + 254 * np.log1p(f0 / 700) / np.log1p(1100 / 700)), 1, 255).astype(np.int32)
    args = (phone, pitch[None], f0[None]) if m.info.has_f0 else (phone,)
    hop = m.info.hop
    atol = _crop_tolerance(m, conv)
    for noise, seed in ((0, None), (0.66666, 7)):
        whole = np.array(m(*args, noise_scale=noise, seed=seed)[0])
        for a, b in ((100, 200), (0, 37), (250, 300)):
            part = np.array(m(*args, noise_scale=noise, seed=seed, out_frames=(a, b))[0])
            np.testing.assert_allclose(part, whole[a * hop : b * hop], rtol=0, atol=atol)
    with pytest.raises(rvc_synth.RVCSynthError, match="out_frames"):
        m(*args, noise_scale=0, out_frames=(200, 100))


def test_static_shape_compiles_the_whole_call_same_audio(ref_dir: Path) -> None:
    """``static_shape=True`` (live blocks) compiles the whole call (encoder, prior noise, flow,
    decoder) as one graph where the backend compiles (GPUs; here the MLX backend told to compile
    on the CPU): the streaming golden still holds, and the audio equals the uncompiled call's,
    with and without noise, with a formant stretch (``decode_frames``) too."""
    g = np.load(ref_dir / "synth" / "v2_f0_40k_T64.npz")
    m = model(ref_dir, "v2_f0_40k")
    m.set_backend(replace(rvc_synth.backends.choose("mlx"), compile="decoder"))
    phone, pitch, f0 = inputs(g)
    kw = dict(skip_head=int(g["skip_head"]), return_length=int(g["return_length"]))
    for extra in ({"noise_scale": 0}, {"noise_scale": 0.66666, "seed": 3}, {"noise_scale": 0, "decode_frames": 30}):
        plain = np.array(m(phone, pitch, f0, **kw, **extra)[0])
        for _ in range(2):
            got = np.array(m(phone, pitch, f0, static_shape=True, **kw, **extra)[0])
            if extra == {"noise_scale": 0}:
                close(got, g["audio_skip"][0, 0], TINY, "streaming audio, compiled")
            assert got.shape == plain.shape and np.abs(got - plain).max() <= 1e-6, extra
    assert {name for name, _ in m.__dict__["_graphs"]} == {"whole"}
    assert len(m.__dict__["_graphs"]) == 3  # one graph per (noise, geometry)
    for frames in range(20, 38):  # e.g. a formant slider moved live: the oldest graphs are dropped
        m(phone, pitch, f0, static_shape=True, noise_scale=0, decode_frames=frames, **kw)
    assert len(m.__dict__["_graphs"]) == 16


def test_static_shape_offline_calls_same_audio(ref_dir: Path) -> None:
    """``static_shape=True`` on a whole (non-streaming) call, as the pipeline makes on GPUs (here
    the MLX backend told to compile on the CPU): with the decoder in one stretch the whole call
    is one graph per shape; with decoder stretches the encoder and the flow are compiled per
    length beside them. Either way the golden holds and the audio equals the uncompiled call's,
    with ``out_frames`` too."""
    g = np.load(ref_dir / "synth" / "v2_f0_40k_T64.npz")
    m = rvc_synth.load(ref_dir / "checkpoints" / "v2_f0_40k.pth")
    m.set_backend(replace(rvc_synth.backends.choose("mlx"), compile="decoder"))
    phone, pitch, f0 = inputs(g)
    hop = m.info.hop
    for stretch, names in ((None, {"whole"}), (8, {"enc", "flow"})):
        m._reset_compiled()
        for extra in (
            {"noise_scale": 0},
            {"noise_scale": 0.66666, "seed": 3},
            {"noise_scale": 0, "out_frames": (5, 50)},
        ):
            kw = {"chunk_frames": stretch, **extra}
            plain = np.array(m(phone, pitch, f0, **kw)[0])
            for _ in range(2):
                got = np.array(m(phone, pitch, f0, static_shape=True, **kw)[0])
                if extra == {"noise_scale": 0}:
                    close(got, g["audio"][0, 0], TINY, f"audio, compiled, stretch {stretch}")
                if "out_frames" in extra:
                    close(got, g["audio"][0, 0, 5 * hop : 50 * hop], TINY, "out_frames, compiled")
                assert got.shape == plain.shape and np.abs(got - plain).max() <= 1e-6, (stretch, extra)
        assert {name for name, _ in m.__dict__["_graphs"]} == names, stretch
    # other lengths: a graph each, the model's last 16 kept
    for t in range(20, 40):
        m(phone[:, :t], pitch[:, :t], f0[:, :t], static_shape=True, noise_scale=0, chunk_frames=8)
    assert len(m.__dict__["_graphs"]) == 16
