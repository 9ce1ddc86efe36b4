"""IVF-Flat search and RVC's blend in MLX (on the device), returning FAISS's neighbours.

The inverted lists of a FAISS ``IndexIVFFlat`` are copied once into a CSR layout on the
device: ``store`` (N + 1, D) float32, the vectors of list 0, then list 1, ... and a zero
padding row; ``store_ids`` (N + 1,) int32, their FAISS ids (-1 for the padding row);
``offsets``/``sizes`` (nlist,) int32. A search is then a few batched ops per block of
queries (no per-query Python loop):

1. coarse quantizer: squared-L2 to every centroid as FAISS's BLAS path computes it,
   ``|x|^2 + |c|^2 - 2 x.c`` clamped at 0, with ``x.c`` in float32 whatever the
   matmul precision (TF32 on NVIDIA GPUs with ``MLX_ENABLE_TF32=1``): x and c are split
   into three bfloat16-exact parts whose products are exact in TF32 and float32; the
   ``nprobe`` nearest centroids, ties to the lower list number (FAISS's strict ``<``);
2. the probed lists gathered per query (B, nprobe * width, D), with queries grouped by the
   size of their largest probed list (``width``: at most ``_GROUPS`` widths up to the largest
   list), squared L2 summed from
   the differences (FAISS's ``fvec_L2sqr`` form, the same in any matmul precision);
3. the k smallest by (distance, id), as FAISS's result heap orders them; slots past the
   list end are -1 / 3.4e38 (FAISS's padding).

On MLX's CUDA backend step 2 is one kernel instead (``_ivf_cuda``: a group of 8 or 16 threads
per candidate reads it from the store, nothing gathered, and sums it in the order faiss-cpu
sums on this host, :mod:`._faiss_order`), over every query at once with the lists padded to
the largest (no groups, no host copy). It is chosen once, when the searcher is made, after a
check against the portable scan on the centroids as queries; if it cannot be built or
disagrees, the portable scan is kept (logged).
"""

from __future__ import annotations

import logging
from typing import Any, cast

import faiss
import numpy as np

from rvc_runtime import gather

from . import _faiss_order

logger = logging.getLogger("rvc_index")

_FLT_MAX = np.float32(np.finfo(np.float32).max)
_NO_ID = 2**31 - 1  # the id of the store's padding row (sorts after every real id)
_BLOCK_BYTES = 256 << 20  # the largest gathered (B, candidates, D) block, bytes
_GROUPS = 8  # query groups by list size in a search


def _bits_key(dist: Any, tie: Any) -> Any:
    """int64 keys ordering by (dist, tie): dist float32 >= 0 (or +inf), tie int32 >= 0."""
    import mlx.core as mx

    return (mx.view(dist, mx.int32).astype(mx.int64) << 32) | tie.astype(mx.int64)


