"""RMVPE's U-Net and output conv on the CPU through an external convolution backend.

MLX's CPU ``conv2d`` runs RMVPE's 3x3 convolutions at 7-14 GFLOP/s at 16-32 channels (the
full-resolution levels, most of RMVPE's time); a JIT convolution library (oneDNN, which
rvc-convert hands in from rvc-synth) runs them at ~150. Same network, walked as mlx-rmvpe's
``DeepUnet`` does: each ``ConvBlockRes`` (conv-BN-ReLU twice plus a 1x1 shortcut where the
channels change) becomes two or three backend convolutions with the BatchNorms folded into
their weights and the ReLUs and the residual add fused; pooling, the decoder's up-sampling and
BatchNorm stay in MLX/NumPy. Results equal the MLX forward to float32 rounding.

A backend is a factory ``conv2d(weight (O, kh, kw, I), bias (O,), padding) -> run`` with
``run(x (1, H, W, I), *, relu=False, add=None) -> (1, H', W', O)``: float32 NumPy, stride 1,
zero padding ``padding`` on every side (``H' = H + 2 padding - kh + 1``: the 3x3 and 1x1 layers
keep the size; the decoder's up-sampling is a 2x2 one), ``relu(conv(x) + bias) + add``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

Conv2dBackend = Callable[[np.ndarray, np.ndarray, int], Callable[..., np.ndarray]]


def _fold(conv: Any, bn: Any) -> tuple[np.ndarray, np.ndarray]:
    """``bn(conv(x))`` in eval mode as one convolution: weights and bias (float64 arithmetic)."""
    w = np.array(conv.weight, dtype=np.float64)
    b = np.array(conv.bias, dtype=np.float64) if "bias" in conv else np.zeros(w.shape[0])
    scale = np.array(bn.weight, dtype=np.float64) / np.sqrt(np.array(bn.running_var, dtype=np.float64) + bn.eps)
    shift = np.array(bn.bias, dtype=np.float64) - np.array(bn.running_mean, dtype=np.float64) * scale
    return (w * scale[:, None, None, None]).astype(np.float32), (b * scale + shift).astype(np.float32)


def _block(block: Any, conv2d: Conv2dBackend) -> Callable[[np.ndarray], np.ndarray]:
    """One ``ConvBlockRes``: ``relu(bn2(conv2(relu(bn1(conv1(x)))))) + shortcut(x)``."""
    c1 = conv2d(*_fold(block.conv1, block.bn1), 1)
    c2 = conv2d(*_fold(block.conv2, block.bn2), 1)
    sc = block.shortcut
    cs = conv2d(np.array(sc.weight, dtype=np.float32), np.array(sc.bias, dtype=np.float32), 0) if sc else None

    def run(x: np.ndarray) -> np.ndarray:
        res = cs(x) if cs is not None else x
        return c2(c1(x, relu=True), relu=True, add=res)

    return run


def parity_weights(layer: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``relu(bn(conv_transpose(x)))`` of a decoder layer whose up-sampling is rvc-f0's corrected
    ``ConvTranspose2d(k=3, stride=2, padding=1, output_padding=1)`` (``_SubpixelConvTranspose2d``)
    as a 2x2 convolution (zero row/column after the edge) to the four output parities:
    ``(weight (4 O, 2, 2, I), bias (4 O,))`` float32, the taps as that layer's matrix, BatchNorm
    folded, channel ``parity * O + o``; a ReLU and a pixel shuffle complete it. None for other
    layers (they stay on MLX)."""
    from ._mlx_net import _SubpixelConvTranspose2d

    ct = layer.conv_transpose
    if not isinstance(ct, _SubpixelConvTranspose2d) or tuple(ct.weight.shape[1:3]) != (3, 3):
        return None
    o, c = ct.weight.shape[0], ct.weight.shape[-1]
    mat = np.array(ct.matrix(), dtype=np.float64)  # (4 I, 4 O): the layer's own tap matrix
    bn = layer.bn
    scale = np.array(bn.weight, dtype=np.float64) / np.sqrt(np.array(bn.running_var, dtype=np.float64) + bn.eps)
    shift = np.array(bn.bias, dtype=np.float64) - np.array(bn.running_mean, dtype=np.float64) * scale
    b = np.array(ct.bias, dtype=np.float64) if "bias" in ct else np.zeros(o)
    w = mat.reshape(2, 2, c, 4, o) * scale  # (dm, dn, I, parity, O), BatchNorm folded
    w = w.transpose(3, 4, 0, 1, 2).reshape(4 * o, 2, 2, c).astype(np.float32)
    return w, np.tile(b * scale + shift, 4).astype(np.float32)


