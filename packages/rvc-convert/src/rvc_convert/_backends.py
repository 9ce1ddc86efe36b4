"""Where each stage runs, chosen once per :class:`~rvc_convert.VoiceConverter` (:func:`plan`),
and the faster CPU kernels one stage lends another through the pipeline (stages never import
each other): rvc-runtime's oneDNN binding runs rvc-f0's RMVPE U-Net convolutions.

Measured on a 2-core x86 CPU: 3x3 convolutions at 16-32 channels (RMVPE's full-resolution
levels) 93/48 ms on MLX's ``conv2d``, 3.9/3.9 ms on oneDNN (~150 GFLOP/s).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rvc_runtime.gather import MLX, Gather


@dataclass(frozen=True)
class Backends:
    """The pipeline's device plan, made once in ``VoiceConverter.__init__`` and passed down.

    ``device``: ``"cpu"`` or ``"gpu"``; ``synth``: the synthesizer's backend name (``"mlx"``,
    ``"numpy"``, ``"onednn"``); ``precision``: its arithmetic; ``conv2d``: the convolution lent
    to the RMVPE U-Net (oneDNN on the CPU; None otherwise); ``one_blas_thread``: the pipeline's
    own BLAS work runs single-threaded (GPUs: OpenBLAS's workers spin after each call, taking
    the cores from FAISS's OpenMP threads); ``one_blas_stages``: the stages that do, where the
    whole pipeline does not (the CPU with oneDNN: ``("f0", "index")``, whose BLAS calls slowed
    the oneDNN work after them, while the synthesizer's MLX matmuls need every thread);
    ``gather``: the pipeline's device gathers (:mod:`rvc_runtime.gather`, the synthesizer's choice).
    """

    device: str
    synth: str
    precision: str
    conv2d: Callable[..., Any] | None
    one_blas_thread: bool
    gather: Gather = MLX
    one_blas_stages: tuple[str, ...] = ()


def plan(synth: Any) -> Backends:
    """The plan for a synthesizer: its backend's device (rvc-synth chose it at load) or, for an
    object without one, MLX's default device (the one device check of rvc-convert)."""
    backend = getattr(synth, "backend", None)
    if backend is not None:
        device, name, precision = backend.device, backend.name, backend.precision
        gather = Gather(getattr(backend, "gather", "mlx"))
    else:
        import mlx.core as mx

        device, name, precision = ("cpu" if mx.default_device() == mx.cpu else "gpu"), "?", "?"
        gather = MLX
    cpu = device == "cpu"
    conv2d = dnnl_conv2d() if cpu else None
    stages = ("f0", "index") if conv2d is not None else ()  # without oneDNN, MLX's matmuls need the threads
    return Backends(device, name, precision, conv2d, one_blas_thread=not cpu, gather=gather, one_blas_stages=stages)


def dnnl_conv2d() -> Callable[..., Any] | None:
    """rvc-f0's ``RMVPEModel.conv2d`` backend on oneDNN, or None when oneDNN is not installed
    (or ``RVC_DNNL=0``)."""
    from rvc_runtime import onednn as _dnnl

    if not _dnnl.available():
        return None

    def factory(weight: np.ndarray, bias: np.ndarray, padding: int) -> Callable[..., np.ndarray]:
        conv = _dnnl.Conv(weight, bias, padding=padding)

        def run(x: np.ndarray, *, relu: bool = False, add: np.ndarray | None = None) -> np.ndarray:
            ops = (("relu", 0.0),) if relu else ()
            if add is None:
                return conv(x, post_ops=ops)
            return conv(x, post_ops=ops + (("add",),), add=(np.ascontiguousarray(add, dtype=np.float32),))

        return run

    return factory


def lend_cpu_kernels(rmvpe: Any, conv2d: Callable[..., Any] | None = None) -> Any:
    """Give a loaded ``RMVPEModel`` a convolution for its U-Net: ``conv2d`` (a plan's), else
    oneDNN's (used only when MLX runs on the CPU). One already lent is kept."""
    if getattr(rmvpe, "conv2d", None) is None:
        rmvpe.conv2d = conv2d if conv2d is not None else dnnl_conv2d()
    return rmvpe


def content_dtype(backends: Backends) -> str:
    """The content features' precision on this plan: a half-precision synthesizer on a GPU
    (``float16``/``bfloat16``) runs ContentVec in it too, as the reference's half mode runs
    HuBERT; otherwise ``float32`` (TF32 on NVIDIA where the float32 stages use it)."""
    return (
        backends.precision if backends.device == "gpu" and backends.precision in ("float16", "bfloat16") else "float32"
    )
