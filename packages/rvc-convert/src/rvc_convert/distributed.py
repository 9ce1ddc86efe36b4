"""Convert a folder on a Ray cluster (Ray Data), resumable and fault tolerant (extra ``rvc-convert[ray]``).

>>> from rvc_convert import ConvertOptions
>>> from rvc_convert.distributed import convert_folder
>>> s = convert_folder("in/", "out/", model="voice.pth", options=ConvertOptions(seed=0))   # a local Ray
>>> s = convert_folder("in/", "out/", model="voice.pth", address="auto", gpus_per_worker=1)  # a cluster
>>> s.converted, s.skipped, s.failed                                  # also in out/rvc-manifest.jsonl

The input paths become a Ray dataset (one block per file); ``map_batches`` runs them through a pool
of actors, each of which loads the model, ContentVec, RMVPE and the index **once** and converts many
files. Every output is written atomically (a hidden temporary file renamed into place), with the
names and formats of the one-machine folder conversion (:mod:`rvc_convert.folder`), so:

* a rerun skips the outputs that exist (they are complete: nothing else has their name) and removes
  temporary files a killed writer left behind: a crashed or cancelled job resumes where it stopped;
* a worker process that dies mid-file is restarted and the file retried (``max_restarts`` /
  ``max_task_retries`` of the actors); its output still appears exactly once;
* an unreadable or corrupt input is a ``failed`` row of the manifest, never a failed job.

The manifest ``OUTPUT_DIR/rvc-manifest.jsonl`` (JSON Lines, rewritten by every run) has one row per
input file: ``input``, ``output``, ``status`` (converted / skipped / failed), ``error`` and
``error_type`` for a failure, ``audio_seconds``, ``compute_seconds`` (decode + convert + encode),
``worker`` (``node`` IP, ``pid``, Ray ``actor`` id, ``gpus`` ids); and a last ``{"summary": {...}}``
row. A job that fails or is interrupted still leaves one: rows so far, ``not_run`` for the rest,
and ``{"summary": {"error": ..., "complete": false}}``.

Inputs and outputs must be paths every node can reach (one machine, or a shared file system).
Ray is imported only when :func:`convert_folder` runs. Test-only hook: with
``RVC_RAY_TEST_CRASH_ONCE=/path/marker`` in the driver's environment, the first worker to start a
file while ``marker`` does not exist creates it, leaves a truncated temporary output behind and
exits its process (``os._exit(1)``), as a crash would.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConvertInputError, RVCConvertError
from .folder import audio_files, output_paths, temp_files
from .options import ConvertOptions

logger = logging.getLogger(__name__)

__all__ = ["MANIFEST", "FolderSummary", "convert_folder"]

MANIFEST = "rvc-manifest.jsonl"
"""The manifest's file name in the output folder."""
PRECISIONS = ("float32", "tf32", "float16", "bfloat16")
_CRASH_HOOK = "RVC_RAY_TEST_CRASH_ONCE"


@dataclass(frozen=True)
class FolderSummary:
    """What a :func:`convert_folder` run did.

    Attributes:
        converted: outputs written by this run (paths).
        skipped: inputs whose output existed (paths of the inputs).
        failed: ``{input path: error message}``.
        audio_seconds: seconds of input audio converted by this run.
        compute_seconds: the workers' time on them (decode + convert + encode), summed over workers.
        wall_seconds: this run, start to end (Ray start-up and model loading included).
        workers: distinct worker processes that converted files.
        manifest: the JSON Lines manifest written in the output folder.
    """

    converted: tuple[Path, ...]
    skipped: tuple[Path, ...]
    failed: dict[Path, str]
    audio_seconds: float
    compute_seconds: float
    wall_seconds: float
    workers: int
    manifest: Path

    def as_dict(self) -> dict[str, Any]:
        """The manifest's summary row (counts rather than lists)."""
        return {
            "files": len(self.converted) + len(self.skipped) + len(self.failed),
            "converted": len(self.converted),
            "skipped": len(self.skipped),
            "failed": len(self.failed),
            "audio_seconds": round(self.audio_seconds, 3),
            "compute_seconds": round(self.compute_seconds, 3),
            "wall_seconds": round(self.wall_seconds, 3),
            "workers": self.workers,
        }


