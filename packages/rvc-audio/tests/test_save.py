"""save_audio: round trips for every format, exact PCM, atomic writes, no clobbering, bad requests."""

from __future__ import annotations

import errno
from pathlib import Path

import av
import numpy as np
import pytest
import scipy.io.wavfile

import rvc_audio._io
from rvc_audio import RVCAudioError, load_audio, resample, save_audio
from rvc_audio.errors import (
    AudioFileExistsError,
    AudioFileNotFoundError,
    AudioIOError,
    AudioIsADirectoryError,
    AudioValueError,
    UnsupportedFormatError,
)

LSB = 1 / 32768


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".part")]


@pytest.mark.parametrize("sr", [16000, 40000, 48000])
@pytest.mark.parametrize("name,subtype", [("out.wav", None), ("out.wav", "float"), ("out.flac", None)])
def test_lossless_round_trip(tmp_path, speech16k, name, subtype, sr):
    x = speech16k if sr == 16000 else resample(speech16k, 16000, sr)
    path = save_audio(tmp_path / name, x, sr, subtype=subtype)
    y = load_audio(path, sample_rate=sr)
    assert y.shape == x.shape
    if subtype == "float":
        np.testing.assert_array_equal(y, x)
    else:  # 16-bit: rint(x * 32768) / 32768
        np.testing.assert_allclose(y, x, rtol=0, atol=0.5 * LSB + 1e-9)
    codec = "flac" if name.endswith(".flac") else "pcm_f32le" if subtype else "pcm_s16le"
    with av.open(str(path)) as c:
        assert c.streams.audio[0].sample_rate == sr
        assert c.streams.audio[0].codec_context.name == codec


# (file name, subtype, codec stored, SNR floor in dB); measured SNR 25-54 dB on this speech.
LOSSY = [
    ("out.mp3", None, "mp3", 20.0),
    ("out.ogg", None, "vorbis", 20.0),
    ("out.ogg", "opus", "opus", 20.0),
    ("out.opus", None, "opus", 20.0),
    ("out.m4a", None, "aac", 20.0),
]


@pytest.mark.parametrize("sr", [16000, 40000])
@pytest.mark.parametrize("name,subtype,codec,floor", LOSSY)
def test_lossy_round_trip(tmp_path, speech16k, snr_db, name, subtype, codec, floor, sr):
    x = speech16k if sr == 16000 else resample(speech16k, 16000, sr)
    path = save_audio(tmp_path / name, x, sr, subtype=subtype)
    with av.open(str(path)) as c:
        assert c.streams.audio[0].codec_context.name.startswith(codec)  # the mp3 decoder is "mp3float"
    y = load_audio(path, sample_rate=sr)
    assert len(x) <= len(y) <= len(x) + 1024 * sr // 16000 + 8  # at most AAC's padding frame
    assert snr_db(x, y) >= floor  # also proves zero delay: any offset would ruin the SNR
    assert np.corrcoef(x, y[: len(x)])[0, 1] >= 0.99


def test_int16_written_verbatim(tmp_path):
    pcm = np.random.default_rng(4).integers(-32768, 32768, 20000).astype(np.int16)
    pcm[:4] = [-32768, 32767, 0, -1]
    save_audio(tmp_path / "a.wav", pcm, 32000)
    sr, back = scipy.io.wavfile.read(tmp_path / "a.wav")
    assert sr == 32000 and back.dtype == np.int16
    np.testing.assert_array_equal(back, pcm)
    save_audio(tmp_path / "a.flac", pcm, 32000)
    np.testing.assert_array_equal(np.round(load_audio(tmp_path / "a.flac", sample_rate=32000) * 32768), pcm)


def test_float_to_pcm16_rounds_and_clips(tmp_path):
    x = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 1.7, -3.0, 0.4 * LSB, 0.6 * LSB], np.float32)
    save_audio(tmp_path / "c.wav", x, 16000)
    _, back = scipy.io.wavfile.read(tmp_path / "c.wav")
    np.testing.assert_array_equal(back, [0, 16384, -16384, 32767, -32768, 32767, -32768, 0, 1])


def test_stereo_round_trip(tmp_path):
    st = np.stack([np.linspace(-0.5, 0.5, 8000), np.zeros(8000)], axis=1).astype(np.float32)
    save_audio(tmp_path / "st.wav", st, 16000, subtype="FLOAT")
    _, back = scipy.io.wavfile.read(tmp_path / "st.wav")
    np.testing.assert_array_equal(back, st)


