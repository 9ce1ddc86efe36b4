"""load_audio: real recordings, PCM variants, mixdown, video containers and every kind of bad input."""

from __future__ import annotations

import logging
import wave

import numpy as np
import pytest
import scipy.io.wavfile

from rvc_audio import RVCAudioError, load_audio, resample, save_audio
from rvc_audio.errors import (
    AudioDecodeError,
    AudioFileNotFoundError,
    AudioIsADirectoryError,
    EmptyAudioError,
    NoAudioStreamError,
)

CLIPS = {"vocadito_10.wav": 44100, "arctic_a0007.wav": 16000, "speechbrain_LJ050-0131.wav": 22050}


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_real_clips_against_independent_decode(fixtures_dir, name, snr_db):
    path = fixtures_dir / "audio" / name
    sr, raw = scipy.io.wavfile.read(path)
    assert sr == CLIPS[name] and raw.dtype == np.int16 and raw.ndim == 1
    ref_native = raw.astype(np.float32) / 32768

    native = load_audio(path, sample_rate=sr)
    assert native.dtype == np.float32 and native.ndim == 1
    np.testing.assert_array_equal(native, ref_native)  # no resampling: bit exact

    y = load_audio(path)  # 16 kHz
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - len(raw) * 16000 / sr) <= 2
    # libswresample at its defaults (as `ffmpeg -ar`) against soxr VHQ: the two agree to 67-96 dB
    # below 4 kHz; swr's wider transition band makes them differ near Nyquist (full band 23-47 dB).
    ref = resample(ref_native, sr, 16000, quality="VHQ")
    assert snr_db(ref, y, below_hz=4000, sr=16000) >= 60.0
    assert snr_db(ref, y) >= 20.0

    y48 = load_audio(path, sample_rate=48000)
    assert abs(len(y48) - len(raw) * 48000 / sr) <= 2
    ref48 = resample(ref_native, sr, 48000, quality="VHQ")
    assert snr_db(ref48, y48, below_hz=0.4 * sr, sr=48000) >= 60.0


def _write_pcm_wav(path, ints: np.ndarray, width: int, channels: int = 1) -> None:
    """8-bit (unsigned) and 24-bit PCM through the wave module."""
    if width == 1:
        data = (ints.astype(np.int16) + 128).astype(np.uint8).tobytes()
    else:  # 24-bit little endian: low three bytes of each int32
        data = ints.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(16000)
        w.writeframes(data)


def test_pcm_widths_and_float_wav(tmp_path):
    rng = np.random.default_rng(0)
    x = np.clip(rng.standard_normal(8000) * 0.3, -1, 0.999).astype(np.float64)

    i8 = np.round(x * 127).astype(np.int16)
    _write_pcm_wav(tmp_path / "u8.wav", i8, 1)
    np.testing.assert_array_equal(load_audio(tmp_path / "u8.wav"), (i8 / 128).astype(np.float32))

    i16 = np.round(x * 32767).astype(np.int16)
    scipy.io.wavfile.write(tmp_path / "s16.wav", 16000, i16)
    np.testing.assert_array_equal(load_audio(tmp_path / "s16.wav"), (i16 / 32768).astype(np.float32))

    i24 = np.round(x * (2**23 - 1)).astype(np.int32)
    _write_pcm_wav(tmp_path / "s24.wav", i24, 3)
    np.testing.assert_array_equal(load_audio(tmp_path / "s24.wav"), (i24 / 2**23).astype(np.float32))

    i32 = np.round(x * (2**31 - 1)).astype(np.int32)
    scipy.io.wavfile.write(tmp_path / "s32.wav", 16000, i32)
    np.testing.assert_array_equal(load_audio(tmp_path / "s32.wav"), (i32 / 2**31).astype(np.float32))

    for dtype in (np.float32, np.float64):
        scipy.io.wavfile.write(tmp_path / "f.wav", 16000, x.astype(dtype))
        np.testing.assert_array_equal(load_audio(tmp_path / "f.wav"), x.astype(np.float32))

    # a 24-bit file at 44.1 kHz is resampled like any other
    y = load_audio(tmp_path / "s24.wav", sample_rate=8000)
    assert y.shape == (4000,)


