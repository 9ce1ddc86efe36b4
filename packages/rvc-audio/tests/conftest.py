"""Fixtures for rvc-audio's tests: a short real speech clip and helpers to compare signals."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import scipy.io.wavfile


@pytest.fixture(scope="session")
def speech16k(fixtures_dir: Path) -> np.ndarray:
    """1.5 s of CMU ARCTIC speech, float32 at 16 kHz (int16 / 32768)."""
    sr, x = scipy.io.wavfile.read(fixtures_dir / "audio" / "arctic_a0007.wav")
    assert sr == 16000 and x.dtype == np.int16
    return (x[8000:32000] / 32768).astype(np.float32)


def _snr_db(ref: np.ndarray, got: np.ndarray, *, below_hz: float | None = None, sr: int | None = None) -> float:
    """SNR of ``got`` against ``ref`` over their common length, in dB; optionally only below ``below_hz``."""
    n = min(len(ref), len(got))
    ref64, err = ref[:n].astype(np.float64), ref[:n].astype(np.float64) - got[:n]
    if below_hz is None:
        return float(10 * np.log10(np.sum(ref64**2) / max(np.sum(err**2), 1e-30)))
    assert sr is not None
    keep = np.fft.rfftfreq(n, 1 / sr) < below_hz
    s, e = np.abs(np.fft.rfft(ref64)[keep]) ** 2, np.abs(np.fft.rfft(err)[keep]) ** 2
    return float(10 * np.log10(np.sum(s) / max(np.sum(e), 1e-30)))


def _write_video_mp4(path: Path, audio: np.ndarray | None, sr: int, seconds: float) -> None:
    """A tiny mp4: a 32x32 mpeg4 video track, plus an AAC track of ``audio`` unless None."""
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        astream = out.add_stream("aac", rate=sr, layout="mono") if audio is not None else None
        for i in range(int(seconds * 10)):
            img = np.full((32, 32, 3), (i * 20) % 255, np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if astream is not None:
            frame = av.AudioFrame.from_ndarray(audio[None, :].astype(np.float32), format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = sr, 0, Fraction(1, sr)
            for packet in [*astream.encode(frame), *astream.encode(None)]:
                out.mux(packet)


@pytest.fixture(scope="session")
def snr_db():
    """``snr_db(ref, got) -> dB`` over the common length."""
    return _snr_db


@pytest.fixture(scope="session")
def write_video_mp4():
    """``write_video_mp4(path, audio_or_None, sr, seconds)``."""
    return _write_video_mp4
