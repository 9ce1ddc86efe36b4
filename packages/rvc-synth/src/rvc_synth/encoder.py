"""The content encoder ``enc_p``: features (+ pitch) -> prior mean ``m_p`` and log-std ``logs_p``."""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .config import SynthConfig
from .layers import DEFAULT_KERNELS, Conv1d, LayerNorm

WINDOW = 10  # relative-attention window of the reference (emb_rel_k has 2*10+1 rows)
QUERY_BLOCK = 256  # attention is computed for at least this many query frames at a time
BLOCK_LOGITS = 2**22  # ... and in MLX for as many as keep a block's logits under this many per head


class MultiHeadAttention(nn.Module):
    """Self-attention with VITS relative-position keys/values (window 10, shared by heads).

    The core runs in NumPy when the kernels' ``math`` is ``"numpy"`` (float32), else in MLX."""

    kernels = DEFAULT_KERNELS  # the model's, set by Synthesizer.set_backend

    def __init__(self, channels: int, n_heads: int) -> None:
        super().__init__()
        d = channels // n_heads
        self.n_heads = n_heads
        self.conv_q = Conv1d(channels, channels, 1)
        self.conv_k = Conv1d(channels, channels, 1)
        self.conv_v = Conv1d(channels, channels, 1)
        self.conv_o = Conv1d(channels, channels, 1)
        self.emb_rel_k = mx.zeros((1, 2 * WINDOW + 1, d))
        self.emb_rel_v = mx.zeros((1, 2 * WINDOW + 1, d))

    def fuse_qkv(self) -> None:
        """Join the q/k/v projections' weights into one (evaluated) GEMM, for MLX's attention
        (GPUs): one matmul and one head-major copy instead of three of each. Called whenever
        the weights change (:meth:`Synthesizer.set_backend`, loading); weights replaced any
        other way are noticed and the separate projections run."""
        convs = (self.conv_q, self.conv_k, self.conv_v)
        w = mx.concatenate([c.weight.squeeze(1) for c in convs], axis=0).T  # (C, 3C) (an integer index would gather)
        bias = mx.concatenate([c.bias for c in convs])
        d = w.shape[0] // self.n_heads
        div = mx.array([math.sqrt(d), 1.0, 1.0], dtype=w.dtype).reshape(3, 1, 1, 1, 1)  # q / sqrt(d), as below
        mx.eval(w, bias, div)
        object.__setattr__(self, "_qkv", (tuple(c.weight for c in convs) + tuple(c.bias for c in convs), w, bias, div))

    def _heads_qkv(self, x: mx.array) -> tuple[mx.array, mx.array, mx.array]:
        """``(B, T, C)`` -> q (scaled by ``1/sqrt(d)``), k, v ``(B, H, T, d)``."""
        b, t, c = x.shape
        h, d = self.n_heads, c // self.n_heads
        fused = self.__dict__.get("_qkv")
        convs = (self.conv_q, self.conv_k, self.conv_v)
        now = tuple(c.weight for c in convs) + tuple(c.bias for c in convs)
        if fused is not None and all(a is b_ for a, b_ in zip(fused[0], now)):
            _, w, bias, div = fused
            qkv = mx.addmm(bias, x, w).reshape(b, t, 3, h, d).transpose(2, 0, 3, 1, 4) / div  # one kernel
            q, k, v = (qkv[i : i + 1].squeeze(0) for i in range(3))  # views (integer indices gather)
            return q, k, v

        def heads(y: mx.array) -> mx.array:
            return y.reshape(b, t, h, d).transpose(0, 2, 1, 3)

        return heads(self.conv_q(x)) / math.sqrt(d), heads(self.conv_k(x)), heads(self.conv_v(x))

    def __call__(self, x: mx.array) -> mx.array:
        b, t, c = x.shape
        q, k, v = self._heads_qkv(x)
        if self.kernels.math == "numpy" and q.dtype == mx.float32:
            out = mx.array(self._attend_numpy(np.array(q), np.array(k), np.array(v)))
        else:
            # queries in blocks: memory O(block * t) instead of O(t^2) on long inputs
            n = max(QUERY_BLOCK, BLOCK_LOGITS // t)  # 10 s (1000 frames) in one block: fewer kernels
            outs = [self._attend(q[:, :, i : i + n], k, v, i) for i in range(0, t, n)]
            out = outs[0] if len(outs) == 1 else mx.concatenate(outs, axis=2)
        return self.conv_o(out.transpose(0, 2, 1, 3).reshape(b, t, c))

    def _attend_numpy(self, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        """:meth:`_attend` over all query blocks in NumPy (CPU): MLX's CPU ``exp`` is scalar
        (~35 ns per element, 20 s of softmax for 60 s of audio); NumPy's is vectorised."""
        b, h, t, d = q.shape
        rel_k = np.array(self.emb_rel_k[0], dtype=np.float32).T  # (d, 2W+1)
        rel_v = np.array(self.emb_rel_v[0], dtype=np.float32)  # (2W+1, d)
        kt = np.ascontiguousarray(k.transpose(0, 1, 3, 2))
        out = np.empty_like(q)
        band = np.arange(2 * WINDOW + 1)
        for start in range(0, t, QUERY_BLOCK):
            qb = q[:, :, start : start + QUERY_BLOCK]
            n = qb.shape[2]
            logits = qb @ kt  # (b, h, n, t)
            rk = qb @ rel_k  # (b, h, n, 2W+1): relative key logits of keys i-W .. i+W
            cols = np.arange(start, start + n)[:, None] + band[None, :] - WINDOW  # (n, 2W+1)
            ok = (cols >= 0) & (cols < t)
            rows, js = np.nonzero(ok)
            keys = cols[rows, js]
            logits[:, :, rows, keys] += rk[:, :, rows, js]
            logits -= logits.max(axis=-1, keepdims=True)
            np.exp(logits, out=logits)
            logits /= logits.sum(axis=-1, keepdims=True)
            pb = np.zeros((b, h, n, 2 * WINDOW + 1), np.float32)
            pb[:, :, rows, js] = logits[:, :, rows, keys]
            out[:, :, start : start + n] = logits @ v + pb @ rel_v
        return out

    def _attend(self, q: mx.array, k: mx.array, v: mx.array, start: int) -> mx.array:
        """Queries ``start .. start+len(q)`` against all keys, with the relative terms.

        The relative key logits go from band layout ``(n, 2W+1)`` to key layout ``(n, t)`` by
        the skew trick (pad, flatten, reshape: copies only), not by a gather of ``n x t``
        entries: GPUs run it as a few contiguous kernels (the encoder on 10 s, H100: 10.3 ->
        5.7 ms; with the whole 10 s in one query block). The way back (probabilities to band
        layout) gathers only ``n x (2W+1)`` entries.
        """
        b, h, n, _ = q.shape
        t = k.shape[2]
        width = 2 * WINDOW + 1
        span = n + width - 1  # keys start-W .. start+n-1+W, the union of the block's bands
        lo = start - WINDOW
        rel_k = q @ self.emb_rel_k.squeeze(0).T.astype(q.dtype)  # (b, h, n, 2W+1): key i-W+w of query i
        # band -> span layout: row r's band lands at columns r .. r+2W (flat index r*(span+1)+w)
        skew = mx.pad(rel_k, [(0, 0), (0, 0), (0, 0), (0, n)]).reshape(b, h, n * (span + 1))
        skew = skew[..., : n * span].reshape(b, h, n, span)
        left, right = lo, t - (lo + span)  # span columns -> key columns 0..t-1
        skew = skew[..., max(-left, 0) : span - max(-right, 0)]
        if left > 0 or right > 0:
            skew = mx.pad(skew, [(0, 0), (0, 0), (0, 0), (max(left, 0), max(right, 0))])
        p = mx.softmax(q @ k.transpose(0, 1, 3, 2) + skew, axis=-1, precise=True)
        out = p @ v
        # key layout -> band layout: band[i, w] = p[i, start + i + w - W], zero for keys outside
        # 0..t-1; a gather of n x (2W+1) entries times a 0/1 mask (2 kernels; the inverse skew's
        # two pads and the slice's copy were 5)
        key = np.arange(start, start + n)[:, None] + np.arange(width)[None, :] - WINDOW
        inside = mx.array((key >= 0) & (key < t), dtype=p.dtype)
        band = self.kernels.take_along_axis(p, mx.array(np.clip(key, 0, t - 1).astype(np.int32))[None, None], axis=-1)
        return mx.addmm(out, band * inside, self.emb_rel_v.squeeze(0).astype(q.dtype))  # the sum in the GEMM


class FFN(nn.Module):
    def __init__(self, channels: int, filters: int, kernel: int) -> None:
        super().__init__()
        self.conv_1 = Conv1d(channels, filters, kernel, padding=(kernel - 1) // 2)
        self.conv_2 = Conv1d(filters, channels, kernel, padding=(kernel - 1) // 2)

    def __call__(self, x: mx.array) -> mx.array:
        return self.conv_2(nn.relu(self.conv_1(x)))


class Encoder(nn.Module):
    """Post-norm transformer: ``x = LN(x + MHA(x)); x = LN(x + FFN(x))`` per layer."""

    def __init__(self, cfg: SynthConfig) -> None:
        super().__init__()
        H = cfg.hidden_channels
        self.attn_layers = [MultiHeadAttention(H, cfg.n_heads) for _ in range(cfg.n_layers)]
        self.norm_layers_1 = [LayerNorm(H) for _ in range(cfg.n_layers)]
        self.ffn_layers = [FFN(H, cfg.filter_channels, cfg.kernel_size) for _ in range(cfg.n_layers)]
        self.norm_layers_2 = [LayerNorm(H) for _ in range(cfg.n_layers)]

    def __call__(self, x: mx.array) -> mx.array:
        for attn, n1, ffn, n2 in zip(self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2):
            x = n1(x + attn(x))
            x = n2(x + ffn(x))
        return x


class TextEncoder(nn.Module):
    """``enc_p``: ``(B, T, C)`` features (+ ``(B, T)`` coarse pitch) -> ``m_p, logs_p`` ``(B, T, inter)``."""

    kernels = DEFAULT_KERNELS  # the model's, set by Synthesizer.set_backend

    def __init__(self, cfg: SynthConfig) -> None:
        super().__init__()
        self.hidden = cfg.hidden_channels
        self.inter = cfg.inter_channels
        self.emb_phone = nn.Linear(cfg.feature_dim, cfg.hidden_channels)
        if cfg.has_f0:
            self.emb_pitch = nn.Embedding(256, cfg.hidden_channels)
        self.encoder = Encoder(cfg)
        self.proj = Conv1d(cfg.hidden_channels, 2 * cfg.inter_channels, 1)

    def __call__(self, phone: mx.array, pitch: mx.array | None, *, skip_head: int = 0) -> tuple[mx.array, mx.array]:
        x = self.emb_phone(phone)
        if pitch is not None:
            x = x + self.kernels.take(self.emb_pitch.weight, pitch, axis=0)  # nn.Embedding's lookup
        x = nn.leaky_relu(x * math.sqrt(self.hidden), 0.1)
        x = self.encoder(x)
        if skip_head:
            x = x[:, skip_head:]
        stats = self.proj(x)
        return stats[..., : self.inter], stats[..., self.inter :]
