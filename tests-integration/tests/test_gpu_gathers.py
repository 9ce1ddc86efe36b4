"""The stages' GPU code paths gather only through ``rvc_runtime.gather``.

On MLX's CUDA backend every gather MLX meets (a dtype pair, ``take`` or ``take_along_axis``; an
integer index like ``x[0]`` is one too) is a module MLX compiles with NVRTC on first use, 2-7 s
each on a fresh H200 host: nine of them made a fresh machine's first conversion 38 s instead of
~3. So the GPU paths route gathers through ``rvc_runtime.gather`` (small CUDA kernels there) and
use views for integer indices. Here, on the CPU, those paths run (ContentVec's device graph, the
synthesizer with a GPU backend, the MLX IVF search and blend, RMVPE's device mel, U-Net and
BiGRU, the RMS mix) with MLX's gathers spied: one made anywhere else in our packages fails,
naming its line. Each also checks its numbers against the CPU path (or NumPy / FAISS).
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import faiss
import mlx.core as mx
import numpy as np
import pytest


@pytest.fixture
def direct_gathers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Lines of our packages that gather without ``rvc_runtime.gather``."""
    found: list[str] = []

    def caller() -> str | None:
        for fr in inspect.stack()[2:]:
            if fr.filename.endswith("rvc_runtime/gather.py"):
                return None
            if "/src/rvc_" in fr.filename:
                return f"{fr.filename.split('/src/')[-1]}:{fr.lineno}"
        return None

    def spy(fn):  # noqa: ANN001, ANN202
        def inner(*a, **kw):  # noqa: ANN002, ANN003, ANN202
            where = caller()
            if where:
                found.append(f"{fn.__name__} {where}")
            return fn(*a, **kw)

        return inner

    getitem = mx.array.__getitem__

    def gi(self, key):  # noqa: ANN001, ANN202
        keys = key if isinstance(key, tuple) else (key,)
        if any(isinstance(k, (int, np.integer, mx.array, np.ndarray, list)) and not isinstance(k, bool) for k in keys):
            where = caller()
            if where:
                found.append(f"[{key!r}] {where}")
        return getitem(self, key)

    monkeypatch.setattr(mx, "take", spy(mx.take))
    monkeypatch.setattr(mx, "take_along_axis", spy(mx.take_along_axis))
    monkeypatch.setattr(mx.array, "__getitem__", gi)
    return found


def test_synthesizer_gpu_path(ckpts: Path, direct_gathers: list[str]) -> None:
    import rvc_synth

    m = rvc_synth.load(ckpts / "v2_f0_40k.pth")
    gpu = dataclasses.replace(
        m.backend, name="mlx", device="gpu", conv="native", math="mlx", decoder="mlx", compile="decoder", streams=0
    )
    m.set_backend(gpu)
    t = 60
    rng = np.random.default_rng(0)
    feats = mx.array(rng.normal(size=(1, t, m.config.feature_dim)).astype(np.float32))
    f0 = mx.array((150 + 50 * np.sin(np.arange(t) / 5)).astype(np.float32)[None])
    pitch = mx.array(np.clip(np.arange(t) % 250 + 1, 1, 255).astype(np.int32)[None])
    y = m(feats, pitch, f0, seed=3)
    y2 = m(feats, pitch, f0, seed=3, chunk_frames=16)
    mx.eval(y, y2)
    assert direct_gathers == []
    np.testing.assert_allclose(np.array(y2), np.array(y), atol=2e-6)  # and the same audio stretched


def test_index_search_and_blend(direct_gathers: list[str]) -> None:
    from rvc_index._mlx_search import MLXIVFSearcher

    rng = np.random.default_rng(0)
    rows = rng.standard_normal((2000, 64)).astype(np.float32)
    q = faiss.IndexFlatL2(64)
    ivf = faiss.IndexIVFFlat(q, 64, 16)
    ivf.train(rows)
    ivf.add(rows)
    ivf.nprobe = 2
    s = MLXIVFSearcher(ivf)
    feats = rng.standard_normal((50, 64)).astype(np.float32)
    out = np.array(s.blend(mx.array(feats), 0.75, 8))
    assert direct_gathers == []
    _, ids = ivf.search(feats, 8)  # FAISS's neighbours, blended as RVC does
    score = ((rows[ids] - feats[:, None]) ** 2).sum(-1)
    w = np.square(1 / score)
    w /= w.sum(1, keepdims=True)
    want = 0.75 * (rows[ids] * w[..., None]).sum(1) + 0.25 * feats
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)


def test_rmvpe_device_path(direct_gathers: list[str]) -> None:
    from rvc_f0._mlx_net import log_mel_mx, salience
    from rvc_f0.bench import random_model

    model = random_model("rmvpe")
    audio = np.random.default_rng(0).normal(0, 0.1, 3200).astype(np.float32)
    sal = salience(model.net, log_mel_mx(audio), lazy=True)
    mx.eval(sal)
    assert direct_gathers == []
    np.testing.assert_allclose(np.array(sal), model.salience(audio), atol=1e-4)  # the CPU path's numbers


def test_rms_mix_on_the_device(direct_gathers: list[str]) -> None:
    from rvc_audio import mix_rms
    from rvc_convert import _output
    from rvc_runtime import gather

    rng = np.random.default_rng(0)
    src, tgt = rng.normal(0, 0.2, 16000).astype(np.float32), rng.normal(0, 0.1, 40000).astype(np.float32)
    got = np.array(_output.mix_rms(src, 16000, mx.array(tgt), 40000, 0.25, take=gather.MLX.take))
    assert direct_gathers == []
    np.testing.assert_allclose(got, mix_rms(src, 16000, tgt, 40000, 0.25), rtol=1e-5, atol=1e-6)


def test_contentvec_gpu_graph(contentvec_v2: Path, direct_gathers: list[str]) -> None:
    from rvc_features import load_contentvec
    from rvc_features._cv_fast import gelu_erf

    cv = load_contentvec(contentvec_v2)
    audio = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    want = cv.hidden(audio)  # the CPU path
    fast = cv._fast
    fast.cpu, fast.gelu, fast.fused_attention = False, gelu_erf, False  # as on MLX's CUDA backend
    got = fast.lazy(audio)
    got_static = fast.lazy(audio, static_shape=True)
    mx.eval(got, got_static)
    assert direct_gathers == []
    np.testing.assert_allclose(np.array(got), want, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(np.array(got_static), np.array(got), rtol=1e-5, atol=1e-5)
