"""The MLX search (backend="mlx") against FAISS, the reference (same FAISS index object).

Neighbour ids must equal FAISS's exactly (the float32 distances may differ in the last bits:
bound below, relative to the row's largest found distance). Exact float ties: FAISS orders
tied neighbours by id; which of several candidates tied at the k-th distance it keeps depends
on the list scan order, so for ties the test compares the multiset of distances and, below
the k-th distance, the id sets. Blends: max |mlx - faiss| / max |faiss| <= 1e-6 (float32
sums in another order; measured 1.2e-7..3.2e-7).
"""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from rvc_index import FeatureIndex, _faiss_order, build_index, default_backend
from rvc_index.errors import IndexInputError

mx = pytest.importorskip("mlx.core")

FLT_MAX = np.finfo(np.float32).max
SCORE_RTOL = 2e-6  # |score - faiss| / the row's largest found distance (a few float32 ulps)
BLEND_REL = 1e-6


@pytest.fixture(scope="module")
def golden(fixtures_dir):
    d = fixtures_dir / "reference" / "pipeline"
    return dict(np.load(d / "features.npz")), d / "index_v1_IVF.index"


@pytest.fixture(scope="module")
def pair(golden):
    return FeatureIndex.load(golden[1], backend="faiss"), FeatureIndex.load(golden[1], backend="mlx")


