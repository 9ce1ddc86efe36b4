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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import rvc_runtime.errors
from rvc_runtime import WeightsSpec, onednn, resolve_weights

from ._checks import HOP, SAMPLE_RATE, as_audio
from .errors import F0InputError, UnknownBackendError, WeightsNotFoundError

logger = logging.getLogger(__name__)

ENV_WEIGHTS = "RVC_RMVPE_WEIGHTS"
HF_REPO_ID = "lexandstuff/mlx-rmvpe"  # = mlx_rmvpe.HF_REPO_ID
HF_FILENAME = "rmvpe.safetensors"  # = mlx_rmvpe.HF_WEIGHTS_FILE
N_FFT, N_MELS, FMIN, FMAX = 1024, 128, 30.0, 8000.0
BACKENDS = ("auto", "mlx", "cuda", "compiled")
ENV_BACKEND = "RVC_RMVPE_BACKEND"
# the "direct" U-Net's longest input in frames, with float32 convolutions exact / in TF32. H200,
# compiled, 32 / 160 / 256 / 512 frames: direct 2.7 / 5.2 / 6.3 / 10.4 ms; cuDNN exact 9.3 / - /
# 9.6 / 10.5, cuDNN TF32 3.7 / 3.8 / 4.0 / 3.9 (live blocks: 0.25 s = 32 frames, 1.5 s = 160)
DIRECT_FRAMES = {"exact": 256, "tf32": 64}
_CENTS = np.pad(20 * np.arange(360) + 1997.3794084376191, (4, 4))  # (368,), bin centres in cents


@dataclass(frozen=True)
class RMVPEBackend:
    """What runs RMVPE's heavy parts, chosen once (at load, or when a convolution is lent).

    ``name``: what was asked for (``"auto"``, ``"mlx"``, ``"cuda"``; ``"auto"`` resolves per part);
    ``unet``: ``"mlx"`` (MLX's ``conv2d``), ``"compiled"`` (the same, one ``mx.compile``d graph per
    input shape: fewer kernel launches for inputs of one length, e.g. live blocks), ``"direct"``
    (NVIDIA: inputs up to ``direct_frames`` frames, live blocks, on direct-convolution CUDA
    kernels, :mod:`._cuda_unet`, two launches per residual block, exact float32; longer ones
    compiled) or ``"conv2d"`` (the lent convolution, CPU);
    ``gru``: ``"mlx"`` (the BiGRU stepped in MLX), ``"numpy"`` (stepped in NumPy: the CPU, ~3x
    faster there), ``"onednn"`` (the CPU with oneDNN: one primitive for all steps,
    :mod:`rvc_runtime.onednn_rnn`; a padded 10 s clip's 68 -> 15 ms on two cores) or ``"cuda"``
    (one CUDA kernel for all steps);
    ``mel``: ``"numpy"`` (the front end in float64 on the host) or ``"mlx"`` (float32 on the
    device, as the reference's own ``torch.stft``: GPUs, where the host's FFT was ~10 ms per 10 s);
    ``max_frames`` / ``window``: the longest input run in one pass, and the window of longer
    ones (:class:`RMVPEModel`): 3200 / 2048 frames on the CPU and Apple GPUs, 8000 / 4096 on
    NVIDIA GPUs (MLX's CUDA backend), where each
    window's shape is another set of convolution plans (H200, 62 s: windows 132 ms, one pass 73
    alone; in the pipeline the windows' plans and the other stages' overflowed MLX's CUDA
    convolution-plan cache, ``MLX_CUDA_CONV_CACHE_SIZE``: 467 ms against 65).
    """

    name: str
    unet: str
    gru: str
    mel: str = "numpy"
    max_frames: int = 3200
    window: int = 2048
    direct_frames: int = 0


