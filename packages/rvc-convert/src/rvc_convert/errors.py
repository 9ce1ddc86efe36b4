"""Errors raised by rvc-convert.

Every error is an :class:`RVCConvertError`; each subclass also inherits the built-in exception
that fits it (``except FileNotFoundError`` keeps working). Messages are one line: what was
found, what was expected, what to do. Errors of the stages (rvc_audio, rvc_f0, rvc_index,
rvc_synth) pass through unchanged: they are one-line messages too.
"""

from __future__ import annotations

__all__ = [
    "ConvertInputError",
    "ModelMismatchError",
    "OutputExistsError",
    "RVCConvertError",
    "WeightsDownloadError",
    "WeightsFormatError",
    "WeightsNotFoundError",
]


class RVCConvertError(Exception):
    """Base class of every error raised by rvc-convert."""


class WeightsNotFoundError(RVCConvertError, FileNotFoundError):
    """ContentVec/RMVPE weights are neither at the given path, nor in $RVC_*_WEIGHTS, nor cached."""


class WeightsDownloadError(RVCConvertError, ConnectionError):
    """``download_weights`` could not fetch a file from the Hugging Face Hub (offline, no access)."""


class WeightsFormatError(RVCConvertError, ValueError):
    """A weights file is not what it should be (not safetensors, wrong tensors, no ``final_proj``
    for a v1 model, not a fairseq HuBERT checkpoint)."""


class ModelMismatchError(RVCConvertError, ValueError):
    """Parts that must agree do not: index dimension vs model, feature width vs model, speaker id."""


class ConvertInputError(RVCConvertError, ValueError):
    """Bad audio or option values (unknown option, preset, NaN samples, wrong sample rate...)."""


class OutputExistsError(RVCConvertError, FileExistsError):
    """The output file exists and ``overwrite`` was not asked for."""
