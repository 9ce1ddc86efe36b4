"""Array-in/array-out signal processing, faithful to the RVC reference pipeline.

Reference: RVC-Project/Retrieval-based-Voice-Conversion-WebUI @ 4338f12, ``infer/vc/pipeline.py``
(``bh, ah = signal.butter(N=5, Wn=48, btype="high", fs=16000)``, ``change_rms``) and the
``vc_single`` entry point (peak pre-normalisation after loading).
"""

from __future__ import annotations

import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import soxr
from numpy.typing import ArrayLike, NDArray
from scipy import signal

from .errors import AudioValueError

_SOXR_QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")


def _check_rate(value: Any, name: str, example: str = "a sample rate in Hz such as 16000") -> int:
    """Sample rates (and bit rates) must be positive integers."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise AudioValueError(f"{name}={value!r}: expected a positive integer, {example}")
    return int(value)


def _check_audio(audio: ArrayLike, name: str = "audio", *, ndim: tuple[int, ...] = (1,)) -> np.ndarray:
    """Turn ``audio`` into a real numeric ndarray of an allowed rank with finite values."""
    arr = np.asarray(audio)
    if arr.dtype.kind not in "fiu":
        raise AudioValueError(f"{name}: expected a real float or integer array, got dtype {arr.dtype}")
    if arr.ndim not in ndim:
        want = " or ".join(f"{d}-D" for d in ndim)
        raise AudioValueError(f"{name}: expected a {want} array (samples first), got shape {arr.shape}")
    if arr.dtype.kind == "f" and arr.size and not np.isfinite(arr).all():
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise AudioValueError(f"{name}: {bad} samples are NaN or infinite; fix the upstream step that produced them")
    return arr


def resample(audio: ArrayLike, orig_sr: int, target_sr: int, *, quality: str = "HQ") -> NDArray[np.floating]:
    """Resample with soxr (band-limited, linear phase).

    Args:
        audio: ``(samples,)`` or ``(samples, channels)``, float32/float64 (int16 is converted to
            float32 in [-1, 1)).
        orig_sr, target_sr: sample rates in Hz.
        quality: soxr recipe, ``"HQ"`` (default, 20-bit) or ``"VHQ"`` (28-bit); ``"MQ"``,
            ``"LQ"``, ``"QQ"`` are faster and worse.

    Returns:
        ``(round(samples * target_sr / orig_sr),)`` (channels kept), same float dtype as the input
        (float32 for integer input). A copy even when the rates are equal.
    """
    arr = _check_audio(audio, ndim=(1, 2))
    orig_sr, target_sr = _check_rate(orig_sr, "orig_sr"), _check_rate(target_sr, "target_sr")
    if quality.upper() not in _SOXR_QUALITIES:
        raise AudioValueError(f"quality={quality!r}: expected one of {', '.join(_SOXR_QUALITIES)}")
    if arr.dtype.kind in "iu":
        arr = _int_to_float32(arr)
    elif arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32)
    if orig_sr == target_sr or arr.shape[0] == 0:
        return arr.copy()
    return soxr.resample(np.ascontiguousarray(arr), orig_sr, target_sr, quality=quality.upper())


def _int_to_float32(arr: np.ndarray) -> np.ndarray:
    """Integer PCM to float32 in [-1, 1): int16 / 32768 (the reference's convention), uint8 - 128..."""
    half = float(2 ** (arr.dtype.itemsize * 8 - 1))
    offset = half if arr.dtype.kind == "u" else 0.0
    return ((arr.astype(np.float64) - offset) / half).astype(np.float32)


def normalize_peak(audio: ArrayLike, *, peak: float = 0.95) -> NDArray[np.floating]:
    """The reference's pre-normalisation: scale down so that ``max|audio| <= peak``.

    Exactly ``audio_max = abs(audio).max() / peak; if audio_max > 1: audio /= audio_max``
    (quieter audio, silence and empty arrays come back unchanged). Returns a new float array of
    the input's float dtype (float32 for integer input); the input is not modified.
    """
    arr = _check_audio(audio, ndim=(1, 2))
    if not peak > 0:
        raise AudioValueError(f"peak={peak!r}: expected a positive level, e.g. 0.95")
    arr = _int_to_float32(arr) if arr.dtype.kind in "iu" else arr.copy()
    if arr.size == 0:
        return arr
    audio_max = np.abs(arr).max() / peak
    if audio_max > 1:
        arr /= audio_max
    return arr


@functools.lru_cache(maxsize=8)
def _butter_highpass(sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``(b, a, zi, warm)``: the reference's design, ``lfilter_zi`` (filtfilt's initial state per
    unit input), and the samples a filter started at rest needs to forget that it was: its
    slowest pole's radius ``r`` to the power ``warm`` is below ``e**-70`` (1e-30; 16 kHz: 12,019)."""
    b, a = signal.butter(N=5, Wn=48, btype="high", fs=sample_rate)
    r = float(np.max(np.abs(np.roots(a))))
    return b, a, signal.lfilter_zi(b, a), math.ceil(-70 / math.log(r))


_HP_BLOCK = 1 << 16  # samples per block of a long high-pass (4 s at 16 kHz)
_POOL: dict[int, ThreadPoolExecutor] = {}  # by process id: made at the first long high-pass, anew after a fork


def _workers() -> int:
    return min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _pool(workers: int) -> ThreadPoolExecutor:
    pid = os.getpid()
    if pid not in _POOL:  # (a forked child inherits the parent's executor without its threads)
        _POOL.clear()
        _POOL[pid] = ThreadPoolExecutor(workers, thread_name_prefix="rvc-highpass")
    return _POOL[pid]


def _lfilter(b: np.ndarray, a: np.ndarray, x: np.ndarray, zi: np.ndarray, warm: int) -> np.ndarray:
    """``lfilter(b, a, x, zi=zi)[0]`` for float64 ``x``, in blocks of ``_HP_BLOCK`` samples on
    threads (scipy's filter releases the GIL) when ``x`` spans two blocks or more and the filter
    forgets within a quarter block (at 16 kHz and below; longer memories stay one pass). The first block
    starts from ``zi`` as scipy's one pass does (the same numbers); each later block starts at
    rest ``warm`` samples before its first output, where the true state's contribution has decayed
    below 1e-30 of itself. The outputs then differ from one sequential pass by that pass's own
    rounding noise (the transfer-function form amplifies it: ~3e-8 relative at 16 kHz, either
    way; the reference's tolerance is 1e-5). Blocks do not depend on the thread count."""
    n, workers = x.shape[0], _workers()
    if workers < 2 or n < 2 * _HP_BLOCK or warm > _HP_BLOCK // 4:
        return signal.lfilter(b, a, x, zi=zi)[0]
    out = np.empty(n, np.float64)

    def run(s: int) -> None:
        e = min(n, s + _HP_BLOCK)
        if s == 0:
            out[:e] = signal.lfilter(b, a, x[:e], zi=zi)[0]
        else:  # (s >= _HP_BLOCK >= 4 warm: the early start is inside x)
            out[s:e] = signal.lfilter(b, a, x[s - warm : e])[warm:]

    list(_pool(workers).map(run, range(0, n, _HP_BLOCK)))
    return out


def highpass(audio: ArrayLike, *, sample_rate: int = 16000) -> NDArray[np.float64]:
    """The reference's 48 Hz high-pass: 5th-order Butterworth, zero phase (``filtfilt``).

    ``scipy.signal.filtfilt(b, a, audio)`` with ``b, a = butter(N=5, Wn=48, btype="high",
    fs=sample_rate)`` and filtfilt's default padding (odd extension, 18 samples), its steps
    written out: the same numbers as scipy's for inputs under 131,072 samples. Longer inputs at
    16 kHz and below are filtered in blocks of 65,536 samples on up to 8 threads (the pipeline's
    host steps at 60 s on 16-core H200 hosts: 41-43 ms before, 31 after, across machines);
    those results differ from scipy's by its own rounding noise, ~3e-8 relative (the
    reference's tolerance is 1e-5).

    Args:
        audio: ``(samples,)`` mono, float (the pipeline passes 16 kHz float32) or integer PCM
            (scaled to [-1, 1) first, int16 / 32768).
        sample_rate: Hz; the reference always filters at 16000.

    Returns:
        ``(samples,)`` float64, as the reference returns it. Needs more than 18 samples.
    """
    arr = _check_audio(audio)
    arr = _int_to_float32(arr) if arr.dtype.kind in "iu" else arr
    sample_rate = _check_rate(sample_rate, "sample_rate")
    if sample_rate <= 96:
        raise AudioValueError(f"sample_rate={sample_rate}: the 48 Hz high-pass needs a rate above 96 Hz")
    b, a, zi, warm = _butter_highpass(sample_rate)
    padlen = 3 * max(len(a), len(b))
    if arr.shape[0] <= padlen:
        raise AudioValueError(
            f"audio: {arr.shape[0]} samples is too short for the high-pass, which needs more than {padlen}; "
            "pad or skip such tiny clips"
        )
    # scipy's filtfilt (method "pad"), step by step, each pass on threads when long
    ext = np.concatenate(  # scipy's odd extension, in the input's dtype as filtfilt makes it
        (2 * arr[:1] - arr[padlen:0:-1], arr, 2 * arr[-1:] - arr[-2 : -(padlen + 2) : -1])
    ).astype(np.float64)  # (exact; scipy's filter converts a float32 input itself, more slowly)
    y = _lfilter(b, a, ext, zi * ext[0], warm)
    y = _lfilter(b, a, y[::-1], zi * y[-1], warm)
    return y[::-1][padlen:-padlen]


_BLOCK = 1 << 18  # samples per block in mix_rms: bounded temporaries for hour-long audio


def _frame_rms(y: np.ndarray, sr: int) -> np.ndarray:
    """``librosa.feature.rms(y=y, frame_length=sr//2*2, hop_length=sr//2)[0]`` (center=True, zero pad).

    Computed a block of frames at a time (float64 temporaries of one block, not of the signal)."""
    hop = sr // 2
    frame_length = hop * 2
    n_frames = 1 + len(y) // hop
    out = np.empty(n_frames, np.float64)
    per = max(1, _BLOCK // frame_length)
    for f0 in range(0, n_frames, per):
        f1 = min(n_frames, f0 + per)
        # padded[f0*hop : (f1-1)*hop + frame_length], padded = y with frame_length//2 zeros each side
        lo, hi = f0 * hop - frame_length // 2, (f1 - 1) * hop + frame_length // 2
        seg = y[max(lo, 0) : min(hi, len(y))].astype(np.float64)
        seg = np.pad(seg, (max(0, -lo), max(0, hi - len(y))))
        frames = np.lib.stride_tricks.sliding_window_view(seg, frame_length)[::hop]
        out[f0:f1] = np.sqrt(np.einsum("ij,ij->i", frames, frames) / frame_length)
    return out


def _interp_linear(values: np.ndarray, size: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """``torch.nn.functional.interpolate(v[None, None], size, mode="linear", align_corners=False)``,
    output samples ``start..stop-1`` (default all)."""
    n = values.shape[0]
    stop = size if stop is None else stop
    src = np.maximum((np.arange(start, stop, dtype=np.float64) + 0.5) * (n / size) - 0.5, 0.0)
    # np.interp: v[i0] + w (v[i1] - v[i0]) with i0 = floor(src), the last value past the end
    return np.interp(src, np.arange(n, dtype=np.float64), values)


def mix_rms(source: ArrayLike, source_sr: int, target: ArrayLike, target_sr: int, rate: float) -> NDArray[np.floating]:
    """The reference's ``change_rms``: give ``target`` the loudness envelope of ``source``.

    Frame RMS of both signals (half-second hop, one-second frames, centred with zero padding,
    as ``librosa.feature.rms``) is linearly interpolated to ``len(target)`` samples (as
    ``F.interpolate(mode="linear", align_corners=False)``), then
    ``out = target * rms_source**(1 - rate) * max(rms_target, 1e-6)**(rate - 1)``.

    Args:
        source: ``(samples,)`` the input voice (the pipeline passes the high-passed 16 kHz audio).
        source_sr: its rate in Hz.
        target: ``(samples,)`` the converted voice.
        target_sr: its rate in Hz.
        rate: 0..1; 1 keeps ``target`` unchanged, 0 imposes the source envelope fully.

    Returns:
        ``(len(target),)`` in ``target``'s float dtype (float32 for integer input); ``target``
        is not modified. Silent input gives silent output (no NaN).
    """
    src = _check_audio(source, "source")
    tgt = _check_audio(target, "target")
    src = _int_to_float32(src) if src.dtype.kind in "iu" else src
    tgt = _int_to_float32(tgt) if tgt.dtype.kind in "iu" else tgt
    source_sr, target_sr = _check_rate(source_sr, "source_sr"), _check_rate(target_sr, "target_sr")
    if source_sr < 2 or target_sr < 2:
        raise AudioValueError("source_sr and target_sr must be at least 2 Hz")
    if not 0.0 <= rate <= 1.0:
        raise AudioValueError(f"rate={rate!r}: expected a mix rate between 0 and 1 (1 = keep the converted loudness)")
    out_dtype = tgt.dtype
    if tgt.shape[0] == 0:
        return np.zeros(0, out_dtype)
    n = tgt.shape[0]
    if rate == 1.0:  # both factors are x**0 = 1
        return tgt.astype(out_dtype, copy=True)
    frames1, frames2 = _frame_rms(src, source_sr), _frame_rms(tgt, target_sr)
    out = np.empty(n, out_dtype)
    with np.errstate(divide="ignore"):  # log(0) = -inf: silent source frames give gain 0
        for a in range(0, n, _BLOCK):  # element-wise from here: blocks give the same numbers
            b = min(n, a + _BLOCK)
            rms1 = _interp_linear(frames1, n, a, b)
            rms2 = np.maximum(_interp_linear(frames2, n, a, b), 1e-6)
            # rms1**(1 - rate) * rms2**(rate - 1) as one exp of logs: vectorised exp/log, not pow
            gain = np.log(rms1)
            gain -= np.log(rms2)
            gain *= 1.0 - rate
            np.exp(gain, out=gain)
            gain *= tgt[a:b]
            out[a:b] = gain
    return out