def choose_backend(backend: str = "auto", *, conv2d: Any = None) -> RMVPEBackend:
    """Resolve an RMVPE backend on MLX's current device: the one device check of rvc-f0.

    ``"auto"`` (``$RVC_RMVPE_BACKEND`` may name another): the BiGRU kernel on CUDA, the U-Net
    compiled on GPUs and on ``conv2d`` (a lent convolution) on the CPU when one is given, MLX
    otherwise; the mel front end on the device on GPUs; the BiGRU on oneDNN on the CPU when it
    is installed (:func:`rvc_runtime.onednn.available`), else stepped in NumPy;
    ``"mlx"``:
    MLX only; ``"cuda"``: the BiGRU kernel (MLX's CUDA backend required); ``"compiled"``: the
    U-Net ``mx.compile``d per input shape (any device; the BiGRU kernel on CUDA). Measured on an
    H200 (TF32): 0.31 s of audio 14.4 -> 8.2 ms, 10 s 22.6 -> 13.5 ms; salience within 4e-5.
    On CUDA, ``"auto"`` runs short inputs' U-Net on direct convolutions (``"direct"``:
    up to 64 frames, or 256 where ``MLX_ENABLE_TF32=0`` keeps cuDNN's convolutions exact).
    """
    name, source = backend, "backend="
    if name == "auto" and os.environ.get(ENV_BACKEND):
        name, source = os.environ[ENV_BACKEND], f"${ENV_BACKEND}="
    if name not in BACKENDS:
        raise UnknownBackendError(f"{source}{name!r} is not an RMVPE backend; expected one of {', '.join(BACKENDS)}")
    import mlx.core as mx

    gpu = mx.default_device() == mx.gpu
    cuda = gpu and mx.cuda.is_available()
    if name == "cuda" and not cuda:
        raise UnknownBackendError(f"{source}'cuda' needs MLX's CUDA backend on a GPU; use 'auto' or 'mlx' here")
    mel = "mlx" if gpu else "numpy"
    frames = (8000, 4096) if cuda else (3200, 2048)  # Apple GPUs: unmeasured there, unchanged
    if name == "mlx":
        return RMVPEBackend("mlx", "mlx", "mlx", "numpy", *frames)
    if name == "compiled":
        return RMVPEBackend("compiled", "compiled", "cuda" if cuda else "mlx", mel, *frames)
    unet = "mlx"
    if name == "auto":
        unet = "direct" if cuda else "compiled" if gpu else "conv2d" if conv2d is not None else "mlx"
    gru = "cuda" if cuda else "mlx" if gpu else "onednn" if onednn.available() else "numpy"
    direct = 0
    if unet == "direct":  # cuDNN in TF32 (MLX's default) overtakes the direct kernels sooner
        direct = DIRECT_FRAMES["exact" if os.environ.get("MLX_ENABLE_TF32") == "0" else "tf32"]
    return RMVPEBackend("cuda" if name == "cuda" else "auto", unet, gru, mel, *frames, direct)


