"""Errors raised by rvc-synth. Every one is an `RVCSynthError` and also the matching built-in."""

from __future__ import annotations

import rvc_pth


class RVCSynthError(Exception):
    """Base class of every rvc-synth error."""


class CheckpointNotFoundError(RVCSynthError, rvc_pth.CheckpointNotFoundError):
    """The model path does not exist (or a converted folder lacks a file)."""


class UnsafeCheckpointError(RVCSynthError, rvc_pth.UnsafeCheckpointError):
    """The checkpoint's pickle asks for a global outside the tensor/container allow-list."""


class UnsupportedCheckpointError(RVCSynthError, rvc_pth.CheckpointFormatError):
    """The file is not an RVC synthesizer checkpoint this package can run (or it is malformed)."""


class OutputExistsError(RVCSynthError, FileExistsError):
    """The export target exists and overwriting was not asked for."""


class InputShapeError(RVCSynthError, ValueError):
    """Arrays passed to the synthesizer have the wrong shape or length."""
