"""The normalising flow ``flow``: 4 mean-only residual coupling layers with channel flips."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from .config import SynthConfig
from .layers import DEFAULT_KERNELS, Conv1d

FLOW_LAYERS, WN_LAYERS, WN_KERNEL = 4, 3, 5


class WN(nn.Module):
    """WaveNet-style stack: gated dilated convs conditioned on the speaker embedding."""

    kernels = DEFAULT_KERNELS  # the model's, set by Synthesizer.set_backend

    def __init__(self, hidden: int, kernel: int, n_layers: int, gin: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.in_layers = [Conv1d(hidden, 2 * hidden, kernel, padding=(kernel - 1) // 2) for _ in range(n_layers)]
        self.res_skip_layers = [Conv1d(hidden, 2 * hidden if i < n_layers - 1 else hidden, 1) for i in range(n_layers)]
        self.cond_layer = Conv1d(gin, 2 * hidden * n_layers, 1)

    def __call__(self, x: mx.array, g: mx.array) -> mx.array:
        H = self.hidden
        cond = self.cond_layer(g)  # (B, 1, 2H*n)
        skip = None
        n = len(self.in_layers)
        for i, (inl, rs) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            c = cond[..., 2 * H * i : 2 * H * (i + 1)]
            if self.kernels.math == "mlx":  # bias and conditioning fused into the gate (same numbers)
                acts = self.kernels.gated(inl(x, bias=False), inl.bias, c)
            else:  # the GEMM convolutions accumulate onto the bias
                acts = self.kernels.gated(inl(x) + c)
            r = rs(acts)
            if i < n - 1:
                x = x + r[..., :H]
                r = r[..., H:]
            skip = r if skip is None else skip + r
        return skip


class ResidualCouplingLayer(nn.Module):
    def __init__(self, channels: int, hidden: int, gin: int) -> None:
        super().__init__()
        self.half = channels // 2
        self.pre = Conv1d(self.half, hidden, 1)
        self.enc = WN(hidden, WN_KERNEL, WN_LAYERS, gin)
        self.post = Conv1d(hidden, self.half, 1)

    def reverse(self, x: mx.array, g: mx.array) -> mx.array:
        x0, x1 = x[..., : self.half], x[..., self.half :]
        m = self.post(self.enc(self.pre(x0), g))
        return mx.concatenate([x0, x1 - m], axis=-1)


class Flip(nn.Module):
    def reverse(self, x: mx.array, g: mx.array) -> mx.array:
        return x[..., ::-1]


class ResidualCouplingBlock(nn.Module):
    """``flow``: flows.{0,2,4,6} coupling layers, odd indices parameter-free flips."""

    def __init__(self, cfg: SynthConfig) -> None:
        super().__init__()
        self.flows = []
        for _ in range(FLOW_LAYERS):
            self.flows.append(ResidualCouplingLayer(cfg.inter_channels, cfg.hidden_channels, cfg.gin_channels))
            self.flows.append(Flip())

    def reverse(self, z: mx.array, g: mx.array) -> mx.array:
        """Prior sample ``(B, T, inter)`` -> decoder input ``(B, T, inter)`` (inference direction)."""
        for f in reversed(self.flows):
            z = f.reverse(z, g)
        return z