class RMVPEModel:
    """A loaded RMVPE: mlx-rmvpe's network (decoder corrected) with the reference front end.

    Attributes: ``path`` (the weights file), ``corrected`` (whether the decoder correction was
    applied; False when the installed mlx-rmvpe already up-samples correctly), ``net`` (the
    mlx-rmvpe ``E2E``), ``backend`` (:class:`RMVPEBackend`), ``conv2d`` (a lent convolution),
    ``max_frames`` / ``window`` / ``context`` (long inputs, below).
    Thread-safe; one forward pass at a time.

    Long inputs: up to ``max_frames`` frames (the backend's: 3200 = 32 s; 8000 on NVIDIA GPUs)
    the network runs in one pass over the whole clip, as the reference does. Longer inputs
    (whose one-pass activations would grow by ~28 MB per second of audio at full width) run in
    windows of ``window`` frames (2048; 4096 on NVIDIA GPUs) with ``context`` frames (256 = 2.56 s) of
    real neighbouring input on each side, whose outputs are dropped; the mel is computed in
    blocks too. This deviates from the reference
    only near window seams (see the README for measured differences).
    """

    max_frames = 3200
    window = 2048
    context = 256

    def __init__(self, net: Any, path: Path, corrected: bool, *, backend: str = "auto") -> None:
        from ._mlx_net import keep_matrices

        self.net, self.path, self.corrected = net, path, corrected
        keep_matrices(net)
        self._lock = threading.Lock()
        self._conv2d: Any = None
        self._cpu_unet: Any = None
        self._gru_kernel: Any = None
        self.set_backend(backend)

    def set_backend(self, backend: str = "auto") -> RMVPEModel:
        """Choose the kernels now (:func:`choose_backend`, with the lent :attr:`conv2d`)."""
        self._asked = backend
        self.backend = choose_backend(backend, conv2d=self._conv2d)
        self.max_frames, self.window = self.backend.max_frames, self.backend.window
        self._cpu_unet = None
        self._gru_kernel = None
        return self

    @property
    def conv2d(self) -> Any:
        """A faster 2-D convolution for the CPU (see :mod:`._cpu_unet` for the interface), used
        for the U-Net by the ``auto`` backend when MLX runs on the CPU; rvc-convert lends
        oneDNN's. None: MLX's ``conv2d``. Setting it chooses the backend again."""
        return self._conv2d

    @conv2d.setter
    def conv2d(self, conv2d: Any) -> None:
        self._conv2d = conv2d
        self.set_backend(self._asked)

    def _unet(self) -> Any:
        """The U-Net over the lent ``conv2d`` or compiled (built once per backend), or None for
        MLX's own."""
        if self.backend.unet in ("compiled", "direct"):
            if self._cpu_unet is None:
                import mlx.core as mx

                net = self.net
                compiled = mx.compile(lambda x: net.cnn(net.unet(x)))  # retraced per input shape
                if self.backend.unet == "direct":
                    from ._cuda_unet import DeviceUnet, ShortInputs, conv_cuda

                    direct = lambda: mx.compile(DeviceUnet(net, conv_cuda).__call__)  # noqa: E731
                    compiled = ShortInputs(direct, compiled, self.backend.direct_frames)
                self._cpu_unet = compiled
            return self._cpu_unet
        if self.backend.unet != "conv2d":
            return None
        if self._cpu_unet is None:
            from ._cpu_unet import CpuUnet

            self._cpu_unet = CpuUnet(self.net, self._conv2d)
        return self._cpu_unet

    def _host_gru(self) -> Any:
        """The BiGRU on oneDNN (built once per backend), or None (another kernel)."""
        if self.backend.gru != "onednn":
            return None
        if self._gru_kernel is None:
            from rvc_runtime.onednn_rnn import BiGRU

            bigru = self.net.bigru
            grus = (bigru.gru_forward, bigru.gru_backward)
            self._gru_kernel = BiGRU(*[tuple(np.array(a, np.float32) for a in (g.Wx, g.Wh, g.b, g.bhn)) for g in grus])
        return self._gru_kernel

    def __repr__(self) -> str:
        return f"RMVPEModel(path={str(self.path)!r}, corrected={self.corrected}, backend={self.backend})"

    def mel(self, audio_16k: Any) -> np.ndarray:
        """(N,) 16 kHz audio -> (128, N // 160 + 1) float32 log-mel (the reference's front end)."""
        return log_mel(as_audio(audio_16k))

    def salience(self, audio_16k: Any) -> np.ndarray:
        """(N,) 16 kHz audio -> (N // 160 + 1, 360) float32 pitch salience (20-cent bins)."""
        from ._mlx_net import log_mel_mx, salience

        audio = as_audio(audio_16k)
        n_frames = len(audio) // HOP + 1
        mel = log_mel_mx if self.backend.mel == "mlx" else log_mel
        with self._lock:
            unet = self._unet()
            gru = {
                "cuda_gru": self.backend.gru == "cuda",
                "numpy_gru": self.backend.gru == "numpy",
                "host_gru": self._host_gru(),
            }
            if n_frames <= self.max_frames:
                out = salience(self.net, mel(audio), unet=unet, **gru)
            else:
                if self.window % 32 or self.context % 32 or self.window <= 0 or self.context < 0:
                    raise F0InputError(f"RMVPE window={self.window}, context={self.context}; expected multiples of 32")
                out = np.empty((n_frames, 360), np.float32)
                for c0 in range(0, n_frames, self.window):
                    a, b = max(0, c0 - self.context), min(n_frames, c0 + self.window + self.context)
                    sal = salience(self.net, mel(audio, frames=(a, b)), unet=unet, **gru)
                    c1 = min(n_frames, c0 + self.window)
                    out[c0:c1] = sal[c0 - a : c1 - a]
        return out if self._gru_kernel_ok() else self.salience(audio)

    def _gru_kernel_ok(self) -> bool:
        """False where a BiGRU CUDA kernel run since the last check gave up (its results are
        wrong; the next run uses the kernel that cannot): the caller computes again."""
        if self.backend.gru != "cuda":
            return True
        from . import _gru_cuda

        return _gru_cuda.split_ok()

    def __call__(self, audio_16k: Any, *, threshold: float = 0.03) -> np.ndarray:
        """(N,) 16 kHz audio -> (N // 160 + 1,) float32 f0 in Hz, 0 where the salience peak is
        at or below ``threshold`` (the reference's ``infer_from_audio(audio, thred)``)."""
        _check_threshold(threshold)
        return decode(self.salience(audio_16k), threshold=threshold)

    def start(self, audio_16k: Any, *, threshold: float = 0.03, on_device: Any = None) -> Callable[[], np.ndarray]:
        """:meth:`__call__` in two halves, for a pipeline that overlaps its stages: the network's
        work is queued now and the returned function waits for it and decodes the f0 (the same
        values). Where every part runs on the device (GPUs, inputs of one pass) this returns
        before the work is done, so the caller can queue more or work on the host meanwhile;
        elsewhere the estimate is made here and the function only returns it. The graph is
        built under the model's lock but the queued work finishes outside it: call ``start`` and
        its function from one thread (as ``rvc_convert.run_pipeline`` does). ``on_device``: the
        same samples as a float32 ``mlx.core.array`` already on the device (one upload shared
        by a pipeline's stages), used instead of copying ``audio_16k`` there."""
        _check_threshold(threshold)
        audio = as_audio(audio_16k)
        b = self.backend
        host = b.mel != "mlx" or b.gru in ("numpy", "onednn") or b.unet == "conv2d"
        if host or len(audio) // HOP + 1 > self.max_frames:
            f0 = decode(self.salience(audio), threshold=threshold)
            return lambda: f0
        import mlx.core as mx

        from ._mlx_net import log_mel_mx, salience

        with self._lock:
            mel = log_mel_mx(audio, on_device=on_device)
            sal = salience(self.net, mel, unet=self._unet(), cuda_gru=b.gru == "cuda", lazy=True)
        mx.async_eval(sal)

        def finish() -> np.ndarray:
            s = np.array(sal)
            return decode(s if self._gru_kernel_ok() else self.salience(audio), threshold=threshold)

        return finish


