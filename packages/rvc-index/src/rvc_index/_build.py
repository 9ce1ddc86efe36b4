"""build_index: RVC's index training (train_index in RVC-Project WebUI), for any dimension."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import faiss
import numpy as np

from ._index import FeatureIndex, _as_rows
from .errors import IndexInputError

logger = logging.getLogger(__name__)

_ADD_BATCH = 8192  # RVC adds the vectors in batches of 8192


def _n_ivf(n: int) -> int:
    """RVC's number of IVF lists for n training vectors (at least 39 vectors per list)."""
    return max(1, min(int(16 * math.sqrt(n)), n // 39))


def _positive_int(value: object, name: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise IndexInputError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def build_index(
    vectors: object,
    *,
    exact: bool = False,
    seed: int | None = 0,
    kmeans_above: int = 200_000,
    kmeans_centroids: int = 10_000,
    progress: Callable[[str, float], None] | None = None,
) -> FeatureIndex:
    """Build a squared-L2 index over ``vectors`` (N, D), any D (RVC: 256 for v1, 768 for v2).

    IVF mode (default), as RVC's index training: the rows are shuffled with a permutation
    drawn from ``seed`` (``seed=None`` keeps the given order); if N > ``kmeans_above``
    (200,000) they are first reduced to ``kmeans_centroids`` (10,000) k-means centroids
    (faiss.Kmeans, 20 iterations, seeded; RVC uses scikit-learn's MiniBatchKMeans); then
    ``IVF{n},Flat`` with ``n = max(1, min(int(16*sqrt(N)), N//39))``, nprobe 1, trained on
    all rows, vectors added in batches of 8192. Ids are the input row numbers
    (``vectors[i]`` is input row i) unless k-means replaced the rows by centroids.

    ``exact=True``: an exact IndexFlatL2 over all rows in input order (no k-means).
    ``progress(stage, fraction)``: optional callback, stage in {"kmeans", "train", "add"}.
    """
    x = _as_rows(vectors, name="vectors")
    n, d = x.shape
    if n == 0 or d == 0:
        raise IndexInputError(f"vectors must hold at least one row of at least one value, got shape {x.shape}")
    report = progress or (lambda stage, fraction: None)

    if exact:
        index: faiss.Index = faiss.IndexFlatL2(d)
        for i in range(0, n, _ADD_BATCH):
            index.add(x[i : i + _ADD_BATCH])
            report("add", min(n, i + _ADD_BATCH) / n)
        logger.info("built exact IndexFlatL2 over %d x %d vectors", n, d)
        return FeatureIndex(index)

    kmeans_above = _positive_int(kmeans_above, "kmeans_above")
    kmeans_centroids = _positive_int(kmeans_centroids, "kmeans_centroids")
    if kmeans_centroids > kmeans_above:
        raise IndexInputError(f"kmeans_centroids ({kmeans_centroids}) must not exceed kmeans_above ({kmeans_above})")
    if seed is None:
        ids = np.arange(n, dtype=np.int64)
    else:
        ids = np.random.default_rng(seed).permutation(n).astype(np.int64)
        x = x[ids]
    if n > kmeans_above:
        logger.info("k-means: %d vectors -> %d centroids", n, kmeans_centroids)
        report("kmeans", 0.0)
        kmeans_seed = 1234 if seed is None else int(np.random.default_rng(seed).integers(2**31 - 1))
        # min_points_per_centroid=1 only silences FAISS's stderr "please provide at least ..." warning
        km = faiss.Kmeans(d, kmeans_centroids, niter=20, seed=kmeans_seed, min_points_per_centroid=1)
        km.train(x)
        x = np.ascontiguousarray(km.centroids, dtype=np.float32)
        n = x.shape[0]
        ids = np.arange(n, dtype=np.int64)
        report("kmeans", 1.0)

    n_ivf = _n_ivf(n)
    index = faiss.index_factory(d, f"IVF{n_ivf},Flat")
    ivf = faiss.extract_index_ivf(index)
    ivf.nprobe = 1
    ivf.cp.min_points_per_centroid = 1  # silences the stderr warning for N < 39; same result
    logger.info("training IVF%d,Flat on %d x %d vectors", n_ivf, n, d)
    report("train", 0.0)
    index.train(x)
    report("train", 1.0)
    for i in range(0, n, _ADD_BATCH):
        index.add_with_ids(x[i : i + _ADD_BATCH], ids[i : i + _ADD_BATCH])
        report("add", min(n, i + _ADD_BATCH) / n)
    return FeatureIndex(index)
