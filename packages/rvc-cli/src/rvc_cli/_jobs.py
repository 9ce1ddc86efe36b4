"""The runs behind ``rvc convert``: one file (progress per chunk), a folder (one model load,
per-file errors) and a folder on Ray (``--engine ray``)."""

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import _ui

if TYPE_CHECKING:
    from rvc_convert import VoiceConverter

# Output suffix -> format (what rvc_audio.save_audio writes for it).
SUFFIX_FORMATS = {
    ".wav": "wav",
    ".wave": "wav",
    ".flac": "flac",
    ".mp3": "mp3",
    ".ogg": "ogg",
    ".oga": "ogg",
    ".opus": "opus",
    ".m4a": "m4a",
    ".mp4": "m4a",
    ".aac": "m4a",
}


def use_precision(precision: str) -> str:
    """Apply ``precision`` before MLX is imported; the synthesizer dtype it implies."""
    if precision == "tf32":
        if "mlx.core" in sys.modules and os.environ.get("MLX_ENABLE_TF32") != "1":
            _ui.info("--precision tf32 needs a fresh process (MLX is already loaded here); running exact float32")
        os.environ["MLX_ENABLE_TF32"] = "1"
        return "float32"
    return precision


def load_converter(weights: dict, options: dict) -> "VoiceConverter":
    dtype = use_precision(weights["precision"])
    import rvc_convert

    with _ui.status(f"loading {weights['model']}..."):
        return rvc_convert.VoiceConverter(
            weights["model"],
            index=weights["index"],
            contentvec=weights["contentvec"],
            rmvpe=weights["rmvpe"],
            embedder=weights.get("embedder"),
            f0_weights=weights.get("f0_weights"),
            options=rvc_convert.ConvertOptions(**options),
            dtype=dtype,
        )


def format_of(path: Path, fmt: str | None) -> str:
    found = SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt:
        if found is not None and found != fmt:
            raise _ui.CLIError(
                f"'{path.name}' names a {found} file but --format is {fmt}; name the output "
                f"'{path.stem}.{fmt}' or drop --format"
            )
        return fmt
    if found is None:
        raise _ui.CLIError(
            f"cannot tell the output format from '{path.name}': use a .wav/.flac/.mp3/.ogg/.m4a name or --format"
        )
    return found


def _probe(src: Path) -> None:
    """Refuse an unreadable input (corrupt, not audio, empty) before any model loads."""
    import rvc_audio

    rvc_audio.probe_audio(src)


def _pitch_phase(converter: object, options: dict) -> str | None:
    """What the whole-file F0 pass is called in the progress bar, or None when there is none."""
    if not converter.info.has_f0:  # type: ignore[attr-defined]
        return None
    how = "the F0 curve" if options.get("f0_curve") else options["f0_method"]
    return f"estimating pitch ({how}) on the whole file…"


def convert_file(src: Path, dst: Path, fmt: str | None, existing: str, weights: dict, options: dict) -> None:
    if dst.is_dir():
        dst = dst / f"{src.stem}.{fmt or 'wav'}"
    fmt = format_of(dst, fmt)
    force = existing == "overwrite"
    if dst.exists() and existing == "skip":
        _ui.info(f"{dst} already exists; skipped (--skip-existing)")
        return
    if dst.exists() and not force:
        raise _ui.CLIError(f"{dst} already exists; pass --force to overwrite it (or --skip-existing)")
    if not dst.parent.is_dir():
        raise _ui.CLIError(f"output folder {dst.parent} does not exist; create it first")
    _probe(src)
    converter = load_converter(weights, options)
    start = time.perf_counter()
    with _ui.progress() as bar:
        task = bar.add_task(src.name, total=None)
        update = _ui.chunk_callback(bar, task, first=_pitch_phase(converter, options))
        written = converter.convert_file(src, dst, format=fmt, overwrite=force, progress=update)
    _ui.info(f"converted {src} in {time.perf_counter() - start:.1f} s")
    _ui.result(str(written))


