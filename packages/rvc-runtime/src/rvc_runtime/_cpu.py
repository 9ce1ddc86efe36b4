"""The explicit CPU set-up: what ``import rvc_synth`` / ``import rvc_f0`` used to do at import."""

from __future__ import annotations

from typing import NamedTuple

from . import _blas, onednn


class CpuLibraries(NamedTuple):
    """What :func:`configure_cpu` found: ``blas`` (the OpenBLAS path MLX's CPU matmuls use, or
    None: the bundled reference BLAS) and ``onednn`` (oneDNN's convolutions are usable)."""

    blas: str | None
    onednn: bool


def configure_cpu(*, blas: bool = True, dnnl: bool = True) -> CpuLibraries:
    """Load the faster CPU libraries for this process, once (later calls return the same answer).

    Call it **before MLX is first imported** (``import mlx.core``, ``import rvc_synth``...):

    * ``blas``: an OpenBLAS loaded with ``RTLD_GLOBAL`` (``$RVC_BLAS`` = a path or ``0``, else the
      system ``libopenblas``, else the one in faiss-cpu's wheel) so that MLX's Linux CPU matmuls
      resolve to it instead of the reference BLAS it links (~150 vs ~2-8 GFLOP/s). A no-op on
      macOS and once ``mlx.core`` is imported (it cannot swap its BLAS any more).
    * ``dnnl``: oneDNN (``pip install rvc-runtime[onednn]``; ``$RVC_DNNL`` = a path or ``0``),
      whose convolutions the CPU paths of rvc-synth, rvc-f0 and rvc-features use when present.

    rvc-convert's ``VoiceConverter`` and the ``rvc`` command call this for you; importing any rvc
    package changes nothing in the process.
    """
    path = _blas.ensure_fast_blas() if blas else None
    return CpuLibraries(path, onednn.available() if dnnl else False)
