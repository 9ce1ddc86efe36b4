"""FCPE as torchfcpe 0.0.4 runs it for current RVC: mel front end (NumPy), the convolution-only
CFNaiveMelPE network (MLX) and the local-argmax decoder (NumPy).

RVC's call: ``spawn_bundled_infer_model(device).infer(wav, sr=16000, decoder_mode="local_argmax",
threshold=0.006)``. Frame ``t`` of the ``N // 160 + 1`` frames is centred on sample ``160 t``.
Importing this module imports mlx.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np

from . import _weights
from ._checks import HOP, SAMPLE_RATE, as_audio

N_FFT, N_MELS, FMAX = 1024, 128, 8000.0
HIDDEN, INNER, LAYERS, KERNEL, BINS = 512, 1024, 6, 31, 360
EPS = 1e-5  # GroupNorm and LayerNorm eps
WINDOW = 2048  # frames per MLX pass after the GroupNorm; HALO frames of context on each side
HALO = 1 + LAYERS * (KERNEL // 2)  # receptive field of the second input conv and the six blocks


def expected_shapes(state: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of the CFNaiveMelPE (conv-only) state dict of ``fcpe_c_v001.pt``."""
    out: dict[str, tuple[int, ...]] = {
        "input_stack.0.weight": (HIDDEN, N_MELS, 3),
        "input_stack.3.weight": (HIDDEN, HIDDEN, 3),
        "output_proj.weight_g": (BINS, 1),
        "output_proj.weight_v": (BINS, HIDDEN),
        "output_proj.bias": (BINS,),
        "cent_table": (BINS,),
    }
    for name in (
        "input_stack.0.bias",
        "input_stack.1.weight",
        "input_stack.1.bias",
        "input_stack.3.bias",
        "norm.weight",
        "norm.bias",
    ):
        out[name] = (HIDDEN,)
    for i in range(LAYERS):
        p = f"net.encoder_layers.{i}.conformer.net."
        out.update(
            {
                p + "0.weight": (HIDDEN,),
                p + "0.bias": (HIDDEN,),
                p + "2.weight": (2 * INNER, HIDDEN, 1),
                p + "2.bias": (2 * INNER,),
                p + "4.conv.weight": (INNER, 1, KERNEL),
                p + "4.conv.bias": (INNER,),
                p + "6.weight": (HIDDEN, INNER, 1),
                p + "6.bias": (HIDDEN,),
            }
        )
    return out


def _unused(name: str) -> bool:
    """Tensors of the checkpoint the conv-only network does not use: the pre-norms of the absent
    attention branch and a training-only buffer. An attention variant has more tensors: refused."""
    return name == "gaussian_blurred_cent_mask" or (
        name.startswith("net.encoder_layers.") and name.endswith((".norm.weight", ".norm.bias"))
    )


# --- mel front end (NumPy, float64) ----------------------------------------------------------


@functools.cache
def _mel_basis() -> np.ndarray:
    """librosa ``filters.mel(sr=16000, n_fft=1024, n_mels=128, fmin=0, fmax=8000)``: Slaney mel
    scale (linear below 1 kHz, logarithmic above), triangles scaled by ``2 / (f[i+2] - f[i])``, float32."""
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    top = min_log_mel + math.log(FMAX / min_log_hz) / logstep  # FMAX is above 1 kHz
    mels = np.linspace(0.0, top, N_MELS + 2)
    mel_f = np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)
    fftfreqs = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.maximum(0.0, np.minimum(-ramps[:-2] / fdiff[:-1, None], ramps[2:] / fdiff[1:, None]))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.astype(np.float32)


