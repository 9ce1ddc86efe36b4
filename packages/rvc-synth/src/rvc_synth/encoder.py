"""The content encoder ``enc_p``: features (+ pitch) -> prior mean ``m_p`` and log-std ``logs_p``."""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .config import SynthConfig
from .layers import Conv1d, LayerNorm

WINDOW = 10  # relative-attention window of the reference (emb_rel_k has 2*10+1 rows)
QUERY_BLOCK = 256  # attention is computed for this many query frames at a time (memory O(256 * T))


class MultiHeadAttention(nn.Module):
    """Self-attention with VITS relative-position keys/values (window 10, shared by heads)."""

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

    def __call__(self, x: mx.array) -> mx.array:
        b, t, c = x.shape
        h, d = self.n_heads, c // self.n_heads

        def heads(y: mx.array) -> mx.array:
            return y.reshape(b, t, h, d).transpose(0, 2, 1, 3)

        q = heads(self.conv_q(x)) / math.sqrt(d)
        k, v = heads(self.conv_k(x)), heads(self.conv_v(x))
        if mx.default_device() == mx.cpu and q.dtype == mx.float32:
            out = mx.array(self._attend_numpy(np.array(q), np.array(k), np.array(v)))
        else:
            # queries in blocks: memory O(block * t) instead of O(t^2) on long inputs
            outs = [self._attend(q[:, :, i : i + QUERY_BLOCK], k, v, i) for i in range(0, t, QUERY_BLOCK)]
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
        """Queries ``start .. start+len(q)`` against all keys, with the relative terms."""
        b, h, n, _ = q.shape
        t = k.shape[2]
        rows = mx.arange(start, start + n)
        offs = mx.arange(t)[None, :] - rows[:, None] + WINDOW  # (n, t): j - i + W
        in_band = (offs >= 0) & (offs <= 2 * WINDOW)
        rel_k = q @ self.emb_rel_k[0].T.astype(q.dtype)  # (b, h, n, 2W+1)
        idx = mx.broadcast_to(mx.clip(offs, 0, 2 * WINDOW)[None, None], (b, h, n, t))
        logits = q @ k.transpose(0, 1, 3, 2) + mx.where(in_band, mx.take_along_axis(rel_k, idx, axis=-1), 0.0)
        p = mx.softmax(logits, axis=-1, precise=True)
        out = p @ v
        key_of = rows[:, None] + mx.arange(2 * WINDOW + 1)[None, :] - WINDOW  # (n, 2W+1)
        valid = (key_of >= 0) & (key_of < t)
        idx2 = mx.broadcast_to(mx.clip(key_of, 0, t - 1)[None, None], (b, h, n, 2 * WINDOW + 1))
        p_band = mx.where(valid, mx.take_along_axis(p, idx2, axis=-1), 0.0)
        return out + p_band @ self.emb_rel_v[0].astype(q.dtype)


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
            x = x + self.emb_pitch(pitch)
        x = nn.leaky_relu(x * math.sqrt(self.hidden), 0.1)
        x = self.encoder(x)
        if skip_head:
            x = x[:, skip_head:]
        stats = self.proj(x)
        return stats[..., : self.inter], stats[..., self.inter :]