def convert_folder(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str],
    index: str | os.PathLike[str] | None = None,
    options: ConvertOptions = ConvertOptions(),  # noqa: B008  (frozen)
    contentvec: str | os.PathLike[str] | None = None,
    rmvpe: str | os.PathLike[str] | None = None,
    precision: str = "float32",
    fmt: str | None = None,
    force: bool = False,
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    retries: int = 3,
    progress: bool = True,
) -> FolderSummary:
    """Convert every audio file of ``input_dir`` into ``output_dir`` on Ray actors.

    Args:
        input_dir: folder of audio files (:func:`rvc_convert.folder.audio_files`).
        output_dir: created if missing; ``{stem}.{fmt}`` per input, plus the manifest.
        model, index, contentvec, rmvpe, options: as :class:`rvc_convert.VoiceConverter`
            (paths every worker can read; ``None`` weights resolve on the worker).
        precision: ``float32`` (exact), ``tf32`` (``MLX_ENABLE_TF32=1`` in the workers), ``float16``
            or ``bfloat16`` (the synthesizer's dtype; on NVIDIA GPUs ContentVec and RMVPE then
            run in TF32, ``rvc_synth.backends``' default for half precision).
        fmt: output format, ``wav`` (default), ``flac``, ``mp3``, ``ogg``, ``opus``, ``m4a``.
        force: convert every file again, replacing existing outputs (default: skip them).
        address: ``None`` starts a local Ray on this machine (stopped at the end); ``"auto"`` or
            ``"ray://head:10001"`` joins a running cluster. A Ray already initialised in this
            process is used as it is.
        workers: actors in the pool (an autoscaling cluster adds nodes for those that do not fit);
            default: as many as the cluster's CPUs (or GPUs with ``gpus_per_worker``) hold now, at
            most one per file.
        cpus_per_worker, gpus_per_worker: Ray resources of one actor (GPU fractions share a GPU).
        retries: times a file is retried after its worker process died (the actor restarts).
        progress: Ray Data's progress bars on stderr.

    Returns:
        a :class:`FolderSummary` (also the manifest's last row).

    Raises:
        ConvertInputError: no audio files, a missing model/weights path, two inputs mapping to the
            same output, bad resources; RVCConvertError: the Ray job itself failed (e.g. the model
            does not load on the workers). Per-file failures are not raised: see ``failed``.
    """
    start = time.perf_counter()
    src_dir, out_dir = Path(input_dir).expanduser(), Path(output_dir).expanduser()
    if not src_dir.is_dir():
        raise ConvertInputError(f"input folder not found: {src_dir} (expected a folder of audio files)")
    for what, path in (
        ("model", model),
        ("index", index),
        ("ContentVec weights", contentvec),
        ("RMVPE weights", rmvpe),
    ):
        if path is not None and not Path(path).exists():
            raise ConvertInputError(f"{what} not found: {path}")
    if precision not in PRECISIONS:
        raise ConvertInputError(f"precision={precision!r}; expected one of {', '.join(PRECISIONS)}")
    if not isinstance(options, ConvertOptions):
        raise ConvertInputError(f"options must be a ConvertOptions, got {type(options).__name__}")
    if (workers is not None and workers < 1) or cpus_per_worker < 0 or gpus_per_worker < 0 or retries < 0:
        raise ConvertInputError(
            f"workers={workers}, cpus_per_worker={cpus_per_worker}, gpus_per_worker={gpus_per_worker}, "
            f"retries={retries}; expected workers >= 1 and the others >= 0"
        )
    files = audio_files(src_dir)
    if not files:
        raise ConvertInputError(f"no audio files in {src_dir}")
    if out_dir.exists() and not out_dir.is_dir():
        raise ConvertInputError(f"{out_dir} is a file; the output of a folder conversion is a folder")
    targets = output_paths(files, out_dir, fmt=fmt or "wav")
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_temps(targets.values())
    todo = {s: d for s, d in targets.items() if force or not d.exists()}

    rows: dict[Path, dict[str, Any]] = {s: _row(s, d, "skipped") for s, d in targets.items() if s not in todo}
    if todo:
        try:
            _run_on_ray(
                todo,
                rows,
                worker_kwargs={
                    "model": str(model),
                    "index": None if index is None else str(index),
                    "contentvec": None if contentvec is None else str(contentvec),
                    "rmvpe": None if rmvpe is None else str(rmvpe),
                    "options": options,
                    "dtype": "float32" if precision == "tf32" else precision,
                    "fmt": fmt or "wav",
                    "crash_marker": os.environ.get(_CRASH_HOOK) or None,
                },
                tf32=precision == "tf32",
                address=address,
                workers=workers,
                cpus_per_worker=cpus_per_worker,
                gpus_per_worker=gpus_per_worker,
                retries=retries,
                progress=progress,
            )
        except BaseException as exc:  # failed or interrupted: a manifest of what was done, then the error
            ordered = [rows.get(s) or _row(s, targets[s], "not_run") for s in files]
            error = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
            _write_manifest(out_dir / MANIFEST, ordered, {"error": error, "complete": False})
            raise
        finally:
            _remove_temps(todo.values())  # those of workers killed mid-write (their files were retried)
    ordered = [rows[s] for s in files]
    done = [r for r in ordered if r["status"] == "converted"]
    summary = FolderSummary(
        converted=tuple(Path(r["output"]) for r in done),
        skipped=tuple(Path(r["input"]) for r in ordered if r["status"] == "skipped"),
        failed={Path(r["input"]): r["error"] for r in ordered if r["status"] == "failed"},
        audio_seconds=sum(r["audio_seconds"] or 0.0 for r in done),
        compute_seconds=sum(r["compute_seconds"] or 0.0 for r in ordered),
        wall_seconds=time.perf_counter() - start,
        workers=len({(r["worker"]["node"], r["worker"]["pid"]) for r in ordered if r["worker"]}),
        manifest=out_dir / MANIFEST,
    )
    _write_manifest(summary.manifest, ordered, summary.as_dict() | {"complete": True})
    return summary


