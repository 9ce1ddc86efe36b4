"""ContentVec's transformer layers on the CPU, every step a oneDNN primitive on NumPy buffers.

Why: on two cores the MLX/NumPy layer ran a dozen BLAS calls per layer through two OpenBLAS
thread pools plus oneDNN's (the feed-forward), with single-threaded NumPy softmax passes in
between; threads of one pool spin while another works, and an NumPy matmul of one head at a
time forks and joins its threads each call. Here a layer is eight oneDNN primitives in one
OpenMP pool, reading strided views (q, k and v are sliced out of the packed projection, the
attention output is written straight into ``(T, H * d)``), bias, GELU and the residual adds
fused: 12 s of audio on 2 cores, ~0.25 -> ~0.06 s per layer.

Same arithmetic as mlx-contentvec's layer (float32; q pre-scaled): results agree to float32
rounding. Used by :class:`rvc_features._cv_fast.FastContentvec` on the CPU when oneDNN is
installed (``rvc_runtime.onednn.available()``). Imported lazily.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SCORES = 1 << 24  # attention scores kept at a time (floats; 64 MB): whole heads, a divisor of H


def _np(a: Any) -> np.ndarray:
    """A NumPy view (no copy) of an evaluated MLX array, or the array itself."""
    return np.asarray(a)


class CpuEncoder:
    """The transformer layers of a ``FastContentvec`` (its ``layers`` tuples) on oneDNN."""

    def __init__(
        self,
        layers: list[tuple],
        *,
        heads: int,
        layer_norm_first: bool,
        pos_conv: tuple[Any, Any, int],
        layer_norm: Any,
    ) -> None:
        from rvc_runtime import onednn_ops as ops

        self._keep = layers  # the MLX arrays the views below read
        self.heads, self.layer_norm_first = heads, layer_norm_first
        w, b, k = pos_conv  # (G, K, Ig, Og) weight-normed, (C,), K; SamePad drops the last frame of even K
        self.pos_conv = ops.GroupedConv1d(np.array(w), np.array(b), padding=(k // 2, k // 2 - (k % 2 == 0)))
        self.layer_norm = (np.array(layer_norm.weight), np.array(layer_norm.bias), float(layer_norm.eps))
        self.params = []
        for wqkv, bqkv, wo, bo, ln1, w1, b1, w2, b2, ln2 in layers:
            self.params.append(
                (
                    _np(wqkv),
                    _np(bqkv),
                    _np(wo),
                    _np(bo),
                    (_np(ln1.weight), _np(ln1.bias), float(ln1.eps)),
                    _np(w1),
                    _np(b1),
                    _np(w2),
                    _np(b2),
                    (_np(ln2.weight), _np(ln2.bias), float(ln2.eps)),
                )
            )

    def __call__(self, x: np.ndarray, n_layers: int) -> np.ndarray:
        """``(T, D)`` float32 projected features -> the encoder's layer ``n_layers`` (1-indexed):
        ``x + gelu(pos_conv(x))``, the encoder's LayerNorm unless ``layer_norm_first``, the layers."""
        from rvc_runtime import onednn_ops as ops

        t, d = x.shape
        x = np.ascontiguousarray(x, dtype=np.float32)
        if t == 0:
            return np.zeros((0, d), np.float32)
        h = np.empty((t, d), np.float32)
        self.pos_conv(x, h, post_ops=(("gelu",), ("add",)), add=(x,))
        if not self.layer_norm_first:
            x = ops.layer_norm(h, *self.layer_norm[:2], self.layer_norm[2], np.empty_like(h))
        else:
            x, h = h, np.empty_like(h)
        f = self.params[0][5].shape[1]
        qkv = np.empty((t, 3 * d), np.float32)
        attn = np.empty((t, d), np.float32)
        y = np.empty((t, d), np.float32)
        hidden = np.empty((t, f), np.float32)
        out = np.empty((t, d), np.float32)
        scores = np.empty((self._group(t), t, t), np.float32)
        for wqkv, bqkv, wo, bo, ln1, w1, b1, w2, b2, ln2 in self.params[:n_layers]:
            if self.layer_norm_first:
                ops.layer_norm(x, *ln1[:2], ln1[2], h)
                ops.matmul(h, wqkv, qkv, bias=bqkv)
                self._attention(qkv, attn, scores)
                ops.matmul(attn, wo, y, bias=bo, post_ops=(("add",),), add=(x,))
                ops.layer_norm(y, *ln2[:2], ln2[2], h)
                ops.matmul(h, w1, hidden, bias=b1, post_ops=(("gelu",),))
                ops.matmul(hidden, w2, out, bias=b2, post_ops=(("add",),), add=(y,))
            else:
                ops.matmul(x, wqkv, qkv, bias=bqkv)
                self._attention(qkv, attn, scores)
                ops.matmul(attn, wo, y, bias=bo, post_ops=(("add",),), add=(x,))
                ops.layer_norm(y, *ln1[:2], ln1[2], h)
                ops.matmul(h, w1, hidden, bias=b1, post_ops=(("gelu",),))
                ops.matmul(hidden, w2, y, bias=b2, post_ops=(("add",),), add=(h,))
                ops.layer_norm(y, *ln2[:2], ln2[2], out)
            x, out = out, x
        return x

    def _group(self, t: int) -> int:
        """Heads per attention step: the largest divisor of H whose scores fit :data:`SCORES`."""
        h = self.heads
        return max(g for g in range(1, h + 1) if h % g == 0 and (g == 1 or g * t * t <= SCORES))

    def _attention(self, qkv: np.ndarray, out: np.ndarray, scores: np.ndarray) -> None:
        """``softmax(q k^T) v`` per head (q pre-scaled) from the packed ``(T, 3 * D)`` projection
        into ``out`` ``(T, D)``, ``scores.shape[0]`` heads at a time."""
        from rvc_runtime import onednn_ops as ops

        t, d3 = qkv.shape
        h, g = self.heads, scores.shape[0]
        hd = d3 // 3 // h
        a = qkv.reshape(t, 3, h, hd).transpose(1, 2, 0, 3)  # (3, H, T, hd) view
        o = out.reshape(t, h, hd).transpose(1, 0, 2)  # (H, T, hd) view
        for g0 in range(0, h, g):
            ops.matmul(a[0, g0 : g0 + g], a[1, g0 : g0 + g].transpose(0, 2, 1), scores)
            ops.softmax(scores)
            ops.matmul(scores, a[2, g0 : g0 + g], o[g0 : g0 + g])
