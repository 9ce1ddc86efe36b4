"""resample / normalize_peak / highpass / mix_rms: goldens from the reference and properties."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from rvc_audio import RVCAudioError, highpass, mix_rms, normalize_peak, resample
from rvc_audio.errors import AudioValueError

REL_TOL = 1e-5  # reference README section 6: high-pass and RMS mix, relative error <= 1e-5


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(got.astype(np.float64) - ref)) / np.max(np.abs(ref)))


# ------------------------------------------------------------------ goldens


def test_highpass_golden(fixtures_dir):
    g = np.load(fixtures_dir / "reference/pipeline/highpass.npz")
    assert g["audio_in"].dtype == np.float32
    out = highpass(g["audio_in"])
    assert out.dtype == np.float64 and out.shape == g["audio_out"].shape
    assert rel_err(out, g["audio_out"]) <= REL_TOL
    b, a = signal.butter(N=5, Wn=48, btype="high", fs=16000)
    np.testing.assert_array_equal(b, g["b"])  # same design as the reference
    np.testing.assert_array_equal(a, g["a"])


def test_change_rms_golden(fixtures_dir):
    g = np.load(fixtures_dir / "reference/pipeline/change_rms.npz")
    sr1, sr2 = int(g["sr1"]), int(g["sr2"])
    data1, data2 = g["data1"], g["data2"]
    keep = data2.copy()
    for i in (0, 1):
        out = mix_rms(data1, sr1, data2, sr2, float(g[f"rate{i}"]))
        assert out.dtype == np.float32 and out.shape == data2.shape
        assert rel_err(out, g[f"out{i}"]) <= REL_TOL
    np.testing.assert_array_equal(data2, keep)  # unlike the reference, the input is not modified


def test_change_rms_frames_golden(fixtures_dir):
    from rvc_audio._dsp import _frame_rms

    g = np.load(fixtures_dir / "reference/pipeline/change_rms.npz")
    for data, sr, key in ((g["data1"], int(g["sr1"]), "rms1_frames"), (g["data2"], int(g["sr2"]), "rms2_frames")):
        frames = _frame_rms(data, sr)
        assert frames.shape == g[key][0].shape == (1 + len(data) // (sr // 2),)
        assert rel_err(frames, g[key][0]) <= REL_TOL


def test_interp_matches_torch_linear_align_corners_false():
    from rvc_audio._dsp import _interp_linear

    # Hand-computed values of F.interpolate(tensor([[[0., 10., 20.]]]), size=6, mode="linear").
    got = _interp_linear(np.array([0.0, 10.0, 20.0]), 6)
    np.testing.assert_allclose(got, [0.0, 2.5, 7.5, 12.5, 17.5, 20.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(_interp_linear(np.array([3.0]), 4), [3.0] * 4)


# ------------------------------------------------------------------ properties


def test_highpass_removes_low_frequencies():
    t = np.arange(16000) / 16000
    low, high = 0.5 * np.sin(2 * np.pi * 10 * t), 0.3 * np.sin(2 * np.pi * 440 * t)
    out = highpass((low + high + 0.2).astype(np.float32))
    mid = slice(2000, 14000)
    np.testing.assert_allclose(out[mid], high[mid], atol=5e-3)


def _speechlike(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """Noise under a slow envelope, a hum, a DC offset and silent stretches (float32)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    blocks = rng.uniform(0, 1, n // 1600 + 1) * (rng.uniform(size=n // 1600 + 1) > 0.2)
    env = np.repeat(blocks, 1600)[:n]
    x = 0.3 * env * rng.standard_normal(n) + 0.2 * np.sin(2 * np.pi * 30 * t) + 0.1
    return x.astype(np.float32)


def test_highpass_is_scipys_filtfilt_bitwise_when_short():
    x = _speechlike(3.5)  # under two blocks: scipy's one pass, the same numbers
    np.testing.assert_array_equal(highpass(x), signal.filtfilt(*signal.butter(5, 48, "high", fs=16000), x))


@pytest.mark.parametrize("workers", [1, 2, 8])
def test_long_highpass_in_blocks_matches_filtfilt(monkeypatch, workers: int):
    """60 s: the blocks on threads differ from scipy's sequential filtfilt by rounding noise only
    (its transfer-function form amplifies it to ~3e-8 relative), far inside the 1e-5 tolerance;
    and the result does not depend on the thread count."""
    import rvc_audio._dsp as dsp

    monkeypatch.setattr(dsp, "_workers", lambda: workers)
    x = _speechlike(60)
    ref = signal.filtfilt(*signal.butter(5, 48, "high", fs=16000), x)
    got = highpass(x)
    assert rel_err(got, ref) <= 2e-7
    assert np.abs(got.astype(np.float32) - ref.astype(np.float32)).max() <= 1e-7 * np.abs(ref).max()
    monkeypatch.setattr(dsp, "_workers", lambda: 2)
    same = highpass(x)
    if workers > 1:
        np.testing.assert_array_equal(got, same)  # the blocks are fixed; only who runs them varies
    # integer PCM and float64 in take the same path
    pcm = np.round(x * 8000).astype(np.int16)
    ref_pcm = signal.filtfilt(*signal.butter(5, 48, "high", fs=16000), pcm / np.float32(32768))
    assert rel_err(highpass(pcm), ref_pcm) <= 2e-7


def test_highpass_pool_is_remade_in_a_forked_child(monkeypatch):
    import rvc_audio._dsp as dsp

    monkeypatch.setattr(dsp, "_workers", lambda: 2)
    x = _speechlike(20)
    first = highpass(x)
    pool = dsp._pool(2)
    monkeypatch.setattr(dsp.os, "getpid", lambda: -1)  # as a child after fork sees it: another pid
    assert dsp._pool(2) is not pool
    np.testing.assert_array_equal(highpass(x), first)


def test_silence_flows_through_without_nan():
    zeros = np.zeros(24000, np.float32)
    hp = highpass(zeros)
    assert not hp.any()
    np.testing.assert_array_equal(normalize_peak(zeros), zeros)
    out = mix_rms(hp, 16000, np.zeros(48000, np.float32), 32000, 0.25)
    assert np.isfinite(out).all() and not out.any()
    # silent source, loud target: output is silent (rms_source = 0), never NaN
    noise = np.random.default_rng(0).standard_normal(48000).astype(np.float32)
    assert not mix_rms(hp, 16000, noise, 32000, 0.25).any()
    np.testing.assert_array_equal(mix_rms(hp, 16000, noise, 32000, 1.0), noise)


def test_mix_rms_imposes_source_envelope():
    rng = np.random.default_rng(1)
    src = rng.standard_normal(32000) * 0.1  # 2 s at 16 kHz, rms 0.1
    tgt = (rng.standard_normal(96000) * 0.4).astype(np.float32)  # 2 s at 48 kHz, rms 0.4
    out = mix_rms(src, 16000, tgt, 48000, 0.0)
    mid = out[24000:72000]
    assert abs(np.sqrt(np.mean(mid.astype(np.float64) ** 2)) - 0.1) < 0.01
    half = mix_rms(src, 16000, tgt, 48000, 0.5)[24000:72000]
    assert abs(np.sqrt(np.mean(half.astype(np.float64) ** 2)) - 0.2) < 0.02  # geometric mean of 0.1 and 0.4


def test_normalize_peak_is_the_reference_formula():
    x = np.array([0.1, -1.9, 0.5], np.float32)
    ref = x.copy()
    audio_max = np.abs(ref).max() / 0.95
    if audio_max > 1:
        ref /= audio_max
    out = normalize_peak(x)
    np.testing.assert_array_equal(out, ref)
    assert out.dtype == np.float32 and np.isclose(np.abs(out).max(), 0.95)
    assert x[1] == np.float32(-1.9)  # input untouched
    quiet = np.array([0.5, -0.9], np.float32)
    np.testing.assert_array_equal(normalize_peak(quiet), quiet)  # peak <= 0.95: unchanged
    assert normalize_peak(np.zeros(0, np.float32)).shape == (0,)


def test_resample_lengths_and_content():
    sr = 44100
    t = np.arange(sr) / sr
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    y = resample(x, sr, 16000)
    assert y.dtype == np.float32 and y.shape == (16000,)
    t16 = np.arange(16000) / 16000
    np.testing.assert_allclose(y[500:-500], 0.5 * np.sin(2 * np.pi * 440 * t16[500:-500]), atol=1e-3)
    assert resample(x.astype(np.float64), sr, 48000, quality="VHQ").shape == (48000,)
    stereo = resample(np.stack([x, -x], axis=1), sr, 22050)
    assert stereo.shape == (22050, 2)
    same = resample(x, sr, sr)
    assert same is not x and np.array_equal(same, x)
    np.testing.assert_allclose(resample(np.array([16384, -32768], np.int16), 8000, 8000), [0.5, -1.0])


@pytest.mark.parametrize(
    "call",
    [
        lambda: resample(np.zeros(10), 0, 16000),
        lambda: resample(np.zeros(10), 16000, 16000.5),
        lambda: resample(np.zeros(10), 16000, 8000, quality="best"),
        lambda: resample(np.array(["a"]), 16000, 8000),
        lambda: highpass(np.zeros(18, np.float32)),
        lambda: highpass(np.zeros((100, 2), np.float32)),
        lambda: highpass(np.array([0.0, np.nan] * 50)),
        lambda: mix_rms(np.zeros(100), 16000, np.zeros(100), 32000, 1.5),
        lambda: normalize_peak(np.zeros(10), peak=0),
    ],
)
def test_bad_arguments_raise_audio_value_error(call):
    with pytest.raises(AudioValueError) as info:
        call()
    assert isinstance(info.value, (RVCAudioError, ValueError)) and "\n" not in str(info.value)


def test_mix_rms_blocks_equal_whole_signal_formula():
    """mix_rms works block by block (bounded memory for long audio); the numbers are those of the
    whole-signal formula, bit for bit, across block and frame boundaries."""
    from rvc_audio import _dsp

    def whole(src, sr1, tgt, sr2, rate):
        def frame_rms(y, sr):
            hop = sr // 2
            padded = np.pad(y.astype(np.float64), hop)
            frames = np.lib.stride_tricks.sliding_window_view(padded, 2 * hop)[::hop]
            return np.sqrt(np.einsum("ij,ij->i", frames, frames) / (2 * hop))

        rms1 = _dsp._interp_linear(frame_rms(src, sr1), len(tgt))
        rms2 = np.maximum(_dsp._interp_linear(frame_rms(tgt, sr2), len(tgt)), 1e-6)
        return (tgt.astype(np.float64) * (rms1 ** (1.0 - rate) * rms2 ** (rate - 1.0))).astype(tgt.dtype)

    rng = np.random.default_rng(5)
    src = rng.standard_normal(16000 * 23 + 77) * np.repeat(rng.uniform(0, 1, 24), 16000)[: 16000 * 23 + 77]
    tgt = (rng.standard_normal(40000 * 23 + 193) * 0.3).astype(np.float32)
    for rate in (0.0, 0.25, 0.9):
        np.testing.assert_array_equal(mix_rms(src, 16000, tgt, 40000, rate), whole(src, 16000, tgt, 40000, rate))
    short = tgt[:5000]
    np.testing.assert_array_equal(
        mix_rms(src[:2000], 16000, short, 40000, 0.5), whole(src[:2000], 16000, short, 40000, 0.5)
    )
