"""The explicit GPU set-up: settings MLX's CUDA backend reads from the environment."""

from __future__ import annotations

import os
from pathlib import Path

CONV_CACHE = 1024  # cuDNN convolution plans kept by MLX (MLX_CUDA_CONV_CACHE_SIZE)


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rvc" / "mlx-kernels"


def configure_gpu(*, conv_cache: int = CONV_CACHE, kernel_dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Give MLX's CUDA backend room for a conversion's kernels, once, **before MLX is first
    imported** (it reads these variables then or at first use). A variable already set is kept.

    * ``MLX_CUDA_CONV_CACHE_SIZE`` = ``conv_cache``: the cuDNN convolution plans kept per process.
      A conversion uses a few hundred (RMVPE's U-Net ~105 per input length, the synthesizer's
      and ContentVec's per chunk shape); when they do not fit, plans are rebuilt on every call
      (H200, 60 s of audio: the pipeline's f0 stage 467 ms against 140 with room).
    * ``MLX_PTX_CACHE_DIR`` = ``kernel_dir`` (default ``$XDG_CACHE_HOME/rvc/mlx-kernels``):
      MLX's runtime-compiled CUDA kernels are kept on disk, so a new process does not compile
      them again (``rvc warmup`` fills it, e.g. in a container build).

    Harmless on Apple GPUs and CPUs (nothing reads them). Returns the values in effect.
    ``VoiceConverter`` and the ``rvc`` command call this for you.
    """
    if int(conv_cache) < 1:
        raise ValueError(f"conv_cache={conv_cache!r}; expected a positive number of plans")
    ptx = Path(kernel_dir).expanduser() if kernel_dir is not None else _cache_root()
    os.environ.setdefault("MLX_CUDA_CONV_CACHE_SIZE", str(int(conv_cache)))
    if "MLX_PTX_CACHE_DIR" not in os.environ:
        try:
            ptx.mkdir(parents=True, exist_ok=True)
            os.environ["MLX_PTX_CACHE_DIR"] = str(ptx)
        except OSError:  # a read-only home: MLX compiles in every process, as without this
            pass
    return {k: os.environ[k] for k in ("MLX_CUDA_CONV_CACHE_SIZE", "MLX_PTX_CACHE_DIR") if k in os.environ}
