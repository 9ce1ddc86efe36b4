"""The order in which faiss-cpu sums a squared L2 distance on this machine.

FAISS's ``fvec_L2sqr`` is a vectorised loop: lane ``l`` of ``L`` accumulates ``d * d`` with
``d = x[i] - y[i]`` for ``i = l, l + L, ...`` (fused multiply-add, or a product then a sum),
then the ``L`` lane sums are halved pairwise (``L/2``, ..., 1 apart). Which ``L`` and whether
fused depends on the SIMD level faiss-cpu picks for the CPU: AVX-512 hosts sum 16 lanes with
FMA; an AVX2-only AMD EPYC (faiss-cpu 1.15.1) 8 lanes, product then sum. The exact scores, and
the order of neighbours at ties, follow from it, so the device scan (``_ivf_cuda``) sums in the
order measured here, once per process, on FAISS's own flat search. Imports no MLX.
"""

from __future__ import annotations

import functools
import logging

import faiss
import numpy as np

logger = logging.getLogger("rvc_index")

ORDERS = ((16, True), (8, False), (8, True), (16, False))  # (lanes, fused), the likeliest first
DEFAULT = ORDERS[0]


def l2sqr(diff: np.ndarray, order: tuple[int, bool]) -> np.ndarray:
    """Squared L2 over the last axis of ``diff`` (float32, a multiple of ``lanes`` long) summed
    in ``order`` = (lanes, fused), as FAISS's loop: float32 out."""
    lanes, fused = order
    acc = np.zeros(diff.shape[:-1] + (lanes,), np.float32)
    for t in range(0, diff.shape[-1], lanes):
        x = diff[..., t : t + lanes].astype(np.float32)
        if fused:  # fma(d, d, s): the exact product and sum, rounded once (float64 holds both exactly)
            acc = (acc.astype(np.float64) + x.astype(np.float64) ** 2).astype(np.float32)
        else:
            acc = acc + x * x
    h = lanes // 2
    while h:
        acc = acc[..., :h] + acc[..., h : 2 * h]
        h //= 2
    return acc[..., 0]


@functools.cache
def faiss_order() -> tuple[int, bool]:
    """(lanes, fused) of faiss-cpu's squared L2 on this CPU: the :data:`ORDERS` entry whose sums
    equal an ``IndexFlatL2``'s distances bit for bit (random vectors of 64 dimensions, 2,000
    pairs, each summed by ``fvec_L2sqr`` as in an IVF-Flat list scan); :data:`DEFAULT` (logged) if none does."""
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((500, 64)).astype(np.float32)
    xq = rng.standard_normal((10, 64)).astype(np.float32)  # fewer than FAISS's BLAS threshold (20)
    index = faiss.IndexFlatL2(64)
    index.add(xb)
    dist, ids = index.search(xq, 200)
    diff = xb[ids] - xq[:, None, :]
    for order in ORDERS:
        if np.array_equal(l2sqr(diff, order), dist):
            return order
    logger.warning("FAISS's squared-L2 summation order is none known here; the device search sums 16 lanes with FMA")
    return DEFAULT
