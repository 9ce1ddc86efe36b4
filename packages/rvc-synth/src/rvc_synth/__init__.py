"""rvc-synth: the RVC synthesizer in MLX, loaded safely from any RVC checkpoint.

>>> import rvc_synth
>>> synth = rvc_synth.load("voice.pth")             # or a folder from convert_checkpoint
>>> audio = synth(features, pitch, f0, noise_scale=0)  # (B, T*hop) float32
"""

from __future__ import annotations

import os

from . import _blas

_blas.ensure_fast_blas()  # before MLX is imported anywhere in this package
# Faithful float32 on NVIDIA GPUs: MLX's CUDA backend uses TF32 (10-bit mantissa) for float32
# matmuls/convs unless told otherwise. Set MLX_ENABLE_TF32=1 yourself to trade accuracy for speed.
os.environ.setdefault("MLX_ENABLE_TF32", "0")

from .errors import RVCSynthError, UnsafeCheckpointError, UnsupportedCheckpointError  # noqa: E402
from .export import convert_checkpoint  # noqa: E402
from .model import SynthInfo, Synthesizer, load  # noqa: E402

__all__ = ["load", "Synthesizer", "convert_checkpoint", "RVCSynthError", "UnsafeCheckpointError", "UnsupportedCheckpointError"]
__version__ = "0.1.0"
