"""The pipeline's last steps on the device (GPUs): the chunks' audio joined, the reference's
``change_rms`` (:func:`rvc_audio.mix_rms`) and the int16 conversion (:func:`pipeline.to_int16`)
in MLX, so that one int16 copy leaves the device. The same formulas in float32 (rvc-audio's
host version works in float64): on an H200 host the NumPy steps took ~90 ms per 60 s of audio.

Element-wise work runs in blocks of ``BLOCK`` samples, each evaluated before the next (an hour
at 40 kHz is 144 M samples: whole-signal temporaries would be 0.6 GB each; a signal of one block
is one graph, not waited for step by step), and sample
positions are computed per block in block-local coordinates (float32 counts samples exactly
only up to 2**24).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .pipeline import _int16_scale

BLOCK = 1 << 22  # samples per block (16 MB of float32)


def _frame_rms(y: Any, sr: int) -> Any:
    """``librosa.feature.rms(y, frame_length=sr//2*2, hop_length=sr//2, center=True)``: frame j
    covers ``y[(j - 1) hop : (j + 1) hop]`` (zeros outside), i.e. two half-frame sums of squares."""
    import mlx.core as mx

    hop = sr // 2
    n = y.shape[0]
    m = n // hop + 1  # half-frames 0..m-1 (the last one partial or empty)
    per = max(1, BLOCK // hop)
    sums = []
    for h0 in range(0, m, per):
        h1 = min(m, h0 + per)
        seg = y[h0 * hop : min(n, h1 * hop)]
        seg = mx.pad(seg, (0, (h1 - h0) * hop - seg.shape[0]))
        sums.append(mx.sum(mx.square(seg.reshape(h1 - h0, hop)), axis=1))
        if m > per:  # one block's temporaries in memory at a time (one block: no wait here)
            mx.eval(sums[-1])
    half = mx.concatenate([mx.zeros((1,), y.dtype), *sums])  # H[-1] = 0
    return mx.sqrt((half[:-1] + half[1:]) / (2 * hop))  # n // hop + 1 frames


def _interp(values: Any, size: int, start: int, stop: int, take: Any) -> Any:
    """Samples ``start..stop-1`` of ``F.interpolate(values[None, None], size, mode="linear",
    align_corners=False)``: position ``max((i + 0.5) n / size - 0.5, 0)``, split into a
    float64 block origin and a small float32 offset. ``take``: the gather (``mx.take``'s signature)."""
    import mlx.core as mx

    n = values.shape[0]
    scale = n / size
    c0 = (start + 0.5) * scale - 0.5
    base = math.floor(c0)
    src = (c0 - base) + mx.arange(stop - start, dtype=mx.float32) * scale  # block-local, < ~BLOCK * scale + 1
    fl = mx.floor(src)
    i0 = fl.astype(mx.int32) + base
    w = src - fl
    before = i0 < 0  # position clamped to 0 (the first half sample period)
    i0 = mx.minimum(mx.where(before, 0, i0), n - 1)
    w = mx.where(before, 0.0, w)
    i1 = mx.minimum(i0 + 1, n - 1)
    v0 = take(values, i0, axis=0)
    return v0 + w * (take(values, i1, axis=0) - v0)


def mix_rms(source: Any, source_sr: int, target: Any, target_sr: int, rate: float, *, take: Any = None) -> Any:
    """:func:`rvc_audio.mix_rms` with ``target`` an MLX array: ``target * rms_source**(1 - rate)
    * max(rms_target, 1e-6)**(rate - 1)``, frame RMS linearly interpolated to every sample.
    ``source``: NumPy (copied to the device in float32) or an MLX array already there.
    ``take``: the gather (``mx.take``'s signature; default MLX's)."""
    import mlx.core as mx

    take = take or mx.take

    if rate == 1.0:
        return target
    n = target.shape[0]
    f1 = _frame_rms(mx.array(source, dtype=mx.float32), source_sr)
    f2 = _frame_rms(target, target_sr)
    out = []
    for a in range(0, n, BLOCK):
        b = min(n, a + BLOCK)
        r1 = _interp(f1, n, a, b, take)
        r2 = mx.maximum(_interp(f2, n, a, b, take), 1e-6)
        out.append(target[a:b] * mx.exp((1.0 - rate) * (mx.log(r1) - mx.log(r2))))
        if n > BLOCK:
            mx.eval(out[-1])
    return out[0] if len(out) == 1 else mx.concatenate(out)


def to_int16(audio: Any) -> np.ndarray:
    """:func:`pipeline.to_int16` of an MLX array: the peak read back, the scale computed in
    NumPy's float32 arithmetic, the truncation toward zero on the device; int16 NumPy out."""
    import mlx.core as mx

    n = audio.shape[0]
    if n == 0:
        return np.zeros(0, np.int16)
    peak = max(mx.max(mx.abs(audio[a : a + BLOCK])).item() for a in range(0, n, BLOCK))
    scale = mx.array(np.float32(_int16_scale(peak)))
    out = np.empty(n, np.int16)
    for a in range(0, n, BLOCK):
        out[a : a + BLOCK] = np.array((audio[a : a + BLOCK] * scale).astype(mx.int16))
    return out
