"""Errors raised by rvc-f0.

Every error is an :class:`RVCF0Error`; each subclass also inherits the built-in exception that
fits it, so ``except ValueError`` / ``except FileNotFoundError`` keep working. Messages are one
line that says what was found, what was expected and what to do.
"""

from __future__ import annotations

__all__ = [
    "CurveFileError",
    "CurveFileNotFoundError",
    "F0InputError",
    "RVCF0Error",
    "UnknownBackendError",
    "UnknownMethodError",
    "UnsafeWeightsError",
    "WeightsFormatError",
    "WeightsNotFoundError",
]


class RVCF0Error(Exception):
    """Base class of every error raised by rvc-f0."""


class UnknownMethodError(RVCF0Error, ValueError):
    """``method`` is neither a known estimator name nor a path to an F0 curve file."""


class F0InputError(RVCF0Error, ValueError):
    """An array or option is invalid: wrong shape or dtype, empty, NaN, wrong sample rate..."""


class CurveFileNotFoundError(RVCF0Error, FileNotFoundError):
    """The F0 curve file does not exist (or is a directory)."""


class CurveFileError(RVCF0Error, ValueError):
    """The F0 curve file is not a ``time_seconds,hz`` CSV that can be used."""


class WeightsNotFoundError(RVCF0Error, FileNotFoundError):
    """No network weights: the given path does not exist, or the Hub copy is neither cached nor downloadable."""


class WeightsFormatError(RVCF0Error, ValueError):
    """A weights file is unreadable or does not match the network (missing/extra/misshaped tensors, wrong checksum)."""


class UnsafeWeightsError(WeightsFormatError):
    """A ``.pth``/``.pt`` file's pickle names a global outside the tensor/container allow-list (never executed)."""


class UnknownBackendError(RVCF0Error, ValueError):
    """An RMVPE backend name that does not exist, or cannot run on this machine."""
