"""Errors raised by rvc-features.

Every error is an :class:`RVCFeaturesError`; each subclass also inherits the built-in exception
that fits it (``except FileNotFoundError`` keeps working). Messages are one line: what was found,
what was expected, what to do.
"""

from __future__ import annotations

__all__ = ["OutputExistsError", "RVCFeaturesError", "WeightsFormatError", "WeightsNotFoundError"]


class RVCFeaturesError(Exception):
    """Base class of every error raised by rvc-features."""


class WeightsNotFoundError(RVCFeaturesError, FileNotFoundError):
    """A weights file (ContentVec safetensors, ``hubert_base.pt``) or an output folder does not exist."""


class WeightsFormatError(RVCFeaturesError, ValueError):
    """A weights file is not what it should be (not safetensors, wrong tensors, no ``final_proj`` for
    v1 features, not a fairseq HuBERT checkpoint, unsafe pickle)."""


class OutputExistsError(RVCFeaturesError, FileExistsError):
    """The output file exists and ``overwrite`` was not asked for."""
