"""rvc_index: FAISS feature retrieval and RVC's retrieval blending (numpy + faiss-cpu; optional MLX search on the GPU).

Public API: FeatureIndex, build_index, default_backend, set_num_threads, RVCIndexError.
The error subclasses live in :mod:`rvc_index.errors`.
"""

from __future__ import annotations

from ._build import build_index
from ._index import FeatureIndex, default_backend, set_num_threads
from .errors import RVCIndexError

__all__ = ["FeatureIndex", "RVCIndexError", "build_index", "default_backend", "set_num_threads"]
__version__ = "0.1.0"
