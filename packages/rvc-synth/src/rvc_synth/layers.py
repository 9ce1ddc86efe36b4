"""The layers' heavy kernels, in each form a backend may pick (channels-last, ``(B, T, C)``).

Convolutions: MLX's own (``native``: cuDNN / Metal on GPUs), or strided slices + matmuls
(``gemm``): MLX's CPU backend runs dilated ``conv1d`` and ``conv_transpose1d`` on a naive path,
as matmuls they reach BLAS speed. Transcendentals: MLX's, or NumPy's (SIMD on the CPU).
:class:`Kernels` holds one choice of each; a model's comes from its
:class:`~rvc_synth.backends.Backend`. Weights keep MLX's layouts: Conv1d ``(out, k, in)``,
ConvTranspose1d ``(out, k, in)``.
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from rvc_runtime.gather import Gather


def _numpy_ok(x: mx.array) -> bool:
    """NumPy's SIMD functions take float32; other dtypes stay in MLX."""
    return x.dtype == mx.float32


def tanh_numpy(x: mx.array) -> mx.array:
    """``tanh`` in NumPy: MLX's CPU ``tanh``/``sigmoid``/``sin``/``exp`` are scalar (~37 ns per
    element: 14 ms per 10 s of audio in each WN gate); NumPy's are SIMD (~0.7 ns)."""
    return mx.array(np.tanh(np.array(x))) if _numpy_ok(x) else mx.tanh(x)


def sin_numpy(x: mx.array) -> mx.array:
    return mx.array(np.sin(np.array(x))) if _numpy_ok(x) else mx.sin(x)


def gated_mlx(a: mx.array, *terms: mx.array) -> mx.array:
    """WaveNet's gate ``tanh(s[..., :H]) * sigmoid(s[..., H:])`` of ``s = a + terms[0] + ...``
    (added left to right) with ``2H`` channels. Each half is sliced before the sums: compiled
    (GPUs), the sums and the gate are one kernel, where a stored ``s`` and the gate were two."""
    h = a.shape[-1] // 2
    lo, hi = a[..., :h], a[..., h:]
    for t in terms:
        lo, hi = lo + t[..., :h], hi + t[..., h:]
    return mx.tanh(lo) * mx.sigmoid(hi)


def gated_numpy(a: mx.array, *terms: mx.array) -> mx.array:
    """:func:`gated_mlx` in NumPy (float32)."""
    if not _numpy_ok(a):
        return gated_mlx(a, *terms)
    for t in terms:
        a = a + t
    h = a.shape[-1] // 2
    an = np.array(a)
    with np.errstate(over="ignore"):  # exp(-a) = inf gives sigmoid 0, as it should
        s = np.exp(-an[..., h:])
    s += 1
    return mx.array(np.tanh(an[..., :h]) / s)


def conv1d_gemm(layer: Conv1d, x: mx.array, *, bias: bool = True) -> mx.array:
    """``layer(x)`` as strided slices + matmuls: MLX's CPU dilated ``conv1d`` is naive; these
    reach BLAS speed. ``bias=False``: without the layer's bias."""
    cout, k, cin = layer.weight.shape
    p, s, d = layer.padding, layer.stride, layer.dilation
    has_bias = bias and "bias" in layer
    if k == 1 and s == 1 and p == 0:
        w = layer.weight.reshape(cout, cin).T
        return mx.addmm(layer.bias, x, w) if has_bias else x @ w
    if p:
        x = mx.pad(x, [(0, 0), (p, p), (0, 0)])
    n = (x.shape[1] - d * (k - 1) - 1) // s + 1
    if s != 1:  # strided (the NSF noise convs, 1 input channel): im2col + one matmul
        cols = mx.concatenate([x[:, j * d : j * d + (n - 1) * s + 1 : s, :] for j in range(k)], axis=-1)
        y = cols @ layer.weight.reshape(cout, k * cin).T
        return y + layer.bias if has_bias else y
    # stride 1: one GEMM per tap on a contiguous time slice, accumulated in place by BLAS
    # (beta = 1), so nothing k-times the activation size is ever materialised.
    b = x.shape[0]
    y = layer.bias if has_bias else mx.zeros((cout,), dtype=x.dtype)
    y = mx.broadcast_to(y, (b, n, cout))
    for j in range(k):
        xj = x[:, j * d : j * d + n, :]
        wj = layer.weight[:, j, :].T
        y = mx.addmm(y, xj, wj) if b == 1 else y + xj @ wj
    return y


def conv1d_native(layer: Conv1d, x: mx.array, *, bias: bool = True) -> mx.array:
    """``layer(x)`` on MLX's ``conv1d`` (cuDNN / Metal); kernel-1 layers stay one matmul."""
    if layer.weight.shape[1] == 1:
        return conv1d_gemm(layer, x, bias=bias)
    y = mx.conv1d(x, layer.weight, stride=layer.stride, padding=layer.padding, dilation=layer.dilation)
    return y + layer.bias if bias and "bias" in layer else y


