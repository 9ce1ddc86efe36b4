"""Decoding and encoding through PyAV (FFmpeg's libraries; no ffmpeg executable needed)."""

from __future__ import annotations

import logging
import os
import secrets
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, NamedTuple, cast

import av
import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._dsp import _check_audio, _check_rate, _int_to_float32, resample
from .errors import (
    AudioDecodeError,
    AudioFileExistsError,
    AudioFileNotFoundError,
    AudioIOError,
    AudioIsADirectoryError,
    AudioValueError,
    EmptyAudioError,
    NoAudioStreamError,
    RVCAudioError,
    UnsupportedFormatError,
)

logger = logging.getLogger(__name__)

# Integer sample formats: full scale (int16 / 32768, as the reference) and offset (unsigned 8-bit).
_INT_SCALE = {"u8": (128.0, 128.0), "s16": (32768.0, 0.0), "s32": (2.0**31, 0.0), "s64": (2.0**63, 0.0)}


def _fmt_path(path: Path) -> str:
    return f"'{path}'"


def _ffmpeg_reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


# ---------------------------------------------------------------------------------------------
# load


def _frame_to_mono(frame: av.AudioFrame) -> np.ndarray:
    """One decoded frame to float32 mono: integer PCM scaled to [-1, 1), channels averaged."""
    data = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if not frame.format.is_planar:
        data = data.reshape(-1, channels).T  # interleaved (1, n*ch) -> (ch, n)
    name = frame.format.name.rstrip("p")
    if name in _INT_SCALE:
        scale, offset = _INT_SCALE[name]
        data = (data.astype(np.float64) - offset) / scale
    if channels == 1:
        return data[0].astype(np.float32)
    return data.mean(axis=0, dtype=np.float64).astype(np.float32)


def _swr_resample(mono: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """libswresample (what ``ffmpeg -ar`` uses), default settings, flushed to the end."""
    frame = av.AudioFrame.from_ndarray(mono[None, :], format="flt", layout="mono")
    frame.sample_rate = in_rate
    frame.pts = 0
    frame.time_base = Fraction(1, in_rate)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=out_rate)
    out = resampler.resample(frame) + resampler.resample(None)
    if not out:
        return np.zeros(0, np.float32)
    return np.concatenate([f.to_ndarray()[0] for f in out]).astype(np.float32, copy=False)


def _wav_truncation(fh: BinaryIO, size: int) -> tuple[int, int] | None:
    """(declared, present) bytes of a RIFF/WAVE ``data`` chunk that is cut short, else None."""
    head = fh.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= size:
        fh.seek(pos)
        chunk = fh.read(8)
        cid, csize = chunk[:4], int.from_bytes(chunk[4:8], "little")
        if cid == b"data":
            present = size - pos - 8
            # 0 and 0xFFFFFFFF mark streamed files whose size was never filled in.
            if csize in (0, 0xFFFFFFFF) or present >= csize:
                return None
            return csize, present
        pos += 8 + csize + (csize & 1)
    return None


def _check_input(path: str | os.PathLike[str]) -> tuple[Path, int]:
    p = Path(path)
    if p.is_dir():
        raise AudioIsADirectoryError(f"{_fmt_path(p)} is a folder, not an audio file; pass a file inside it")
    if not p.exists():
        raise AudioFileNotFoundError(f"{_fmt_path(p)} does not exist; check the path and the current folder")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise AudioIOError(f"{_fmt_path(p)} cannot be read ({exc.strerror}); check its permissions") from exc
    if size == 0:
        raise EmptyAudioError(f"{_fmt_path(p)} is an empty file (0 bytes); re-export or re-download it")
    return p, size


