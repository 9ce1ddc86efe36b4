"""Errors raised by rvc-audio.

Every error is an :class:`RVCAudioError`; each subclass also inherits the built-in exception
that fits it, so ``except FileNotFoundError`` keeps working. Messages are one line that names
the file (or argument), the problem, and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "AudioDecodeError",
    "AudioFileExistsError",
    "AudioFileNotFoundError",
    "AudioIOError",
    "AudioIsADirectoryError",
    "AudioValueError",
    "EmptyAudioError",
    "NoAudioStreamError",
    "RVCAudioError",
    "UnsupportedFormatError",
]


class RVCAudioError(Exception):
    """Base class of every error raised by rvc-audio."""


class AudioFileNotFoundError(RVCAudioError, FileNotFoundError):
    """The input file, or the folder an output should go to, does not exist."""


class AudioIsADirectoryError(RVCAudioError, IsADirectoryError):
    """A folder was given where an audio file was expected."""


class AudioFileExistsError(RVCAudioError, FileExistsError):
    """The output file exists and ``overwrite=True`` was not given."""


class AudioIOError(RVCAudioError, OSError):
    """The operating system or the encoder failed to read or write (permissions, full disk...)."""


class AudioDecodeError(RVCAudioError, ValueError):
    """The file is not audio FFmpeg can decode: not a media file, corrupt or truncated."""


class EmptyAudioError(AudioDecodeError):
    """The file is zero bytes long, or its audio stream holds no samples."""


class NoAudioStreamError(AudioDecodeError):
    """The file is a media file without any audio stream (e.g. a silent video or an image)."""


class UnsupportedFormatError(RVCAudioError, ValueError):
    """The requested output format or subtype cannot be written."""


class AudioValueError(RVCAudioError, ValueError):
    """An array or argument is invalid (wrong shape or dtype, NaN, bad sample rate...)."""
