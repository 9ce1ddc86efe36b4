"""CPU kernels lent across stages: rvc-synth's oneDNN convolutions for rvc-f0's RMVPE U-Net."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rvc_convert._backends import dnnl_conv2d, lend_cpu_kernels
from rvc_runtime import onednn as _dnnl


@pytest.mark.skipif(not _dnnl.available(), reason="oneDNN (onednn-cpu-gomp) not installed")
def test_dnnl_conv2d_backend() -> None:
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((8, 3, 3, 6)) / 7).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    x = rng.standard_normal((1, 11, 9, 6)).astype(np.float32)
    add = rng.standard_normal((1, 11, 9, 8)).astype(np.float32)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))).astype(np.float64)
    ref = sum(xp[:, i : i + 11, j : j + 9] @ w[:, i, j].T.astype(np.float64) for i in range(3) for j in range(3)) + b
    run = dnnl_conv2d()(w, b, 1)
    np.testing.assert_allclose(run(x), ref, atol=1e-5)
    np.testing.assert_allclose(run(x, relu=True, add=add), np.maximum(ref, 0) + add, atol=1e-5)


def test_lend_cpu_kernels_keeps_a_backend_already_set() -> None:
    class Model:
        conv2d = None

    m = lend_cpu_kernels(Model())
    assert (m.conv2d is not None) == _dnnl.available()
    mine = object()
    m.conv2d = mine
    assert lend_cpu_kernels(m).conv2d is mine


def test_converter_lends_them(fixtures_dir: Path) -> None:
    """A VoiceConverter's RMVPE runs its U-Net on the lent convolutions (on the CPU)."""
    import mlx.core as mx

    from rvc_convert import VoiceConverter
    from rvc_f0 import load_rmvpe

    weights = fixtures_dir / "extractors" / "rmvpe_random.safetensors"
    model = fixtures_dir / "reference" / "checkpoints" / "v2_f0_40k.pth"
    VoiceConverter(model, rmvpe=weights, embedder=lambda a: np.zeros((len(a) // 320, 768), np.float32))
    rmvpe = load_rmvpe(weights)
    assert (rmvpe.conv2d is not None) == _dnnl.available()
    if rmvpe.conv2d is not None and mx.default_device() == mx.cpu:
        assert rmvpe._unet() is not None


def test_converter_chooses_its_backends_once(fixtures_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``VoiceConverter.backends``: the synthesizer's backend and device, the lent convolution and
    the GPU BLAS policy, decided in ``__init__`` and passed down to the pipeline."""
    import mlx.core as mx

    import rvc_synth
    from rvc_convert import VoiceConverter
    from rvc_convert._backends import plan

    monkeypatch.delenv("RVC_BACKEND", raising=False)
    model = fixtures_dir / "reference" / "checkpoints" / "v2_nof0_32k.pth"
    embedder = lambda a: np.zeros((len(a) // 320, 768), np.float32)  # noqa: E731
    vc = VoiceConverter(model, embedder=embedder)
    b = vc.backends
    cpu = mx.default_device() == mx.cpu
    assert (b.device, b.synth, b.precision) == (vc.synth.backend.device, vc.info.backend, vc.info.precision)
    assert b.device == ("cpu" if cpu else "gpu")
    assert (b.conv2d is not None) == (cpu and _dnnl.available())
    assert b.one_blas_thread is not cpu
    assert b.one_blas_stages == (("f0", "index") if cpu and _dnnl.available() else ())  # before oneDNN's work
    if cpu:
        assert b.synth == ("onednn" if _dnnl.available() else "numpy")
    plain = VoiceConverter(model, embedder=embedder, backend="mlx")
    assert plain.backends.synth == plain.info.backend == "mlx"
    a = np.sin(np.arange(8000) / 9).astype(np.float32) * 0.3
    out, ref = (np.asarray(c.convert(a, sample_rate=16000, seed=0)[0], np.int32) for c in (vc, plain))
    assert out.shape == ref.shape and np.abs(ref).max() > 1000
    assert np.abs(out - ref).max() <= 2  # the same conversion to float32 rounding (int16 LSBs)
    with pytest.raises(rvc_synth.RVCSynthError, match="expected one of auto, mlx, numpy, onednn"):
        VoiceConverter(model, embedder=embedder, backend="tpu")
    assert plan(object()).synth == "?"  # a synthesizer without a backend: MLX's device decides


def test_half_synthesizer_on_gpus_gets_half_contentvec(
    fixtures_dir: Path, contentvec_v1: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the reference's half mode runs HuBERT: a float16/bfloat16 synthesizer on a GPU plan
    gets ContentVec's GPU forward in that precision; TF32, exact float32 and CPU plans keep
    float32 (the CPU forward is float32 anyway)."""
    from dataclasses import replace

    from rvc_convert import VoiceConverter, _backends
    from rvc_convert._backends import Backends, content_dtype

    gpu = Backends("gpu", "mlx", "float16", None, one_blas_thread=True)
    assert content_dtype(gpu) == "float16"
    assert content_dtype(replace(gpu, precision="bfloat16")) == "bfloat16"
    assert (
        content_dtype(replace(gpu, precision="tf32")) == content_dtype(replace(gpu, precision="float32")) == "float32"
    )
    assert content_dtype(replace(gpu, device="cpu")) == "float32"
    model = fixtures_dir / "reference" / "checkpoints" / "v1_nof0_40k.pth"  # (no f0 network to load)
    assert VoiceConverter(model, contentvec=contentvec_v1).embedder.dtype == "float32"
    real = _backends.plan
    monkeypatch.setattr(_backends, "plan", lambda synth: replace(real(synth), device="gpu", precision="float16"))
    vc = VoiceConverter(model, contentvec=contentvec_v1)
    assert vc.embedder.dtype == "float16" and vc.embedder.version == "v1"