def _queries(index: FeatureIndex, n: int, seed: int) -> np.ndarray:
    """Stored vectors plus noise (queries as a voice's own features) and plain random ones."""
    rng = np.random.default_rng(seed)
    v = index.vectors
    near = v[rng.integers(0, len(v), n)] + 0.3 * v.std() * rng.standard_normal((n, v.shape[1]))
    far = v.mean(0) + v.std() * rng.standard_normal((n // 4, v.shape[1]))
    return np.concatenate([near, far]).astype(np.float32)


def assert_same_search(ref: FeatureIndex, got: FeatureIndex, q: np.ndarray, k: int = 8) -> None:
    s0, i0 = ref.search(q, k)
    s1, i1 = got.search(q, k)
    assert s1.dtype == np.float32 and i1.dtype == np.int64 and i1.shape == i0.shape
    np.testing.assert_array_equal(i1, i0)
    found = i0 >= 0
    np.testing.assert_array_equal(s1[~found], FLT_MAX)  # FAISS's padding, bit for bit
    scale = np.where(found, s0, 0).max(axis=1, keepdims=True)
    err = np.where(found, np.abs(s1.astype(np.float64) - s0) / np.maximum(scale, 1e-30), 0)
    assert err.max() <= SCORE_RTOL


def rel(got, want) -> float:
    return float(np.abs(np.asarray(got, np.float64) - want).max() / np.abs(want).max())


def test_backends(golden, pair):
    ref, got = pair
    assert (ref.backend, got.backend) == ("faiss", "mlx")
    assert default_backend() == ("mlx" if mx.default_device() == mx.gpu else "faiss")
    assert FeatureIndex.load(golden[1]).backend == default_backend()  # auto
    assert "backend=mlx" in repr(got)


def test_golden_queries_same_neighbours(golden, pair):
    g, _ = golden
    assert_same_search(*pair, g["query"][0])
    _, ids = pair[1].search(g["query"][0], k=8)
    np.testing.assert_array_equal(ids, g["search_ix"])  # and the stored reference result


@pytest.mark.parametrize("k", [1, 8, 30])
def test_fixture_index_random_queries(pair, k):
    """Includes queries whose nearest list (list 5) holds 3 vectors: -1 / 3.4e38 padding as FAISS."""
    ref, got = pair
    q = _queries(ref, 400, seed=k)
    ivf = faiss.extract_index_ivf(ref.faiss_index)
    q = np.concatenate([q, ivf.quantizer.reconstruct_n(0, ivf.nlist)])  # every list's centroid
    assert_same_search(ref, got, q, k)
    assert (ref.search(q, k)[1] < 0).any() == (k > 3)


@pytest.mark.parametrize(("n", "dim", "nprobe"), [(2500, 768, 1), (4000, 256, 1), (4000, 256, 3)])
def test_built_index_same_neighbours(n, dim, nprobe):
    rng = np.random.default_rng(n + dim)
    built = build_index(rng.standard_normal((n, dim)).astype(np.float32) * 3 + 1, seed=5)
    built.nprobe = nprobe
    ref = FeatureIndex(built.faiss_index, backend="faiss")
    got = FeatureIndex(built.faiss_index, backend="mlx")
    assert_same_search(ref, got, _queries(ref, 300, seed=1))


def test_groups_and_blocks_give_the_same_neighbours(monkeypatch):
    """Queries grouped by list size (several widths) and scanned in small blocks: FAISS's results."""
    import rvc_index._mlx_search as ms

    rng = np.random.default_rng(7)
    built = build_index(rng.standard_normal((4000, 256)).astype(np.float32), seed=5)
    ref = FeatureIndex(built.faiss_index, backend="faiss")
    got = FeatureIndex(built.faiss_index, backend="mlx")
    got._mlx._direct = False  # the portable scan (on CUDA the scan kernel has no groups)
    q = _queries(ref, 300, seed=2)
    seen = []
    scan = ms.MLXIVFSearcher._scan
    monkeypatch.setattr(
        ms.MLXIVFSearcher, "_scan", lambda self, q, lists, k, w: seen.append(w) or scan(self, q, lists, k, w)
    )
    monkeypatch.setattr(ms, "_BLOCK_BYTES", 64 * 1024)  # blocks of a few queries
    assert_same_search(ref, got, q)
    assert len(set(seen)) > 1  # several widths were used


def _faiss_l2sqr(diff: np.ndarray) -> np.ndarray:
    """FAISS's ``fvec_L2sqr`` order on this host (as ``_ivf_cuda``'s kernel follows it): lanes of
    ``d * d`` (16 fused on AVX-512 hosts, 8 unfused on an AVX2-only AMD EPYC), halved pairwise."""
    return _faiss_order.l2sqr(diff, _faiss_order.faiss_order())


def _kernel_contract(q, lists, store, offsets, sizes, width, *, order):
    """What ``_ivf_cuda.distances`` computes, in NumPy: (Q, P * width), +inf past each list."""
    assert order == _faiss_order.faiss_order()  # the searcher sums in faiss-cpu's order on this host
    step = np.arange(width)
    sizes, offsets, lists = np.array(sizes), np.array(offsets), np.array(lists)
    valid = step < sizes[lists][..., None]
    rows = np.where(valid, offsets[lists][..., None] + step, 0).reshape(q.shape[0], -1)
    d = _faiss_l2sqr(np.array(store)[rows] - np.array(q)[:, None, :])
    return mx.array(np.where(valid.reshape(q.shape[0], -1), d, np.inf).astype(np.float32))


@pytest.mark.parametrize(("nprobe", "k"), [(1, 8), (3, 8), (1, 30)])
def test_direct_scan_path_same_neighbours(monkeypatch, nprobe, k):
    """The CUDA kernel's path (all queries at once, lists padded to the largest, small blocks)
    with the kernel's arithmetic in NumPy (the kernel itself: the CUDA test below). Lists of two
    vectors make exact ties in real numbers at their centroids, which FAISS's summation order
    breaks: the scores equal FAISS's bit for bit (x86-64: faiss-cpu's AVX2 and AVX-512 loops,
    whose orders differ: the contract follows the one measured on this host)."""
    import platform

    import rvc_index._ivf_cuda as kern
    import rvc_index._mlx_search as ms

    rng = np.random.default_rng(11)
    built = build_index(rng.standard_normal((3000, 64)).astype(np.float32), seed=5)
    built.nprobe = nprobe
    ref = FeatureIndex(built.faiss_index, backend="faiss")
    got = FeatureIndex(built.faiss_index, backend="mlx")
    monkeypatch.setattr(kern, "distances", _kernel_contract)
    monkeypatch.setattr(ms, "_BLOCK_BYTES", 256 * 1024)  # several blocks
    got._mlx._direct, got._mlx._order = True, _faiss_order.faiss_order()  # (as on CUDA)
    ivf = faiss.extract_index_ivf(ref.faiss_index)
    q = np.concatenate([_queries(ref, 300, seed=nprobe), ivf.quantizer.reconstruct_n(0, ivf.nlist)])
    assert_same_search(ref, got, q, k)
    if platform.machine() in ("x86_64", "AMD64"):
        np.testing.assert_array_equal(got.search(q, k)[0], ref.search(q, k)[0])
    assert rel(got.blend(q, rate=0.6), ref.blend(q, rate=0.6)) <= BLEND_REL


def test_direct_scan_checked_at_load(monkeypatch):
    """The kernel is taken only if it builds and computes the portable scan's distances."""
    import rvc_index._ivf_cuda as kern
    import rvc_index._mlx_search as ms

    said: list[str] = []
    monkeypatch.setattr(ms.logger, "warning", lambda msg, *a: said.append(msg % a))

    rng = np.random.default_rng(13)
    built = build_index(rng.standard_normal((3000, 64)).astype(np.float32), seed=5)
    searcher = FeatureIndex(built.faiss_index, backend="mlx")._mlx
    searcher._order = _faiss_order.faiss_order()  # (set on CUDA only, where the kernel is checked)
    monkeypatch.setattr(kern, "distances", _kernel_contract)
    assert searcher._check_direct()
    monkeypatch.setattr(kern, "distances", lambda *a, **k: _kernel_contract(*a, **k) * 1.001)
    assert not searcher._check_direct()
    assert "disagrees" in said[-1]

    def broken(*a, **k):
        raise RuntimeError("nvrtc: error")

    monkeypatch.setattr(kern, "distances", broken)
    assert not searcher._check_direct()
    assert "unavailable (nvrtc: error)" in said[-1]


@pytest.mark.skipif(not mx.cuda.is_available(), reason="MLX's CUDA backend only")
def test_cuda_scan_kernel_same_neighbours():
    """On CUDA the searcher picks the scan kernel (checked at load) and finds FAISS's neighbours,
    with FAISS's scores bit for bit where the dimension is a multiple of 16 (its summation order)."""
    rng = np.random.default_rng(12)
    for dim, nprobe in ((768, 1), (256, 3), (16, 1)):
        built = build_index(rng.standard_normal((4000, dim)).astype(np.float32) * 3 + 1, seed=5)
        built.nprobe = nprobe
        ref = FeatureIndex(built.faiss_index, backend="faiss")
        got = FeatureIndex(built.faiss_index, backend="mlx")
        assert got._mlx._direct
        q = _queries(ref, 500, seed=dim)
        assert_same_search(ref, got, q, k=8)
        np.testing.assert_array_equal(got.search(q, 8)[0], ref.search(q, 8)[0])


def test_exact_ties_ordered_by_id():
    """Duplicated vectors: equal distances; ours are ordered (distance, id) as FAISS's heap orders them."""
    rng = np.random.default_rng(3)
    base = rng.standard_normal((40, 16)).astype(np.float32)
    x = np.repeat(base, 5, axis=0)  # each vector 5 times
    perm = rng.permutation(len(x))
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(16), 16, 4)
    ivf.cp.min_points_per_centroid = 1
    ivf.train(x)
    ivf.add_with_ids(x[perm], perm.astype(np.int64))
    ref, got = FeatureIndex(ivf, backend="faiss"), FeatureIndex(ivf, backend="mlx")
    q = base[:20] + 0.05 * rng.standard_normal((20, 16)).astype(np.float32)
    s0, i0 = ref.search(q, 8)
    s1, i1 = got.search(q, 8)
    for r in range(len(q)):
        kth = s0[r, -1]
        below = s0[r] < kth
        assert set(i1[r][s1[r] < s1[r, -1]]) == set(i0[r][below])
        np.testing.assert_allclose(np.sort(s1[r]), np.sort(s0[r]), rtol=SCORE_RTOL)
        order = np.lexsort((i1[r], s1[r]))
        np.testing.assert_array_equal(order, np.arange(8))  # ascending (distance, id)


def test_blend_matches_faiss_and_golden(golden, pair):
    g, _ = golden
    ref, got = pair
    for rate in (0.75, 1.0):
        want = ref.blend(g["query"], rate=rate)
        out = got.blend(g["query"], rate=rate)
        assert out.shape == want.shape and out.dtype == np.float32
        assert rel(out, want) <= BLEND_REL
    q = _queries(ref, 300, seed=7)
    assert rel(got.blend(q, rate=0.6), ref.blend(q, rate=0.6)) <= BLEND_REL
    # the golden's blended result itself (README section 6 tolerance, the reference's numbers)
    score, ix = g["search_score"], g["search_ix"]
    w = np.square(1 / score)
    w /= w.sum(axis=1, keepdims=True)
    retrieved = np.sum(g["index_vectors_f16"].astype(np.float32)[ix] * w[..., None], axis=1)
    want = np.float32(0.75) * retrieved + np.float32(0.25) * g["query"][0]
    assert rel(got.blend(g["query"][0], rate=0.75), want) <= 1e-5


def test_blend_exact_matches_and_mlx_arrays(pair):
    ref, got = pair
    v = ref.vectors
    q = np.concatenate([v[:5], _queries(ref, 20, seed=2)])  # rows 0-4: exact matches (score 0)
    want = ref.blend(q, rate=0.5)
    np.testing.assert_allclose(want[:5], v[:5], rtol=0, atol=1e-6)  # exact matches keep their vector
    assert rel(got.blend(q, rate=0.5), want) <= BLEND_REL
    out = got.blend(mx.array(q[None]), rate=0.5)  # (B, T, D) mlx in, mlx out
    assert isinstance(out, mx.array) and out.shape == (1, len(q), v.shape[1]) and out.dtype == mx.float32
    assert rel(np.array(out)[0], want) <= BLEND_REL
    out = ref.blend(mx.array(q), rate=0.5)  # faiss backend: mlx in, mlx out, via the host
    assert isinstance(out, mx.array) and rel(np.array(out), want) == 0
    assert np.array_equal(np.array(got.blend(mx.array(q), rate=0)), q)


def test_mlx_backend_refuses_flat_index():
    flat = build_index(np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32), exact=True)
    with pytest.raises(IndexInputError, match="not an IndexIVFFlat"):
        FeatureIndex(flat.faiss_index, backend="mlx")
    assert FeatureIndex(flat.faiss_index, backend="auto").backend == "faiss"
    with pytest.raises(IndexInputError, match="backend must be"):
        FeatureIndex(flat.faiss_index, backend="gpu")


def test_faiss_summation_order_is_measured_on_this_host():
    """faiss-cpu's squared L2 sums in an order set by its SIMD level (AVX-512: 16 lanes fused;
    an AVX2-only AMD EPYC: 8 lanes, product then sum): the one measured here reproduces its
    IVF-Flat list scan bit for bit, and differs from the others."""
    rng = np.random.default_rng(21)
    x = rng.standard_normal((2000, 256)).astype(np.float32)
    built = build_index(x, seed=3)
    ivf = faiss.extract_index_ivf(built.faiss_index)
    ivf.nprobe = ivf.nlist  # every list: each distance from the scan's fvec_L2sqr
    q = rng.standard_normal((8, 256)).astype(np.float32)
    dist, ids = built.faiss_index.search(q, 50)
    order = _faiss_order.faiss_order()
    diff = x[ids] - q[:, None, :]  # (the index's ids are the rows added)
    np.testing.assert_array_equal(_faiss_order.l2sqr(diff, order), dist)
    others = [o for o in _faiss_order.ORDERS if o != order]
    assert all(not np.array_equal(_faiss_order.l2sqr(diff, o), dist) for o in others)