def _upsample(layer: Any, conv2d: Conv2dBackend) -> Callable[[np.ndarray], np.ndarray] | None:
    """:func:`parity_weights` as one lent convolution, then the pixel shuffle; None for other layers."""
    parity = parity_weights(layer)
    if parity is None:
        return None
    conv = conv2d(*parity, 0)
    o = parity[0].shape[0] // 4

    def run(x: np.ndarray) -> np.ndarray:
        _, h, wd, _ = x.shape
        y = conv(np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0))), relu=True)  # (1, h, w, 4 O)
        return np.ascontiguousarray(
            y.reshape(1, h, wd, 2, 2, o).transpose(0, 1, 3, 2, 4, 5).reshape(1, 2 * h, 2 * wd, o)
        )

    return run


def _pool(x: np.ndarray, k: tuple[int, int]) -> np.ndarray:
    """``nn.AvgPool2d(k)`` (stride k, trailing rows/columns that do not fill a window dropped)."""
    b, h, w, c = x.shape
    kh, kw = k
    x = x[:, : h // kh * kh, : w // kw * kw]
    return np.ascontiguousarray(x.reshape(b, h // kh, kh, w // kw, kw, c).mean(axis=(2, 4), dtype=np.float32))


class CpuUnet:
    """``net.cnn(net.unet(x))`` of an mlx-rmvpe ``E2E`` with ``conv2d`` for the convolutions."""

    def __init__(self, net: Any, conv2d: Conv2dBackend) -> None:
        unet = net.unet
        self.bn = unet.encoder.bn
        self.encoder = [
            ([_block(b, conv2d) for b in layer.conv_blocks], tuple(layer.kernel_size)) for layer in unet.encoder.layers
        ]
        self.intermediate = [_block(b, conv2d) for layer in unet.intermediate.layers for b in layer.conv_blocks]
        self.decoder = [
            (layer, _upsample(layer, conv2d), [_block(b, conv2d) for b in layer.conv_blocks])
            for layer in unet.decoder.layers
        ]
        self.cnn = conv2d(np.array(net.cnn.weight, dtype=np.float32), np.array(net.cnn.bias, dtype=np.float32), 1)

    def __call__(self, x: mx.array) -> mx.array:
        """``(1, T, 128, 1)`` log-mel (T a multiple of 32) -> ``(1, T, 128, 3)``."""
        h = np.array(self.bn(x), dtype=np.float32)
        skips = []
        for blocks, k in self.encoder:
            for run in blocks:
                h = run(h)
            skips.append(h)
            h = _pool(h, k)
        for run in self.intermediate:
            h = run(h)
        for (layer, upsample, blocks), skip in zip(self.decoder, reversed(skips)):
            if upsample is not None:
                up = upsample(h)
            else:
                up = np.array(nn.relu(layer.bn(layer.conv_transpose(mx.array(h)))), dtype=np.float32)
            if up.shape[1:3] != skip.shape[1:3]:  # mlx-rmvpe's crop/pad (only without the decoder fix)
                th, tw = skip.shape[1:3]
                up = np.pad(
                    up[:, :th, :tw], ((0, 0), (0, th - min(th, up.shape[1])), (0, tw - min(tw, up.shape[2])), (0, 0))
                )
            h = np.concatenate([up, skip], axis=-1)
            for run in blocks:
                h = run(h)
        return mx.array(self.cnn(h))
