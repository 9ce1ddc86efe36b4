"""The decoder ``dec``: HiFi-GAN, or NSF HiFi-GAN (harmonic source from F0) for pitch models."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

from rvc_runtime import onednn as _dnnl

from .backends import DEFAULT_BACKEND, Backend
from .config import SynthConfig
from .layers import DEFAULT_KERNELS, Conv1d, ConvTranspose1d, sin_numpy

logger = logging.getLogger(__name__)

LRELU_SLOPE = 0.1
_FIX = float(2**40)  # fixed-point unit for the phase: 2**-40 cycles


def _residual(x: mx.array, terms: list[tuple[mx.array, mx.array]], form: int) -> mx.array:
    """``x`` plus each ``(conv output, bias)`` term, added as the reference adds them
    (``x = (y + b) + x`` per step), in one of three forms that are equal to the last bit
    (``y + b``, ``b + y``, ``y - (-b)``). Under ``mx.compile`` each form is a graph of its own, so
    every use of a residual sum fuses into its consumer's kernel instead of being stored once
    and read back by a separate kernel (a shared node is materialised)."""
    for y, b in terms:
        p = y + b if form % 3 == 0 else b + y if form % 3 == 1 else y - (-b)
        x = p + x
    return x


class _ResBlock(nn.Module):
    backend: Backend = DEFAULT_BACKEND  # the model's, set by Synthesizer.set_backend

    def steps(self, x: mx.array, convs: list[list[Conv1d]]) -> mx.array:
        """``x = last(leaky(... leaky(first(leaky(x))))) + x`` for each step's convolutions.

        Compiled (GPUs): the residual sums are rebuilt per use (:func:`_residual`), so each step
        costs its convolutions plus one fused element-wise kernel per convolution (a 0.25 s
        live block: 24 kernels fewer in the decoder's compiled graph); else the plain running sum."""
        if self.backend.compile == "off":
            for step in convs:
                h = x
                for c in step:
                    h = c(nn.leaky_relu(h, LRELU_SLOPE))
                x = h + x
            return x
        terms: list[tuple[mx.array, mx.array]] = []
        for i, step in enumerate(convs):
            h = _residual(x, terms, i)
            for c in step[:-1]:
                h = c(nn.leaky_relu(h, LRELU_SLOPE))
            last = step[-1]
            terms.append((last(nn.leaky_relu(h, LRELU_SLOPE), bias=False), last.bias))
        return _residual(x, terms, len(convs))


class ResBlock1(_ResBlock):
    def __init__(self, ch: int, k: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = [Conv1d(ch, ch, k, dilation=d, padding=d * (k - 1) // 2) for d in dilations]
        self.convs2 = [Conv1d(ch, ch, k, padding=(k - 1) // 2) for _ in dilations]

    def __call__(self, x: mx.array) -> mx.array:
        return self.steps(x, [[c1, c2] for c1, c2 in zip(self.convs1, self.convs2)])


class ResBlock2(_ResBlock):
    def __init__(self, ch: int, k: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = [Conv1d(ch, ch, k, dilation=d, padding=d * (k - 1) // 2) for d in dilations]

    def __call__(self, x: mx.array) -> mx.array:
        return self.steps(x, [[c] for c in self.convs])


def _fixed(x: mx.array) -> mx.array:
    """float32 -> int64 in units of 2**-40 (exact for |x| >= 2**-17)."""
    return (x * _FIX).astype(mx.int64)


def _unfixed_cumsum(x: mx.array, axis: int) -> mx.array:
    """Exact cumulative sum of fixed-point values, rounded once to float32."""
    return mx.cumsum(x, axis=axis).astype(mx.float32) * (1.0 / _FIX)


def _resize_linear(a: mx.array, size: int, take: Callable[..., mx.array] = mx.take) -> mx.array:
    """``F.interpolate(a, size, mode="linear", align_corners=False)`` along axis 1 of ``(B, T, C)``
    (``take``: the model's gather, ``mx.take``'s signature)."""
    n = a.shape[1]
    src = np.maximum((np.arange(size, dtype=np.float64) + 0.5) * (n / size) - 0.5, 0.0)
    i0 = np.minimum(src.astype(np.int64), n - 1)
    w = mx.array((src - i0).astype(np.float32))[None, :, None].astype(a.dtype)
    lo, hi = take(a, mx.array(i0), axis=1), take(a, mx.array(np.minimum(i0 + 1, n - 1)), axis=1)
    return lo * (1 - w) + hi * w


def sine_excitation(
    f0: mx.array, *, upp: int, sr: int, sin=sin_numpy, take: Callable[..., mx.array] = mx.take
) -> tuple[mx.array, mx.array]:
    """The NSF sine source of the reference (harmonic_num = 0), before the merge layer.

    ``f0`` ``(B, T)`` Hz per frame -> ``sine`` ``(B, T*upp)`` (amplitude 0.1, not yet masked)
    and ``uv`` ``(B, T*upp)`` (1 where f0 > 0). The reference accumulates phase with a float64
    cumsum; here both cumulative sums are done exactly in 64-bit fixed point and rounded to
    float32 once, which reproduces it to ~1 ulp at any length and needs no float64 (Metal).
    ``sin``: the sine function (the model's kernels pass theirs; NumPy's for float32 by default);
    ``take``: the gather (``mx.take``'s signature; the model's kernels pass theirs).
    """
    f0 = f0.astype(mx.float32)
    b, t = f0.shape
    n = t * upp
    rad = mx.remainder(f0 / sr, 1.0)  # cycles per sample, per frame
    cum = _unfixed_cumsum(_fixed(rad), 1) * upp  # (B, T) frame-level phase, as the reference
    # Reference: linear interpolation (align_corners=True) of `cum` to n samples, then a
    # -1 shift wherever `cum % 1` drops, i.e. wherever floor(cum) increases.
    whole = mx.floor(cum)
    frac = cum - whole
    scale = mx.array((t - 1) / (n - 1) if n > 1 else 0.0, dtype=mx.float32)
    real = mx.arange(n).astype(mx.float32) * scale  # int -> float32 rounding, as PyTorch
    i0 = mx.minimum(mx.floor(real).astype(mx.int32), t - 1)
    i1 = mx.minimum(i0 + 1, t - 1)
    lam = real - i0.astype(mx.float32)
    w0, w1 = take(whole, i0, axis=1), take(whole, i1, axis=1)
    f0_, f1_ = take(frac, i0, axis=1), take(frac, i1, axis=1)
    y = f0_ + lam * ((w1 - w0) + (f1_ - f0_))
    wraps = (w0 - whole[:, :1]) + mx.floor(y)  # floor(cum[n]) - floor(cum[0])
    shift = mx.concatenate([mx.zeros((b, 1)), wraps[:, :-1] - wraps[:, 1:]], axis=1)
    rad_up = mx.repeat(rad, upp, axis=1)
    phase = _unfixed_cumsum(_fixed(rad_up + shift), 1)
    sine = sin(phase * 2 * math.pi) * 0.1
    uv = mx.repeat((f0 > 0).astype(mx.float32), upp, axis=1)
    return sine, uv


class SourceModuleHnNSF(nn.Module):
    """``dec.m_source``: merges the sine source into the harmonic excitation ``tanh(l_linear(.))``."""

    kernels = DEFAULT_KERNELS  # the model's, set by Synthesizer.set_backend

    def __init__(self) -> None:
        super().__init__()
        self.l_linear = nn.Linear(1, 1)

    def __call__(self, f0: mx.array, *, upp: int, sr: int, key: mx.array | None) -> mx.array:
        sine, uv = sine_excitation(f0, upp=upp, sr=sr, sin=self.kernels.sin, take=self.kernels.take)
        sine = sine * uv
        if key is not None:  # the reference's additive noise: 0.003 voiced, 0.1/3 unvoiced
            amp = uv * 0.003 + (1 - uv) * (0.1 / 3)
            sine = sine + amp * mx.random.normal(sine.shape, key=key)
        # the phase above is always float32/int64; the merge layer runs in the weights' dtype
        return self.kernels.tanh(self.l_linear(sine[..., None].astype(self.l_linear.weight.dtype)))  # (B, T*upp, 1)


class Generator(nn.Module):
    """``dec``: latent ``(B, T, inter)`` (+ f0 ``(B, T)`` Hz) -> audio ``(B, T*hop)``."""

    backend: Backend = DEFAULT_BACKEND  # the model's, set by Synthesizer.set_backend
    kernels = DEFAULT_KERNELS  # likewise

    def __init__(self, cfg: SynthConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch0 = cfg.upsample_initial_channel
        self.conv_pre = Conv1d(cfg.inter_channels, ch0, 7, padding=3)
        self.ups = [
            ConvTranspose1d(ch0 // 2**i, ch0 // 2 ** (i + 1), k, stride=u, padding=(k - u) // 2)
            for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes))
        ]
        block = ResBlock1 if cfg.resblock == "1" else ResBlock2
        self.resblocks = [
            block(ch0 // 2 ** (i + 1), k, d)
            for i in range(len(self.ups))
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes)
        ]
        self.conv_post = Conv1d(ch0 // 2 ** len(self.ups), 1, 7, padding=3, bias=False)
        if cfg.gin_channels:
            self.cond = Conv1d(cfg.gin_channels, ch0, 1)
        if cfg.has_f0:
            self.m_source = SourceModuleHnNSF()
            self.noise_convs = []
            for i in range(len(self.ups)):
                s = math.prod(cfg.upsample_rates[i + 1 :])
                c = ch0 // 2 ** (i + 1)
                self.noise_convs.append(
                    Conv1d(1, c, 2 * s, stride=s, padding=s // 2) if i + 1 < len(self.ups) else Conv1d(1, c, 1)
                )

    def receptive_radius(self) -> int:
        """Frames of context each side that fully determine an output frame (halo for chunking)."""
        cfg = self.cfg
        frames = 3.0  # conv_pre (kernel 7)
        rate = 1
        for u, k in zip(cfg.upsample_rates, cfg.upsample_kernel_sizes):
            frames += math.ceil(k / u) / rate  # transposed conv, in input samples of this stage
            rate *= u
            rb = max(
                sum(d * (kk - 1) // 2 + (kk - 1) // 2 for d in ds)
                for kk, ds in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes)
            )
            frames += rb / rate
        frames += 3 / rate  # conv_post
        return math.ceil(frames) + 1

    def _decode(self, x: mx.array, har: mx.array | None, g: mx.array) -> mx.array:
        """The decoder on one stretch of frames ``(B, T, inter)`` -> ``(B, T*hop)``."""
        x = self.conv_pre(x)
        if "cond" in self:
            x = x + self.cond(g)
        nk = len(self.cfg.resblock_kernel_sizes)
        for i, up in enumerate(self.ups):
            x = up(nn.leaky_relu(x, LRELU_SLOPE))
            if har is not None:
                x = x + self.noise_convs[i](har)
            xs = self.resblocks[i * nk](x)
            for j in range(1, nk):
                xs = xs + self.resblocks[i * nk + j](x)
            x = xs / nk
        x = self.conv_post(nn.leaky_relu(x, 0.01))  # PyTorch's default slope here, not 0.1
        return mx.tanh(x).squeeze(-1)  # (an integer index would be a gather)

    def __call__(
        self,
        x: mx.array,
        f0: mx.array | None,
        g: mx.array,
        *,
        key: mx.array | None = None,
        chunk_frames: int | None = None,
        out_frames: tuple[int, int] | None = None,
        n_res: int | None = None,
    ) -> mx.array:
        """Decode ``(B, T, inter)`` latents (+ ``(B, T)`` f0 in Hz) to ``(B, T*hop)`` audio.

        The harmonic source is computed over the whole input (its phase is global); the
        convolution stack then runs on stretches of ``chunk_frames`` frames with enough
        context on each side (:meth:`receptive_radius`) that the result equals the unchunked
        one. Chunking bounds memory for any length. With the ``onednn`` backend the stack runs
        on oneDNN (:mod:`._cpu_decoder`); on the CPU, MLX chunks run on two streams at once.
        ``chunk_frames=0`` disables chunking. ``out_frames=(a, b)`` returns only the audio of
        frames ``a..b-1`` (``(B, (b-a)*hop)``), computed from them and their context alone.
        ``n_res``: stretch the latents (and the harmonic source) linearly to ``n_res`` frames
        before decoding, as the reference's ``n_res`` (its realtime formant shift).
        """
        cfg = self.cfg
        har = None
        if cfg.has_f0:
            if f0 is None:
                raise ValueError("this decoder needs f0")
            har = self.m_source(f0, upp=cfg.hop, sr=cfg.sample_rate, key=key)
        if n_res is not None and int(n_res) != x.shape[1]:  # F.interpolate(mode="linear") of latents and source
            x = _resize_linear(x, int(n_res), self.kernels.take)
            har = _resize_linear(har, int(n_res) * cfg.hop, self.kernels.take) if har is not None else None
        if out_frames is not None:  # the same samples as slicing the whole output, less work
            halo, hop = self.receptive_radius(), cfg.hop
            a, b = out_frames
            lo, hi = max(a - halo, 0), min(b + halo, x.shape[1])
            x, har = x[:, lo:hi], har[:, lo * hop : hi * hop] if har is not None else None
            y = self._stack(x, har, g, chunk_frames)
            return y[:, (a - lo) * hop : (b - lo) * hop]
        return self._stack(x, har, g, chunk_frames)

    def _stack(self, x: mx.array, har: mx.array | None, g: mx.array, chunk_frames: int | None) -> mx.array:
        t = x.shape[1]
        halo, hop = self.receptive_radius(), self.cfg.hop
        dec = self._dnnl()
        if dec is not None:
            size = chunk_frames if chunk_frames is not None else DNNL_CHUNK_FRAMES
            try:
                return self._decode_dnnl(dec, x, har, g, _balanced_stretches(t, size or t, halo))
            except _dnnl.DnnlError as exc:  # a library build that refuses a layer: MLX can do it
                logger.warning("oneDNN decoder failed (%s); using MLX's convolutions from now on", exc)
                object.__setattr__(self, "_dnnl_failed", True)
        size = _chunking(t, chunk_frames, self.backend, halo)
        full = size + 2 * halo  # every stretch has this length: one shape, compiled once, reused
        if full >= t:  # one stretch would hold everything
            return self._decode(x, har, g)
        streams = _cpu_streams(self.backend.streams)
        # GPUs, TF32 and half precision: two stretches in flight (below); exact float32's wait
        overlap = self.backend.device != "cpu" and self.backend.precision in OVERLAP
        pieces = []
        for n, (a, b, lo, hi) in enumerate(_stretches(t, size, halo)):
            with mx.stream(streams[n % len(streams)]) if streams else _nullcontext():
                xc = x[:, lo:hi]
                hc = har[:, lo * hop : hi * hop] if har is not None else None
                if hi - lo == full and self.backend.compile != "off":
                    out = self._compiled()(xc, hc, g) if hc is not None else self._compiled_nohar()(xc, g)
                else:
                    out = self._decode(xc, hc, g)
                pieces.append(out[:, (a - lo) * hop : (b - lo) * hop])
            if overlap:
                # GPUs: this stretch is queued, then the one before is waited for, so the host
                # builds and launches the next stretch while the device runs this one (waiting
                # for each stretch left the device idle during every launch); at most two
                # stretches' activations are live
                mx.async_eval(pieces[-1])
                if n:
                    mx.eval(pieces[-2])
            elif (n + 1) % max(len(streams), 1) == 0:
                # evaluate stretch by stretch (a pair on the CPU's two streams): built lazily, all
                # stretches would be scheduled together and their activations live at once
                mx.eval(pieces[-max(len(streams), 1) :])
        return mx.concatenate(pieces, axis=1)

    def traceable(self, t: int, chunk_frames: int | None) -> bool:
        """Whether decoding ``t`` frames can be traced into an ``mx.compile``d graph: this
        backend compiles, the frames make one stretch and no host (oneDNN) decoder runs."""
        if self.backend.compile == "off" or self._dnnl() is not None:
            return False
        halo = self.receptive_radius()
        return _chunking(t, chunk_frames, self.backend, halo) + 2 * halo >= t

    def _dnnl(self):
        """The oneDNN decoder (the ``onednn`` backend, float32 weights), built once; else None."""
        if (
            self.backend.decoder != "onednn"
            or getattr(self, "_dnnl_failed", False)
            or self.conv_pre.weight.dtype != mx.float32
            or not _dnnl.available()
        ):
            return None
        weights = [w for _, w in tree_flatten(self.parameters())]
        cached = getattr(self, "_dnnl_cache", None)
        if cached is None or len(cached[0]) != len(weights) or any(a is not b for a, b in zip(cached[0], weights)):
            from ._cpu_decoder import DnnlDecoder

            cached = (weights, DnnlDecoder(self))
            object.__setattr__(self, "_dnnl_cache", cached)  # not a child module/parameter
        return cached[1]

    def _decode_dnnl(self, dec, x: mx.array, har: mx.array | None, g: mx.array, stretches) -> mx.array:
        hop = self.cfg.hop
        cond = np.array(self.cond(g).astype(mx.float32)) if "cond" in self else None  # (B, 1, ch0)
        xn = np.array(x.astype(mx.float32))
        hn = np.array(har.astype(mx.float32)) if har is not None else None
        out = np.empty((xn.shape[0], xn.shape[1] * hop), np.float32)
        for i in range(xn.shape[0]):
            for a, b, lo, hi in stretches:
                y = dec(
                    xn[i : i + 1, lo:hi],
                    hn[i : i + 1, lo * hop : hi * hop] if hn is not None else None,
                    cond[i, 0] if cond is not None else None,
                )
                out[i, a * hop : b * hop] = y[0, (a - lo) * hop : (b - lo) * hop]
        return mx.array(out)

    def _compiled(self):
        if getattr(self, "_fn", None) is None:
            self._fn = mx.compile(self._decode)
        return self._fn

    def _compiled_nohar(self):
        if getattr(self, "_fn2", None) is None:
            self._fn2 = mx.compile(lambda x, g: self._decode(x, None, g))
        return self._fn2


def _stretches(t: int, size: int, halo: int) -> list[tuple[int, int, int, int]]:
    """``(a, b, lo, hi)``: output frames ``a:b`` computed from input frames ``lo:hi``.

    At least ``halo`` frames of context each side (or the signal's edge); the first and last
    stretches take their extra context from the inside, so that all stretches share one shape
    (odd shapes can cost GPUs more than the work: new kernels/plans). One stretch if it fits.
    """
    full = size + 2 * halo
    if full >= t:
        return [(0, t, 0, t)]
    out = []
    for a in range(0, t, size):
        lo = min(max(a - halo, 0), t - full)
        out.append((a, min(a + size, t), lo, lo + full))
    return out


def _balanced_stretches(t: int, size: int, halo: int) -> list[tuple[int, int, int, int]]:
    """Like :func:`_stretches`, in equal parts of at most ``size`` frames with only the context
    that exists (no common shape needed: the oneDNN decoder's primitives do not depend on it;
    1234 frames in stretches of 1000 cost 2060 frames of work the other way)."""
    parts = -(-t // size)
    step = -(-t // parts)
    return [(a, min(a + step, t), max(a - halo, 0), min(a + step + halo, t)) for a in range(0, t, step)]


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


# Decoder stretches (frames). MLX decoder (:meth:`Backend.chunk_frames`): 500 on the CPU; on
# GPUs 1200 in exact float32 and 1500 in TF32 and half precision. The memory that once bounded
# them (exact float32 "~1 GB per second of output", TF32 1500 frames 5.8-7.2 GB) was not cuDNN
# workspace (no convolution of a 1200-frame stretch needs more than 0.12 GB beyond its output,
# bench/gpu_conv_memory.py) but MLX holding every operation's inputs until its command buffer
# completes, with a whole compiled stretch in one buffer; rvc_runtime.configure_gpu's
# MLX_MAX_OPS_PER_BUFFER=8 bounds it. H200, in-process A/B (7 rounds) with it, stretches of
# 500 / 1000 / 1500 frames: TF32 10 s 50.1 / 49.5 / 43.3 ms (1500: the 10 s chunk in one
# stretch, the whole call one compiled graph), peak 2.7 / 3.1 / 3.0 GB; 60 s 222.8 / 230.6 /
# 219.0 ms, 3.1 / 3.1 / 3.2 GB. Exact float32 (200 / 1000 / 1500): 10 s synthesizer 77.5 /
# 53.7 / 46.7 ms, 60 s 382 / 302 / 311 ms, peak 2.9 / 3.4 / 3.8 GB: 1200, whose stretch holds a
# 10 s chunk (1000 + halos did not).
# oneDNN on the CPU (2 cores, 10 s): 250 frames 6.9 s, peak RSS 0.74 GB; 500: 6.6 s 0.95 GB;
# 1000: 6.0 s 1.34 GB (fewer halo frames)
DNNL_CHUNK_FRAMES = 1000
# GPUs: each stretch is queued before the one before it is waited for (TF32 and half precision;
# exact float32, whose 1200-frame stretches peak at 3.7 GB one at a time, waits). H200,
# in-process A/B (7 rounds) with 1500-frame stretches and the command-buffer setting,
# synthesizer at 60 s: float16 68.1 -> 64.6 ms, TF32 95.9 -> 91.5 ms, peak 3.03 -> 3.03 GB and
# 3.17 -> 3.24 GB (before that setting float16 overlapped at 4.1-5.2 GB, TF32 500-frame
# stretches 102.2 -> 92.6 ms). The precisions whose stretches are queued so (empty: every
# stretch waited for).
OVERLAP: tuple[str, ...] = ("tf32", "float16", "bfloat16")


# GPUs: the default stretches of a decode that needs several are made equal, rounded up to a
# multiple of this many frames (one shape per decode, and few shapes over many inputs). Stretches
# of the full default length wasted up to a stretch per decode: `rvc bench`'s 60 s input is two
# chunks whose kept frames and halos (14 frames each side, v2 40k) are 3,496 and 2,557 frames;
# they took 3 + 3 exact stretches of 1,228 frames (7,368 decoded for 6,001 kept) or 3 + 2 TF32 /
# half ones of 1,528 (7,640). Equal ones: 3 x 1,228 + 3 x 928 (6,468) and 3 x 1,228 + 2 x 1,328
# (6,340). H200, in-process A/B (`bench/gpu_flags_ab.py stretch`, 7 rounds), synthesizer at 60 s:
# float16 56.1 -> 51.0 ms, TF32 84.5 -> 76.2, exact float32 294.5 -> 267.3; peak unchanged.
STRETCH_STEP = 50


def _chunking(t: int, chunk_frames: int | None, backend: Backend, halo: int) -> int:
    """Output frames per decoder stretch for ``t`` frames (``halo`` frames of context each side)."""
    if chunk_frames == 0:
        return t
    size = chunk_frames or backend.chunk_frames
    if chunk_frames is None and backend.streams and t >= 200:
        size = min(size, -(-t // backend.streams))  # at least one stretch per CPU stream
    elif chunk_frames is None and size + 2 * halo < t:  # GPUs, several stretches: equal ones
        parts = -(-t // size)
        size = min(size, -(-t // (parts * STRETCH_STEP)) * STRETCH_STEP)
    return size


_STREAMS: list | None = None


def _cpu_streams(n: int) -> list:
    """``n`` CPU streams (the backend's: two on the CPU, one per core of a small machine; none on
    GPUs), made once per process."""
    global _STREAMS
    if not n:
        return []
    if _STREAMS is None or len(_STREAMS) < n:
        _STREAMS = [mx.new_stream(mx.cpu) for _ in range(n)]
    return _STREAMS[:n]