# --- driver -------------------------------------------------------------------------------------


def _row(src: Path, dst: Path, status: str) -> dict[str, Any]:
    return {
        "input": str(src),
        "output": str(dst),
        "status": status,
        "error": None,
        "error_type": None,
        "audio_seconds": None,
        "compute_seconds": None,
        "worker": None,
    }


def _remove_temps(outputs: Any) -> None:
    for out in outputs:
        for tmp in temp_files(out):
            tmp.unlink(missing_ok=True)


def _write_manifest(path: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
        fh.write(json.dumps({"summary": summary}) + "\n")
    os.replace(tmp, path)


def _run_on_ray(
    todo: dict[Path, Path],
    rows: dict[Path, dict[str, Any]],
    *,
    worker_kwargs: dict[str, Any],
    tf32: bool,
    address: str | None,
    workers: int | None,
    cpus_per_worker: float,
    gpus_per_worker: float,
    retries: int,
    progress: bool,
) -> None:
    """Convert ``todo`` ({input: output}) on Ray, filling ``rows`` ({input: manifest row}) as results arrive."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise RVCConvertError(
            f"Ray is not installed ({exc}); install the extra: pip install 'rvc-convert[ray]'"
        ) from exc

    started = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
        if address is None:
            need = (workers or 1) * cpus_per_worker
            kw.update(num_cpus=max(os.cpu_count() or 1, int(need + 0.999)), include_dashboard=False)
        ray.init(address=address, **kw)
        started = True
    ctx = ray.data.DataContext.get_current()
    saved = ctx.enable_progress_bars, ctx.print_on_execution_start
    ctx.enable_progress_bars, ctx.print_on_execution_start = progress, False
    try:
        items = [{"src": str(s), "dst": str(d)} for s, d in todo.items()]
        # one file per block: per-file retries
        ds: ray.data.Dataset = ray.data.from_items(items, override_num_blocks=len(items))
        size = workers or _pool_size(ray, len(items), cpus_per_worker, gpus_per_worker)
        with warnings.catch_warnings():
            # Ray 2.60 deprecates **ray_remote_args, with no named max_task_retries yet (<2.64 pinned)
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = ds.map_batches(
                _Worker,
                batch_size=1,
                fn_constructor_kwargs=worker_kwargs,
                # --workers: a fixed pool; else all that fit now, from the start (Ray Data's autoscaling from 1
                # actor did not grow for a 12-file job: bench/ray_simulation.py), shrinking as the job ends
                compute=ray.data.ActorPoolStrategy(size=size)
                if workers
                else ray.data.ActorPoolStrategy(min_size=1, max_size=size, initial_size=size),
                num_cpus=cpus_per_worker,
                num_gpus=gpus_per_worker or None,
                runtime_env={"env_vars": {"MLX_ENABLE_TF32": "1"}} if tf32 else None,
                max_restarts=-1,  # a dead worker process is replaced (it loads the models again)
                max_task_retries=retries,  # and its file retried, at most `retries` times
            )
        try:
            for r in ds.iter_rows():
                row = json.loads(r["row"])
                rows[Path(row["input"])] = row
        except ray.exceptions.RayError as exc:
            first = str(exc).strip().splitlines()
            raise RVCConvertError(
                f"the Ray job failed ({type(exc).__name__}: {first[-1] if first else ''}); "
                "outputs written so far are kept: rerun to resume"
            ) from exc
    finally:
        ctx.enable_progress_bars, ctx.print_on_execution_start = saved
        if started:
            ray.shutdown()


def _pool_size(ray: Any, n_files: int, cpus: float, gpus: float) -> int:
    """As many actors as the cluster's resources hold, at most one per file."""
    res = ray.cluster_resources()
    fits = [int(res.get("CPU", 1) // cpus)] if cpus else []
    if gpus:
        fits.append(int(res.get("GPU", 0) // gpus))
    return max(1, min([n_files, *fits]))


# --- worker (a Ray actor) ------------------------------------------------------------------------


class _Worker:
    """One actor: the voice loaded once, then ``{src, dst}`` batches -> JSON manifest rows."""

    def __init__(
        self,
        *,
        model: str,
        index: str | None,
        contentvec: str | None,
        rmvpe: str | None,
        options: ConvertOptions,
        dtype: str,
        fmt: str,
        crash_marker: str | None,
    ) -> None:
        import ray

        from .converter import VoiceConverter

        self.converter = VoiceConverter(
            model, index=index, contentvec=contentvec, rmvpe=rmvpe, options=options, dtype=dtype
        )
        self.fmt, self.crash_marker = fmt, crash_marker
        ctx = ray.get_runtime_context()
        self.worker = {
            "node": ray.util.get_node_ip_address(),
            "pid": os.getpid(),
            "actor": ctx.get_actor_id(),
            "gpus": [str(g) for g in ray.get_gpu_ids()],
        }

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        rows = [json.dumps(self._convert(Path(s), Path(d))) for s, d in zip(batch["src"], batch["dst"], strict=True)]
        return {"row": np.array(rows, dtype=object)}

    def _convert(self, src: Path, dst: Path) -> dict[str, Any]:
        """As ``VoiceConverter.convert_file(src, dst, format=fmt, overwrite=True)``, also counting
        the seconds of audio; a failure is a row, never an exception."""
        from rvc_audio import load_audio, save_audio

        from .pipeline import SR

        row = _row(src, dst, "converted")
        row["worker"] = self.worker
        start = time.perf_counter()
        try:
            audio = load_audio(src, sample_rate=SR)
            row["audio_seconds"] = round(len(audio) / SR, 3)
            self._maybe_crash(dst)
            out, sr = self.converter.convert(audio, sample_rate=SR)
            # overwrite: the driver chose this file; an output here is from a retried attempt of it
            save_audio(dst, out, sr, format=self.fmt, overwrite=True)
        except Exception as exc:  # noqa: BLE001  (one bad file must not stop the job)
            text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            row.update(status="failed", error=text or type(exc).__name__, error_type=type(exc).__name__)
            logger.warning("%s: %s", src, row["error"])
        row["compute_seconds"] = round(time.perf_counter() - start, 4)
        return row

    def _maybe_crash(self, dst: Path) -> None:
        """The test-only hook (module docstring): die once, mid-file, leaving a truncated temp file."""
        if not self.crash_marker:
            return
        try:
            with open(self.crash_marker, "x") as fh:
                fh.write(f"{os.getpid()} {dst}\n")
        except FileExistsError:
            return
        dst.with_name(f".{dst.name}.crash.part").write_bytes(b"RIFF\x00\x00")
        os._exit(1)
