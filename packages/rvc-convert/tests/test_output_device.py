"""The pipeline's last steps on the device (GPU pipelines): RMS mix and int16 in MLX against the
reference's goldens and the host versions."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from rvc_audio import mix_rms
from rvc_convert import _output
from rvc_convert.pipeline import to_int16

REL_TOL = 1e-5  # the reference fixtures' README: RMS mix, relative error <= 1e-5


def test_mix_rms_on_the_device_meets_the_golden(ref_dir) -> None:
    g = np.load(ref_dir / "pipeline" / "change_rms.npz")
    sr1, sr2 = int(g["sr1"]), int(g["sr2"])
    for i in (0, 1):
        rate = float(g[f"rate{i}"])
        out = np.array(_output.mix_rms(g["data1"], sr1, mx.array(g["data2"]), sr2, rate))
        ref = g[f"out{i}"]
        rel = np.abs(out.astype(np.float64) - ref).max() / np.abs(ref).max()
        host = mix_rms(g["data1"], sr1, g["data2"], sr2, rate)
        print(f"rate {rate}: device vs golden {rel:.1e}, vs host {np.abs(out - host).max() / np.abs(host).max():.1e}")
        assert rel <= REL_TOL


@pytest.mark.parametrize("n", [0, 1, 19999, 20000, 20001, 123457])
def test_frame_rms_and_silence(n: int) -> None:
    rng = np.random.default_rng(n)
    y = rng.standard_normal(n).astype(np.float32)
    src = np.zeros(n // 2 + 100)  # a silent source: silent output, no NaN
    if n:
        out = np.array(_output.mix_rms(src, 20000, mx.array(y), 40000, 0.25))
        assert out.shape == (n,) and not out.any()
        got = np.array(_output._frame_rms(mx.array(y), 40000))
        hop = 20000
        pad = np.pad(y.astype(np.float64), (hop, hop))
        want = [np.sqrt(np.mean(pad[j * hop : j * hop + 2 * hop] ** 2)) for j in range(n // hop + 1)]
        np.testing.assert_allclose(got, want, rtol=1e-5)
    assert np.array(_output.mix_rms(src, 20000, mx.array(y), 40000, 1.0)).shape == (n,)


@pytest.mark.parametrize("peak", [0.5, 0.99, 1.0, 3.7])
def test_to_int16_on_the_device_equals_the_host(peak: float) -> None:
    y = np.random.default_rng(1).uniform(-1, 1, 48000).astype(np.float32)
    y *= np.float32(peak / np.abs(y).max())
    got = _output.to_int16(mx.array(y))
    assert got.dtype == np.int16
    np.testing.assert_array_equal(got, to_int16(y))
    assert _output.to_int16(mx.zeros((0,))).shape == (0,)


@pytest.mark.parametrize(("n", "block"), [(300_001, 50_000), (17_000_001, None)])
def test_blocks_and_long_signals_match_the_host(n: int, block: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks (here small ones) give the host's numbers; so does a signal longer than float32
    counts exactly (2**24 samples: 7 minutes at 40 kHz), whose positions are block-local."""
    if block is not None:
        monkeypatch.setattr(_output, "BLOCK", block)
    rng = np.random.default_rng(3)
    t = np.arange(n) / 40000
    y = (np.sin(2 * np.pi * 0.05 * t) * rng.standard_normal(n) * 0.3).astype(np.float32)
    src = (np.cos(2 * np.pi * 0.03 * np.arange(n * 2 // 5) / 16000) + 1.2) * rng.standard_normal(n * 2 // 5) * 0.1
    host = mix_rms(src, 16000, y, 40000, 0.25)
    dev = np.array(_output.mix_rms(src, 16000, mx.array(y), 40000, 0.25))
    rel = np.abs(dev.astype(np.float64) - host).max() / np.abs(host).max()
    print(f"n={n}: device vs host {rel:.1e}")
    assert rel <= 1e-5
    np.testing.assert_array_equal(_output.to_int16(mx.array(host)), to_int16(host))