def _split3(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """a = a1 + a2 + a3 (to float32 rounding), each part exactly representable in bfloat16."""

    def bf16(v: np.ndarray) -> np.ndarray:  # round to nearest even, 8-bit mantissa
        u = v.astype(np.float32).view(np.uint32)
        u = (u + np.uint32(0x7FFF) + ((u >> 16) & 1)) & np.uint32(0xFFFF0000)
        return u.view(np.float32)

    a1 = bf16(a)
    r = a - a1
    a2 = bf16(r)
    return a1, a2, bf16(r - a2)


def ivf_flat_supported(index: faiss.Index) -> str | None:
    """None if ``index`` can be searched on the device, else why not (one phrase)."""
    kind = type(faiss.downcast_index(index)).__name__
    if kind != "IndexIVFFlat":
        return f"it is a {kind}, not an IndexIVFFlat (RVC's IVF<n>,Flat)"
    if index.metric_type != faiss.METRIC_L2:
        return "its metric is not L2"
    return None


class MLXIVFSearcher:
    """The lists of a FAISS ``IndexIVFFlat`` on the MLX default device; see the module doc."""

    def __init__(self, index: faiss.Index) -> None:
        import mlx.core as mx

        ivf = cast(faiss.IndexIVFFlat, faiss.downcast_index(index))  # ivf_flat_supported() said so
        self._ivf = ivf
        d, nlist = int(ivf.d), int(ivf.nlist)
        inv = ivf.invlists
        if inv is None:
            raise ValueError("it has no inverted lists")
        sizes = np.array([inv.list_size(i) for i in range(nlist)], dtype=np.int64)
        n = int(sizes.sum())
        store = np.zeros((n + 1, d), dtype=np.float32)
        ids = np.full(n + 1, -1, dtype=np.int64)
        offsets = np.zeros(nlist, dtype=np.int64)
        at = 0
        for i in range(nlist):  # once, at load
            m = int(sizes[i])
            offsets[i] = at
            if m:
                codes = faiss.rev_swig_ptr(inv.get_codes(i), m * ivf.code_size)
                store[at : at + m] = np.frombuffer(codes, dtype=np.float32, count=m * d).reshape(m, d)
                ids[at : at + m] = faiss.rev_swig_ptr(inv.get_ids(i), m)
            at += m
        if n and (ids[:n].min() < 0 or ids[:n].max() >= _NO_ID):
            raise ValueError("its ids do not fit in 0..2**31-2")
        cent = np.ascontiguousarray(ivf.quantizer.reconstruct_n(0, nlist), dtype=np.float32)
        c1, c2, c3 = _split3(cent)
        x_parts = (c1, c2, c1, c3, c2, c1)  # pairs with (x1, x1, x2, x1, x2, x3): all products to 2**-16
        self.dim, self.nlist, self.max_len = d, nlist, int(sizes.max(initial=0))
        self._cent_t = mx.array(np.concatenate(x_parts, axis=1).T.copy())  # (6D, nlist)
        self._cent_norm = mx.array((cent.astype(np.float64) ** 2).sum(axis=1).astype(np.float32))
        self._store = mx.array(store)
        self._ids = mx.array(np.where(ids < 0, _NO_ID, ids).astype(np.int32))  # padding sorts last
        self._offsets = mx.array(offsets.astype(np.int32))
        self._sizes = mx.array(sizes.astype(np.int32))
        self._list_ids = mx.arange(nlist, dtype=mx.int32)
        mx.eval(self._cent_t, self._cent_norm, self._store, self._ids, self._offsets, self._sizes)
        self._direct = False  # the CUDA scan kernel (``_ivf_cuda``) instead of gathering candidates
        self._order = _faiss_order.DEFAULT  # its summation order: faiss-cpu's on this host, below
        self._g = gather.choose()  # rvc-runtime's gathers on CUDA (no NVRTC module per gathered dtype)
        if mx.default_device() == mx.gpu and mx.cuda.is_available():
            self._order = _faiss_order.faiss_order()
            self._direct = self._check_direct()

    def _check_direct(self) -> bool:
        """Whether the CUDA scan kernel builds and computes the portable scan's distances (to
        float32 rounding; the centroids as queries, their own lists); chosen once, here."""
        import mlx.core as mx

        if not self.max_len:
            return False
        from . import _ivf_cuda

        n = min(self.nlist, 64)
        q = mx.array(self._ivf.quantizer.reconstruct_n(0, n).astype(np.float32))
        lists = mx.arange(n, dtype=mx.int32)[:, None]
        width = self._direct_width(1)
        want = np.array(self._gathered(q, *self._slots(lists, width)))
        try:
            dist = _ivf_cuda.distances(q, lists, self._store, self._offsets, self._sizes, width, order=self._order)
            got = np.array(dist)
        except Exception as exc:  # noqa: BLE001 (a JIT or launch failure: the portable scan, for good)
            logger.warning("IVF search: the CUDA scan kernel is unavailable (%s); gathering candidates", exc)
            return False
        found = np.isfinite(want)
        err = np.abs(np.where(found, got, 0) - np.where(found, want, 0))
        if not (np.array_equal(found, np.isfinite(got)) and (err <= 1e-5 * want[found].max(initial=0)).all()):
            logger.warning("IVF search: the CUDA scan kernel disagrees with the portable scan; gathering candidates")
            return False
        return True

    def _slots(self, lists: Any, width: int) -> tuple[Any, Any]:
        """Store rows of each query's probed ``lists`` (Q, P), each padded to ``width`` slots (the
        padding row past a list's end), and which slots hold a vector: both (Q, P * width)."""
        import mlx.core as mx

        step = mx.arange(width, dtype=mx.int32)
        valid = step < self._g.take(self._sizes, lists)[..., None]  # (Q, P, W)
        rows = mx.where(valid, self._g.take(self._offsets, lists)[..., None] + step, self._store.shape[0] - 1)
        return rows.reshape(lists.shape[0], -1), valid.reshape(lists.shape[0], -1)

    def _gathered(self, q: Any, rows: Any, valid: Any) -> Any:
        """The portable scan's distances (Q, slots): the candidates gathered, +inf where no vector."""
        import mlx.core as mx

        return mx.where(valid, _sum_squares(self._g.take(self._store, rows), q[:, None, :]), mx.inf)

    def _direct_width(self, kmin: int) -> int:
        """Slots per probed list for the CUDA scan: the largest list (or kmin), rounded to 32."""
        return -(-max(self.max_len, kmin) // 32) * 32

    @property
    def nprobe(self) -> int:
        return int(self._ivf.nprobe)

    def _coarse(self, q: Any, nprobe: int) -> Any:
        """(B, nprobe) int32 list numbers, nearest first (ties: lower list number)."""
        import mlx.core as mx

        q1 = _mx_bf16(q)
        r = q - q1
        q2 = _mx_bf16(r)
        q3 = _mx_bf16(r - q2)
        qs = mx.concatenate([q1, q1, q2, q1, q2, q3], axis=1)  # (B, 6D)
        ip = qs @ self._cent_t  # (B, nlist), float32 to rounding in any matmul precision
        qn = mx.sum(q * q, axis=1, keepdims=True)
        dis = mx.maximum(qn + self._cent_norm - 2 * ip, 0.0)
        key = _bits_key(dis, mx.broadcast_to(self._list_ids, dis.shape))
        if nprobe == 1:
            return mx.argmin(key, axis=1, keepdims=True).astype(mx.int32)
        return mx.argsort(key, axis=1)[:, :nprobe].astype(mx.int32)

    def search(self, q: Any, k: int) -> tuple[Any, Any, Any]:
        """q (Q, D) float32 mx.array -> (scores (Q, k) float32, ids (Q, k) int32, rows (Q, k) int32).

        rows index the device store (the padding row where the id is -1). Queries are grouped
        by the size of their largest probed list (at most ``_GROUPS`` widths): a query scans its
        lists padded to its group's width, not to the largest list of the index (list sizes
        are skewed: a 20,000-vector index of 512 lists has lists of 39 on average, up to 600+).
        """
        import mlx.core as mx

        nprobe = min(self.nprobe, self.nlist)
        kmin = -(-k // nprobe)
        if q.shape[0] == 0:
            return mx.zeros((0, k), mx.float32), mx.zeros((0, k), mx.int32), mx.zeros((0, k), mx.int32)
        lists = mx.concatenate([self._coarse(q[b : b + 4096], nprobe) for b in range(0, q.shape[0], 4096)])
        if self._direct:  # every query at once: no groups, no host copy
            return self._scan(q, lists, k, self._direct_width(kmin))
        need = np.array(mx.max(self._g.take(self._sizes, lists), axis=1)).astype(np.int64)  # one small host copy
        step = max(32, -(-self.max_len // _GROUPS))  # at most _GROUPS widths (kernel launches)
        width = np.maximum(-(-need // step) * step, kmin)
        groups = [(int(w), np.flatnonzero(width == w)) for w in np.unique(width)]
        if len(groups) == 1:
            return self._scan(q, lists, k, groups[0][0])
        parts = []
        for w, ix in groups:
            sel = mx.array(ix.astype(np.int32))
            parts.append(self._scan(self._g.take(q, sel), self._g.take(lists, sel), k, w))
            mx.eval(parts[-1])  # one group's candidates in memory at a time
        inv = mx.array(np.argsort(np.concatenate([ix for _, ix in groups])).astype(np.int32))
        return tuple(self._g.take(mx.concatenate([p[j] for p in parts]), inv) for j in range(3))  # type: ignore[return-value]

    def _scan(self, q: Any, lists: Any, k: int, width: int) -> tuple[Any, Any, Any]:
        """The k nearest of each query among its probed ``lists`` (Q, P), each padded to ``width``."""
        import mlx.core as mx

        nprobe = lists.shape[1]
        cand = nprobe * width
        per_query = 32 * cand if self._direct else 4 * cand * self.dim  # the largest arrays, bytes
        block = max(1, min(16384 if self._direct else 4096, _BLOCK_BYTES // per_query))
        from . import _ivf_cuda

        out_s, out_i, out_r = [], [], []
        for b0 in range(0, q.shape[0], block):  # blocks of queries, bounded memory
            qb, lb = q[b0 : b0 + block], lists[b0 : b0 + block]
            rows, valid = self._slots(lb, width)
            if self._direct:
                dist = _ivf_cuda.distances(qb, lb, self._store, self._offsets, self._sizes, width, order=self._order)
            else:
                dist = self._gathered(qb, rows, valid)
            key = _bits_key(dist, self._g.take(self._ids, rows))
            # int32 positions and one int64 gather: the distance and the id come back out of the
            # key (each gathered dtype pair is a CUDA module MLX compiles on a fresh machine)
            if cand > k:
                top = mx.argpartition(key, k - 1, axis=1)[:, :k].astype(mx.int32)
                kt = self._g.take_along_axis(key, top, axis=1)
                order = mx.argsort(kt, axis=1).astype(mx.int32)
                top, kt = self._g.take_along_axis(top, order, axis=1), self._g.take_along_axis(kt, order, axis=1)
            else:
                top = mx.argsort(key, axis=1)[:, :k].astype(mx.int32)
                kt = self._g.take_along_axis(key, top, axis=1)
            ids = (kt & 0xFFFFFFFF).astype(mx.int32)
            ok = ids != _NO_ID  # a padding slot (the padding row's id; real ids are smaller)
            out_s.append(mx.where(ok, mx.view((kt >> 32).astype(mx.int32), mx.float32), _FLT_MAX))
            out_i.append(mx.where(ok, ids, -1))
            out_r.append(self._g.take_along_axis(rows, top, axis=1))
            if q.shape[0] > block:
                mx.eval(out_s[-1], out_i[-1], out_r[-1])  # one block's candidates in memory at a time
        if len(out_s) == 1:
            return out_s[0], out_i[0], out_r[0]
        return mx.concatenate(out_s), mx.concatenate(out_i), mx.concatenate(out_r)

    def blend(self, flat: Any, rate: float, k: int) -> Any:
        """RVC's blend of (Q, D) float32 features on the device (the numpy path's rules)."""
        import mlx.core as mx

        score, ids, rows = self.search(flat, k)
        valid = ids >= 0
        w = mx.where(valid, mx.square(1 / score), 0.0)
        w = w / mx.sum(w, axis=1, keepdims=True)
        # rows the reference formula leaves non-finite (exact match 1/0, overflow, nothing found): its limit
        s = mx.where(valid, score, mx.inf)
        exact = valid & (s <= 0)
        smin = mx.min(s, axis=1, keepdims=True)
        lim = mx.where(mx.any(exact, axis=1, keepdims=True), exact.astype(mx.float32), mx.square(smin / s))
        lim = mx.where(valid, lim, 0.0)
        lim_sum = mx.sum(lim, axis=1, keepdims=True)
        lim = mx.where(lim_sum > 0, lim / mx.where(lim_sum > 0, lim_sum, 1.0), 0.0)
        w = mx.where(mx.all(mx.isfinite(w), axis=1, keepdims=True), w, lim)
        w = mx.where(valid, w, 0.0)
        retrieved = mx.sum(self._g.take(self._store, rows) * w[..., None], axis=1)
        alone = mx.sum(w, axis=1, keepdims=True) == 0
        retrieved = mx.where(alone, flat, retrieved)
        return float(rate) * retrieved + float(1.0 - rate) * flat  # python floats: stay mx arrays


_SQ_DIFF: Any = None  # mx.compile'd (a - b)**2, made at the first search


def _sum_squares(a: Any, b: Any) -> Any:
    """sum((a - b)**2, axis=-1) in two levels (groups of 16, then the group sums): the rounding
    of a short pairwise sum, a fraction of an ulp like FAISS's SIMD lanes, on every device. The
    difference and its square are one compiled kernel (the same float32 operations, one pass
    fewer over the gathered candidates, the search's largest array)."""
    import mlx.core as mx

    global _SQ_DIFF
    if _SQ_DIFF is None:
        _SQ_DIFF = mx.compile(lambda x, y: mx.square(x - y), shapeless=True)
    sq = _SQ_DIFF(a, b)
    d = sq.shape[-1]
    if d % 16 or d < 64:
        return mx.sum(sq, axis=-1)
    return mx.sum(mx.sum(sq.reshape(*sq.shape[:-1], d // 16, 16), axis=-1), axis=-1)


def _mx_bf16(a: Any) -> Any:
    """float32 ``a`` rounded to bfloat16 precision, kept as float32 (exact products in TF32)."""
    import mlx.core as mx

    return a.astype(mx.bfloat16).astype(mx.float32)


def mlx_default_is_gpu() -> bool:
    """True if MLX is installed and its default device is a GPU (Metal or CUDA)."""
    import importlib.util

    if importlib.util.find_spec("mlx") is None:
        return False
    import mlx.core as mx

    return mx.default_device() == mx.gpu
