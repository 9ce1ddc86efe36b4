"""RMVPE's U-Net and output conv on the CPU through an external convolution backend.

MLX's CPU ``conv2d`` runs RMVPE's 3x3 convolutions at 7-14 GFLOP/s at 16-32 channels (the
full-resolution levels, most of RMVPE's time); a JIT convolution library (oneDNN, which
rvc-convert hands in from rvc-synth) runs them at ~150. Same network, walked as mlx-rmvpe's
``DeepUnet`` does: each ``ConvBlockRes`` (conv-BN-ReLU twice plus a 1x1 shortcut where the
channels change) becomes two or three backend convolutions with the BatchNorms folded into
their weights and the ReLUs and the residual add fused; pooling, the decoder's up-sampling and
BatchNorm stay in MLX/NumPy. Results equal the MLX forward to float32 rounding.

A backend is a factory ``conv2d(weight (O, kh, kw, I), bias (O,), padding) -> run`` with
``run(x (1, H, W, I), *, relu=False, add=None) -> (1, H, W, O)``: float32 NumPy, stride 1,
``relu(conv(x) + bias) + add``.
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
        self.decoder = [(layer, [_block(b, conv2d) for b in layer.conv_blocks]) for layer in unet.decoder.layers]
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
        for (layer, blocks), skip in zip(self.decoder, reversed(skips)):
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
