"""Faster CPU kernels that one stage lends another through the pipeline (stages never import
each other): rvc-runtime's oneDNN binding runs rvc-f0's RMVPE U-Net convolutions.

Measured on a 2-core x86 CPU: 3x3 convolutions at 16-32 channels (RMVPE's full-resolution
levels) 93/48 ms on MLX's ``conv2d``, 3.9/3.9 ms on oneDNN (~150 GFLOP/s).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


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


def lend_cpu_kernels(rmvpe: Any) -> Any:
    """Give a loaded ``RMVPEModel`` oneDNN's convolutions (used only when MLX runs on the CPU)."""
    if getattr(rmvpe, "conv2d", None) is None:
        rmvpe.conv2d = dnnl_conv2d()
    return rmvpe
