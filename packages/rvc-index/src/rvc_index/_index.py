"""FeatureIndex: a FAISS L2 index as RVC writes it, with RVC's retrieval blending."""

from __future__ import annotations

import logging
import os
import re
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import faiss
import numpy as np

from .errors import (
    DimensionMismatchError,
    IndexExistsError,
    IndexFileError,
    IndexInputError,
    IndexNotFoundError,
)

if TYPE_CHECKING:
    from ._mlx_search import MLXIVFSearcher

logger = logging.getLogger(__name__)

Backend = Literal["auto", "faiss", "mlx"]

#: What a feature dimension means for RVC (used in error messages).
_DIM_MEANING = {
    256: "RVC v1 model features: HuBERT layer 9 + final_proj",
    768: "RVC v2 model features: HuBERT layer 12",
}


def _describe_dim(dim: int) -> str:
    meaning = _DIM_MEANING.get(dim)
    return f"{dim}-d ({meaning})" if meaning else f"{dim}-d"


def set_num_threads(n: int) -> None:
    """Set the number of OpenMP threads FAISS uses (process-wide).

    On macOS this package calls ``set_num_threads(1)`` at import: FAISS and MLX each bring
    an OpenMP runtime and can crash when both run multithreaded in one process. Call
    this with a larger ``n`` only when no MLX work runs in the same process.
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise IndexInputError(f"set_num_threads expects an integer >= 1, got {n!r}")
    faiss.omp_set_num_threads(int(n))


if sys.platform == "darwin":  # the known faiss + MLX (OpenMP) workaround, see README
    faiss.omp_set_num_threads(1)
    logger.debug("macOS: faiss.omp_set_num_threads(1) (faiss/MLX OpenMP workaround)")


def _faiss_reason(exc: BaseException) -> str:
    """The useful one-line part of a FAISS C++ exception message."""
    text = " ".join(str(exc).split())
    return re.sub(r"^Error in .*? at \S+:\d+: (Error: )?", "", text)


def _read_faiss(path: Path) -> faiss.Index:
    if not path.exists():
        raise IndexNotFoundError(
            f"index file not found: {path}; expected a FAISS .index file "
            "(RVC writes logs/<experiment>/added_IVF<n>_Flat_nprobe_1_<experiment>_<v1|v2>.index)"
        )
    if not path.is_file():
        raise IndexNotFoundError(f"{path} is not a regular file; expected a FAISS .index file")
    if path.stat().st_size == 0:
        raise IndexFileError(f"{path} is empty (0 bytes); expected a FAISS .index file: copy it again or rebuild it")
    with open(path, "rb") as f:
        head = f.read(4)
    try:
        return faiss.read_index(os.fspath(path))
    except (RuntimeError, MemoryError) as exc:
        zipped = head == b"PK\x03\x04"
        hint = " (it looks like a zip archive, e.g. a .pth model: pass the .index file)" if zipped else ""
        raise IndexFileError(
            f"{path} is not a readable FAISS index{hint}: {_faiss_reason(exc)}; "
            "expected a FAISS .index file as RVC writes it: the file may be truncated, corrupt or of another type"
        ) from exc


def _added_sibling(path: Path) -> Path | None:
    """The ``added_*.index`` that RVC's index training writes beside a ``trained_*.index``."""
    if path.name.startswith("trained_"):
        twin = path.with_name("added_" + path.name[len("trained_") :])
        if twin.is_file():
            return twin
    candidates = sorted(p for p in path.parent.glob("added_*.index") if p.is_file())
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise IndexFileError(
            f"{path} holds no vectors (ntotal=0, RVC's trained_*.index) and several added_*.index files sit "
            f"beside it ({names}); load the one that belongs to this model explicitly"
        )
    return candidates[0] if candidates else None


