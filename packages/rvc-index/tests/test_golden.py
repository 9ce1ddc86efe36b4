"""Golden tests: reference README section 4.4 (features.npz + index_v1_IVF.index).

Tolerance (README section 6): retrieval blending relative error <= 1e-5, measured as
:func:`rel_err` (against the largest value: elementwise it is unbounded near 0). Bit-identical
where FAISS's distances are (the machine of the goldens); elsewhere its SIMD level changes the
scores by an ulp, and the blend by ~1e-7 absolute (an AVX2-only AMD EPYC: 9e-8, elementwise
1.4e-4 relative on values of 2e-4).
"""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from rvc_index import FeatureIndex, build_index

CASES = ["index_protect", "index_noprotect", "noindex_protect", "nof0_index"]


@pytest.fixture(scope="module")
def golden(fixtures_dir):
    d = fixtures_dir / "reference" / "pipeline"
    return dict(np.load(d / "features.npz")), d / "index_v1_IVF.index"


@pytest.fixture(scope="module")
def index(golden):
    return FeatureIndex.load(golden[1], dim=256)


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / max |want| (elementwise relative error is unbounded near 0)."""
    return float(np.abs(got.astype(np.float64) - want).max() / np.abs(want).max())


def test_index_metadata(golden, index):
    g, _ = golden
    assert (index.dim, index.ntotal) == (256, 300)
    assert index.nprobe == int(g["nprobe"]) == 1  # as stored in the file
    assert faiss.extract_index_ivf(index.faiss_index).nlist == int(g["n_ivf"]) == 7


def test_vectors_equal_reconstruct(golden, index):
    v = index.vectors
    assert v.dtype == np.float32 and v.shape == (300, 256)
    np.testing.assert_array_equal(v, golden[0]["index_vectors_f16"].astype(np.float32))
    assert index.vectors is v  # cached


def test_search_equals_stored(golden, index):
    g, _ = golden
    score, ix = index.search(g["query"][0], k=8)
    assert score.dtype == np.float32 and ix.dtype == np.int64
    np.testing.assert_array_equal(ix, g["search_ix"])
    np.testing.assert_allclose(score, g["search_score"], rtol=1e-5, atol=0)


def _pipeline_after_blend(g: dict, case: str, blended: np.ndarray) -> np.ndarray:
    """Reference Pipeline.vc after retrieval (README 4.4 steps 2-4), in numpy."""
    query = g["query"]
    protect, uses_f0 = float(g[f"{case}_protect"]), bool(g[f"{case}_uses_f0"])
    p_len = int(g[f"{case}_p_len"][0])
    feats = np.repeat(blended, 2, axis=1)[:, :p_len]  # x2 nearest, 50 -> 100 Hz
    if protect < 0.5 and uses_f0:
        feats0 = np.repeat(query, 2, axis=1)[:, :p_len]
        pitchf = g["pitchf"][:, :p_len]
        m = pitchf.copy()
        m[pitchf > 0] = 1
        m[pitchf < 1] = protect
        m = m[..., None]
        feats = feats * m + feats0 * (1 - m)
    return feats


@pytest.mark.parametrize("case", CASES)
def test_blend_golden_end_to_end(golden, index, case):
    g, _ = golden
    rate = float(g[f"{case}_index_rate"])
    blended = index.blend(g["query"], rate=rate, k=8)
    assert blended.shape == (1, 40, 256) and blended.dtype == np.float32
    got = _pipeline_after_blend(g, case, blended)
    want = g[f"{case}_phone"]
    assert got.shape == want.shape
    assert rel_err(got, want) <= 1e-5


def test_blend_from_stored_search_matches(golden, index):
    """The blend alone, against the reference formula on the stored search results."""
    g, _ = golden
    score, ix = g["search_score"], g["search_ix"]
    w = np.square(1 / score)
    w /= w.sum(axis=1, keepdims=True)
    retrieved = np.sum(g["index_vectors_f16"].astype(np.float32)[ix] * w[..., None], axis=1)
    q = g["query"][0]
    want = np.float32(0.75) * retrieved + np.float32(0.25) * q
    got = index.blend(q, rate=0.75)  # (T, D) input
    assert got.shape == (40, 256)
    assert rel_err(got, want) <= 1e-5


def test_build_index_reproduces_golden_index(golden):
    """RVC's training recipe on the golden (already shuffled) rows gives the golden file byte for byte."""
    g, path = golden
    built = build_index(g["index_vectors_f16"].astype(np.float32), seed=None)
    assert built.nprobe == 1 and built.ntotal == 300
    assert faiss.serialize_index(built.faiss_index).tobytes() == path.read_bytes()