def load_audio(path: str | os.PathLike[str], *, sample_rate: int = 16000) -> NDArray[np.float32]:
    """Decode any audio FFmpeg reads to float32 mono at ``sample_rate``.

    wav (8/16/24/32-bit integer, 32/64-bit float), flac, mp3, ogg (vorbis/opus), m4a/aac, the
    audio track of a video, and every other format the bundled FFmpeg knows. The best audio
    stream (FFmpeg's choice) is used. Integer PCM is scaled to [-1, 1) (int16 / 32768). Channels
    are averaged (mean) into mono. A different rate is converted with libswresample at its
    default settings, the resampler of the reference's ``ffmpeg -ar``. No peak normalisation
    is applied (see :func:`normalize_peak`); all-silent files give zeros.

    Args:
        path: the file.
        sample_rate: output rate in Hz (the RVC pipeline analyses at 16000).

    Returns:
        ``(samples,)`` float32, ``samples ~= duration_seconds * sample_rate``.

    Raises:
        AudioFileNotFoundError, AudioIsADirectoryError, EmptyAudioError (0 bytes or no
        samples), NoAudioStreamError, AudioDecodeError (not audio, corrupt, truncated),
        AudioIOError (unreadable), AudioValueError (bad ``sample_rate``).
    """
    sample_rate = _check_rate(sample_rate, "sample_rate")
    p, size = _check_input(path)
    try:
        with open(p, "rb") as fh:  # a file object: FFmpeg never interprets the name as a protocol/URL
            chunks, rate, declared, _, _ = _decode_file(fh, p, size)
    except RVCAudioError:
        raise
    except OSError as exc:
        raise AudioIOError(f"{_fmt_path(p)} cannot be read ({exc.strerror or exc}); check its permissions") from exc
    if rate is None or sum(len(c) for c in chunks) == 0:
        raise EmptyAudioError(f"{_fmt_path(p)} has an audio stream but no samples; use a file with some audio in it")
    mono = np.concatenate(chunks)
    decoded = len(mono) / rate
    if declared is not None and declared - decoded > max(0.5, 0.05 * declared):
        logger.warning(
            "%s: decoded %.2f s but the container declares %.2f s; the file may be truncated", p, decoded, declared
        )
    if rate != sample_rate:
        mono = _swr_resample(mono, rate, sample_rate)
    return mono


class AudioInfo(NamedTuple):
    """What :func:`probe_audio` found: the best audio stream's rate (Hz), channel count, the
    duration its container declares (seconds, None when it declares none) and codec name."""

    sample_rate: int
    channels: int
    duration: float | None
    codec: str


def probe_audio(path: str | os.PathLike[str]) -> AudioInfo:
    """Check cheaply that ``path`` is audio :func:`load_audio` can decode, without decoding it all.

    Runs :func:`load_audio`'s checks on the file (exists, not a folder, not empty, WAV header
    not cut short), opens the container and decodes its first audio frames (at most ~1 s), so
    a corrupt, truncated-header or non-audio file is refused before any slow work. Damage
    later in the file is only found by :func:`load_audio`.

    Returns:
        :class:`AudioInfo` ``(sample_rate, channels, duration, codec)``.

    Raises:
        the errors of :func:`load_audio`.
    """
    p, size = _check_input(path)
    try:
        with open(p, "rb") as fh:
            return _probe_file(fh, p, size)
    except RVCAudioError:
        raise
    except OSError as exc:
        raise AudioIOError(f"{_fmt_path(p)} cannot be read ({exc.strerror or exc}); check its permissions") from exc


def _probe_file(fh: BinaryIO, p: Path, size: int) -> AudioInfo:
    chunks, rate, declared, channels, codec = _decode_file(fh, p, size, max_seconds=1.0)
    if rate is None or sum(len(c) for c in chunks) == 0:
        raise EmptyAudioError(f"{_fmt_path(p)} has an audio stream but no samples; use a file with some audio in it")
    return AudioInfo(sample_rate=rate, channels=channels, duration=declared, codec=codec)