def convert_folder(src: Path, dst: Path, fmt: str | None, existing: str, weights: dict, options: dict) -> list[str]:
    """Convert every audio file of ``src`` into ``dst``; returns the names that failed."""
    from rvc_convert.folder import AUDIO_SUFFIXES, audio_files, output_paths

    files = audio_files(src)
    if not files:
        raise _ui.CLIError(f"no audio files in {src} (looked for {', '.join(sorted(AUDIO_SUFFIXES))})")
    if dst.exists() and not dst.is_dir():
        raise _ui.CLIError(f"{dst} is a file; with a folder as INPUT, OUTPUT must be a folder")
    if not dst.exists() and dst.suffix.lower() in AUDIO_SUFFIXES:
        raise _ui.CLIError(
            f"OUTPUT {dst} looks like a file, but INPUT {src} is a folder: give an OUTPUT folder "
            f"(e.g. {dst.with_suffix('')}/) for the converted files"
        )
    force = existing == "overwrite"
    fmt = fmt or "wav"
    targets = output_paths(files, dst, fmt=fmt)
    present = [t for t in targets.values() if t.exists()]
    if present and existing == "skip":
        _ui.info(f"skipping {len(present)} file(s) already converted in {dst} (--skip-existing)")
        targets = {f: t for f, t in targets.items() if not t.exists()}
        files = list(targets)
        if not files:
            _ui.info(f"nothing to do: every file of {src} has its output in {dst}")
            return []
    elif present and not force:
        more = f" and {len(present) - 1} more" if len(present) > 1 else ""
        raise _ui.CLIError(
            f"{present[0]}{more} already exist(s); pass --force to overwrite, or --skip-existing to convert the rest"
        )
    converter = load_converter(weights, options)
    phase = _pitch_phase(converter, options)
    created = not dst.exists()
    dst.mkdir(parents=True, exist_ok=True)
    failed: dict[str, str] = {}
    written: list[Path] = []
    start = time.perf_counter()
    with _ui.progress() as bar:
        overall = bar.add_task("files", total=len(files))
        chunks = bar.add_task("", total=None)
        for i, (f, t) in enumerate(targets.items()):
            bar.reset(chunks, description=f.name)
            try:
                update = _ui.chunk_callback(bar, chunks, first=phase)
                converter.convert_file(f, t, format=fmt, overwrite=force, progress=update)
            except Exception as exc:  # noqa: BLE001  (one bad file must not stop the batch)
                bug = not _ui.is_expected(exc)
                failed[f.name] = (
                    f"{type(exc).__name__}: {exc} (a bug; RVC_DEBUG=1 for details)" if bug else _ui.message(exc)
                )
                if _ui.debug():
                    _ui.traceback_lines(exc)
                _ui.error_line(f"{f.name}: {failed[f.name]}")
            else:
                written.append(t)
            bar.update(overall, completed=i + 1)
        bar.update(chunks, visible=False)
    for t in written:  # on stdout after the bars: a terminal shows both streams
        _ui.result(str(t))
    done = len(files) - len(failed)
    if created and not done:
        try:
            dst.rmdir()
        except OSError:
            pass
    summary = f"converted {done} of {len(files)} files into {dst} in {time.perf_counter() - start:.1f} s"
    if failed:
        _ui.error_line(f"{summary}; {len(failed)} failed: {', '.join(failed)}")
    else:
        _ui.info(summary)
    return list(failed)


def convert_on_ray(
    src: Path, dst: Path, fmt: str | None, force: bool, weights: dict, options: dict, ray_opts: dict
) -> list[str]:
    """``--engine ray``: rvc_convert.distributed.convert_folder; returns the names that failed."""
    import rvc_convert
    from rvc_convert.distributed import convert_folder

    s = convert_folder(
        src,
        dst,
        model=weights["model"],
        index=weights["index"],
        contentvec=weights["contentvec"],
        rmvpe=weights["rmvpe"],
        precision=weights["precision"],
        options=rvc_convert.ConvertOptions(**options),
        fmt=fmt,
        force=force,
        progress=not _ui.quiet(),
        **ray_opts,
    )
    for path in s.converted:
        _ui.result(str(path))
    for path, error in s.failed.items():
        _ui.error_line(f"{path.name}: {error}")
    summary = (
        f"converted {len(s.converted)}, skipped {len(s.skipped)} (done before), failed {len(s.failed)} into {dst} "
        f"in {s.wall_seconds:.1f} s on {s.workers} worker(s): {s.audio_seconds:.1f} s of audio, "
        f"{s.compute_seconds:.1f} s of compute; manifest {s.manifest}"
    )
    if s.failed:
        _ui.error_line(summary)
    else:
        _ui.info(summary)
    return [p.name for p in s.failed]
