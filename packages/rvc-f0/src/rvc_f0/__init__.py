"""rvc-f0: pitch (f0) for RVC voice conversion, faithful to the reference pipeline.

Public API (everything else is private, except the error classes in :mod:`rvc_f0.errors`):

* :func:`extract_f0` - f0 in Hz per 10 ms frame of 16 kHz audio: rmvpe, crepe, crepe-tiny, fcpe,
  pm, harvest, dio, or a ``time_seconds,hz`` curve file.
* :func:`postprocess_f0` - unvoiced interpolation (or not), transposition, coarse pitch 1..255.
* :func:`load_rmvpe` - load (and cache) the RMVPE network; weights from a path or the Hub.
* :data:`METHODS` - the estimator names ``extract_f0`` accepts.
* :class:`RVCF0Error` - base class of every error raised here.
* :mod:`rvc_f0.weights` - where the CREPE/FCPE weights come from (``WEIGHTS``, ``resolve_weights``).
* :mod:`rvc_f0.applio` - Applio's pitch options on f0 curves: hybrid medians, autotune, proposed pitch.
"""

from __future__ import annotations

# Importing changes nothing in the process (mlx itself is imported only when a network runs).
# For MLX's fast Linux CPU matmuls, call rvc_runtime.configure_cpu() before the first network runs.
from . import applio  # noqa: F401  (NumPy only)
from ._extract import METHODS, extract_f0
from ._post import postprocess_f0
from ._rmvpe import load_rmvpe
from .errors import RVCF0Error

__all__ = ["METHODS", "RVCF0Error", "extract_f0", "load_rmvpe", "postprocess_f0"]
__version__ = "0.1.0"
