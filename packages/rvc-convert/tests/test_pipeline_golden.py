"""The reference pipeline against its goldens: whole pipeline, split points, feature blending/protect."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import rvc_synth
from rvc_convert.options import PRESETS, ConvertOptions
from rvc_convert.pipeline import chunk_plan, prepare_features, run_pipeline, split_points
from rvc_convert.stub import StubEmbedder, stub_matrix


def test_stub_matrix_check_values() -> None:
    w = stub_matrix(400, 768, seed=0, denom=4096)
    pm = stub_matrix(768, 256, seed=1, denom=16384)
    assert w[0, :4].tolist() == [0.022705078125, 0.12939453125, 0.20849609375, -0.196533203125]
    assert float(w.astype(np.float64).sum()) == 67.699951171875
    assert pm[0, :4].tolist() == [-0.0069580078125, -0.05828857421875, -0.05859375, -0.03802490234375]
    assert float(pm.astype(np.float64).sum()) == -1.97119140625


def test_whole_pipeline_golden(ref_dir, make_signal) -> None:
    g = np.load(ref_dir / "whole" / "short_6s.npz")
    x_in = g["audio_int16_in"]
    assert (x_in == make_signal(6, 0, ((0.15, 0.2), (0.5, 0.53), (0.75, 0.8), (0.9, 0.91)))).all()
    synth = rvc_synth.load(ref_dir / "checkpoints" / "v2_f0_32k.pth")
    f0 = g["f0_supplied"]
    calls = []

    def f0_fn(audio_pad: np.ndarray, p_len: int) -> np.ndarray:
        calls.append((len(audio_pad), p_len))
        return f0

    opts = ConvertOptions(
        pitch=float(g["f0_up_key"]),
        index_rate=0.0,
        rms_mix_rate=float(g["rms_mix_rate"]),
        protect=float(g["protect"]),
        speaker=int(g["sid"]),
        preset="cpu",
    )
    audio = x_in.astype(np.float32) / 32768
    steps = []
    out, sr = run_pipeline(
        audio,
        synth=synth,
        embedder=StubEmbedder(seed=int(g["stub_seed"])),
        f0_fn=f0_fn,
        options=opts,
        noise_scale=0,
        progress=lambda d, t: steps.append((d, t)),
    )
    assert calls == [(128000, 800)]
    assert steps == [(0, 1), (1, 1)]
    ref = g["audio_out_int16"]
    assert sr == int(g["tgt_sr"]) == 32000
    assert out.dtype == np.int16 and out.shape == ref.shape == (191360,)
    d = np.abs(out.astype(np.int64) - ref.astype(np.int64))
    snr = 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / max(np.sum(d.astype(np.float64) ** 2), 1e-12))
    print(f"whole golden: max |d| {d.max()} LSB, {np.mean(d <= 2) * 100:.4f}% within 2 LSB, SNR {snr:.1f} dB")
    assert np.mean(d <= 2) >= 0.999
    assert snr >= 50


@pytest.mark.parametrize("preset_key,preset", [("cpu_default", "cpu"), ("lowmem", "lowmem")])
def test_split_points_golden(ref_dir, make_signal, preset_key: str, preset: str) -> None:
    g = np.load(ref_dir / "pipeline" / "split_points.npz")
    x = make_signal(40, 0, ((0.18, 0.2), (0.52, 0.56), (0.8, 0.81)))
    assert int(x.astype(np.int64).sum()) == int(g["sha_hint_sum_int64"])
    assert tuple(g[f"{preset_key}_config"]) == tuple(PRESETS[preset])
    from rvc_audio import highpass

    hp = highpass(x.astype(np.float32) / 32768)
    opt = split_points(hp, PRESETS[preset])
    chunks = chunk_plan(len(hp), opt, PRESETS[preset])
    assert [c.start for c in chunks] == g[f"{preset_key}_segment_starts"].tolist()
    assert [c.end - c.start for c in chunks] == g[f"{preset_key}_segment_lengths"].tolist()
    assert (len(chunks) > 1) == bool(g[f"{preset_key}_chunked"])


def test_split_points_match_whole_file_audio_sum() -> None:
    """The window-by-window search equals the reference's whole-file audio_sum (fp16 preset too)."""
    rng = np.random.default_rng(1)
    hp = rng.standard_normal(16000 * 140) * np.repeat(rng.uniform(0, 1, 140 * 10), 1600)
    for preset in PRESETS.values():
        audio_pad = np.pad(hp, (80, 80), mode="reflect")
        audio_sum = np.zeros_like(hp)
        for i in range(160):
            audio_sum += np.abs(audio_pad[i : i - 160])
        tq, tc = 16000 * preset.x_query, 16000 * preset.x_center
        ref = []
        for t in range(tc, len(hp), tc):
            w = audio_sum[t - tq : t + tq]
            ref.append(t - tq + np.where(w == w.min())[0][0])
        assert split_points(hp, preset) == ref