def log_mel(audio: np.ndarray, *, block: int = 4096) -> np.ndarray:
    """(N,) 16 kHz -> (N // 160 + 1, 128) float32, torchfcpe's ``Wav2Mel``: reflect padding 432
    left and ``max(432, 592 - N)`` right (zeros if that is not below N), STFT without centring
    (n_fft = window = 1024, hop 160, periodic Hann), ``sqrt(re^2 + im^2 + 1e-9)``, Slaney mel
    0-8000 Hz, ``log(max(mel, 1e-5))``; the STFT is one frame short, so the last frame is
    repeated. Computed in float64, ``block`` frames at a time."""
    n = len(audio)
    left = (N_FFT - HOP) // 2
    right = max((N_FFT - HOP + 1) // 2, N_FFT - n - left)
    x = np.pad(audio.astype(np.float64), (left, right), mode="reflect" if right < n else "constant")
    fr = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    basis = _mel_basis().astype(np.float64).T
    t = n // HOP + 1
    out = np.empty((t, N_MELS), np.float32)
    m = min(len(fr), t)
    for s in range(0, m, block):
        spec = np.fft.rfft(fr[s : min(s + block, m)] * window, axis=1)
        mag = np.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
        out[s : s + len(mag)] = np.log(np.maximum(mag @ basis, 1e-5))
    out[m:] = out[m - 1]  # torchfcpe repeats the last frame up to N // 160 + 1
    return out


# --- network (MLX) ---------------------------------------------------------------------------


class FCPENet:
    """CFNaiveMelPE (``conv_only``) on MLX: (T, 128) log-mel -> (T, 360) sigmoid salience.

    Conv1d(128, 512, 3) -> GroupNorm(4, 512) over the whole clip -> LeakyReLU(0.01) ->
    Conv1d(512, 512, 3) -> 6 x [x + PW(512->1024, 1) <- SiLU <- DW conv 31 <- GLU <- PW(512->2048)
    <- LayerNorm] -> LayerNorm -> weight-normalised Linear(512, 360) -> sigmoid. Everything after
    the GroupNorm is local (receptive field +-91 frames), so it runs in windows of ``WINDOW``
    frames with ``HALO`` frames of real context on each side: the same numbers as one pass.
    """

    def __init__(self, state: dict[str, np.ndarray]) -> None:
        f32 = lambda a: mx.array(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
        conv3 = lambda w: f32(w.transpose(2, 1, 0).reshape(-1, w.shape[0]))  # (out, in, 3) -> (3 in, out)  # noqa: E731
        self.in0_w, self.in0_b = conv3(state["input_stack.0.weight"]), f32(state["input_stack.0.bias"])
        self.gn_w, self.gn_b = state["input_stack.1.weight"], state["input_stack.1.bias"]
        self.in3_w, self.in3_b = conv3(state["input_stack.3.weight"]), f32(state["input_stack.3.bias"])
        self.blocks = []
        for i in range(LAYERS):
            p = f"net.encoder_layers.{i}.conformer.net."
            self.blocks.append(
                (
                    f32(state[p + "0.weight"]),
                    f32(state[p + "0.bias"]),
                    f32(state[p + "2.weight"][:, :, 0].T),
                    f32(state[p + "2.bias"]),
                    f32(state[p + "4.conv.weight"][:, 0, :].T),
                    f32(state[p + "4.conv.bias"]),  # (31, 1024)
                    f32(state[p + "6.weight"][:, :, 0].T),
                    f32(state[p + "6.bias"]),
                )
            )
        self.norm_w, self.norm_b = f32(state["norm.weight"]), f32(state["norm.bias"])
        v = state["output_proj.weight_v"].astype(np.float64)
        w = state["output_proj.weight_g"] * v / np.linalg.norm(v, axis=1, keepdims=True)  # per output row
        self.out_w, self.out_b = f32(w.T), f32(state["output_proj.bias"])
        self.cent_table = np.asarray(state["cent_table"], np.float32)

    def parameters(self) -> list[mx.array]:
        return [
            self.in0_w,
            self.in0_b,
            self.in3_w,
            self.in3_b,
            self.norm_w,
            self.norm_b,
            self.out_w,
            self.out_b,
            *[a for block in self.blocks for a in block],
        ]

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        t = len(mel)
        if t == 0:
            return np.zeros((0, BINS), np.float32)
        x = _conv3(mx.array(np.ascontiguousarray(mel, dtype=np.float32)), self.in0_w, self.in0_b)
        x = self._group_norm(np.array(x))
        out = np.empty((t, BINS), np.float32)
        for s in range(0, t, WINDOW):
            a, b = max(0, s - HALO), min(t, s + WINDOW + HALO)
            y = self._local(x[a:b])
            mx.eval(y)
            out[s : min(t, s + WINDOW)] = np.array(y)[s - a : s - a + min(WINDOW, t - s)]
        return out

    def _group_norm(self, x: np.ndarray) -> mx.array:
        """GroupNorm(4 groups) with statistics over each group's channels and all frames (float64
        statistics), affine, then LeakyReLU(0.01)."""
        g = x.reshape(len(x), 4, -1).astype(np.float64)
        mean = g.mean(axis=(0, 2), keepdims=True)
        var = ((g - mean) ** 2).mean(axis=(0, 2), keepdims=True)
        y = ((g - mean) / np.sqrt(var + EPS)).reshape(x.shape) * self.gn_w + self.gn_b
        return mx.array(np.where(y >= 0, y, 0.01 * y).astype(np.float32))

    def _local(self, x: mx.array) -> mx.array:
        x = _conv3(x, self.in3_w, self.in3_b)
        t = x.shape[0]
        for ln_w, ln_b, up_w, up_b, dw_w, dw_b, down_w, down_b in self.blocks:
            h = mx.fast.layer_norm(x, ln_w, ln_b, EPS) @ up_w + up_b
            h = h[:, :INNER] * mx.sigmoid(h[:, INNER:])  # GLU over channels
            hp = mx.pad(h, ((KERNEL // 2, KERNEL // 2), (0, 0)))
            d = dw_b + hp[0:t] * dw_w[0]
            for k in range(1, KERNEL):  # depthwise conv, zero padding 15 on both sides
                d = d + hp[k : k + t] * dw_w[k]
            x = x + (d * mx.sigmoid(d)) @ down_w + down_b  # SiLU, pointwise down, residual
        x = mx.fast.layer_norm(x, self.norm_w, self.norm_b, EPS)
        return mx.sigmoid(x @ self.out_w + self.out_b)


def _conv3(x: mx.array, w: mx.array, b: mx.array) -> mx.array:
    """Conv1d, kernel 3, zero padding 1, on (T, C) as one matrix product (columns tap-major)."""
    t = x.shape[0]
    xp = mx.pad(x, ((1, 1), (0, 0)))
    return mx.concatenate([xp[0:t], xp[1 : t + 1], xp[2 : t + 2]], axis=1) @ w + b


# --- decoder (NumPy) -------------------------------------------------------------------------


def decode(latent: np.ndarray, cent_table: np.ndarray, *, threshold: float = 0.006) -> tuple[np.ndarray, np.ndarray]:
    """torchfcpe's ``local_argmax`` decoder: (T, 360) salience -> ``(f0, cents)``, each (T,).

    ``i`` = first argmax, window ``i-4 .. i+4`` clamped to [0, 359] (clamped duplicates counted
    again), ``cents = sum(cent_table * s) / sum(s)`` over the window (before the voicing mask),
    ``f0 = 10 * 2 ** (cents / 1200)`` Hz, 0 where the peak salience ``<= threshold``. float32."""
    t = len(latent)
    i = np.argmax(latent, axis=1)
    idx = np.clip(i[:, None] + np.arange(-4, 5), 0, BINS - 1)
    s = np.take_along_axis(latent, idx, axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # an all-zero window is unvoiced anyway
        cents = np.sum(cent_table[idx] * s, axis=1) / np.sum(s, axis=1)
    f0 = 10 * 2 ** (cents / 1200)
    f0[latent[np.arange(t), i] <= threshold] = 0
    return f0.astype(np.float32), cents.astype(np.float32)


class FCPEModel:
    """A loaded FCPE: the network with torchfcpe's mel front end and local-argmax decoder.

    Attributes: ``path``, ``net``, ``cent_table`` (the checkpoint's (360,) cents). One pass at a time.
    """

    def __init__(self, net: FCPENet, path: Path) -> None:
        self.net, self.path, self.cent_table = net, path, net.cent_table
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FCPEModel(path={str(self.path)!r})"

    def mel(self, audio_16k: Any) -> np.ndarray:
        """(N,) 16 kHz -> (N // 160 + 1, 128) float32 log-mel (torchfcpe's front end)."""
        return log_mel(as_audio(audio_16k))

    def latent(self, audio_16k: Any) -> np.ndarray:
        """(N,) 16 kHz -> (N // 160 + 1, 360) float32 salience. The whole clip is one GroupNorm."""
        mel = self.mel(audio_16k)
        with self._lock:
            return self.net(mel)

    def __call__(self, audio_16k: Any, *, threshold: float = 0.006) -> np.ndarray:
        """(N,) 16 kHz -> (N // 160 + 1,) float32 f0 in Hz, 0 where the peak salience <= ``threshold``."""
        return decode(self.latent(audio_16k), self.cent_table, threshold=threshold)[0]


def load_fcpe(weights: str | os.PathLike[str] | None = None) -> FCPEModel:
    """The FCPE model (torchfcpe's ``fcpe_c_v001.pt``), loaded once per file."""
    return _weights.cached("fcpe", _weights.resolve("fcpe", weights), _build)


def _build(path: Path) -> FCPEModel:
    net = FCPENet(_weights.read_state("fcpe", path, expected_shapes, _unused))
    mx.eval(net.parameters())
    return FCPEModel(net, path)
