"""rvc-synth: the RVC synthesizer in MLX, loaded safely from any RVC checkpoint.

>>> import rvc_synth
>>> synth = rvc_synth.load("voice.pth")             # or a folder from convert_checkpoint
>>> audio = synth(features, pitch, f0, noise_scale=0)  # (B, T*hop) float32
"""

from __future__ import annotations

# Importing changes nothing in the process. For MLX's fast Linux CPU matmuls and the oneDNN
# decoder, call rvc_runtime.configure_cpu() before this import (rvc-convert and `rvc` do).
from .errors import RVCSynthError, UnsafeCheckpointError, UnsupportedCheckpointError
from .export import convert_checkpoint
from .model import Synthesizer, SynthInfo, load

__all__ = [
    "load",
    "Synthesizer",
    "SynthInfo",
    "convert_checkpoint",
    "RVCSynthError",
    "UnsafeCheckpointError",
    "UnsupportedCheckpointError",
]
__version__ = "0.1.0"
