"""What the page's buttons do, as plain functions (no Gradio): each calls the library
(``rvc_convert``, ``rvc_synth``, ``rvc_audio``, ``rvc_f0``) and returns files, tables and arrays.

Errors are the library's own one-line exceptions; the page shows :func:`error_message` of them.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .state import ConverterCache, Settings

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
SR = 16000  # the pipeline's input rate
FORMATS = ("wav", "flac", "mp3", "ogg", "opus", "m4a")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".mp4", ".webm", ".aiff", ".aif")
MODEL_COLUMNS = ["name", "version", "sample rate", "f0", "speakers", "size"]
BATCH_COLUMNS = ["file", "status", "output", "seconds"]
WEIGHTS_COLUMNS = ["name", "status", "path"]


class UIInputError(ValueError):
    """Something the page was given is missing or unusable (no audio, no model, bad folder)."""


def error_message(exc: BaseException) -> str:
    """One readable line for the page: the library's message (its first line), or the type."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


# --- the models folder --------------------------------------------------------------------------


def _is_model(p: Path) -> bool:
    return (p.is_file() and p.suffix.lower() == ".pth") or (p.is_dir() and (p / "config.json").is_file())


def find_models(models_dir: str | os.PathLike[str]) -> list[Path]:
    """Voices in ``models_dir`` and its sub-folders (one level): ``.pth`` files and ``rvc export``
    folders (holding ``config.json``), sorted by path."""
    root = Path(models_dir).expanduser()
    if not root.is_dir():
        return []
    found = []
    for p in sorted(root.iterdir()):
        if _is_model(p):
            found.append(p)
        elif p.is_dir():
            found += [q for q in sorted(p.iterdir()) if _is_model(q)]
    return found


def find_indexes(models_dir: str | os.PathLike[str]) -> list[Path]:
    """``.index`` files in ``models_dir`` and its sub-folders (one level), sorted."""
    root = Path(models_dir).expanduser()
    if not root.is_dir():
        return []
    return sorted([*root.glob("*.index"), *root.glob("*/*.index")])


def matching_index(model: str | os.PathLike[str], indexes: Iterable[Path]) -> Path | None:
    """The index that belongs to ``model``: same folder and name stem first, else one whose name
    contains the model's stem (RVC names them ``added_IVF..._<voice>_v2.index``), else None."""
    m = Path(model)
    stem = m.stem.lower()
    candidates = list(indexes)
    for idx in candidates:
        if idx.parent == m.parent and idx.stem.lower() == stem:
            return idx
    for idx in candidates:
        if stem and stem in idx.stem.lower():
            return idx
    return None


def _size(p: Path) -> int:
    return p.stat().st_size if p.is_file() else sum(q.stat().st_size for q in p.rglob("*") if q.is_file())


@functools.lru_cache(maxsize=256)
def _model_info(path: str, mtime_ns: int, size: int) -> Any:
    """``rvc_synth.load(path).info``, remembered while the file is unchanged (mtime and size)."""
    import rvc_synth

    return rvc_synth.load(path).info


def model_rows(models_dir: str | os.PathLike[str]) -> list[list[Any]]:
    """One row per voice (:data:`MODEL_COLUMNS`: what ``rvc info`` says); an unreadable file gets
    its error in the version column."""
    root = Path(models_dir).expanduser()
    rows = []
    for p in find_models(root):
        name, size = str(p.relative_to(root)), f"{_size(p) / 1e6:.1f} MB"
        try:
            info = _model_info(str(p), p.stat().st_mtime_ns, _size(p))
        except Exception as exc:  # noqa: BLE001  (one bad file must not hide the others)
            rows.append([name, f"unreadable: {error_message(exc)}", "", "", "", size])
            continue
        rows.append([name, info.version, info.sample_rate, "yes" if info.has_f0 else "no", info.n_speakers, size])
    return rows


def import_model(
    pth: str | os.PathLike[str], models_dir: str | os.PathLike[str], *, name: str | None = None, overwrite: bool = False
) -> tuple[Path, list[Any]]:
    """Check an uploaded ``.pth`` with the safe reader (``rvc_synth.load``: nothing in the pickle
    runs; a refused global raises ``UnsafeCheckpointError`` saying which) and copy it into
    ``models_dir`` as ``name`` (default: the upload's file name). Returns (path, its model row)."""
    import rvc_synth

    src = Path(pth)
    info = rvc_synth.load(src).info  # raises the reader's one-line error for unsafe/unsupported files
    stem = Path(name).stem if name else src.stem
    dst = Path(models_dir).expanduser() / f"{stem}.pth"
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst} already exists; tick 'replace' to overwrite it or choose another name")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.part")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    row = [
        dst.name,
        info.version,
        info.sample_rate,
        "yes" if info.has_f0 else "no",
        info.n_speakers,
        f"{dst.stat().st_size / 1e6:.1f} MB",
    ]
    return dst, row


