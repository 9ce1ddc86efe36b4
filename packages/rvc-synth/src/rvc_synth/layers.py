"""Convolutions written as strided slices + one matmul (channels-last, ``(B, T, C)``).

MLX's CPU backend runs dilated ``conv1d`` and ``conv_transpose1d`` on a naive path; as
matmuls they reach BLAS speed on CPU and stay GEMM-shaped on GPUs. Weights keep MLX's
layouts: Conv1d ``(out, k, in)``, ConvTranspose1d ``(out, k, in)``.
"""

from __future__ import annotations

import math
import os

import mlx.core as mx
import mlx.nn as nn
import numpy as np


def _native() -> bool:
    """Use MLX's own conv kernels? Yes on GPUs (cuDNN / Metal), no on the CPU (naive there).

    ``RVC_CONV=native|gemm`` overrides the choice (for benchmarking); ``RVC_CONV=gemm`` also keeps
    the CPU decoder off oneDNN (``dnnl``, the default when installed)."""
    choice = os.environ.get("RVC_CONV")
    if choice:
        return choice == "native"
    return mx.default_device() != mx.cpu


def _via_numpy(x: mx.array) -> bool:
    """MLX's CPU ``tanh``/``sigmoid``/``sin``/``exp`` are scalar (~37 ns per element: 14 ms per
    10 s of audio in each WN gate); NumPy's are SIMD (~0.7 ns). Float32 on the CPU goes there."""
    return x.dtype == mx.float32 and mx.default_device() == mx.cpu


def tanh(x: mx.array) -> mx.array:
    return mx.array(np.tanh(np.array(x))) if _via_numpy(x) else mx.tanh(x)


def sin(x: mx.array) -> mx.array:
    return mx.array(np.sin(np.array(x))) if _via_numpy(x) else mx.sin(x)


def gated(a: mx.array) -> mx.array:
    """WaveNet's gate ``tanh(a[..., :H]) * sigmoid(a[..., H:])`` with ``2H`` channels."""
    h = a.shape[-1] // 2
    if not _via_numpy(a):
        return mx.tanh(a[..., :h]) * mx.sigmoid(a[..., h:])
    an = np.array(a)
    with np.errstate(over="ignore"):  # exp(-a) = inf gives sigmoid 0, as it should
        s = np.exp(-an[..., h:])
    s += 1
    return mx.array(np.tanh(an[..., :h]) / s)


class Conv1d(nn.Module):
    """1-D convolution ``(B, T, in) -> (B, T', out)`` with stride, zero padding and dilation."""

    def __init__(self, cin: int, cout: int, kernel: int, *, stride: int = 1, padding: int = 0,
                 dilation: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.weight = mx.zeros((cout, kernel, cin))
        if bias:
            self.bias = mx.zeros((cout,))
        self.stride, self.padding, self.dilation = stride, padding, dilation

    def __call__(self, x: mx.array) -> mx.array:
        cout, k, cin = self.weight.shape
        p, s, d = self.padding, self.stride, self.dilation
        has_bias = "bias" in self
        if k > 1 and _native():
            y = mx.conv1d(x, self.weight, stride=s, padding=p, dilation=d)
            return y + self.bias if has_bias else y
        if k == 1 and s == 1 and p == 0:
            w = self.weight.reshape(cout, cin).T
            return mx.addmm(self.bias, x, w) if has_bias else x @ w
        if p:
            x = mx.pad(x, [(0, 0), (p, p), (0, 0)])
        n = (x.shape[1] - d * (k - 1) - 1) // s + 1
        if s != 1:  # strided (the NSF noise convs, 1 input channel): im2col + one matmul
            cols = mx.concatenate([x[:, j * d : j * d + (n - 1) * s + 1 : s, :] for j in range(k)], axis=-1)
            y = cols @ self.weight.reshape(cout, k * cin).T
            return y + self.bias if has_bias else y
        # stride 1: one GEMM per tap on a contiguous time slice, accumulated in place by BLAS
        # (beta = 1), so nothing k-times the activation size is ever materialised.
        b = x.shape[0]
        y = self.bias if has_bias else mx.zeros((cout,), dtype=x.dtype)
        y = mx.broadcast_to(y, (b, n, cout))
        for j in range(k):
            xj = x[:, j * d : j * d + n, :]
            wj = self.weight[:, j, :].T
            y = mx.addmm(y, xj, wj) if b == 1 else y + xj @ wj
        return y


class ConvTranspose1d(nn.Module):
    """Transposed 1-D convolution ``(B, T, in) -> (B, (T-1)*stride - 2*padding + k, out)``.

    Computed polyphase: one matmul gives every tap's contribution ``(B, T, k, out)``; the taps
    are overlap-added frame by frame (``ceil(k/stride)`` shifted adds), then cropped.
    """

    def __init__(self, cin: int, cout: int, kernel: int, *, stride: int, padding: int = 0) -> None:
        super().__init__()
        self.weight = mx.zeros((cout, kernel, cin))
        self.bias = mx.zeros((cout,))
        self.stride, self.padding = stride, padding

    def __call__(self, x: mx.array) -> mx.array:
        cout, k, cin = self.weight.shape
        b, t, _ = x.shape
        u, p = self.stride, self.padding
        if _native():
            return mx.conv_transpose1d(x, self.weight, stride=u, padding=p) + self.bias
        m = math.ceil(k / u)
        w = self.weight.transpose(2, 1, 0).reshape(cin, k * cout)
        z = (x @ w).reshape(b, t, k, cout)
        if m * u != k:
            z = mx.pad(z, [(0, 0), (0, 0), (0, m * u - k), (0, 0)])
        z = z.reshape(b, t, m, u, cout)
        y = None
        for i in range(m):
            zi = mx.pad(z[:, :, i], [(0, 0), (i, m - 1 - i), (0, 0), (0, 0)])
            y = zi if y is None else y + zi
        y = y.reshape(b, (t + m - 1) * u, cout)
        n_out = (t - 1) * u - 2 * p + k
        return y[:, p : p + n_out] + self.bias


class LayerNorm(nn.Module):
    """LayerNorm over channels with the checkpoint's ``gamma``/``beta`` names (eps 1e-5)."""

    def __init__(self, dims: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.gamma = mx.ones((dims,))
        self.beta = mx.zeros((dims,))
        self.eps = eps

    def __call__(self, x: mx.array) -> mx.array:
        return mx.fast.layer_norm(x, self.gamma, self.beta, self.eps)
