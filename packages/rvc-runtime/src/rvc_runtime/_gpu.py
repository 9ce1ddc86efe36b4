"""The explicit GPU set-up: settings MLX's CUDA backend reads from the environment, and the
memory bound of its evaluations."""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger("rvc_runtime")

CONV_CACHE = 1024  # cuDNN convolution plans kept by MLX (MLX_CUDA_CONV_CACHE_SIZE)
OPS_PER_BUFFER = 8  # operations MLX queues per command buffer (MLX_MAX_OPS_PER_BUFFER)
MEMORY_LIMIT = 3.0  # GiB: MLX's evaluation guideline on CUDA (work in flight is waited for above it)
_limit_chosen = False  # the first call's memory_limit is the one applied (later calls keep it)
_compile_chosen = False  # likewise compile=None's choice (an explicit True/False always applies)
MARK = "compiled-by-rvc-warmup-mlx-{version}"  # in the kernel folder: mark_kernels_built()


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rvc" / "mlx-kernels"


def configure_gpu(
    *,
    conv_cache: int = CONV_CACHE,
    kernel_dir: str | os.PathLike[str] | None = None,
    cuda_graphs: bool = False,
    ops_per_buffer: int = OPS_PER_BUFFER,
    memory_limit: float | None = MEMORY_LIMIT,
    compile: bool | None = None,
) -> dict[str, str]:
    """Set MLX's CUDA backend up for conversions, once, **before MLX's first GPU work** (it
    reads these variables at import or at first use). A variable already set is kept.

    * ``MLX_CUDA_CONV_CACHE_SIZE`` = ``conv_cache``: the cuDNN convolution plans kept per process.
      A conversion uses a few hundred (RMVPE's U-Net ~105 per input length, the synthesizer's
      and ContentVec's per chunk shape); when they do not fit, plans are rebuilt on every call
      (H200, 60 s of audio: the pipeline's f0 stage 467 ms against 140 with room).
    * ``MLX_PTX_CACHE_DIR`` = ``kernel_dir`` (default ``$XDG_CACHE_HOME/rvc/mlx-kernels``):
      MLX's runtime-compiled CUDA kernels are kept on disk, so a new process does not compile
      them again (``rvc warmup`` fills it, e.g. in a container build).
    * ``MLX_USE_CUDA_GRAPHS`` = ``cuda_graphs`` (off by default): MLX records each command
      buffer as a CUDA graph, but one holding a cuDNN convolution or cuBLAS matmul (a child
      graph) cannot be updated, so it is instantiated and destroyed at every commit: measured
      on an H200 with CUPTI, those two calls took more host time than the stages' kernels ran
      (60 s, float16: RMVPE 72 ms wall for 25 ms of kernels). Launched directly, a whole
      conversion took 87 -> 68 ms (10 s) and 320 -> 285 ms (60 s).
    * ``MLX_MAX_OPS_PER_BUFFER`` = ``ops_per_buffer``: MLX commits a command buffer after this
      many operations, and every operation's inputs live until its buffer completes. With
      MLX's default a long compiled graph (a decoder stretch) was one buffer and held nearly all
      its activations at once, and the memory limit below could not act, since it waits only
      for committed buffers. H200, the TF32 decoder on 1200 frames in one compiled graph:
      3.4 GB beyond its output by default, 3.0 GB with 20, 2.9 GB with 8, at the same speed
      (11.4-11.9 ms); exact float32 6.6 -> 3.2 GB. The whole TF32 pipeline with 1500-frame
      stretches (a 10 s chunk in one graph): peak 5.8 -> 3.0 GB at 10 s, 7.2 -> 3.2 GB at 60 s;
      float16 2.8 -> 2.0 GB and 3.4 -> 3.0 GB, no slower (cross-process, 7 rounds each). Not
      set on macOS: MLX's Metal backend reads the same variable, with defaults per GPU.
    * ``memory_limit`` (GiB; None leaves MLX's): with CUDA, MLX's memory limit is lowered to
      it. Launched directly, the work of a whole evaluation is queued at once and its
      temporaries live until it completes (60 s, float16: peak 3.3 -> 6.2 GB); above the
      limit, an evaluation waits for work in flight before queueing more (a guideline for
      MLX's scheduler, not an allocation cap). The limit is process-wide: in a process that
      holds other MLX models, call ``configure_gpu(memory_limit=None)`` (or a larger limit)
      yourself before making a ``VoiceConverter``: the first call's ``memory_limit`` is the
      one applied, later calls (``VoiceConverter``'s) keep it.
    * ``compile`` (CUDA only): MLX compiles each fused graph (``mx.compile``) into a CUDA
      module with NVRTC on first use, 2-7 s each on an H200 host, a few dozen for a
      conversion; kept in the kernel folder after that. ``None`` (default): compiled graphs
      only where :func:`mark_kernels_built` has marked that folder for this MLX version (``rvc
      warmup`` does, after building them), else MLX's compile is turned off for the process
      (``mx.disable_compile()``: the same operations one kernel each, all built into MLX):
      H200, a fresh machine's first 10 s float16 conversion 3.65 s instead of 50.3 (measured),
      then 10 s in 58-84 ms instead of 51 compiled (60 s: 285 against 195). ``True``/``False`` force
      it (``rvc warmup`` and ``rvc bench`` compile). ``MLX_DISABLE_COMPILE``, if you set it, wins.

    Harmless on Apple GPUs and CPUs (the variables are CUDA's, the command-buffer size is not
    set on macOS, the limit is set only with CUDA). Returns the variables in effect.
    ``VoiceConverter`` and the ``rvc`` command call this for you.
    """
    if int(conv_cache) < 1:
        raise ValueError(f"conv_cache={conv_cache!r}; expected a positive number of plans")
    if int(ops_per_buffer) < 1:
        raise ValueError(f"ops_per_buffer={ops_per_buffer!r}; expected a positive number of operations")
    if memory_limit is not None and not memory_limit > 0:
        raise ValueError(f"memory_limit={memory_limit!r}; expected a positive number of GiB or None")
    ptx = Path(kernel_dir).expanduser() if kernel_dir is not None else _cache_root()
    os.environ.setdefault("MLX_CUDA_CONV_CACHE_SIZE", str(int(conv_cache)))
    os.environ.setdefault("MLX_USE_CUDA_GRAPHS", "1" if cuda_graphs else "0")
    if sys.platform != "darwin":  # Metal reads it too, with its own per-GPU defaults: left alone
        os.environ.setdefault("MLX_MAX_OPS_PER_BUFFER", str(int(ops_per_buffer)))
    if "MLX_PTX_CACHE_DIR" not in os.environ:
        try:
            ptx.mkdir(parents=True, exist_ok=True)
            os.environ["MLX_PTX_CACHE_DIR"] = str(ptx)
        except OSError:  # a read-only home: MLX compiles in every process, as without this
            pass
    global _limit_chosen
    if not _limit_chosen and memory_limit is not None and importlib.util.find_spec("mlx") is not None:
        import mlx.core as mx  # (rvc-runtime does not need MLX; the stages that use it do)

        if mx.cuda.is_available():
            limit = int(memory_limit * 2**30)
            if mx.get_memory_limit() > limit:  # a lower limit already set is kept
                mx.set_memory_limit(limit)
    _limit_chosen = True
    global _compile_chosen
    if (compile is not None or not _compile_chosen) and "MLX_DISABLE_COMPILE" not in os.environ:
        if importlib.util.find_spec("mlx") is not None:
            import mlx.core as mx

            if mx.cuda.is_available():
                on = compile if compile is not None else _marked(_kernel_dir(), mx.__version__)
                (mx.enable_compile if on else mx.disable_compile)()
                if not on and compile is None:
                    logger.info("MLX's compiled graphs are off until `rvc warmup` has built them on this machine")
        _compile_chosen = True
    keys = ("MLX_CUDA_CONV_CACHE_SIZE", "MLX_PTX_CACHE_DIR", "MLX_USE_CUDA_GRAPHS", "MLX_MAX_OPS_PER_BUFFER")
    return {k: os.environ[k] for k in keys if k in os.environ}


def _kernel_dir() -> Path:
    return Path(os.environ["MLX_PTX_CACHE_DIR"]) if os.environ.get("MLX_PTX_CACHE_DIR") else _cache_root()


def _marked(folder: Path, version: str) -> bool:
    return (folder / MARK.format(version=version)).is_file()


def mark_kernels_built() -> Path | None:
    """Mark the kernel folder (``MLX_PTX_CACHE_DIR``, else ``configure_gpu``'s default) as holding
    this MLX version's compiled kernels, so that :func:`configure_gpu` turns MLX's compile on
    in later processes (``rvc warmup`` calls it once it has converted every length). Returns
    the marker's path, or None where the folder cannot be written or ``MLX_DISABLE_COMPILE``
    is set (nothing compiled was built)."""
    import mlx.core as mx

    if "MLX_DISABLE_COMPILE" in os.environ:
        return None
    folder = _kernel_dir()
    mark = folder / MARK.format(version=mx.__version__)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        mark.write_text("rvc warmup built MLX's compiled kernels here for this MLX version\n")
    except OSError:
        return None
    return mark
