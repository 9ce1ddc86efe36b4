"""ContentVec's element-wise and convolution helpers (MLX): GELU with a rational ``erf`` for
MLX's CPU (its ``erf`` is scalar there) or MLX's own for GPUs, and 1-D convolutions as one GEMM
over an im2col view. Used by :mod:`._cv_fast`."""

from __future__ import annotations

import mlx.core as mx
import numpy as np

# Rational approximation of erf on [-4, 4] (Eigen / XLA's float32 erf): erf(x) = x P(x^2) / Q(x^2).
_ERF_P = (
    -2.72614225801306e-10,
    2.77068142495902e-08,
    -2.10102402082508e-06,
    -5.69250639462346e-05,
    -7.34990630326855e-04,
    -2.95459980854025e-03,
    -1.60960333262415e-02,
)
_ERF_Q = (
    -1.45660718464996e-05,
    -2.13374055278905e-04,
    -1.68282697438203e-03,
    -7.37332916720468e-03,
    -1.42647390514189e-02,
)


def _erf(x: mx.array) -> mx.array:
    x = mx.minimum(mx.maximum(x, -4.0), 4.0)
    x2 = x * x
    p = x2 * _ERF_P[0] + _ERF_P[1]
    for c in _ERF_P[2:]:
        p = p * x2 + c
    q = x2 * _ERF_Q[0] + _ERF_Q[1]
    for c in _ERF_Q[2:]:
        q = q * x2 + c
    return x * p / q


@mx.compile
def gelu(x: mx.array) -> mx.array:
    """Exact (erf) GELU, ``0.5 x (1 + erf(x / sqrt 2))``, as PyTorch's default."""
    return 0.5 * x * (1.0 + _erf(x * 0.7071067811865476))


@mx.compile
def gelu_erf(x: mx.array) -> mx.array:
    """:func:`gelu` with MLX's ``erf`` (GPUs: one fused kernel; on MLX's CPU ``erf`` is scalar)."""
    return 0.5 * x * (1.0 + mx.erf(x * 0.7071067811865476))


def _conv_gemm(x: mx.array, w2: mx.array, k: int, s: int, bias: mx.array | None) -> mx.array:
    """Valid 1-D convolution of ``x`` (T, I) with ``w2`` (k*I, O) (tap-major rows), stride s."""
    t_out = (x.shape[0] - k) // s + 1
    if k == s:
        cols = x[: t_out * s].reshape(t_out, k * x.shape[1])
    else:  # rows x[s t : s t + k] as one strided view (overlapping): one copy, not k slices joined
        cols = mx.as_strided(mx.contiguous(x), (t_out, k * x.shape[1]), (s * x.shape[1], 1))
    y = cols @ w2
    return y if bias is None else y + bias


def _taps(w2: mx.array, k: int) -> np.ndarray:
    """``(k*I, O)`` im2col weights -> MLX's conv layout ``(O, k, I)``."""
    return np.array(w2).T.reshape(w2.shape[1], k, -1)