def test_explicit_format_overrides_suffix(tmp_path, speech16k):
    save_audio(tmp_path / "voice.bin", speech16k, 16000, format="flac")
    with av.open(str(tmp_path / "voice.bin")) as c:
        assert c.format.name == "flac"


def test_no_overwrite_without_flag(tmp_path, speech16k):
    path = tmp_path / "keep.wav"
    save_audio(path, speech16k, 16000)
    before = path.read_bytes()
    with pytest.raises(AudioFileExistsError) as info:
        save_audio(path, np.zeros(1000, np.float32), 16000)
    assert isinstance(info.value, FileExistsError) and "keep.wav" in str(info.value)
    assert "overwrite=True" in str(info.value)
    assert path.read_bytes() == before
    save_audio(path, np.zeros(1000, np.float32), 16000, overwrite=True)
    assert not load_audio(path).any() and len(load_audio(path)) == 1000
    assert _leftovers(tmp_path) == []


def test_failed_encode_leaves_nothing(tmp_path, speech16k):
    with pytest.raises(AudioIOError) as info:
        save_audio(tmp_path / "bad.m4a", speech16k, 16000, bitrate=1)  # the AAC encoder refuses 1 bit/s
    assert "bad.m4a" in str(info.value) and "nothing was written" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_write_keeps_the_old_file(tmp_path, speech16k, monkeypatch):
    path = tmp_path / "song.wav"
    save_audio(path, speech16k, 16000)
    before = path.read_bytes()

    def disk_full(fh, *args, **kwargs):
        fh.write(b"RIFF partial data")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rvc_audio._io, "_encode", disk_full)
    with pytest.raises(AudioIOError) as info:
        save_audio(path, speech16k * 0.5, 16000, overwrite=True)
    assert "No space left" in str(info.value) and "song.wav" in str(info.value)
    assert path.read_bytes() == before
    with pytest.raises(AudioIOError):
        save_audio(tmp_path / "new.wav", speech16k, 16000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.wav"]


@pytest.mark.parametrize(
    "name,kwargs,cls",
    [
        ("out.xyz", {}, UnsupportedFormatError),
        ("out", {}, UnsupportedFormatError),
        ("out.wav", {"format": "aiff"}, UnsupportedFormatError),
        ("out.wav", {"subtype": "PCM_24"}, UnsupportedFormatError),
        ("out.flac", {"subtype": "FLOAT"}, UnsupportedFormatError),
        ("out.mp3", {"bitrate": -5}, AudioValueError),
        ("missing_dir/out.wav", {}, AudioFileNotFoundError),
    ],
)
def test_bad_requests(tmp_path, speech16k, name, kwargs, cls):
    with pytest.raises(cls) as info:
        save_audio(tmp_path / name, speech16k, 16000, **kwargs)
    msg = str(info.value)
    assert isinstance(info.value, RVCAudioError) and "\n" not in msg
    assert (tmp_path / name).name in msg or "missing_dir" in msg
    assert _leftovers(tmp_path) == []


def test_directory_target(tmp_path, speech16k):
    (tmp_path / "d.wav").mkdir()
    with pytest.raises(AudioIsADirectoryError) as info:
        save_audio(tmp_path / "d.wav", speech16k, 16000)
    assert isinstance(info.value, IsADirectoryError) and "d.wav" in str(info.value)


@pytest.mark.parametrize(
    "audio,sr",
    [
        (np.array([0.0, np.nan, 0.1], np.float32), 16000),
        (np.zeros((100, 3), np.float32), 16000),
        (np.zeros(0, np.float32), 16000),
        (np.zeros(100, np.complex64), 16000),
        (np.zeros(100, np.float32), 0),
    ],
)
def test_bad_arrays(tmp_path, audio, sr):
    with pytest.raises(AudioValueError) as info:
        save_audio(tmp_path / "x.wav", audio, sr)
    assert "x.wav" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_silence_round_trips(tmp_path):
    save_audio(tmp_path / "s.flac", np.zeros(16000, np.float32), 16000)
    y = load_audio(tmp_path / "s.flac")
    assert y.shape == (16000,) and not y.any()


def test_readme_example_runs(tmp_path, monkeypatch):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - our own README
    assert load_audio(tmp_path / "out.mp3").shape[0] > 0 and (tmp_path / "tone.flac").is_file()
