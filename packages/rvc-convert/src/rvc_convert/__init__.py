"""rvc-convert: the RVC voice-conversion pipeline on MLX, faithful to the reference.

>>> from rvc_convert import VoiceConverter
>>> vc = VoiceConverter("voice.pth", index="voice.index")      # loads everything once
>>> vc.convert_file("speech.wav", "out.wav", pitch=2)            # or vc.convert(audio, sample_rate=...)

Public API: :class:`VoiceConverter`, :class:`ConvertOptions`, :class:`RVCConvertError` (error
subclasses in :mod:`rvc_convert.errors`); weights management in :mod:`rvc_convert.weights`; a folder
on a Ray cluster in :mod:`rvc_convert.distributed` (extra ``rvc-convert[ray]``); live
conversion in :mod:`rvc_convert.stream` (``VoiceConverter.stream``) and :mod:`rvc_convert.live`.
"""

from __future__ import annotations

from .errors import RVCConvertError
from .options import ConvertOptions

__all__ = ["ConvertOptions", "RVCConvertError", "VoiceConverter"]
__version__ = "0.1.0"


def __getattr__(name: str):  # VoiceConverter and the weights module on first use
    if name == "VoiceConverter":
        from .converter import VoiceConverter

        return VoiceConverter
    if name in ("weights", "pipeline", "bench", "stub", "folder", "distributed", "stream", "live"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'rvc_convert' has no attribute {name!r}")