def test_stereo_and_multichannel_mixdown_is_the_mean(tmp_path, snr_db):
    rng = np.random.default_rng(2)
    left = (rng.standard_normal(22050) * 0.2).astype(np.float32)
    right = (np.sin(np.arange(22050) * 0.05) * 0.5).astype(np.float32)
    scipy.io.wavfile.write(tmp_path / "st.wav", 22050, np.stack([left, right], axis=1))
    mean = ((left.astype(np.float64) + right) / 2).astype(np.float32)
    np.testing.assert_allclose(load_audio(tmp_path / "st.wav", sample_rate=22050), mean, rtol=0, atol=1e-7)
    y = load_audio(tmp_path / "st.wav")
    assert len(y) == 16000
    assert snr_db(resample(mean, 22050, 16000, quality="VHQ"), y, below_hz=4000, sr=16000) >= 60.0

    six = np.stack([left * k for k in (1, 2, 3, 4, 5, 6)], axis=1)  # 5.1 layout
    scipy.io.wavfile.write(tmp_path / "six.wav", 22050, six)
    np.testing.assert_allclose(load_audio(tmp_path / "six.wav", sample_rate=22050), left * 3.5, rtol=1e-6, atol=1e-7)

    # the same mean through a lossy stereo codec
    save_audio(tmp_path / "st.m4a", np.stack([left, right], axis=1), 22050)
    assert snr_db(mean, load_audio(tmp_path / "st.m4a", sample_rate=22050)) >= 20.0


def test_audio_track_of_a_video(tmp_path, speech16k, write_video_mp4, snr_db):
    write_video_mp4(tmp_path / "clip.mp4", speech16k, 16000, seconds=1.5)
    y = load_audio(tmp_path / "clip.mp4")
    assert abs(len(y) - len(speech16k)) <= 1024  # AAC pads the last frame
    assert snr_db(speech16k, y) >= 20.0
    y32 = load_audio(tmp_path / "clip.mp4", sample_rate=32000)
    assert abs(len(y32) - 2 * len(speech16k)) <= 2048


def test_silent_file_gives_zeros(tmp_path):
    scipy.io.wavfile.write(tmp_path / "silence.wav", 44100, np.zeros(44100, np.int16))
    y = load_audio(tmp_path / "silence.wav")
    assert y.shape == (16000,) and np.isfinite(y).all() and not y.any()


def test_odd_file_names_are_not_urls(tmp_path, speech16k):
    path = tmp_path / "concat:voice #1?.wav"
    scipy.io.wavfile.write(path, 16000, (speech16k * 32768).astype(np.int16))
    assert load_audio(path).shape == speech16k.shape


# ------------------------------------------------------------------ bad input


def _raises(cls, path, **kw):
    with pytest.raises(cls) as info:
        load_audio(path, **kw)
    msg = str(info.value)
    assert isinstance(info.value, RVCAudioError)
    assert path.name in msg and "\n" not in msg
    return msg


def test_missing_file(tmp_path):
    msg = _raises(AudioFileNotFoundError, tmp_path / "nope.wav")
    assert "does not exist" in msg
    with pytest.raises(FileNotFoundError):
        load_audio(tmp_path / "nope.wav")


def test_directory(tmp_path):
    (tmp_path / "dir.wav").mkdir()
    _raises(AudioIsADirectoryError, tmp_path / "dir.wav")
    with pytest.raises(IsADirectoryError):
        load_audio(tmp_path / "dir.wav")


def test_zero_length_file(tmp_path):
    (tmp_path / "empty.mp3").write_bytes(b"")
    assert "0 bytes" in _raises(EmptyAudioError, tmp_path / "empty.mp3")


