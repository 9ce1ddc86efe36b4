"""rvc-pth: read PyTorch ``.pth``/``.pt`` checkpoints without torch and without running them.

>>> from rvc_pth import read_pth
>>> state = read_pth("model.pth")            # tensors come back as NumPy arrays

A PyTorch checkpoint is a pickle, and loading a pickle can run any code the file names (RVC
issue #2807). :func:`read_pth` uses a restricted unpickler: the only globals a file may name
are the tensor rebuild functions, the storage types and ``collections.OrderedDict``; anything
else raises :class:`UnsafeCheckpointError` before it is called.

Public API: :func:`read_pth`, :class:`Inert` (opt-in data-only placeholders), and the errors
:class:`PthError`, :class:`CheckpointNotFoundError`, :class:`CheckpointFormatError`,
:class:`UnsafeCheckpointError`.
"""

from __future__ import annotations

from ._reader import Inert, read_pth
from .errors import (
    CheckpointFormatError,
    CheckpointNotFoundError,
    PthError,
    UnsafeCheckpointError,
)

__all__ = [
    "CheckpointFormatError",
    "CheckpointNotFoundError",
    "Inert",
    "PthError",
    "UnsafeCheckpointError",
    "read_pth",
]
__version__ = "0.1.0"