def _decode_file(
    fh: BinaryIO, p: Path, size: int, *, max_seconds: float | None = None
) -> tuple[list[np.ndarray], int | None, float | None, int, str]:
    """Decoded mono chunks, their rate (None if no frame), the duration the container declares, the
    channel count and the codec name; with ``max_seconds``, decoding stops after that much audio."""
    cut = _wav_truncation(fh, size)
    if cut is not None:
        raise AudioDecodeError(
            f"{_fmt_path(p)} is truncated: its WAV header declares {cut[0]} bytes of audio but only "
            f"{cut[1]} are present; re-export or re-download the file"
        )
    fh.seek(0)
    try:
        container = av.open(fh, mode="r", metadata_errors="replace")
    except av.FFmpegError as exc:
        raise AudioDecodeError(
            f"{_fmt_path(p)} is not a readable media file ({_ffmpeg_reason(exc)}); "
            "expected audio such as wav, flac, mp3, ogg or m4a, so check that it is not corrupt or truncated"
        ) from exc
    chunks: list[np.ndarray] = []
    rate: int | None = None
    with container:
        if not container.streams.audio:
            kinds: list[str] = sorted({s.type for s in container.streams}) or ["no"]
            raise NoAudioStreamError(
                f"{_fmt_path(p)} has no audio stream (it holds {', '.join(kinds)} streams only); "
                "pass a file that contains sound"
            )
        best = container.streams.best("audio")
        stream = best if isinstance(best, av.AudioStream) else container.streams.audio[0]
        declared = None
        if stream.duration and stream.time_base:
            declared = float(stream.duration * stream.time_base)
        elif container.duration:
            declared = container.duration / av.time_base
        try:
            for frame in container.decode(stream):
                if rate is not None and frame.sample_rate != rate:
                    raise AudioDecodeError(
                        f"{_fmt_path(p)} changes sample rate mid-stream ({rate} -> {frame.sample_rate} Hz); "
                        "convert it to a constant rate first"
                    )
                rate = frame.sample_rate
                chunks.append(_frame_to_mono(frame))
                if max_seconds is not None and sum(len(c) for c in chunks) >= max_seconds * rate:
                    break
        except av.FFmpegError as exc:
            at = sum(len(c) for c in chunks) / rate if rate else 0.0
            raise AudioDecodeError(
                f"{_fmt_path(p)} is corrupt or truncated: decoding failed after {at:.2f} s "
                f"({_ffmpeg_reason(exc)}); re-export or re-download the file"
            ) from exc
    return chunks, rate, declared, stream.codec_context.channels, stream.codec_context.name


# ---------------------------------------------------------------------------------------------
# save

# format -> (FFmpeg muxer, default subtype); format -> subtype -> (encoder, sample format fed to it)
_FORMATS = {"wav": ("wav", "PCM_16"), "flac": ("flac", "PCM_16"), "mp3": ("mp3", "MP3"),
            "ogg": ("ogg", "VORBIS"), "opus": ("ogg", "OPUS"), "m4a": ("ipod", "AAC")}  # fmt: skip
_SUFFIXES = {".wav": "wav", ".wave": "wav", ".flac": "flac", ".mp3": "mp3", ".ogg": "ogg", ".oga": "ogg",
             ".opus": "opus", ".m4a": "m4a", ".mp4": "m4a", ".aac": "m4a"}  # fmt: skip
_SUBTYPES = {
    "wav": {"PCM_16": ("pcm_s16le", "s16"), "FLOAT": ("pcm_f32le", "flt")},
    "flac": {"PCM_16": ("flac", "s16")},
    "mp3": {"MP3": ("libmp3lame", "flt")},
    "ogg": {"VORBIS": ("vorbis", "flt"), "OPUS": ("libopus", "flt")},
    "opus": {"OPUS": ("libopus", "flt")},
    "m4a": {"AAC": ("aac", "flt")},
}
_BIT_RATES = {"libmp3lame": 160_000, "vorbis": None, "libopus": 96_000, "aac": 160_000}


