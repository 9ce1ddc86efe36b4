"""The pipeline's last steps on the device (GPUs): the chunks' audio joined, the reference's
``change_rms`` (:func:`rvc_audio.mix_rms`) and the int16 conversion (:func:`pipeline.to_int16`)
in MLX, so that one int16 copy leaves the device. The same formulas in float32 (rvc-audio's
host version works in float64): on an H200 host the NumPy steps took ~90 ms per 60 s of audio.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _frame_rms(y: Any, sr: int) -> Any:
    """``librosa.feature.rms(y, frame_length=sr//2*2, hop_length=sr//2, center=True)``: frame j
    covers ``y[(j - 1) hop : (j + 1) hop]`` (zeros outside), i.e. two half-frame sums of squares."""
    import mlx.core as mx

    hop = sr // 2
    n = y.shape[0]
    m = n // hop + 1  # half-frames 0..m-1 (the last one partial or empty)
    half = mx.sum(mx.square(mx.pad(y, (0, m * hop - n)).reshape(m, hop)), axis=1)
    half = mx.concatenate([mx.zeros((1,), half.dtype), half])  # H[-1] = 0
    return mx.sqrt((half[:-1] + half[1:]) / (2 * hop))  # n // hop + 1 frames


def _interp(values: Any, size: int) -> Any:
    """``F.interpolate(values[None, None], size, mode="linear", align_corners=False)``."""
    import mlx.core as mx

    n = values.shape[0]
    src = mx.maximum((mx.arange(size, dtype=mx.float32) + 0.5) * (n / size) - 0.5, 0.0)
    i0 = mx.minimum(mx.floor(src).astype(mx.int32), n - 1)
    i1 = mx.minimum(i0 + 1, n - 1)
    w = src - i0.astype(mx.float32)
    return values[i0] + w * (values[i1] - values[i0])


def mix_rms(source: np.ndarray, source_sr: int, target: Any, target_sr: int, rate: float) -> Any:
    """:func:`rvc_audio.mix_rms` with ``target`` an MLX array: ``target * rms_source**(1 - rate)
    * max(rms_target, 1e-6)**(rate - 1)``, frame RMS linearly interpolated to every sample."""
    import mlx.core as mx

    if rate == 1.0:
        return target
    n = target.shape[0]
    r1 = _interp(_frame_rms(mx.array(np.asarray(source, np.float32)), source_sr), n)
    r2 = mx.maximum(_interp(_frame_rms(target, target_sr), n), 1e-6)
    return target * mx.exp((1.0 - rate) * (mx.log(r1) - mx.log(r2)))


def to_int16(audio: Any) -> np.ndarray:
    """:func:`pipeline.to_int16` of an MLX array: the peak read back, the scale computed in
    NumPy's float32 arithmetic, the truncation toward zero on the device; int16 NumPy out."""
    import mlx.core as mx

    if audio.shape[0] == 0:
        return np.zeros(0, np.int16)
    audio_max = np.float32(mx.max(mx.abs(audio)).item()) / 0.99  # float32, as NumPy computes it
    max_int16: Any = 32768
    if audio_max > 1:
        max_int16 /= audio_max
    return np.array((audio * mx.array(np.float32(max_int16))).astype(mx.int16))
