"""pm / harvest / dio, frame bookkeeping, curve files and input checks (no mlx involved)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import medfilt

from rvc_f0 import METHODS, RVCF0Error, extract_f0, postprocess_f0
from rvc_f0.errors import CurveFileError, CurveFileNotFoundError, F0InputError, UnknownMethodError

SR = 16000


def tone(hz: float, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Two harmonics plus a little noise (WORLD's harvest calls a perfectly periodic tone unvoiced)."""
    t = np.arange(int(SR * seconds)) / SR
    noise = 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    return (0.3 * np.sin(2 * np.pi * hz * t) + 0.1 * np.sin(2 * np.pi * 2 * hz * t) + noise).astype(np.float32)


@pytest.fixture(scope="module")
def tone220():
    return tone(220.0)


@pytest.mark.parametrize("method", ["pm", "harvest", "dio"])
def test_tone_pitch_and_frame_count(tone220, method):
    f0 = extract_f0(tone220, method=method)
    assert f0.dtype == np.float32 and f0.shape == (len(tone220) // 160,)
    middle = f0[20:80]
    assert np.all(middle > 0)
    assert np.max(np.abs(middle - 220.0)) < 3.0


@pytest.mark.parametrize("method", ["harvest", "dio"])
def test_world_frame_rule(tone220, method):
    # WORLD gives len // 160 + 1 frames; p_len cuts at the end or zero-pads at the end
    full = extract_f0(tone220, method=method, p_len=len(tone220) // 160 + 1)
    short = extract_f0(tone220, method=method)
    np.testing.assert_array_equal(short, full[:-1])
    longer = extract_f0(tone220, method=method, p_len=len(full) + 3)
    np.testing.assert_array_equal(longer[: len(full)], full)
    assert np.all(longer[len(full) :] == 0)


def test_pm_centred_padding(tone220):
    import parselmouth

    raw = (
        parselmouth.Sound(tone220.astype(np.float64), SR)
        .to_pitch_ac(time_step=0.01, voicing_threshold=0.6, pitch_floor=50, pitch_ceiling=1100)
        .selected_array["frequency"]
    )
    p_len = len(tone220) // 160
    pad = (p_len - len(raw) + 1) // 2
    assert pad > 0
    f0 = extract_f0(tone220, method="pm")
    np.testing.assert_allclose(f0[pad : pad + len(raw)], raw, rtol=1e-6)
    assert np.all(f0[:pad] == 0) and np.all(f0[pad + len(raw) :] == 0)


def test_harvest_median_filter(tone220):
    n = len(tone220) // 160 + 1
    rng = np.random.default_rng(1)
    x = (tone220 + 0.05 * rng.standard_normal(len(tone220))).astype(np.float32)
    x[6000:7600] = 0  # a gap: voiced/unvoiced edges that a 3-tap median changes
    raw = extract_f0(x, method="harvest", p_len=n, filter_radius=2)
    filtered = extract_f0(x, method="harvest", p_len=n, filter_radius=3)
    np.testing.assert_array_equal(filtered, medfilt(raw.astype(np.float64), 3).astype(np.float32))
    assert not np.array_equal(raw, filtered)
    # the filter runs on the whole curve, before the cut to p_len (as the reference)
    np.testing.assert_array_equal(extract_f0(x, method="harvest"), filtered[:-1])


@pytest.mark.parametrize("method", ["pm", "harvest", "dio"])
def test_silence_is_unvoiced(method):
    f0 = extract_f0(np.zeros(SR, np.float32), method=method)
    assert f0.shape == (100,) and np.all(f0 == 0)
    pitchf, coarse = postprocess_f0(f0)
    assert np.all(pitchf == 0) and np.all(coarse == 1)


@pytest.mark.parametrize("method", ["pm", "harvest", "dio"])
def test_very_short_audio(method):
    f0 = extract_f0(np.full(500, 0.01, np.float32), method=method)
    assert f0.shape == (3,) and np.all(np.isfinite(f0))
    assert extract_f0(np.zeros(100, np.float32), method=method).shape == (0,)


# --- curve files ---------------------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "curve.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_curve_interpolated_onto_frames(tmp_path):
    p = write(tmp_path, "time_seconds,hz\n0.1,100\n0.3,300\n# a comment\n\n0.5,0\n")
    audio = np.zeros(SR, np.float32)  # the curve replaces the estimate: the audio does not matter
    f0 = extract_f0(audio, method=p)
    assert f0.shape == (100,)
    want = np.zeros(100)
    frames = np.arange(10, 51)
    want[frames] = np.interp(frames, [10, 30, 50], [100, 300, 0])
    np.testing.assert_allclose(f0, want, rtol=1e-6)
    assert f0[30] == 300 and f0[20] == pytest.approx(200)
    # a string path works too, and p_len applies
    assert extract_f0(audio, method=str(p), p_len=20).shape == (20,)


@pytest.mark.parametrize(
    "text, needle",
    [
        ("0.1,100\nabc,5\n", "line 2"),
        ("0.1,100,3\n", "line 1"),
        ("0.2,100\n0.1,100\n", "increase"),
        ("0.1,-5\n", "hz >= 0"),
        ("time,hz\n", "no time_seconds,hz rows"),
        ("0.1,nan\n", "line 1"),
    ],
)
def test_bad_curve_files(tmp_path, text, needle):
    with pytest.raises(CurveFileError, match=needle) as exc:
        extract_f0(np.zeros(SR, np.float32), method=write(tmp_path, text))
    assert isinstance(exc.value, ValueError) and "curve.csv" in str(exc.value)


def test_missing_curve_file(tmp_path):
    with pytest.raises(CurveFileNotFoundError, match="does not exist") as exc:
        extract_f0(np.zeros(SR, np.float32), method=tmp_path / "nope.csv")
    assert isinstance(exc.value, FileNotFoundError)


# --- dispatch and input checks -------------------------------------------------------------


def test_unknown_method_lists_the_methods():
    assert METHODS == ("rmvpe", "pm", "harvest", "dio", "crepe", "crepe-tiny", "fcpe")
    with pytest.raises(UnknownMethodError) as exc:
        extract_f0(np.zeros(SR, np.float32), method="crepe-xl")
    assert isinstance(exc.value, ValueError)
    for m in METHODS:
        assert m in str(exc.value)


@pytest.mark.parametrize(
    "audio, kwargs, needle",
    [
        (np.zeros((2, SR), np.float32), {}, "1-D"),
        (np.zeros(SR, np.int16), {}, "32768"),
        (np.zeros(0, np.float32), {}, "empty"),
        (np.full(SR, np.nan, np.float32), {}, "NaN"),
        (np.zeros(SR, np.float32), {"sample_rate": 44100}, "16 kHz"),
        (np.zeros(SR, np.float32), {"p_len": -1}, "p_len"),
        (np.zeros(SR, np.float32), {"filter_radius": -1}, "filter_radius"),
    ],
)
def test_bad_audio(audio, kwargs, needle):
    with pytest.raises(F0InputError, match=needle) as exc:
        extract_f0(audio, method="pm", **kwargs)
    assert isinstance(exc.value, (RVCF0Error, ValueError))


def test_import_is_light():
    # `import rvc_f0` (done above) must not import mlx: only the rmvpe path does
    import subprocess

    code = "import sys, rvc_f0; print('mlx.core' in sys.modules, 'pyworld' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