def _resolve_format(p: Path, format: str | None, subtype: str | None) -> tuple[str, str, str, str, str]:
    if format is None:
        fmt = _SUFFIXES.get(p.suffix.lower())
        if fmt is None:
            raise UnsupportedFormatError(
                f"{_fmt_path(p)}: cannot tell the format from the suffix {p.suffix or '(none)'!r}; "
                f"use one of {', '.join(sorted(_SUFFIXES))} or pass format= ({', '.join(_FORMATS)})"
            )
    else:
        fmt = format.lower().lstrip(".")
        if fmt not in _FORMATS:
            raise UnsupportedFormatError(
                f"{_fmt_path(p)}: format={format!r} is not supported; use one of {', '.join(_FORMATS)}"
            )
    muxer, default = _FORMATS[fmt]
    sub = (subtype or default).upper()
    if sub not in _SUBTYPES[fmt]:
        raise UnsupportedFormatError(
            f"{_fmt_path(p)}: subtype={subtype!r} is not available for {fmt}; use one of {', '.join(_SUBTYPES[fmt])}"
        )
    codec, sample_fmt = _SUBTYPES[fmt][sub]
    return fmt, muxer, sub, codec, sample_fmt


def _to_pcm16(arr: np.ndarray) -> np.ndarray:
    """int16 arrays verbatim; float arrays as ``clip(rint(x * 32768), -32768, 32767)``."""
    if arr.dtype == np.int16:
        return arr
    x = _int_to_float32(arr) if arr.dtype.kind in "iu" else arr
    scaled = np.rint(np.asarray(x, np.float64) * 32768.0)
    clipped = int(np.count_nonzero((scaled > 32767) | (scaled < -32768)))
    if clipped:
        logger.warning("clipping %d samples outside [-1, 1) while converting to 16-bit PCM", clipped)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def save_audio(
    path: str | os.PathLike[str],
    audio: ArrayLike,
    sample_rate: int,
    *,
    format: str | None = None,
    subtype: str | None = None,
    bitrate: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Encode ``audio`` to a file, atomically.

    The file is written to a hidden temporary file in the same folder and renamed into place,
    so a failure never leaves a partial file, and an existing file is only replaced when
    ``overwrite=True``.

    Formats (``format`` or the suffix) and subtypes (first = default):

    * ``wav`` (.wav): ``PCM_16`` (int16 arrays are written verbatim; floats as
      ``clip(rint(x * 32768))``, as the reference's int16 output), ``FLOAT`` (32-bit float).
    * ``flac`` (.flac): ``PCM_16``.
    * ``mp3`` (.mp3): LAME, 160 kbit/s per default.
    * ``ogg`` (.ogg, .oga): ``VORBIS`` (FFmpeg's own encoder, stored as two identical channels
      for mono input because that encoder only does stereo), or ``OPUS``.
    * ``opus`` (.opus): Opus in Ogg, 96 kbit/s per default.
    * ``m4a`` (.m4a, .mp4, .aac): AAC in MP4, 160 kbit/s per default.

    A rate the codec cannot store (e.g. 40000 Hz for mp3/aac/opus) is resampled with soxr to
    the next rate it can (44100 or 48000); the log says so.

    Args:
        path: the output file.
        audio: ``(samples,)`` mono or ``(samples, channels)``, 1 or 2 channels; float in [-1, 1]
            or int16.
        sample_rate: Hz.
        format, subtype: see above; case-insensitive.
        bitrate: bit/s for the lossy codecs (default above); ignored for wav and flac.
        overwrite: replace an existing file.

    Returns:
        the path written.

    Raises:
        AudioFileExistsError, AudioFileNotFoundError (missing folder), AudioIsADirectoryError,
        UnsupportedFormatError, AudioValueError (bad array), AudioIOError (write failed).
    """
    p = Path(path)
    fmt, muxer, sub, codec_name, sample_fmt = _resolve_format(p, format, subtype)
    where = _fmt_path(p)
    arr = _check_audio(audio, f"{where}: audio", ndim=(1, 2))
    sample_rate = _check_rate(sample_rate, f"{where}: sample_rate")
    if bitrate is not None:
        _check_rate(bitrate, f"{where}: bitrate", "bits per second such as 160000")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.shape[1] not in (1, 2):
        raise AudioValueError(f"{where}: audio has {arr.shape[1]} channels; pass mono or stereo (samples, 1 or 2)")
    if arr.shape[0] == 0:
        raise AudioValueError(f"{where}: audio is empty (0 samples); nothing to write")
    if p.is_dir():
        raise AudioIsADirectoryError(f"{where} is a folder; pass a file path such as {p / ('out.' + fmt)}")
    if not p.parent.is_dir():
        raise AudioFileNotFoundError(f"{where}: the folder {_fmt_path(p.parent)} does not exist; create it first")
    if p.exists() and not overwrite:
        raise AudioFileExistsError(f"{where} already exists; pass overwrite=True to replace it or pick a new name")

    tmp = p.with_name(f".{p.name}.{secrets.token_hex(4)}.part")
    try:
        with open(tmp, "xb") as fh:
            _encode(fh, arr, sample_rate, muxer, codec_name, sample_fmt, bitrate)
        _move_into_place(tmp, p, overwrite)
    except av.FFmpegError as exc:
        raise AudioIOError(
            f"{where}: encoding {fmt}/{sub} failed ({_ffmpeg_reason(exc)}); nothing was written"
        ) from exc
    except RVCAudioError:
        raise
    except OSError as exc:
        raise AudioIOError(f"{where}: writing failed ({exc.strerror or exc}); nothing was written") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return p


def _move_into_place(tmp: Path, p: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, p)
        return
    try:
        os.link(tmp, p)  # atomic "create only if absent"
    except FileExistsError as exc:
        raise AudioFileExistsError(
            f"{_fmt_path(p)} appeared while writing; pass overwrite=True to replace it or pick a new name"
        ) from exc
    except OSError:  # file system without hard links
        if p.exists():
            raise AudioFileExistsError(f"{_fmt_path(p)} already exists; pass overwrite=True to replace it") from None
        os.replace(tmp, p)


def _encode(
    fh: BinaryIO, arr: np.ndarray, rate: int, muxer: str, codec_name: str, sample_fmt: str, bitrate: int | None
) -> None:
    codec = av.Codec(codec_name, "w")
    supported = sorted(codec.audio_rates or [])
    if supported and rate not in supported:
        new_rate = next((r for r in supported if r >= rate), supported[-1])
        logger.info("%s cannot store %d Hz: resampling to %d Hz", codec_name, rate, new_rate)
        arr = resample(arr if arr.dtype.kind == "f" else _int_to_float32(arr), rate, new_rate)
        rate = new_rate
    if sample_fmt == "s16":
        data = _to_pcm16(arr)
    else:
        data = arr.astype(np.float32) if arr.dtype.kind == "f" else _int_to_float32(arr)
    if codec_name == "vorbis" and data.shape[1] == 1:
        data = np.repeat(data, 2, axis=1)
    layout = "mono" if data.shape[1] == 1 else "stereo"
    with av.open(fh, mode="w", format=muxer) as container:
        stream = cast(av.AudioStream, container.add_stream(codec_name, rate=rate, layout=layout))  # an audio codec
        bit_rate = (bitrate or _BIT_RATES[codec_name]) if codec_name in _BIT_RATES else None
        if bit_rate:
            stream.bit_rate = bit_rate
        if codec_name == "vorbis":
            stream.codec_context.options = {"strict": "experimental"}
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data).reshape(1, -1), format=sample_fmt, layout=layout)
        frame.sample_rate = rate
        frame.pts = 0  # timestamps from 0 let the muxer record encoder delay (gapless aac/mp3)
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
