"""build_index, save/load, RVC file confusion, errors, edge cases, non-voice reuse."""

from __future__ import annotations

import logging
import math
import re
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

import rvc_index
from rvc_index import FeatureIndex, RVCIndexError, build_index
from rvc_index.errors import (
    DimensionMismatchError,
    IndexExistsError,
    IndexFileError,
    IndexInputError,
    IndexNotFoundError,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def rows(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def nlist(index: FeatureIndex) -> int:
    return int(faiss.extract_index_ivf(index.faiss_index).nlist)


def test_public_api():
    assert sorted(rvc_index.__all__) == [
        "FeatureIndex",
        "RVCIndexError",
        "build_index",
        "default_backend",
        "set_num_threads",
    ]
    code = "import sys, rvc_index; assert not [m for m in sys.modules if m.split('.')[0] in ('mlx', 'torch')]"
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------- build_index
@pytest.mark.parametrize("n", [1, 38, 39, 300, 5000])
def test_build_ivf_parameters(n):
    x = rows(n, 16)
    index = build_index(x)
    expected = max(1, min(int(16 * math.sqrt(n)), n // 39))
    assert nlist(index) == expected
    assert type(faiss.downcast_index(index.faiss_index)).__name__ == "IndexIVFFlat"
    assert (index.nprobe, index.ntotal, index.dim) == (1, n, 16)
    # ids are input row numbers: vectors come back in input order
    np.testing.assert_array_equal(index.vectors, x)


def test_build_n_ivf_values():
    assert [nlist(build_index(rows(n, 4))) for n in (300, 5000)] == [7, 128]


def test_build_is_seeded():
    x = rows(2000, 8)
    a, b, c = build_index(x, seed=3), build_index(x, seed=3), build_index(x, seed=4)
    ser = [faiss.serialize_index(i.faiss_index).tobytes() for i in (a, b, c)]
    assert ser[0] == ser[1] != ser[2]


def test_build_ids_point_to_input_rows():
    x = rows(3000, 12)
    index = build_index(x, seed=7)
    index.nprobe = nlist(index)  # exhaustive, so the nearest is exact
    score, ids = index.search(x[[5, 17, 2999]], k=1)
    np.testing.assert_array_equal(ids[:, 0], [5, 17, 2999])
    np.testing.assert_array_equal(score[:, 0], 0)


def test_build_kmeans_reduction():
    x = rows(1200, 8)
    index = build_index(x, kmeans_above=1000, kmeans_centroids=100)
    assert index.ntotal == 100 and nlist(index) == max(1, min(int(16 * 10), 100 // 39)) == 2
    assert build_index(x, kmeans_above=1200, kmeans_centroids=100).ntotal == 1200  # only strictly above
    v = index.vectors
    assert np.isfinite(v).all() and not np.isin(v[:, 0], x[:, 0]).all()  # centroids, not input rows
    again = build_index(x, kmeans_above=1000, kmeans_centroids=100)
    np.testing.assert_array_equal(again.vectors, v)


def test_build_exact_mode():
    x = rows(500, 10)
    index = build_index(x, exact=True)
    assert type(faiss.downcast_index(index.faiss_index)).__name__ == "IndexFlatL2"
    assert index.nprobe is None and index.ntotal == 500
    np.testing.assert_array_equal(index.vectors, x)
    q = rows(7, 10, seed=1)
    score, ids = index.search(q, k=4)
    d2 = ((q[:, None, :].astype(np.float64) - x[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(ids, np.argsort(d2, axis=1)[:, :4])
    np.testing.assert_allclose(score, np.sort(d2, axis=1)[:, :4], rtol=1e-5)


def test_build_progress_and_bad_input():
    seen = []
    build_index(rows(100, 4), progress=lambda stage, f: seen.append(stage))
    assert seen[0] == "train" and seen[-1] == "add"
    for bad in (np.zeros((0, 4)), np.zeros(5), np.full((3, 2), np.nan), np.array([["a", "b"]])):
        with pytest.raises(IndexInputError):
            build_index(bad)
    with pytest.raises(IndexInputError, match="kmeans_centroids"):
        build_index(rows(10, 2), kmeans_above=10, kmeans_centroids=20)


# ----------------------------------------------------------------- search / blend
def test_blend_exact_match_uses_limit():
    x = rows(200, 6)
    index = build_index(x, exact=True)
    q = x[[3, 50]].copy()
    score, _ = index.search(q, k=8)
    assert (score[:, 0] == 0).all()  # the reference would divide by zero here
    out = index.blend(q, rate=1.0)
    np.testing.assert_array_equal(out, x[[3, 50]])
    mixed = index.blend(np.vstack([q, rows(3, 6, seed=9)]), rate=0.5)
    assert np.isfinite(mixed).all()
    np.testing.assert_array_equal(mixed[:2], x[[3, 50]])


def test_blend_overflowing_weight_and_empty_list():
    # score 1e-26: (1/score)**2 overflows float32 -> the limit gives the nearest all the weight
    x = np.vstack([np.zeros((1, 4), np.float32), rows(20, 4) + 5])
    index = build_index(x, exact=True)
    q = np.array([[1e-13, 0, 0, 0]], np.float32)
    assert 0 < index.search(q, k=8)[0][0, 0] < 1e-19
    np.testing.assert_array_equal(index.blend(q, rate=1.0), x[:1])
    # an IVF list with no vectors (nprobe 1): no neighbour found -> the row keeps its features
    a, b = rows(100, 4) - 10, rows(100, 4, seed=1) + 10
    raw = faiss.index_factory(4, "IVF2,Flat")
    raw.train(np.vstack([a, b]))
    raw.add(a)
    index = FeatureIndex(raw)
    q = b[:3]
    assert (index.search(q, k=8)[1] == -1).all()
    np.testing.assert_allclose(index.blend(q, rate=0.8), q, rtol=1e-6)  # 0.8*q + 0.2*q


def test_blend_k_larger_than_ntotal():
    x = rows(5, 3)
    index = build_index(x, exact=True)
    score, ids = index.search(rows(2, 3, seed=1), k=8)
    assert (ids[:, 5:] == -1).all() and (ids[:, :5] >= 0).all()
    q = rows(2, 3, seed=1)
    out = index.blend(q, rate=1.0, k=8)
    w = np.square(1 / score[:, :5].astype(np.float64))
    w /= w.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out, (x[ids[:, :5]] * w[..., None]).sum(1), rtol=1e-5)


def test_blend_any_k_and_shapes():
    x = rows(1000, 20)
    index = build_index(x)
    f = rows(30, 20, seed=2)
    for k in (1, 3, 16):
        out = index.blend(f[None], rate=0.3, k=k)
        assert out.shape == (1, 30, 20) and out.dtype == np.float32
        score, ids = index.search(f, k)
        w = np.square(1 / score)
        w /= w.sum(axis=1, keepdims=True)
        ret = np.sum(index.vectors[ids] * w[..., None], axis=1)
        np.testing.assert_array_equal(out[0], np.float32(0.3) * ret + np.float32(0.7) * f)
    np.testing.assert_array_equal(index.blend(f, rate=0), f)


def test_blend_and_search_bad_input():
    index = build_index(rows(100, 8))
    for rate in (-0.1, 1.5, float("nan"), "x", True):
        with pytest.raises(IndexInputError, match="rate"):
            index.blend(rows(4, 8), rate=rate)
    with pytest.raises(IndexInputError, match="k must"):
        index.search(rows(4, 8), k=0)
    with pytest.raises(IndexInputError, match="NaN"):
        index.blend(np.full((4, 8), np.nan, np.float32), rate=0.5)
    with pytest.raises(IndexInputError, match="shape"):
        index.blend(np.zeros(8, np.float32), rate=0.5)
    with pytest.raises(IndexInputError, match="nprobe"):
        index.nprobe = 0


def test_dim_mismatch_message():
    v1 = build_index(rows(100, 256))
    with pytest.raises(DimensionMismatchError) as err:
        v1.blend(rows(10, 768)[None], rate=0.5)
    msg = str(err.value)
    assert isinstance(err.value, ValueError) and isinstance(err.value, RVCIndexError)
    assert "256-d (RVC v1" in msg and "768-d (RVC v2" in msg
    with pytest.raises(DimensionMismatchError, match="768-d.*256-d"):
        build_index(rows(100, 768)).check_dim(256)
    with pytest.raises(DimensionMismatchError, match="queries are 5-d"):
        v1.search(rows(2, 5), k=1)


# ----------------------------------------------------------------- files
def test_save_load_round_trip(tmp_path):
    x = rows(2000, 24)
    index = build_index(x)
    index.nprobe = 3
    p = index.save(tmp_path / "a.index")
    back = FeatureIndex.load(p, dim=24)
    assert back.path == p and back.nprobe == 3 and back.ntotal == 2000
    np.testing.assert_array_equal(back.vectors, x)
    q = rows(9, 24, seed=5)
    for got, want in zip(back.search(q, 5), index.search(q, 5)):
        np.testing.assert_array_equal(got, want)
    assert faiss.read_index(str(p)).ntotal == 2000  # plain faiss (RVC) reads it
    with pytest.raises(IndexExistsError, match="overwrite=True") as err:
        build_index(rows(50, 24)).save(p)
    assert isinstance(err.value, FileExistsError)
    assert FeatureIndex.load(p).ntotal == 2000  # untouched
    build_index(rows(50, 24)).save(p, overwrite=True)
    assert FeatureIndex.load(p).ntotal == 50
    assert sorted(f.name for f in tmp_path.iterdir()) == ["a.index"]  # no temp files left
    with pytest.raises(IndexNotFoundError, match="does not exist"):
        index.save(tmp_path / "nope" / "a.index")


def _rvc_files(folder: Path, x: np.ndarray, name: str = "myvoice") -> tuple[Path, Path]:
    """What RVC's train_index writes: trained_* (no vectors) and added_*."""
    raw = faiss.index_factory(x.shape[1], "IVF2,Flat")
    raw.train(x)
    trained = folder / f"trained_IVF2_Flat_nprobe_1_{name}_v2.index"
    faiss.write_index(raw, str(trained))
    raw.add(x)
    added = folder / f"added_IVF2_Flat_nprobe_1_{name}_v2.index"
    faiss.write_index(raw, str(added))
    return trained, added


def test_trained_only_with_added_sibling(tmp_path, caplog):
    x = rows(200, 16)
    trained, added = _rvc_files(tmp_path, x)
    with caplog.at_level(logging.WARNING, logger="rvc_index"):
        index = FeatureIndex.load(trained)
    assert index.path == added and index.ntotal == 200
    assert any("holds no vectors" in r.getMessage() and added.name in r.getMessage() for r in caplog.records)


def test_trained_only_renamed_sibling_and_ambiguous(tmp_path):
    x = rows(200, 16)
    trained, added = _rvc_files(tmp_path, x)
    added.rename(tmp_path / "added_something_else.index")
    assert FeatureIndex.load(trained).path == tmp_path / "added_something_else.index"
    _rvc_files(tmp_path, x, name="other")
    (tmp_path / "added_IVF2_Flat_nprobe_1_other_v2.index").rename(tmp_path / "added_z.index")
    with pytest.raises(IndexFileError, match="several added_"):
        FeatureIndex.load(trained)


def test_trained_only_without_sibling(tmp_path):
    trained, added = _rvc_files(tmp_path, rows(200, 16))
    added.unlink()
    with pytest.raises(IndexFileError, match=r"holds no vectors \(ntotal=0\).*added_\*\.index") as err:
        FeatureIndex.load(trained)
    assert str(trained) in str(err.value) and "\n" not in str(err.value)


def test_bad_files(tmp_path):
    good = build_index(rows(300, 8)).save(tmp_path / "good.index")
    cases = {
        "empty.index": b"",
        "text.index": b"hello, this is not an index",
        "trunc.index": good.read_bytes()[:1000],
        "model.pth": b"PK\x03\x04" + bytes(60),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(IndexFileError) as err:
            FeatureIndex.load(tmp_path / name)
        msg = str(err.value)
        assert isinstance(err.value, ValueError) and str(tmp_path / name) in msg and "\n" not in msg
        assert re.search(r"empty|not a readable FAISS index", msg)
    assert "zip archive" in str(pytest.raises(IndexFileError, FeatureIndex.load, tmp_path / "model.pth").value)
    with pytest.raises(IndexNotFoundError, match="not found") as err:
        FeatureIndex.load(tmp_path / "missing.index")
    assert isinstance(err.value, FileNotFoundError)
    with pytest.raises(IndexNotFoundError, match="not a regular file"):
        FeatureIndex.load(tmp_path)
    with pytest.raises(DimensionMismatchError):
        FeatureIndex.load(good, dim=768)


def test_wraps_faiss_index_and_rejects_non_l2():
    ip = faiss.IndexFlatIP(4)
    ip.add(rows(10, 4))
    with pytest.raises(IndexFileError, match="METRIC_L2"):
        FeatureIndex(ip)
    with pytest.raises(IndexFileError, match="no vectors"):
        FeatureIndex(faiss.IndexFlatL2(4))
    with pytest.raises(IndexInputError):
        FeatureIndex("not an index")  # type: ignore[arg-type]


# ----------------------------------------------------------------- non-voice reuse
def test_non_voice_nearest_neighbours():
    """Nearest-neighbour search over random 32-d embeddings (the README's second example)."""
    rng = np.random.default_rng(42)
    emb = rng.standard_normal((4000, 32)).astype(np.float32)
    q = emb[rng.choice(4000, 50, replace=False)] + 0.01 * rng.standard_normal((50, 32)).astype(np.float32)
    d2 = ((q[:, None, :].astype(np.float64) - emb[None]) ** 2).sum(-1)
    truth = np.argsort(d2, axis=1)[:, :5]
    _, exact_ids = build_index(emb, exact=True).search(q, k=5)
    np.testing.assert_array_equal(exact_ids, truth)
    approx = build_index(emb, seed=1)
    approx.nprobe = nlist(approx)  # all lists probed: exact again
    np.testing.assert_array_equal(approx.search(q, k=5)[1], truth)
    approx.nprobe = 1
    assert (approx.search(q, k=1)[1][:, 0] == truth[:, 0]).mean() > 0.9  # near-duplicates stay in their list


def test_readme_examples_run(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, str(README), "exec"), {})


def test_set_num_threads():
    before = faiss.omp_get_max_threads()
    try:
        rvc_index.set_num_threads(1)
        assert faiss.omp_get_max_threads() == 1
    finally:
        faiss.omp_set_num_threads(before)
    with pytest.raises(IndexInputError):
        rvc_index.set_num_threads(0)