def conv_transpose1d_gemm(layer: ConvTranspose1d, x: mx.array) -> mx.array:
    """``layer(x)`` polyphase: one matmul gives every tap's contribution ``(B, T, k, out)``; the
    taps are overlap-added frame by frame (``ceil(k/stride)`` shifted adds), then cropped."""
    cout, k, cin = layer.weight.shape
    b, t, _ = x.shape
    u, p = layer.stride, layer.padding
    m = math.ceil(k / u)
    w = layer.weight.transpose(2, 1, 0).reshape(cin, k * cout)
    z = (x @ w).reshape(b, t, k, cout)
    if m * u != k:
        z = mx.pad(z, [(0, 0), (0, 0), (0, m * u - k), (0, 0)])
    z = z.reshape(b, t, m, u, cout)
    y = mx.pad(z[:, :, 0], [(0, 0), (0, m - 1), (0, 0), (0, 0)])
    for i in range(1, m):
        y = y + mx.pad(z[:, :, i], [(0, 0), (i, m - 1 - i), (0, 0), (0, 0)])
    y = y.reshape(b, (t + m - 1) * u, cout)
    n_out = (t - 1) * u - 2 * p + k
    return y[:, p : p + n_out] + layer.bias


def conv_transpose1d_native(layer: ConvTranspose1d, x: mx.array) -> mx.array:
    return mx.conv_transpose1d(x, layer.weight, stride=layer.stride, padding=layer.padding) + layer.bias


class Kernels:
    """The functions the layers call for their heavy work, fixed per model by its
    :class:`~rvc_synth.backends.Backend`: ``conv`` ``"gemm"``/``"native"`` (see above), ``math``
    ``"numpy"``/``"mlx"`` (float32 ``tanh``, ``sin``, the WN gate and the attention softmax),
    ``gather`` ``"mlx"``/``"cuda"`` (``take``/``take_along_axis``: :mod:`rvc_runtime.gather`)."""

    def __init__(self, conv: str = "gemm", math: str = "mlx", gather: str = "mlx") -> None:
        if conv not in ("gemm", "native") or math not in ("numpy", "mlx") or gather not in ("mlx", "cuda"):
            raise ValueError(
                f"conv={conv!r}, math={math!r}, gather={gather!r}; expected gemm|native, numpy|mlx, mlx|cuda"
            )
        self.conv, self.math, self.gather = conv, math, gather
        g = Gather(gather)
        self.take, self.take_along_axis = g.take, g.take_along_axis
        native, numpy = conv == "native", math == "numpy"
        self.conv1d = conv1d_native if native else conv1d_gemm
        self.conv_transpose1d = conv_transpose1d_native if native else conv_transpose1d_gemm
        self.tanh = tanh_numpy if numpy else mx.tanh
        self.sin = sin_numpy if numpy else mx.sin
        self.gated = gated_numpy if numpy else gated_mlx

    def __repr__(self) -> str:
        return f"Kernels(conv={self.conv!r}, math={self.math!r}, gather={self.gather!r})"


#: What layers built outside a :class:`~rvc_synth.Synthesizer` use (MLX ops, GEMM convolutions).
DEFAULT_KERNELS = Kernels()


class Conv1d(nn.Module):
    """1-D convolution ``(B, T, in) -> (B, T', out)`` with stride, zero padding and dilation."""

    kernels = DEFAULT_KERNELS  # the model's, set by Synthesizer.set_backend

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        *,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.weight = mx.zeros((cout, kernel, cin))
        if bias:
            self.bias = mx.zeros((cout,))
        self.stride, self.padding, self.dilation = stride, padding, dilation

    def __call__(self, x: mx.array, *, bias: bool = True) -> mx.array:
        """``(B, T, in) -> (B, T', out)``; ``bias=False``: without adding the bias (the caller does)."""
        return self.kernels.conv1d(self, x, bias=bias)


class ConvTranspose1d(nn.Module):
    """Transposed 1-D convolution ``(B, T, in) -> (B, (T-1)*stride - 2*padding + k, out)``.

    On MLX's kernel, or polyphase (:func:`conv_transpose1d_gemm`).
    """

    kernels = DEFAULT_KERNELS

    def __init__(self, cin: int, cout: int, kernel: int, *, stride: int, padding: int = 0) -> None:
        super().__init__()
        self.weight = mx.zeros((cout, kernel, cin))
        self.bias = mx.zeros((cout,))
        self.stride, self.padding = stride, padding

    def __call__(self, x: mx.array) -> mx.array:
        return self.kernels.conv_transpose1d(self, x)


class LayerNorm(nn.Module):
    """LayerNorm over channels with the checkpoint's ``gamma``/``beta`` names (eps 1e-5)."""

    def __init__(self, dims: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.gamma = mx.ones((dims,))
        self.beta = mx.zeros((dims,))
        self.eps = eps

    def __call__(self, x: mx.array) -> mx.array:
        return mx.fast.layer_norm(x, self.gamma, self.beta, self.eps)
