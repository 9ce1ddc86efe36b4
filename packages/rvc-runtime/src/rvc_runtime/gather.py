"""Gathers (``take``, ``take_along_axis``) for the stages' device graphs, chosen once.

MLX's CUDA backend compiles each gather it meets (a source dtype and an index dtype, and each
of ``take`` / ``take_along_axis``) with NVRTC on first use: a module of ~40 kernel variants,
2-7 s each on an H200 host. A fresh machine's first conversion met nine of them (float16, 10
s, compile off: 34 s of its 38). Kept on disk after that (``rvc_runtime.configure_gpu``), but a
first conversion is where users meet them. Here the same gathers are one small
``mx.fast.cuda_kernel`` per dtype (one kernel, no variants: it builds in a fraction of a
second), over row-contiguous copies of the operands.

>>> g = rvc_runtime.gather.choose()      # once, when a model is loaded
>>> rows = g.take(table, ids)             # mx.take(table, ids, axis=0)
>>> band = g.take_along_axis(x, idx, axis=-1)

:func:`choose` returns :data:`MLX` (MLX's own ``mx.take`` / ``mx.take_along_axis``) on Apple
GPUs and CPUs, and :data:`CUDA` on MLX's CUDA backend once its kernels have built and agreed
with NumPy on a small case (else MLX's, logged). Indices are integers in ``[-n, n)`` (negative
ones count from the end); the kernels do not check bounds. Imports MLX lazily.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger("rvc_runtime")

_TAKE = """
    const long long total = (long long)dims[0] * dims[1] * dims[3];
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    const long long m = dims[1], n = dims[2], inner = dims[3];
    const long long c = i % inner, rest = i / inner, r = rest % m, p = rest / m;
    long long j = idx[r];
    if (j < 0) j += n;
    out[i] = a[(p * n + j) * inner + c];
"""

_ALONG = """
    const long long total = (long long)dims[0] * dims[1];
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    const long long n = dims[2];
    long long j = idx[i];
    if (j < 0) j += n;
    out[i] = a[(i / dims[1]) * n + j];
"""

_THREADS = 256
_kernels: dict[str, Any] = {}


def _kernel(name: str, source: str) -> Any:
    import mlx.core as mx

    if name not in _kernels:
        _kernels[name] = mx.fast.cuda_kernel(
            name=name, input_names=["a", "idx", "dims"], output_names=["out"], source=source
        )
    return _kernels[name]


def _launch(name: str, source: str, a: Any, idx: Any, dims: tuple[int, ...], count: int, shape: tuple) -> Any:
    import mlx.core as mx

    (out,) = _kernel(name, source)(
        inputs=[a, idx.astype(mx.int32), mx.array(np.array(dims, np.int32))],
        template=[("T", a.dtype)],
        grid=(max(1, -(-count // _THREADS)) * _THREADS, 1, 1),
        threadgroup=(_THREADS, 1, 1),
        output_shapes=[shape],
        output_dtypes=[a.dtype],
    )
    return out


def _cuda_take(a: Any, idx: Any, axis: int) -> Any:
    axis = axis % a.ndim
    pre = int(np.prod(a.shape[:axis], dtype=np.int64))
    inner = int(np.prod(a.shape[axis + 1 :], dtype=np.int64))
    m = idx.size
    shape = (*a.shape[:axis], *idx.shape, *a.shape[axis + 1 :])
    if pre * m * inner == 0:
        return _mlx_take(a, idx, axis)
    return _launch("rvc_take", _TAKE, a, idx.reshape(-1), (pre, m, a.shape[axis], inner), pre * m * inner, shape)


def _cuda_take_along_axis(a: Any, idx: Any, axis: int) -> Any:
    import mlx.core as mx

    axis = axis % a.ndim
    shape = list(a.shape)
    shape[axis] = idx.shape[axis]
    idx = mx.broadcast_to(idx, tuple(shape))  # numpy's rule: the other axes broadcast
    a_last, idx_last = mx.moveaxis(a, axis, -1), mx.moveaxis(idx, axis, -1)
    rows, m = int(np.prod(idx_last.shape[:-1], dtype=np.int64)), idx_last.shape[-1]
    if rows * m == 0:
        return _mlx_take_along_axis(a, idx, axis)
    out = _launch("rvc_take_along", _ALONG, a_last, idx_last, (rows, m, a.shape[axis]), rows * m, idx_last.shape)
    return mx.moveaxis(out, -1, axis)


def _mlx_take(a: Any, idx: Any, axis: int) -> Any:
    import mlx.core as mx

    return mx.take(a, idx, axis=axis)


def _mlx_take_along_axis(a: Any, idx: Any, axis: int) -> Any:
    import mlx.core as mx

    return mx.take_along_axis(a, idx, axis=axis)


@dataclass(frozen=True)
class Gather:
    """One way to gather: ``name`` is ``"mlx"`` (MLX's ops) or ``"cuda"`` (this module's kernels)."""

    name: str

    def take(self, a: Any, idx: Any, *, axis: int = 0) -> Any:
        """``mx.take(a, idx, axis=axis)``: the shape of ``a`` with ``axis`` replaced by ``idx``'s."""
        return (_cuda_take if self.name == "cuda" else _mlx_take)(a, idx, axis)

    def take_along_axis(self, a: Any, idx: Any, *, axis: int) -> Any:
        """``mx.take_along_axis(a, idx, axis=axis)``: ``idx`` broadcasts against ``a`` off ``axis``."""
        return (_cuda_take_along_axis if self.name == "cuda" else _mlx_take_along_axis)(a, idx, axis)


MLX = Gather("mlx")
CUDA = Gather("cuda")
_chosen: Gather | None = None


def _check() -> bool:
    """Whether the kernels build here and match NumPy (float32, float16, int32, int64)."""
    import mlx.core as mx

    rng = np.random.default_rng(0)
    idx = np.array([[2, 0], [4, -1], [1, 1]], np.int32)
    for dtype in (np.float32, np.float16, np.int32, np.int64):
        a = (rng.standard_normal((3, 5, 4)) * 100).astype(dtype)
        got_take = np.array(CUDA.take(mx.array(a), mx.array(idx), axis=1))
        got_along = np.array(CUDA.take_along_axis(mx.array(a), mx.array(idx)[:, :, None], axis=1))
        if not (
            np.array_equal(got_take, np.take(a, idx, axis=1))
            and np.array_equal(got_along, np.take_along_axis(a, idx[:, :, None], axis=1))
        ):
            return False
    return True


def choose() -> Gather:
    """The gathers for MLX's current default device: :data:`CUDA` on MLX's CUDA backend (checked
    once per process against NumPy), else :data:`MLX`. Call it when a model is loaded, not in
    a forward pass."""
    global _chosen
    import mlx.core as mx

    if mx.default_device() != mx.gpu or not mx.cuda.is_available():
        return MLX
    if _chosen is None:
        try:
            _chosen = CUDA if _check() else MLX
            if _chosen is MLX:
                logger.warning("gather kernels disagree with NumPy here; using MLX's gathers")
        except Exception as exc:  # noqa: BLE001 (a JIT or launch failure: MLX's gathers, for good)
            logger.warning("gather kernels unavailable (%s); using MLX's gathers", exc)
            _chosen = MLX
    return _chosen