def _check_threshold(threshold: Any) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)) or not 0 <= threshold < 1:
        raise F0InputError(f"threshold={threshold!r}; expected a salience threshold in [0, 1) (reference: 0.03)")


def load_rmvpe(weights: str | os.PathLike[str] | None = None, *, backend: str = "auto") -> RMVPEModel:
    """Load (once per file and backend; later calls return the cached model) the RMVPE pitch network.

    Weights, in order: ``weights`` (a local mlx-rmvpe ``.safetensors`` path), else the
    ``RVC_RMVPE_WEIGHTS`` environment variable, else ``rmvpe.safetensors`` from the Hugging Face
    repo ``lexandstuff/mlx-rmvpe`` (the local cache first, then a download). Loading is strict,
    float16 files are upcast to float32, and mlx-rmvpe 0.1.0's decoder is corrected.

    ``backend``: ``"auto"`` (default; ``$RVC_RMVPE_BACKEND`` may name another), ``"mlx"`` or
    ``"cuda"`` or ``"compiled"``, chosen here (:func:`choose_backend`); ``model.backend`` says
    what runs.

    Raises:
        UnknownBackendError: an unknown backend name (or ``"cuda"`` without CUDA).
        WeightsNotFoundError: the path does not exist, or the Hub copy is neither cached nor
            downloadable (offline): run ``rvc models download`` or pass a local path.
        WeightsFormatError: the file is not mlx-rmvpe safetensors for this network.
    """
    choose_backend(backend)  # an unknown name fails first
    path = _resolve(weights)
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, backend)
    with _CACHE_LOCK:
        model = _CACHE.get(key)
        if model is None:
            model = _load(path, backend=backend)
            _CACHE[key] = model
    return model


_CACHE: dict[tuple[str, int, int, str], RMVPEModel] = {}
_CACHE_LOCK = threading.Lock()


def _load(path: Path, *, correct: bool = True, backend: str = "auto") -> RMVPEModel:
    """Uncached load; ``correct=False`` gives mlx-rmvpe as published (tests prove the fix with it)."""
    from ._mlx_net import load_net

    logger.info("loading RMVPE weights from %s", path)
    net, corrected = load_net(path, correct=correct)
    return RMVPEModel(net, path, corrected, backend=backend)


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
        x = audio[_reflect_index(n, f0, f1)].astype(np.float64)
        fr = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]
        mag = np.abs(np.fft.rfft(fr * _window(), axis=1))  # (frames, 513)
        out[:, f0 - a : f1 - a] = np.log(np.maximum(basis @ mag.T, 1e-5))
    return out


def _reflect_index(n: int, f0: int, f1: int) -> np.ndarray:
    """Input sample indices of the centred STFT's padded samples ``[f0 * hop, (f1 - 1) * hop +
    n_fft)``: shifted by ``n_fft // 2``, reflected at the ends (numpy's "reflect", no edge repeat)."""
    idx = np.abs(np.arange(f0 * HOP, (f1 - 1) * HOP + N_FFT) - N_FFT // 2)
    if n <= 1:
        return np.zeros_like(idx)
    return (n - 1) - np.abs((n - 1) - idx % (2 * (n - 1)))


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
