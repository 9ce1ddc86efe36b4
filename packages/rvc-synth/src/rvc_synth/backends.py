"""How the synthesizer's heavy kernels run: chosen once, when a model is built or loaded.

>>> m = rvc_synth.load("voice.pth")                    # backend="auto"
>>> m.backend.name, m.backend.precision                 # ("onednn", "float32") on a CPU with oneDNN
>>> m = rvc_synth.load("voice.pth", backend="mlx")     # plain MLX everywhere

Backends (:data:`BACKENDS`):

* ``"mlx"``: MLX only. Convolutions on MLX's own kernels on GPUs (cuDNN / Metal), as per-tap
  GEMMs on the CPU (MLX's CPU dilated/transposed convolutions are naive); MLX's element-wise
  ``tanh``/``sigmoid``/``sin``/``exp``; the decoder stretches compiled (``mx.compile``) on GPUs.
* ``"numpy"``: per-tap GEMM convolutions, and the transcendental-heavy parts (the WN gate, the
  NSF sine, the merge ``tanh``, the attention softmax) in NumPy, whose SIMD functions are ~50x
  faster than MLX's scalar CPU ones (float32 only; other dtypes stay in MLX). Decoder stretches
  on two CPU streams.
* ``"onednn"``: ``"numpy"``, with the decoder's convolution stack on oneDNN (activations fused;
  needs ``libdnnl.so.3``, ``pip install onednn-cpu-gomp``).
* ``"auto"`` (default): ``"mlx"`` on GPUs; on the CPU ``"onednn"`` when oneDNN loads, else
  ``"numpy"``.

One environment override, read only by :func:`choose` (so at load time, never during a forward
pass): ``RVC_BACKEND=auto|mlx|numpy|onednn`` replaces ``backend="auto"`` (an explicit name wins).

Precision is a parameter too: ``dtype`` (``float32``/``float16``/``bfloat16``) and ``tf32``.
MLX's CUDA backend uses TF32 for float32 matmuls/convolutions unless ``MLX_ENABLE_TF32=0``,
and it reads that variable once per process, at its first CUDA matmul or convolution (a
function-local static, default on). So on CUDA, :func:`choose` writes it (``"0"`` for exact
float32, the default; ``"1"`` for ``tf32=True``, and by default with a float16/bfloat16
synthesizer) when it is not set yet; ``tf32=None`` keeps a value the caller set. With a half
precision synthesizer TF32 is the default because the float32 stages (ContentVec, RMVPE) then
run as the reference's PyTorch defaults run them; in exact float32 they took 5.7 GB (RMVPE)
and 7.3 GB (ContentVec) on a 60 s input against 1.9 and 3.0 GB in TF32 (H200), and the whole
float16 conversion of 60 s 431 -> 335 ms. It applies process-wide (ContentVec and RMVPE too)
and cannot change once MLX has read it; a conflicting request is logged and
:attr:`Backend.tf32` reports the value in force. Nothing here runs at import; on the CPU and on
Metal nothing is written.

For experiments, a :class:`Backend` can be edited and handed back:
``m.set_backend(dataclasses.replace(m.backend, conv="native", compile="all"))``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace

from .errors import RVCSynthError

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "mlx", "numpy", "onednn")
ENV_BACKEND = "RVC_BACKEND"
ENV_TF32 = "MLX_ENABLE_TF32"
DTYPES = ("float32", "float16", "bfloat16")

# decoder stretch lengths (frames) of the MLX decoder; see generator.py for the measurements
CPU_CHUNK_FRAMES = 500
GPU_EXACT_CHUNK_FRAMES = 1200
GPU_TF32_CHUNK_FRAMES = 1500
GPU_HALF_CHUNK_FRAMES = 1500


class BackendError(RVCSynthError, ValueError):
    """An unknown backend name, or one that cannot run here."""


@dataclass(frozen=True)
class Backend:
    """The kernels a :class:`~rvc_synth.Synthesizer` runs, fixed when it is built or loaded.

    Attributes:
        name: ``"mlx"``, ``"numpy"`` or ``"onednn"`` (what ``"auto"`` resolved to).
        device: ``"cpu"`` or ``"gpu"``: MLX's default device when chosen.
        conv: ``"native"`` (MLX's ``conv1d``/``conv_transpose1d``) or ``"gemm"`` (strided slices
            and matmuls, :mod:`rvc_synth.layers`).
        math: ``"numpy"`` or ``"mlx"``: where float32 ``tanh``/``sigmoid``/``sin`` and the
            attention softmax run.
        decoder: ``"onednn"`` or ``"mlx"``: the decoder's convolution stack.
        compile: ``"off"``, ``"decoder"`` (the decoder stretches, whose shape repeats) or
            ``"all"`` (also the encoder and flow, per input length).
        gather: ``"mlx"`` or ``"cuda"``: the embedding, band and resampling gathers
            (:mod:`rvc_runtime.gather`; ``"cuda"`` on MLX's CUDA backend: no NVRTC module per
            gathered dtype on a fresh machine).
        streams: MLX CPU streams the decoder stretches alternate on (0 = the default stream).
        dtype: the network's dtype (``"float32"``, ``"float16"``, ``"bfloat16"``).
        tf32: float32 matmuls/convolutions in TF32 (NVIDIA only).
    """

    name: str
    device: str
    conv: str
    math: str
    decoder: str
    compile: str
    streams: int
    dtype: str = "float32"
    tf32: bool = False
    gather: str = "mlx"

    @property
    def precision(self) -> str:
        """``"float32"``, ``"tf32"``, ``"float16"`` or ``"bfloat16"``: the arithmetic in use."""
        return "tf32" if self.tf32 and self.dtype == "float32" else self.dtype

    @property
    def chunk_frames(self) -> int:
        """Default decoder stretch (frames) of the MLX decoder: 500 on the CPU; on GPUs 1200 for
        exact float32, 1500 for TF32 and half precision (a 10 s chunk in one stretch; memory
        bounded by ``rvc_runtime.configure_gpu``'s command buffers)."""
        if self.device == "cpu":
            return CPU_CHUNK_FRAMES
        if self.dtype != "float32":
            return GPU_HALF_CHUNK_FRAMES
        return GPU_TF32_CHUNK_FRAMES if self.tf32 else GPU_EXACT_CHUNK_FRAMES

    def __str__(self) -> str:
        return f"{self.name} ({self.device}, {self.precision})"


def _device() -> tuple[str, bool]:
    """MLX's default device, ``"cpu"`` or ``"gpu"``, and whether it is CUDA: the one device
    check of this package."""
    import mlx.core as mx

    gpu = mx.default_device() == mx.gpu
    return ("gpu" if gpu else "cpu"), gpu and mx.cuda.is_available()


def _onednn_available() -> bool:
    from rvc_runtime import onednn as _dnnl

    return _dnnl.available()


def choose(backend: str | Backend = "auto", *, dtype: str = "float32", tf32: bool | None = None) -> Backend:
    """Resolve a backend name (plus ``$RVC_BACKEND`` for ``"auto"``) on the current MLX device.

    Loads oneDNN (``"auto"`` on the CPU, ``"onednn"``) and, on CUDA, fixes ``MLX_ENABLE_TF32``
    (see the module docstring). A :class:`Backend` is returned as given (with ``dtype``).

    Raises:
        BackendError: an unknown name, or ``"onednn"`` without the library.
    """
    if dtype not in DTYPES:
        raise BackendError(f"dtype={dtype!r}; expected one of {', '.join(DTYPES)}")
    if isinstance(backend, Backend):
        return replace(backend, dtype=dtype)
    name, source = backend, "backend="
    if name == "auto" and os.environ.get(ENV_BACKEND):
        name, source = os.environ[ENV_BACKEND], f"${ENV_BACKEND}="
    if name not in BACKENDS:
        raise BackendError(f"{source}{name!r} is not a synthesizer backend; expected one of {', '.join(BACKENDS)}")
    device, cuda = _device()
    if name == "auto":
        name = "mlx" if device == "gpu" else "onednn" if _onednn_available() else "numpy"
    elif name == "onednn" and not _onednn_available():
        raise BackendError(
            f"{source}'onednn' but oneDNN (libdnnl.so.3) could not be loaded; install it "
            f"(pip install onednn-cpu-gomp) or choose one of {', '.join(b for b in BACKENDS if b != 'onednn')}"
        )
    gpu = device == "gpu"
    return Backend(
        name=name,
        device=device,
        conv="native" if name == "mlx" and gpu else "gemm",
        math="mlx" if name == "mlx" else "numpy",
        decoder="onednn" if name == "onednn" else "mlx",
        compile="decoder" if gpu else "off",
        streams=0 if gpu else 2,
        dtype=dtype,
        tf32=_tf32(tf32, half=dtype != "float32") if cuda else False,
        gather=_gather() if cuda else "mlx",
    )


def _gather() -> str:
    """``"cuda"`` where rvc-runtime's gather kernels build and agree (checked once per process)."""
    from rvc_runtime import gather

    return gather.choose().name


def _tf32(want: bool | None, *, half: bool = False) -> bool:
    """Fix ``MLX_ENABLE_TF32`` for this process (CUDA only); the value in force. ``half``: the
    synthesizer runs in float16/bfloat16, so TF32 is the default for the float32 stages."""
    have = os.environ.get(ENV_TF32)
    if want is None:
        if have is None:
            os.environ[ENV_TF32] = "1" if half else "0"  # exact float32 unless asked or half precision
            return half
        return have != "0"
    if have is None:
        os.environ[ENV_TF32] = "1" if want else "0"
        return want
    if (have != "0") != want:
        logger.warning(
            "tf32=%s asked, but %s=%s is already set in this process (MLX reads it once): float32 runs %s",
            want,
            ENV_TF32,
            have,
            "in TF32" if have != "0" else "exact",
        )
    return have != "0"


#: What modules built outside a :class:`~rvc_synth.Synthesizer` use until a backend is set.
DEFAULT_BACKEND = Backend(name="mlx", device="cpu", conv="gemm", math="mlx", decoder="mlx", compile="off", streams=0)
