"""RMVPE through mlx-rmvpe: weight resolution, cached loading, the mel front end and decoding.

The mel front end and the decoding are NumPy re-statements of the reference's ``infer/rmvpe.py``
(``MelSpectrogram``, ``to_local_average_cents``); mlx-rmvpe provides the network. mlx is
imported only when a model is loaded.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import rvc_runtime.errors
from rvc_runtime import WeightsSpec, resolve_weights

from ._checks import HOP, SAMPLE_RATE, as_audio
from .errors import F0InputError, WeightsNotFoundError

logger = logging.getLogger(__name__)

ENV_WEIGHTS = "RVC_RMVPE_WEIGHTS"
HF_REPO_ID = "lexandstuff/mlx-rmvpe"  # = mlx_rmvpe.HF_REPO_ID
HF_FILENAME = "rmvpe.safetensors"  # = mlx_rmvpe.HF_WEIGHTS_FILE
N_FFT, N_MELS, FMIN, FMAX = 1024, 128, 30.0, 8000.0
_CENTS = np.pad(20 * np.arange(360) + 1997.3794084376191, (4, 4))  # (368,), bin centres in cents


class RMVPEModel:
    """A loaded RMVPE: mlx-rmvpe's network (decoder corrected) with the reference front end.

    Attributes: ``path`` (the weights file), ``corrected`` (whether the decoder correction was
    applied; False when the installed mlx-rmvpe already up-samples correctly), ``net`` (the
    mlx-rmvpe ``E2E``), ``max_frames`` / ``window`` / ``context`` (long inputs, below).
    Thread-safe; one forward pass at a time.

    Long inputs: up to ``max_frames`` frames (default 3200 = 32 s) the network runs in one pass
    over the whole clip, as the reference does. Longer inputs (whose one-pass activations would
    grow by ~28 MB per second of audio at full width) run in windows of ``window`` frames
    (2048) with ``context`` frames (256 = 2.56 s) of real neighbouring input on each side, whose
    outputs are dropped; the mel is computed in blocks too. This deviates from the reference
    only near window seams (see the README for measured differences).
    """

    max_frames = 3200
    window = 2048
    context = 256

    def __init__(self, net: Any, path: Path, corrected: bool) -> None:
        self.net, self.path, self.corrected = net, path, corrected
        self._lock = threading.Lock()
        #: A faster 2-D convolution for the CPU (see :mod:`._cpu_unet` for the interface), used
        #: for the U-Net when MLX runs on the CPU; rvc-convert sets oneDNN's. None: MLX's conv2d.
        self.conv2d: Any = None
        self._cpu_unet: tuple[Any, Any] | None = None

    def _unet(self) -> Any:
        """The CPU U-Net over ``conv2d`` (built once per backend), or None for MLX's own."""
        if self.conv2d is None:
            return None
        import mlx.core as mx

        if mx.default_device() != mx.cpu:
            return None
        if self._cpu_unet is None or self._cpu_unet[0] is not self.conv2d:
            from ._cpu_unet import CpuUnet

            self._cpu_unet = (self.conv2d, CpuUnet(self.net, self.conv2d))
        return self._cpu_unet[1]

    def __repr__(self) -> str:
        return f"RMVPEModel(path={str(self.path)!r}, corrected={self.corrected})"

    def mel(self, audio_16k: Any) -> np.ndarray:
        """(N,) 16 kHz audio -> (128, N // 160 + 1) float32 log-mel (the reference's front end)."""
        return log_mel(as_audio(audio_16k))

    def salience(self, audio_16k: Any) -> np.ndarray:
        """(N,) 16 kHz audio -> (N // 160 + 1, 360) float32 pitch salience (20-cent bins)."""
        from ._mlx_net import salience

        audio = as_audio(audio_16k)
        n_frames = len(audio) // HOP + 1
        with self._lock:
            unet = self._unet()
            if n_frames <= self.max_frames:
                return salience(self.net, log_mel(audio), unet=unet)
            if self.window % 32 or self.context % 32 or self.window <= 0 or self.context < 0:
                raise F0InputError(f"RMVPE window={self.window}, context={self.context}; expected multiples of 32")
            out = np.empty((n_frames, 360), np.float32)
            for c0 in range(0, n_frames, self.window):
                a, b = max(0, c0 - self.context), min(n_frames, c0 + self.window + self.context)
                sal = salience(self.net, log_mel(audio, frames=(a, b)), unet=unet)
                c1 = min(n_frames, c0 + self.window)
                out[c0:c1] = sal[c0 - a : c1 - a]
            return out

    def __call__(self, audio_16k: Any, *, threshold: float = 0.03) -> np.ndarray:
        """(N,) 16 kHz audio -> (N // 160 + 1,) float32 f0 in Hz, 0 where the salience peak is
        at or below ``threshold`` (the reference's ``infer_from_audio(audio, thred)``)."""
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)) or not 0 <= threshold < 1:
            raise F0InputError(f"threshold={threshold!r}; expected a salience threshold in [0, 1) (reference: 0.03)")
        return decode(self.salience(audio_16k), threshold=threshold)


