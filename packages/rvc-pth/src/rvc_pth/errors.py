"""Errors raised by rvc-pth. Every one is a :class:`PthError` and also the matching built-in."""

from __future__ import annotations

__all__ = [
    "CheckpointFormatError",
    "CheckpointNotFoundError",
    "PthError",
    "UnsafeCheckpointError",
]


class PthError(Exception):
    """Base class of every rvc-pth error."""


class CheckpointNotFoundError(PthError, FileNotFoundError):
    """The checkpoint path does not exist."""


class CheckpointFormatError(PthError, ValueError):
    """The file is not a (readable) PyTorch checkpoint: empty, a folder, truncated, malformed."""


class UnsafeCheckpointError(PthError, ValueError):
    """The checkpoint's pickle names a global outside the tensor/container allow-list (never executed)."""
