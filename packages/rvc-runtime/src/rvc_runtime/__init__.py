"""rvc-runtime: process-level plumbing shared by the rvc packages (a leaf: numpy and
huggingface-hub only; imports no stage, and importing it changes nothing in the process).

* :func:`configure_cpu` - the explicit CPU set-up: load an OpenBLAS for MLX's Linux CPU matmuls
  (before MLX is first imported) and oneDNN's convolutions. rvc-convert and the ``rvc`` command
  call it; library users of rvc-synth/rvc-f0/rvc-features call it themselves for CPU speed.
* :func:`configure_gpu` - the explicit set-up for MLX's CUDA backend (before MLX is first
  imported): room for a conversion's convolution plans, compiled kernels kept on disk, and
  MLX's compile on only where :func:`mark_kernels_built` (``rvc warmup``) marked them built.
* :mod:`rvc_runtime.gather` - ``take``/``take_along_axis`` as small CUDA kernels on MLX's CUDA
  backend (no NVRTC module per gathered dtype), MLX's own elsewhere; chosen once, at load.
* :mod:`rvc_runtime.onednn` - the oneDNN (ctypes) binding: ``available()``, ``Conv``, ``leaky_relu``.
* :class:`WeightsSpec` / :func:`resolve_weights` - where a weights file comes from: a path,
  ``$RVC_..._WEIGHTS``, an installed package, the Hugging Face cache, a download; one offline
  message. Errors in :mod:`rvc_runtime.errors`.
* :func:`check_keys` - the strict tensor-name/shape check every weights loader uses.
* :func:`public_mode` - an output written through a private temp file or folder gets the user's umask.
"""

from __future__ import annotations

from . import onednn
from ._cpu import configure_cpu
from ._files import public_mode
from ._gpu import configure_gpu, mark_kernels_built
from ._weights import WeightsSpec, check_keys, resolve_weights

__all__ = [
    "WeightsSpec",
    "check_keys",
    "configure_cpu",
    "configure_gpu",
    "mark_kernels_built",
    "onednn",
    "public_mode",
    "resolve_weights",
]
__version__ = "0.1.0"
