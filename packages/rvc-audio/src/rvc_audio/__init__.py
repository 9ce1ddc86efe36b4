"""rvc-audio: audio I/O and the reference's signal processing for RVC voice conversion.

Public API (everything else is private, except the error classes in :mod:`rvc_audio.errors`):

* :func:`load_audio` - decode any file FFmpeg reads to float32 mono at a chosen rate.
* :func:`probe_audio` - check cheaply that a file is decodable audio (rate, channels, duration).
* :func:`save_audio` - encode wav/flac/mp3/ogg/opus/m4a atomically, never clobbering by default.
* :func:`resample` - soxr resampling.
* :func:`normalize_peak` - the reference's peak pre-normalisation (0.95).
* :func:`highpass` - the reference's 48 Hz Butterworth zero-phase high-pass.
* :func:`mix_rms` - the reference's RMS-envelope mixing (``rms_mix_rate``).
* :class:`RVCAudioError` - base class of every error raised here.
* :mod:`rvc_audio.effects` - Applio's audio options: formant shifting, clean audio, split audio,
  the pedalboard effect chain (imported on use: ``from rvc_audio import effects``).
"""

from __future__ import annotations

from ._dsp import highpass, mix_rms, normalize_peak, resample
from ._io import load_audio, probe_audio, save_audio
from .errors import RVCAudioError

__all__ = [
    "RVCAudioError",
    "highpass",
    "load_audio",
    "mix_rms",
    "normalize_peak",
    "probe_audio",
    "resample",
    "save_audio",
]
__version__ = "0.1.0"
