"""rvc-features: the content features of RVC (ContentVec/HuBERT) in MLX. Array in, array out.

>>> from rvc_features import load_contentvec
>>> cv = load_contentvec("contentvec_base.safetensors")
>>> feats = cv(audio_16k, version="v2")      # (N,) float32 16 kHz -> (frames, 768) float32

Public API:

* :func:`load_contentvec` - load (and cache) mlx-contentvec weights, strictly; ``final_proj`` too.
* :class:`ContentVec` - the loaded network: v2 features (last layer, 768-d) and v1 features
  (layer 9 + ``final_proj``, 256-d), on MLX or on the fast CPU kernels (NumPy + oneDNN).
* :func:`load_embedder` / :data:`EMBEDDERS` - Applio's HuBERT-family embedders (spin, spin-v2,
  chinese/japanese/korean-hubert-base, contentvec) by name, or a custom Hugging Face folder
  (``config.json`` + ``model.safetensors``/``pytorch_model.bin``), torch-free, as a :class:`ContentVec`
  (details in :mod:`rvc_features.embedders`).
* :func:`import_hubert` - RVC's ``hubert_base.pt`` (fairseq) -> mlx-contentvec safetensors, read
  with rvc-pth's restricted unpickler (nothing in the file runs).
* :data:`BASE_KWARGS` - the constructor kwargs of the real ContentVec/HuBERT base.
* :class:`RVCFeaturesError` - base class of every error (subclasses in :mod:`rvc_features.errors`).

Importing changes nothing in the process; MLX is imported when a network is loaded. For the fast
CPU path call ``rvc_runtime.configure_cpu()`` first (rvc-convert and the ``rvc`` command do).
"""

from __future__ import annotations

from ._contentvec import BASE_KWARGS, ContentVec, load_contentvec
from ._hubert import import_hubert
from .embedders import EMBEDDERS, load_embedder
from .errors import RVCFeaturesError

__all__ = [
    "BASE_KWARGS",
    "EMBEDDERS",
    "ContentVec",
    "RVCFeaturesError",
    "import_hubert",
    "load_contentvec",
    "load_embedder",
]
__version__ = "0.1.0"
