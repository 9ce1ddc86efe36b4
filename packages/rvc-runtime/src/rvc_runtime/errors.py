"""Errors raised by rvc-runtime's weight resolution. Each is also the matching built-in; the
stages re-raise them as their own error types (same message)."""

from __future__ import annotations

__all__ = ["WeightsChecksumError", "WeightsError", "WeightsNotFoundError"]


class WeightsError(Exception):
    """Base class of rvc-runtime's errors."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """No usable file: the given path does not exist, or nothing is configured, cached or downloadable.

    ``reason`` holds the short cause when the Hub was tried (``"downloads are off"``, or
    ``"could not download <repo>/<file>: HF_HUB_OFFLINE is set"`` / ``": <host> is unreachable (...)"`` /
    ``" (<error>)"``), else "".
    """

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class WeightsChecksumError(WeightsError, ValueError):
    """A Hub copy's sha256 is not the released file's."""
