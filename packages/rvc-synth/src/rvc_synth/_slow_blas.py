"""Say once when MLX's CPU matmuls run on the reference BLAS (the synthesizer ~10x slower).

MLX's Linux CPU wheel links the reference (netlib) BLAS; an OpenBLAS loaded globally before MLX
is imported replaces it (the rvc packages do that on import where one is installed). Whether that
happened is visible in the process: ``cblas_sgemm`` resolves globally to the library MLX will
call. Nothing is loaded or changed here; the check runs when a model is loaded.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

logger = logging.getLogger("rvc_synth")

FAST = ("openblas", "mkl", "blis", "accelerate", "armpl", "flexiblas")
FIX = (
    "install an optimized BLAS (Debian/Ubuntu: apt-get install libopenblas0-pthread; or pip install faiss-cpu) "
    "and call rvc_runtime.configure_cpu() before anything imports MLX (rvc_convert and the rvc command do); "
    "RVC_BLAS=/path/to/"
    "libopenblas.so picks one"
)
_warned = False


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]  # fmt: skip


def blas_library() -> str | None:
    """The file that defines the global ``cblas_sgemm`` (the one MLX calls), or None when no
    library exports it globally (then MLX uses the reference BLAS bundled with its wheel)."""
    try:
        process = ctypes.CDLL(None)
        address = ctypes.cast(process.cblas_sgemm, ctypes.c_void_p).value
    except (OSError, AttributeError):
        return None
    info = _DlInfo()
    dladdr = process.dladdr
    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    if not address or not dladdr(address, ctypes.byref(info)) or not info.dli_fname:
        return None
    return os.fsdecode(info.dli_fname)


def is_fast(path: str | None) -> bool:
    return path is not None and any(name in os.path.basename(path).lower() for name in FAST)


def warn_if_reference_blas() -> bool:
    """Log one warning per process when MLX runs on the CPU of a Linux machine with the reference
    BLAS; returns whether it warned now."""
    global _warned
    if _warned or sys.platform != "linux" or os.environ.get("RVC_BLAS") == "0":
        return False
    import mlx.core as mx

    if mx.default_device() != mx.cpu:
        return False
    found = blas_library()
    if is_fast(found):
        return False
    _warned = True
    logger.warning(
        "MLX's CPU matmuls run on the reference BLAS (%s): the synthesizer is ~10x slower. Fix: %s",
        found or "the one bundled with MLX's wheel",
        FIX,
    )
    return True