def _as_rows(array: object, *, name: str) -> np.ndarray:
    """``array`` as a finite, C-contiguous float32 (N, D) matrix."""
    a = np.asarray(array)
    if a.ndim != 2:
        raise IndexInputError(f"{name} must be a 2-D (N, D) array, got shape {a.shape}")
    if a.dtype.kind not in "fiu":
        raise IndexInputError(f"{name} must hold real numbers, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise IndexInputError(f"{name} contains NaN or inf values; clean the input before searching")
    return a


def _check_k(k: object) -> int:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise IndexInputError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


def _check_rate(rate: object) -> float:
    try:
        r = float(rate)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        r = float("nan")
    if isinstance(rate, bool) or not 0 <= r <= 1:
        raise IndexInputError(f"rate (index_rate) must be a number in [0, 1], got {rate!r}")
    return r


def _limit_weights(score: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Normalised ``(1/score)**2`` weights for rows where the reference formula is not finite.

    Such rows hold an exact match (score 0: ``1/0``) or overflow/underflow float32. The
    limit of the reference formula is used: exact matches (score <= 0) share all the
    weight equally; otherwise ``(min_score/score)**2`` normalised (same maths, no
    overflow). A row with no usable neighbour gets all-zero weights.
    """
    out = np.zeros(score.shape, dtype=np.float64)
    for r in range(score.shape[0]):
        valid = (ids[r] >= 0) & np.isfinite(score[r])
        if not valid.any():
            continue
        s = score[r].astype(np.float64)
        exact = valid & (s <= 0)
        if exact.any():
            w = exact.astype(np.float64)
        else:
            w = np.where(valid, np.square(s[valid].min() / np.where(valid, s, 1.0)), 0.0)
        out[r] = w / w.sum()
    return out.astype(np.float32)


def default_backend() -> Literal["faiss", "mlx"]:
    """The search backend ``backend="auto"`` picks: "mlx" when MLX's default device is a GPU
    (Metal or CUDA), else "faiss" (the CPU). Imports MLX only if it is installed."""
    from ._mlx_search import mlx_default_is_gpu

    return "mlx" if mlx_default_is_gpu() else "faiss"


def _is_mlx_array(a: object) -> bool:
    return type(a).__module__.startswith("mlx")


class FeatureIndex:
    """A FAISS squared-L2 index (RVC's IVF-Flat ``.index`` or an exact flat one).

    Construct with :meth:`load`, :func:`rvc_index.build_index`, or ``FeatureIndex(faiss_index)``.
    Ids returned by :meth:`search` are rows of :attr:`vectors`.

    ``backend``: where :meth:`search` and :meth:`blend` run, chosen once here. "faiss": FAISS on
    the CPU. "mlx": the inverted lists are copied to MLX's default device and searched there with
    FAISS's neighbours (IndexIVFFlat only; see ``_mlx_search``). "auto" (default): "mlx" when
    MLX's default device is a GPU and the index is an IndexIVFFlat, else "faiss".
    """

    def __init__(
        self, index: faiss.Index, *, path: str | os.PathLike[str] | None = None, backend: Backend = "auto"
    ) -> None:
        if not isinstance(index, faiss.Index):
            raise IndexInputError(f"FeatureIndex needs a faiss.Index, got {type(index).__name__}")
        where = str(path) if path is not None else "the index"
        if index.metric_type != faiss.METRIC_L2:
            raise IndexFileError(
                f"{where} uses FAISS metric {index.metric_type}, expected METRIC_L2 ({faiss.METRIC_L2}): "
                "the blend weights are defined on squared-L2 distances"
            )
        if index.ntotal == 0:
            raise IndexFileError(f"{where} holds no vectors (ntotal=0); add vectors or build it with build_index")
        self._index = index
        self._path = Path(path) if path is not None else None
        self._vectors: np.ndarray | None = None
        self._mlx = self._make_backend(backend, where)

    def _make_backend(self, backend: object, where: str) -> MLXIVFSearcher | None:
        """The MLX searcher for backend "mlx" (or "auto" on a GPU), None for FAISS."""
        if backend not in ("auto", "faiss", "mlx"):
            raise IndexInputError(f"backend must be 'auto', 'faiss' or 'mlx', got {backend!r}")
        if backend == "faiss" or (backend == "auto" and default_backend() == "faiss"):
            return None
        from ._mlx_search import MLXIVFSearcher, ivf_flat_supported

        why = ivf_flat_supported(self._index)
        if why is None:
            try:
                return MLXIVFSearcher(self._index)
            except ValueError as exc:
                why = str(exc)
        if backend == "auto":
            logger.info("searching %s with FAISS on the CPU: %s", where, why)
            return None
        raise IndexInputError(
            f"backend='mlx' cannot search {where}: {why}; use backend='faiss' (or 'auto') for this index"
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, dim: int | None = None, backend: Backend = "auto") -> FeatureIndex:
        """Read a FAISS ``.index`` file (``nprobe`` as stored in the file).

        ``backend``: "auto" (MLX on a GPU, FAISS on the CPU), "faiss" or "mlx"; see the class doc.

        An RVC ``trained_*.index`` holds no vectors; if the ``added_*.index`` written beside it
        exists it is loaded instead (with a logged warning), otherwise IndexFileError.
        ``dim``: expected vector dimension (256 for RVC v1, 768 for v2); checked if given.
        """
        p = Path(path)
        index = _read_faiss(p)
        if index.ntotal == 0:
            sibling = _added_sibling(p)
            if sibling is None:
                raise IndexFileError(
                    f"{p} holds no vectors (ntotal=0): it is an RVC trained_*.index, written before the "
                    f"vectors are added, and no added_*.index sits beside it in {p.parent}; use the "
                    "added_*.index that RVC's 'train index' step writes, or rebuild the index"
                )
            logger.warning("%s holds no vectors (RVC's trained_*.index); loading %s beside it instead", p, sibling.name)
            p, index = sibling, _read_faiss(sibling)
        out = cls(index, path=p, backend=backend)
        if dim is not None:
            out.check_dim(dim)
        return out

    # ------------------------------------------------------------------ properties
    @property
    def path(self) -> Path | None:
        """The file this index was loaded from (the added_*.index if redirected), else None."""
        return self._path

    @property
    def backend(self) -> Literal["faiss", "mlx"]:
        """Where search and blend run: "faiss" (CPU) or "mlx" (MLX's default device)."""
        return "faiss" if self._mlx is None else "mlx"

    @property
    def faiss_index(self) -> faiss.Index:
        """The underlying faiss.Index (shared, not copied)."""
        return self._index

    @property
    def dim(self) -> int:
        """Vector dimension D (256 for RVC v1 indexes, 768 for v2)."""
        return int(self._index.d)

    @property
    def ntotal(self) -> int:
        """Number of stored vectors."""
        return int(self._index.ntotal)

    @property
    def nprobe(self) -> int | None:
        """Inverted lists visited per query (IVF only; RVC stores 1). None for exact indexes."""
        ivf = faiss.try_extract_index_ivf(self._index)
        return None if ivf is None else int(ivf.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        ivf = faiss.try_extract_index_ivf(self._index)
        if ivf is None:
            raise IndexInputError("nprobe applies to IVF indexes only; this index is exact")
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not 1 <= value <= ivf.nlist:
            raise IndexInputError(f"nprobe must be an integer in 1..{ivf.nlist} (the number of lists), got {value!r}")
        ivf.nprobe = int(value)

    @property
    def vectors(self) -> np.ndarray:
        """All stored vectors, ``reconstruct_n(0, ntotal)`` as float32 (ntotal, D); read-only, cached."""
        if self._vectors is None:
            try:
                v = self._index.reconstruct_n(0, self._index.ntotal)
            except RuntimeError as exc:
                raise IndexFileError(
                    f"cannot reconstruct the vectors of this {type(self._index).__name__}: {_faiss_reason(exc)}"
                ) from exc
            v = np.ascontiguousarray(v, dtype=np.float32)
            v.flags.writeable = False
            self._vectors = v
        return self._vectors

    def __repr__(self) -> str:
        kind = type(faiss.downcast_index(self._index)).__name__
        return (
            f"FeatureIndex({kind}, dim={self.dim}, ntotal={self.ntotal}, nprobe={self.nprobe}, "
            f"backend={self.backend}, path={self._path})"
        )

    # ------------------------------------------------------------------ operations
    def check_dim(self, expected: int, *, what: str = "the features") -> None:
        """Raise DimensionMismatchError if ``expected`` (the feature dimension) != :attr:`dim`."""
        if int(expected) != self.dim:
            where = f"index {self._path}" if self._path else "the index"
            raise DimensionMismatchError(
                f"{where} holds {_describe_dim(self.dim)} vectors but {what} are {_describe_dim(int(expected))}; "
                "use the index built for this model (RVC v1 models pair with 256-d indexes, v2 with 768-d)"
            )

    def search(self, queries: object, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """k nearest stored vectors of each query row.

        queries: (N, D) array (cast to float32). Returns ``(scores, ids)``, both (N, k):
        scores float32 squared-L2 distances ascending, ids int64 rows of :attr:`vectors`.
        Where fewer than k neighbours are found (k > ntotal, or small probed IVF lists)
        the id is -1 and the score 3.4e38 (FAISS convention).

        With the "mlx" backend the ids are FAISS's (same coarse list, same k nearest, ordered by
        (distance, id)); scores are float32 sums that may differ from FAISS's in the last bits.
        """
        q = _as_rows(queries, name="queries")
        self.check_dim(q.shape[1], what="the queries")
        k = _check_k(k)
        if self._mlx is not None:
            import mlx.core as mx

            s, i, _ = self._mlx.search(mx.array(q), k)
            return np.array(s, dtype=np.float32), np.array(i, dtype=np.int64)
        scores, ids = self._index.search(q, k)
        return scores, ids

    def blend(self, features: object, *, rate: float, k: int = 8) -> np.ndarray:
        """RVC retrieval blending: ``rate * retrieved + (1 - rate) * features``.

        features: (T, D) or (B, T, D) frames (RVC: (1, T, 768|256) at 50 Hz, before the
        x2 upsampling), cast to float32. rate: ``index_rate`` in [0, 1]; 0 returns the
        features unchanged without searching, as the reference does. Per row, as the
        reference pipeline: ``score, ix = search(f, k)``, ``w = (1/score)**2`` normalised,
        ``retrieved = sum_k w_k * vectors[ix_k]`` (float32 throughout, bit-identical).
        Where the reference divides by zero (an exact match, score 0) its limit is used:
        exact matches share all the weight. A row with no neighbour found keeps its own
        features. Returns float32 of the input shape.

        ``features`` may be an ``mlx.core.array``: with the "mlx" backend it is blended on the
        device and an mlx array is returned (no host copy; not checked for NaN); with "faiss" it is
        copied to the host and the result copied back. Numpy in, numpy out.
        """
        if _is_mlx_array(features):
            return self._blend_mx(features, rate=rate, k=k)
        feats = np.asarray(features)
        if feats.ndim not in (2, 3):
            raise IndexInputError(f"features must be (T, D) or (B, T, D), got shape {feats.shape}")
        rate = _check_rate(rate)
        flat = _as_rows(feats.reshape(-1, feats.shape[-1]), name="features")
        if rate == 0:
            return flat.reshape(feats.shape)
        self.check_dim(flat.shape[1])
        if self._mlx is not None:
            import mlx.core as mx

            out = self._mlx.blend(mx.array(flat), rate, _check_k(k))
            return np.array(out, dtype=np.float32).reshape(feats.shape)
        score, ix = self.search(flat, k)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            weight = np.square(1 / score)
            weight /= weight.sum(axis=1, keepdims=True)
        bad = ~np.isfinite(weight).all(axis=1)
        if bad.any():
            weight[bad] = _limit_weights(score[bad], ix[bad])
        missing = ix < 0
        if missing.any():
            ix = np.where(missing, 0, ix)
            weight[missing] = 0
        retrieved = np.sum(self.vectors[ix] * np.expand_dims(weight, axis=2), axis=1)
        alone = weight.sum(axis=1) == 0
        if alone.any():
            retrieved[alone] = flat[alone]
        out = np.float32(rate) * retrieved + np.float32(1.0 - rate) * flat
        return out.reshape(feats.shape)

    def _blend_mx(self, features: Any, *, rate: float, k: int) -> Any:
        import mlx.core as mx

        shape = features.shape
        if len(shape) not in (2, 3):
            raise IndexInputError(f"features must be (T, D) or (B, T, D), got shape {tuple(shape)}")
        if self._mlx is None:
            return mx.array(self.blend(np.array(features, dtype=np.float32), rate=rate, k=k))
        r = _check_rate(rate)
        flat = features.reshape(-1, shape[-1]).astype(mx.float32)
        if r == 0:
            return flat.reshape(shape)
        self.check_dim(int(shape[-1]))
        return self._mlx.blend(flat, r, _check_k(k)).reshape(shape)

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the index as a FAISS ``.index`` file (readable by RVC and ``faiss.read_index``).

        Written to a temporary file in the same folder, then renamed: a failure never leaves
        a partial file. An existing file is replaced only with ``overwrite=True``.
        """
        p = Path(path)
        if p.is_dir():
            raise IndexExistsError(f"{p} is a directory; give a file path such as {p / 'added.index'}")
        if p.exists() and not overwrite:
            raise IndexExistsError(f"{p} already exists; pass overwrite=True to replace it")
        if not p.parent.is_dir():
            raise IndexNotFoundError(f"folder {p.parent} does not exist; create it before saving {p.name}")
        data = faiss.serialize_index(self._index)
        tmp = p.with_name(f".{p.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "xb") as f:
                f.write(data.tobytes())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        logger.info("saved %s (%d x %d)", p, self.ntotal, self.dim)
        return p
