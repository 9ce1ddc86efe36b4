"""Exceptions raised by rvc_index.

Every error derives from :class:`RVCIndexError` and also from the matching built-in, so
``except FileNotFoundError`` or ``except ValueError`` keeps working for callers that do
not know this package.
"""

from __future__ import annotations


class RVCIndexError(Exception):
    """Base class of every rvc_index error."""


class IndexNotFoundError(RVCIndexError, FileNotFoundError):
    """The index path does not exist or is not a file."""


class IndexFileError(RVCIndexError, ValueError):
    """The file is not a FAISS index, is truncated/corrupt, or holds no vectors."""


class IndexExistsError(RVCIndexError, FileExistsError):
    """``save`` would overwrite an existing file and ``overwrite=True`` was not given."""


class DimensionMismatchError(RVCIndexError, ValueError):
    """Features and index vectors have different dimensions (e.g. RVC v1 256 vs v2 768)."""


class IndexInputError(RVCIndexError, ValueError):
    """An array or option passed to the API is invalid (shape, dtype, NaN, range)."""