def load_rmvpe(weights: str | os.PathLike[str] | None = None) -> RMVPEModel:
    """Load (once; later calls return the cached model) the RMVPE pitch network.

    Weights, in order: ``weights`` (a local mlx-rmvpe ``.safetensors`` path), else the
    ``RVC_RMVPE_WEIGHTS`` environment variable, else ``rmvpe.safetensors`` from the Hugging Face
    repo ``lexandstuff/mlx-rmvpe`` (the local cache first, then a download). Loading is strict,
    float16 files are upcast to float32, and mlx-rmvpe 0.1.0's decoder is corrected.

    Raises:
        WeightsNotFoundError: the path does not exist, or the Hub copy is neither cached nor
            downloadable (offline): run ``rvc models download`` or pass a local path.
        WeightsFormatError: the file is not mlx-rmvpe safetensors for this network.
    """
    path = _resolve(weights)
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    with _CACHE_LOCK:
        model = _CACHE.get(key)
        if model is None:
            model = _load(path)
            _CACHE[key] = model
    return model


_CACHE: dict[tuple[str, int, int], RMVPEModel] = {}
_CACHE_LOCK = threading.Lock()


def _load(path: Path, *, correct: bool = True) -> RMVPEModel:
    """Uncached load; ``correct=False`` gives mlx-rmvpe as published (tests prove the fix with it)."""
    from ._mlx_net import load_net

    logger.info("loading RMVPE weights from %s", path)
    net, corrected = load_net(path, correct=correct)
    return RMVPEModel(net, path, corrected)


_SPEC = WeightsSpec(
    "RMVPE", HF_REPO_ID, HF_FILENAME, ENV_WEIGHTS, option="weights", expected="an mlx-rmvpe .safetensors file"
)


def _resolve(weights: str | os.PathLike[str] | None) -> Path:
    try:
        return resolve_weights(_SPEC, weights)
    except rvc_runtime.errors.WeightsNotFoundError as exc:
        raise WeightsNotFoundError(str(exc)) from None


# --- front end and decoding (NumPy) ------------------------------------------------------


@functools.cache
def _mel_basis() -> np.ndarray:
    """librosa ``filters.mel(sr=16000, n_fft=1024, n_mels=128, fmin=30, fmax=8000, htk=True)``:
    HTK mel scale, triangles normalised to unit area ("slaney"), stored as float32."""
    hz_to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    mels = np.linspace(hz_to_mel(FMIN), hz_to_mel(FMAX), N_MELS + 2)
    mel_f = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    fftfreqs = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.astype(np.float32)


@functools.cache
def _window() -> np.ndarray:
    n = np.arange(N_FFT)
    return 0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)  # periodic Hann (torch.hann_window)


def log_mel(audio: np.ndarray, *, frames: tuple[int, int] | None = None, block: int = 4096) -> np.ndarray:
    """(N,) 16 kHz -> (128, N // 160 + 1) float32: centred STFT (reflect padding, n_fft = win =
    1024, hop 160, periodic Hann), magnitude, mel, ``log(max(mel, 1e-5))``. Computed in float64,
    ``block`` frames at a time (memory); ``frames=(a, b)`` computes only frames ``a..b-1``."""
    n = len(audio)
    a, b = frames if frames is not None else (0, n // HOP + 1)
    basis = _mel_basis().astype(np.float64)
    out = np.empty((N_MELS, b - a), np.float32)
    for f0 in range(a, b, block):
        f1 = min(b, f0 + block)
        # padded samples [f0*hop, (f1-1)*hop + n_fft) = input samples shifted by n_fft // 2, reflected
        idx = np.abs(np.arange(f0 * HOP, (f1 - 1) * HOP + N_FFT) - N_FFT // 2)
        if n > 1:
            idx = (n - 1) - np.abs((n - 1) - idx % (2 * (n - 1)))  # numpy "reflect" (no edge repeat)
        else:
            idx = np.zeros_like(idx)
        x = audio[idx].astype(np.float64)
        fr = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]
        mag = np.abs(np.fft.rfft(fr * _window(), axis=1))  # (frames, 513)
        out[:, f0 - a : f1 - a] = np.log(np.maximum(basis @ mag.T, 1e-5))
    return out


def decode(salience: np.ndarray, *, threshold: float) -> np.ndarray:
    """(T, 360) salience -> (T,) float32 Hz: the reference's ``to_local_average_cents``
    (salience-weighted mean of the 9 bins around the argmax) and ``decode`` (0 Hz where the
    peak salience <= threshold)."""
    t = salience.shape[0]
    if t == 0:
        return np.zeros(0, np.float32)
    start = np.argmax(salience, axis=1)  # window [argmax - 4, argmax + 4] in padded indexing
    idx = start[:, None] + np.arange(9)
    s = np.take_along_axis(np.pad(salience, ((0, 0), (4, 4))), idx, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):  # an all-zero window is unvoiced below
        cents = np.sum(s * _CENTS[idx], axis=1) / np.sum(s, axis=1)
    cents[np.max(salience, axis=1) <= threshold] = 0
    f0 = 10 * 2 ** (cents / 1200)
    f0[f0 == 10] = 0
    return f0.astype(np.float32)
