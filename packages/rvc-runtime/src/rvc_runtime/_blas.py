"""Pick up an optimized BLAS for MLX's Linux CPU backend.

MLX's Linux CPU wheel links the reference (netlib) BLAS: matmul runs at ~2-8 GFLOP/s
instead of ~150 with OpenBLAS. Loading an OpenBLAS with ``RTLD_GLOBAL`` *before* MLX is
first imported makes MLX's ``cblas_sgemm`` calls resolve to it. This module does that
once, from (in order): ``$RVC_BLAS`` (a path; ``RVC_BLAS=0`` disables), the system
OpenBLAS (Debian/Ubuntu ``libopenblas0``), the OpenBLAS bundled in ``faiss-cpu``.
It is a no-op on macOS (MLX uses Accelerate/Metal there) and after MLX was imported.
Nothing happens at import: :func:`rvc_runtime.configure_cpu` calls :func:`ensure_fast_blas`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import importlib.util
import logging
import os
import sys

logger = logging.getLogger(__name__)

_loaded: str | None = None


def _candidates() -> list[list[str]]:
    """Each candidate is a list of libraries to load in order (dependencies first)."""
    out: list[list[str]] = []
    env = os.environ.get("RVC_BLAS")
    if env:
        out.append([env])
    for name in ("openblas", "openblasp", "openblaso"):
        found = ctypes.util.find_library(name)
        if found:
            out.append([found])
    spec = importlib.util.find_spec("faiss")
    if spec is not None and spec.submodule_search_locations:
        site = os.path.dirname(list(spec.submodule_search_locations)[0])
        libs = glob.glob(os.path.join(site, "faiss_cpu.libs", "*.so*"))
        order = ("quadmath", "gfortran", "gomp", "openblas")
        chain = [next((f for f in libs if o in os.path.basename(f)), "") for o in order]
        if chain[-1]:
            out.append([f for f in chain if f])
    return out


def ensure_fast_blas() -> str | None:
    """Load an OpenBLAS globally if MLX is not imported yet; return its path or None."""
    global _loaded
    if _loaded is not None or sys.platform != "linux":
        return _loaded
    if os.environ.get("RVC_BLAS") == "0":
        return None
    if "mlx.core" in sys.modules:
        logger.debug("mlx already imported; cannot swap its BLAS any more")
        return None
    for chain in _candidates():
        try:
            for lib in chain:
                ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:  # pragma: no cover - depends on the machine
            logger.debug("could not load %s: %s", chain, exc)
            continue
        _loaded = chain[-1]
        logger.debug("using BLAS %s for MLX's CPU backend", _loaded)
        return _loaded
    logger.info(
        "no OpenBLAS found: MLX's CPU matmuls run on the reference BLAS (slow); "
        "install libopenblas0 (apt) or faiss-cpu (pip), or set RVC_BLAS=/path/libopenblas.so"
    )
    return None