def test_wav_without_samples(tmp_path):
    with wave.open(str(tmp_path / "nodata.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
    assert "no samples" in _raises(EmptyAudioError, tmp_path / "nodata.wav")


@pytest.mark.parametrize(
    "name,data",
    [
        ("notes.wav", b"These are my lyrics, not audio.\n" * 20),
        ("noise.mp3", np.random.default_rng(3).integers(0, 256, 4000, dtype=np.uint8).tobytes()),
        ("header_only.wav", b"RIFF\x24\x00\x00\x00WAVEfmt "),
    ],
)
def test_not_audio(tmp_path, name, data):
    (tmp_path / name).write_bytes(data)
    msg = _raises(AudioDecodeError, tmp_path / name)
    assert "not a readable media file" in msg


def test_truncated_wav(tmp_path, speech16k):
    scipy.io.wavfile.write(tmp_path / "full.wav", 16000, (speech16k * 32768).astype(np.int16))
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    assert "truncated" in _raises(AudioDecodeError, tmp_path / "cut.wav")


def test_truncated_flac_and_m4a(tmp_path, speech16k):
    for suffix in ("flac", "m4a"):
        save_audio(tmp_path / f"full.{suffix}", speech16k, 16000)
        data = (tmp_path / f"full.{suffix}").read_bytes()
        (tmp_path / f"cut.{suffix}").write_bytes(data[: len(data) // 2])
        msg = _raises(AudioDecodeError, tmp_path / f"cut.{suffix}")
        assert "corrupt or truncated" in msg or "not a readable media file" in msg


def test_truncated_mp3_is_logged(tmp_path, speech16k, caplog):
    # mp3 has no reliable length header: FFmpeg estimates it, so a shortfall only warns.
    save_audio(tmp_path / "full.mp3", speech16k, 16000)
    data = (tmp_path / "full.mp3").read_bytes()
    (tmp_path / "cut.mp3").write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="rvc_audio"):
        y = load_audio(tmp_path / "cut.mp3")
    assert len(y) < 0.6 * len(speech16k)
    assert any("truncated" in r.getMessage() and "cut.mp3" in r.getMessage() for r in caplog.records)


def test_video_without_audio(tmp_path, write_video_mp4):
    write_video_mp4(tmp_path / "silent_film.mp4", None, 16000, seconds=0.5)
    msg = _raises(NoAudioStreamError, tmp_path / "silent_film.mp4")
    assert "video" in msg


# -- probe_audio: load_audio's refusals, cheaply -----------------------------------------------


def test_probe_reports_the_stream(fixtures_dir, tmp_path, speech16k):
    from rvc_audio import probe_audio

    for name, rate in CLIPS.items():
        sr, raw = scipy.io.wavfile.read(fixtures_dir / "audio" / name)
        info = probe_audio(fixtures_dir / "audio" / name)
        assert (info.sample_rate, info.channels, info.codec) == (rate, 1, "pcm_s16le")
        assert info.duration == pytest.approx(len(raw) / sr, abs=1e-3)
    stereo = np.stack([speech16k, -speech16k], axis=1)
    save_audio(tmp_path / "st.flac", stereo, 16000)
    info = probe_audio(tmp_path / "st.flac")
    assert (info.sample_rate, info.channels, info.codec) == (16000, 2, "flac")
    assert info.duration == pytest.approx(len(speech16k) / 16000, abs=0.01)


def test_probe_refuses_what_load_audio_refuses(tmp_path, speech16k, write_video_mp4):
    from rvc_audio import probe_audio

    scipy.io.wavfile.write(tmp_path / "full.wav", 16000, (speech16k * 32768).astype(np.int16))
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    (tmp_path / "notes.wav").write_bytes(b"These are my lyrics, not audio.\n" * 20)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + np.random.default_rng(0).bytes(500))
    (tmp_path / "empty.wav").write_bytes(b"")
    write_video_mp4(tmp_path / "silent_film.mp4", None, 16000, seconds=0.5)
    for name, cls in (("cut.wav", AudioDecodeError), ("notes.wav", AudioDecodeError),
                      ("corrupt.wav", AudioDecodeError), ("empty.wav", EmptyAudioError),
                      ("silent_film.mp4", NoAudioStreamError), ("nope.wav", AudioFileNotFoundError)):  # fmt: skip
        with pytest.raises(cls) as probed:
            probe_audio(tmp_path / name)
        with pytest.raises(cls) as loaded:
            load_audio(tmp_path / name)
        assert str(probed.value) == str(loaded.value), name