# --- extractor weights -----------------------------------------------------------------------------


def weights_rows(settings: Settings) -> list[list[Any]]:
    """ContentVec/RMVPE: where conversion takes them from (:data:`WEIGHTS_COLUMNS`)."""
    from rvc_convert import weights

    rows = []
    for r in weights.weights_status():
        given = getattr(settings, r["name"])
        if given is not None:
            rows.append([r["name"], f"ok (--{r['name']})" if Path(given).is_file() else "missing", str(given)])
        elif r.get("path"):
            rows.append([r["name"], f"ok (${r['env']})" if r["source"] == "env" else "ok (cache)", str(r["path"])])
        else:
            rows.append([r["name"], "missing", f"download it, or set ${r['env']}"])
    return rows


def download_weights(name: str = "all") -> dict[str, Path]:
    """Fetch ContentVec and/or RMVPE into the Hugging Face cache (``rvc_convert.weights``)."""
    from rvc_convert import weights

    return weights.download_weights(name)


def build_index(
    settings: Settings,
    recordings: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    name: str,
    version: str = "v2",
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Build ``models_dir/<name>.index`` from recordings of the voice: a server-side folder, or
    uploaded files (copied to a temp folder first). Calls ``rvc_convert.weights.build_voice_index``."""
    from rvc_convert import weights

    stem = Path(name.strip()).stem if name and name.strip() else ""
    if not stem:
        raise UIInputError("no index name; type a name such as 'myvoice' (writes myvoice.index in the models folder)")
    dst = settings.models_dir / f"{stem}.index"
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst} already exists; tick 'replace' to overwrite it or choose another name")
    if isinstance(recordings, (str, os.PathLike)):
        return weights.build_voice_index(
            recordings, dst, version=version, contentvec=settings.contentvec, overwrite=overwrite, progress=progress
        )
    files = [Path(f) for f in recordings]
    if not files:
        raise UIInputError("no recordings; upload audio files of the voice or give a folder on this machine")
    with tempfile.TemporaryDirectory(prefix="rvc-ui-index-") as tmp:
        for i, f in enumerate(files):
            shutil.copyfile(f, Path(tmp) / f"{i:04d}_{f.name}")
        settings.models_dir.mkdir(parents=True, exist_ok=True)
        return weights.build_voice_index(
            tmp, dst, version=version, contentvec=settings.contentvec, overwrite=overwrite, progress=progress
        )


# --- conversion ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conversion:
    """A finished conversion.

    Attributes:
        path: the written file.
        sample_rate: the output's rate in Hz.
        input_16k: (N,) float32 input at 16 kHz, as the pipeline got it.
        output: (M,) int16 converted samples at ``sample_rate``.
        f0_input: (N // 160,) float32 Hz of the input per 10 ms (0 = unvoiced), or None (the
            model has no pitch, or the estimate failed).
        f0_target: (N // 160,) float32 Hz the synthesizer is driven with (interpolated, shifted by
            ``pitch``), or None.
    """

    path: Path
    sample_rate: int
    input_16k: np.ndarray
    output: np.ndarray
    f0_input: np.ndarray | None
    f0_target: np.ndarray | None


def _unique(path: Path) -> Path:
    if not path.exists():
        return path
    for i in range(2, 10_000):
        candidate = path.with_name(f"{path.stem}-{i}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise FileExistsError(f"{path} and 9998 numbered variants exist; clean the output folder")


def _require(audio: Any, model: Any) -> tuple[Path, Path]:
    if not audio:
        raise UIInputError("no input audio; upload a file or record one first")
    if not model:
        raise UIInputError("no voice model; pick one from the models folder or upload a .pth")
    return Path(audio), Path(model)


def f0_curves(
    settings: Settings, audio_16k: np.ndarray, *, method: str, pitch: float, filter_radius: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """The input's pitch and the shifted target, per 10 ms frame, for the picture: ``rvc_f0``'s
    ``extract_f0`` (weights as the converter resolves them) and ``postprocess_f0``."""
    from rvc_f0 import extract_f0, postprocess_f0

    weights = None
    if method == "rmvpe":
        from rvc_convert.weights import resolve_weights

        weights = resolve_weights("rmvpe", settings.rmvpe)
    f0 = extract_f0(audio_16k, method=method, filter_radius=filter_radius, weights=weights)
    target, _ = postprocess_f0(f0, semitones=pitch)
    return f0, target


def convert_clip(
    cache: ConverterCache,
    audio: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str],
    index: str | os.PathLike[str] | None = None,
    output_format: str = "wav",
    with_f0: bool = True,
    progress: Progress | None = None,
    **options: Any,
) -> Conversion:
    """Convert one file with the cached converter of ``model``/``index`` and write the result to
    the output folder as ``<input>_<model>.<format>`` (numbered, never overwriting).

    Args:
        options: :class:`rvc_convert.ConvertOptions` fields (pitch, f0_method, index_rate, protect,
            rms_mix_rate, filter_radius, seed, ...).
        with_f0: also estimate the F0 curves for the picture (one more F0 pass).
    """
    from rvc_audio import load_audio, save_audio

    src, model = _require(audio, model)
    if output_format not in FORMATS:
        raise UIInputError(f"output format {output_format!r}; expected one of {', '.join(FORMATS)}")
    vc = cache.get(model, index)
    opts = vc.options.replace(**options)  # option errors before decoding
    x = load_audio(src, sample_rate=SR)
    out, rate = vc.convert(x, sample_rate=SR, progress=progress, **options)
    dst = _unique(cache.settings.outputs() / f"{src.stem}_{model.stem}.{output_format}")
    path = save_audio(dst, out, rate, format=output_format)
    f0_in = f0_out = None
    if with_f0 and vc.info.has_f0:
        try:
            f0_in, f0_out = f0_curves(
                cache.settings, x, method=opts.f0_method, pitch=opts.pitch, filter_radius=opts.filter_radius
            )
        except Exception as exc:  # noqa: BLE001  (the picture is optional; the conversion succeeded)
            logger.warning("no F0 picture: %s", error_message(exc))
    return Conversion(path, rate, x, out, f0_in, f0_out)


def batch_inputs(files: Sequence[str | os.PathLike[str]] | None, folder: str | None) -> list[Path]:
    """The audio files to convert: the uploads, or the audio files of a server-side folder."""
    if files:
        return [Path(f) for f in files]
    if folder and folder.strip():
        root = Path(folder.strip()).expanduser()
        if not root.is_dir():
            raise UIInputError(f"{root} is not a folder on this machine; give a folder of audio files")
        found = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        if not found:
            raise UIInputError(f"no audio files in {root} (looked for {', '.join(AUDIO_SUFFIXES)})")
        return found
    raise UIInputError("nothing to convert; upload files or give a folder on this machine")


def convert_batch(
    cache: ConverterCache,
    inputs: Sequence[Path],
    *,
    model: str | os.PathLike[str],
    index: str | os.PathLike[str] | None = None,
    output_format: str = "wav",
    output_dir: str | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> tuple[list[list[Any]], Path]:
    """Convert every file with one model load; a failing file is reported, the others go on.

    Returns ``(rows, result)``: one :data:`BATCH_COLUMNS` row per input, and the output folder
    (``output_dir`` when given) or a zip of the converted files (otherwise).
    """
    if not model:
        raise UIInputError("no voice model; pick one from the models folder or upload a .pth")
    if output_format not in FORMATS:
        raise UIInputError(f"output format {output_format!r}; expected one of {', '.join(FORMATS)}")
    from rvc_audio import load_audio, save_audio

    vc = cache.get(model, index)
    vc.options.replace(**options)
    stamp = secrets.token_hex(3)
    out_dir = Path(output_dir.strip()).expanduser() if output_dir and output_dir.strip() else None
    target = out_dir or cache.settings.outputs() / f"batch-{stamp}"
    target.mkdir(parents=True, exist_ok=True)
    rows, written = [], []
    for i, src in enumerate(inputs):
        name = Path(src).name
        try:
            x = load_audio(src, sample_rate=SR)
            out, rate = vc.convert(x, sample_rate=SR, **options)
            dst = _unique(target / f"{Path(src).stem}_{Path(model).stem}.{output_format}")
            path = save_audio(dst, out, rate, format=output_format)
            rows.append([name, "ok", path.name, round(len(out) / rate, 2)])
            written.append(path)
        except Exception as exc:  # noqa: BLE001  (reported in its row; the other files go on)
            rows.append([name, f"error: {error_message(exc)}", "", ""])
        if progress is not None:
            progress(i + 1, len(inputs))
    if out_dir is not None:
        return rows, out_dir
    archive = cache.settings.outputs() / f"converted-{stamp}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for p in written:
            z.write(p, p.name)
    return rows, archive