@pytest.mark.parametrize("case", ["index_protect", "index_noprotect", "noindex_protect", "nof0_index"])
def test_features_blend_protect_golden(ref_dir, case: str) -> None:
    from rvc_index import FeatureIndex

    g = np.load(ref_dir / "pipeline" / "features.npz")
    index = FeatureIndex.load(ref_dir / "pipeline" / "index_v1_IVF.index")
    uses_f0 = bool(g[f"{case}_uses_f0"])
    feats, p_len = prepare_features(
        g["query"][0],
        index=index,
        index_rate=float(g[f"{case}_index_rate"]),
        pitchf=g["pitchf"][0] if uses_f0 else None,
        protect=float(g[f"{case}_protect"]),
        p_len=80,
    )
    ref = g[f"{case}_phone"][0]
    assert p_len == int(g[f"{case}_p_len"][0]) and feats.shape == ref.shape
    rel = np.abs(feats - ref).max() / np.abs(ref).max()
    assert rel <= 1e-5, rel


@pytest.mark.parametrize("gpu", [False, True, "stages"])
def test_one_blas_thread_during_gpu_conversions(ref_dir, make_signal, gpu, monkeypatch) -> None:
    """With the plan's ``one_blas_thread`` (GPUs) the pipeline runs with one BLAS thread
    (OpenBLAS's spinning workers slowed FAISS), restored afterwards; with ``one_blas_stages``
    (CPUs with oneDNN: f0 and index) only those stages do; otherwise every thread is kept."""
    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:  # OpenBLAS builds with their own threads (not faiss's OpenMP one)
        return [
            i["num_threads"]
            for i in threadpool_info()
            if i["user_api"] == "blas" and i.get("threading_layer") != "openmp"
        ]

    from rvc_convert._backends import plan

    before, seen, seen_f0 = blas_threads(), [], []
    stub = StubEmbedder(seed=0)

    def embedder(x: np.ndarray) -> np.ndarray:
        seen.append(blas_threads())
        return stub(x)

    def f0_fn(a: np.ndarray, n: int) -> np.ndarray:
        seen_f0.append(blas_threads())
        return np.full(n, 150.0)

    synth = rvc_synth.load(ref_dir / "checkpoints" / "v2_f0_32k.pth")
    audio = make_signal(2, 0, ()).astype(np.float32) / 32768
    stages = ("f0", "index") if gpu == "stages" else ()
    backends = replace(plan(synth), one_blas_thread=gpu is True, one_blas_stages=stages)  # a GPU's plan, a CPU's
    out, _ = run_pipeline(
        audio,
        synth=synth,
        embedder=embedder,
        f0_fn=f0_fn,
        options=ConvertOptions(index_rate=0.0),
        noise_scale=0,
        backends=backends,
    )
    assert len(out) > 0 and seen and seen_f0
    assert all(t == ([1] * len(before) if gpu is True else before) for t in seen)
    assert all(t == ([1] * len(before) if gpu else before) for t in seen_f0)
    assert blas_threads() == before


@pytest.mark.parametrize("case", ["index_protect", "noindex_protect", "nof0_index"])
def test_features_on_the_device_equal_the_host_path(ref_dir, case: str) -> None:
    """GPU pipelines keep the features on the device (MLX arrays in, MLX out): the same numbers."""
    import mlx.core as mx

    from rvc_index import FeatureIndex

    g = np.load(ref_dir / "pipeline" / "features.npz")
    uses_f0 = bool(g[f"{case}_uses_f0"])
    outs = []
    for backend in ("faiss", "mlx"):
        index = FeatureIndex.load(ref_dir / "pipeline" / "index_v1_IVF.index", backend=backend)
        for feats in (g["query"][0], mx.array(g["query"][0])):
            out, p_len = prepare_features(
                feats,
                index=index,
                index_rate=float(g[f"{case}_index_rate"]),
                pitchf=g["pitchf"][0] if uses_f0 else None,
                protect=float(g[f"{case}_protect"]),
                p_len=80,
            )
            assert isinstance(out, mx.array) == isinstance(feats, mx.array)
            outs.append((np.array(out), p_len))
    for out, p_len in outs[1:]:
        assert p_len == outs[0][1]
        np.testing.assert_allclose(out, outs[0][0], rtol=0, atol=2e-6 * np.abs(outs[0][0]).max())
