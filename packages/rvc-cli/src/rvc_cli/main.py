"""The ``rvc`` command (typer): convert, live, info, export, models, index, ui, bench, warmup.

Importing this module is cheap: MLX, FAISS and the rvc packages are imported inside the
commands that need them.
"""

import json
import os
from importlib import metadata
from pathlib import Path
from typing import Annotated, Literal

import typer

from . import _ui
from ._applio import EXAMPLES as APPLIO_EXAMPLES
from ._bench import EPILOG as _BENCH_EPILOG
from ._bench import bench as _bench
from ._convert import convert
from ._live import EPILOG as LIVE_EPILOG
from ._live import live
from ._warmup import EPILOG as _WARMUP_EPILOG
from ._warmup import warmup as _warmup

Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bars or messages on stderr (errors and results remain).")
]
Force = Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing output.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ContentVec = Annotated[
    Path | None,
    typer.Option(
        "--contentvec",
        help="Local ContentVec weights (.safetensors), instead of $RVC_CONTENTVEC_WEIGHTS or the Hugging Face cache.",
        show_default=False,
    ),
]

app = typer.Typer(
    name="rvc",
    help="RVC voice conversion on MLX: convert speech or singing to the voice of an RVC model.",
    epilog="Example: [bold]rvc convert speech.wav out.wav -m voice.pth --index voice.index --pitch 12[/]\n\n"
    "Errors are one red line and exit code 1; RVC_DEBUG=1 shows the traceback.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
models_app = typer.Typer(
    help="Weights (ContentVec, RMVPE, CREPE, FCPE, Applio's embedders): download, list, import RVC's hubert_base.pt, "
    "create random ones for testing.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
index_app = typer.Typer(help="Retrieval indexes (.index) for a voice.", no_args_is_help=True, rich_markup_mode="rich")
app.add_typer(models_app, name="models")
app.add_typer(index_app, name="index")


def _version_text() -> str:
    parts = []
    for dist in ("rvc-convert", "rvc-synth", "rvc-f0", "rvc-audio", "rvc-index", "mlx"):
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    return f"rvc {metadata.version('rvc-cli')} ({', '.join(parts)})"


def _version(value: bool) -> None:
    if value:
        _ui.result(_version_text())
        raise typer.Exit()


@app.callback()
def _main(
    quiet: Quiet = False,
    version: Annotated[
        bool, typer.Option("--version", "-V", help="Show the version and exit.", callback=_version, is_eager=True)
    ] = False,
) -> None:
    """RVC voice conversion on MLX: convert speech or singing to the voice of an RVC model.

    Results go to stdout; progress, logs and errors to stderr. Every expected failure is one red
    line and exit code 1 (set RVC_DEBUG=1 for the traceback).
    """
    _ui.set_quiet(quiet, reset=True)


app.command(
    epilog="Examples:\n\n"
    "  rvc convert speech.wav out.wav -m voice.pth\n\n"
    "  rvc convert song.flac out.mp3 -m voice.pth --index voice.index --pitch -3 --f0-method harvest\n\n"
    "  rvc convert takes/ converted/ -m voice/ --format flac   (a folder: every audio file, one model load)\n\n"
    "  rvc convert long.wav out.wav -m voice.pth --preset lowmem --seed 0\n\n"
    "  rvc convert catalogue/ converted/ -m voice.pth --engine ray --address auto --gpus-per-worker 0.5"
    "   (Ray actors, resumable)" + APPLIO_EXAMPLES.replace("Examples:\n\n", "Applio's options:\n\n")
)(convert)
app.command(epilog=LIVE_EPILOG)(live)


@app.command(epilog="Examples:\n\n  rvc info voice.pth\n\n  rvc info voice/ --json")
def info(
    model: Annotated[
        Path, typer.Argument(help="RVC model: a .pth file or a folder from `rvc export`.", show_default=False)
    ],
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Show what a voice model is: version, sample rate, F0 or not, speakers, parameters, stored info."""
    _ui.set_quiet(quiet)
    with _ui.guard():
        import rvc_synth

        s = rvc_synth.load(model).info
        doc = {
            "path": str(model),
            "version": s.version,
            "sample_rate": s.sample_rate,
            "f0": s.has_f0,
            "speakers": s.n_speakers,
            "feature_dim": s.feature_dim,
            "hop": s.hop,
            "parameters": s.n_params,
            "stored_dtype": s.stored_dtype,
            "embedder": s.embedder,
            "metadata": s.metadata,
        }
        if as_json:
            typer.echo(json.dumps(doc, indent=2, default=str))
            return
        rows = [
            ("model", str(model)),
            ("version", f"{s.version} ({s.feature_dim}-d content features)"),
            ("sample rate", f"{s.sample_rate} Hz (hop {s.hop} samples)"),
            ("pitch (F0)", "yes" if s.has_f0 else "no (pitch options are ignored)"),
            ("speakers", str(s.n_speakers)),
            ("parameters", f"{s.n_params:,}"),
            ("stored dtype", f"{s.stored_dtype} (runs in float32 unless --precision asks otherwise)"),
        ]
        if s.embedder:  # Applio's models say which content features they were trained on
            how = f"--embedder {s.embedder}" if s.embedder in EMBEDDER_NAMES else "--embedder PATH of its folder"
            rows.append(("embedder", f"{s.embedder} (trained with it; convert with {how})"))
        rows += [(f"  {k}", v if isinstance(v, str) else json.dumps(v)) for k, v in s.metadata.items()]
        if s.metadata:
            rows.insert(len(rows) - len(s.metadata), ("stored metadata", ""))
        width = max(len(k) for k, _ in rows)
        for k, v in rows:
            _ui.result(f"{k:<{width}}  {v}".rstrip())


@app.command(
    epilog="Examples:\n\n  rvc export voice.pth voice/\n\n  rvc export voice.pth voice-fp16/ --dtype float16 --force"
)
def export(
    model: Annotated[Path, typer.Argument(help="RVC model .pth (inference or training format).", show_default=False)],
    out_dir: Annotated[
        Path, typer.Argument(help="Folder to write (config.json + model.safetensors).", show_default=False)
    ],
    dtype: Annotated[
        Literal["float32", "float16"], typer.Option(help="Weight precision of the written file.")
    ] = "float32",
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Convert a .pth model to safetensors + config.json (loads without pickle, faster)."""
    _ui.set_quiet(quiet)
    with _ui.guard():
        import rvc_synth

        written = rvc_synth.convert_checkpoint(model, out_dir, dtype=dtype, overwrite=force)
        _ui.info(f"exported {model} ({dtype})")
        _ui.result(str(written))


@models_app.command("list", epilog="Example:\n\n  rvc models list --json")
def models_list(as_json: AsJson = False, quiet: Quiet = False) -> None:
    """Show where every weights file conversion can use comes from (ContentVec, RMVPE, CREPE, FCPE,
    Applio's embedders) and whether it is available."""
    _ui.set_quiet(quiet)
    with _ui.guard():
        from rvc_convert import weights

        rows = weights.weights_status(every=True)
        if as_json:
            typer.echo(json.dumps(rows, indent=2, default=str))
            return
        from rich.table import Table

        table = Table()
        for col in ("name", "status", "from"):
            table.add_column(col, no_wrap=True)
        table.add_column("path", overflow="fold")
        kinds = {"extractor": "", "f0": "f0 networks", "embedder": "embedders"}
        kind, missing = "extractor", False
        for r in rows:
            if r["kind"] != kind:
                kind = r["kind"]
                table.add_section()
                table.add_row(f"[bold]{kinds[kind]}[/]", "", "", "")
            if r.get("path"):
                status, where = (
                    "[green]ok[/]",
                    {"env": f"${r['env']}", "cache": "HF cache"}.get(r.get("source") or "", "?"),
                )
                path = str(r["path"])
                if r.get("random"):
                    status = "[yellow]random[/]"
                    path += " (for testing: random weights, output is noise)"
            elif r.get("source") == "env":
                status, where, path = "[red]missing[/]", f"${r['env']}", f"not a file: {os.environ.get(r['env'])}"
            else:
                status, where = "[red]missing[/]", "-"
                path = f"rvc models download {r['fetch']}"
                missing = True
            table.add_row(str(r["name"]), status, where, path)
        _ui.out.print(table)
        if missing:
            _ui.result(
                "missing: run the `rvc models download ...` shown while online, or use local files: --contentvec / "
                "--rmvpe / --f0-weights PATH or $RVC_CONTENTVEC_WEIGHTS, $RVC_RMVPE_WEIGHTS, $RVC_CREPE_WEIGHTS, "
                "$RVC_CREPE_TINY_WEIGHTS, $RVC_FCPE_WEIGHTS; embedders: --embedder PATH of a local folder"
            )


EMBEDDER_NAMES = ("contentvec", "spin", "spin-v2", "chinese-hubert-base", "japanese-hubert-base", "korean-hubert-base")


@models_app.command(
    "download",
    epilog="Examples:\n\n  rvc models download\n\n  rvc models download rmvpe\n\n  rvc models download crepe\n\n"
    "  rvc models download --embedder spin-v2\n\n"
    "Offline machines: copy the files and pass --contentvec/--rmvpe/--f0-weights/--embedder PATH or set "
    "RVC_CONTENTVEC_WEIGHTS/RVC_RMVPE_WEIGHTS/RVC_CREPE_WEIGHTS/RVC_CREPE_TINY_WEIGHTS/RVC_FCPE_WEIGHTS.",
)
def models_download(
    name: Annotated[
        Literal["all", "contentvec", "rmvpe", "crepe", "crepe-tiny", "fcpe"] | None,
        typer.Argument(
            help="Which weights to fetch; all = contentvec and rmvpe (what default conversion needs).",
            show_default=False,
        ),
    ] = None,
    embedder: Annotated[
        str | None,
        typer.Option(
            "--embedder", help=f"Fetch one of Applio's embedders: {', '.join(EMBEDDER_NAMES)}.", show_default=False
        ),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Download extractor, f0 (CREPE, FCPE) or embedder weights into the Hugging Face cache."""
    _ui.set_quiet(quiet)
    with _ui.guard():
        if embedder is not None and embedder not in EMBEDDER_NAMES:
            raise _ui.CLIError(f"--embedder {embedder}: unknown; expected one of {', '.join(EMBEDDER_NAMES)}")
        if embedder is not None and name is not None:
            raise _ui.CLIError("give a weights NAME or --embedder NAME, not both")
        from rvc_convert import weights

        if _ui.quiet():
            os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # read when huggingface-hub is imported
        if embedder is not None:
            with _ui.status(f"downloading the {embedder} embedder..."):
                folder = weights.download_embedder(embedder)
            _ui.result(f"{embedder}\t{folder}")
            return
        name = name or "all"
        with _ui.status(f"downloading {name} weights..."):
            paths = weights.download_weights(name)
        for key, path in paths.items():
            _ui.result(f"{key}\t{path}")


@models_app.command(
    "import-hubert",
    epilog="Example:\n\n  rvc models import-hubert hubert_base.pt contentvec.safetensors\n\n"
    "  rvc convert in.wav out.wav -m v1_voice.pth --contentvec contentvec.safetensors",
)
def models_import_hubert(
    pt: Annotated[Path, typer.Argument(help="RVC's hubert_base.pt (fairseq checkpoint).", show_default=False)],
    out: Annotated[
        Path, typer.Argument(help="ContentVec .safetensors to write (with final_proj).", show_default=False)
    ],
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Import RVC's hubert_base.pt without torch (safe reader), including final_proj for v1 models."""
    _ui.set_quiet(quiet)
    with _ui.guard():
        from rvc_convert import weights

        written = weights.import_hubert(pt, out, overwrite=force)
        _ui.info(f"imported {pt}; use it with --contentvec {written} or RVC_CONTENTVEC_WEIGHTS={written}")
        _ui.result(str(written))


@models_app.command(
    "create-random",
    epilog="Example:\n\n  rvc models create-random ~/rvc-random\n\n"
    "  rvc convert in.wav out.wav -m voice.pth --contentvec ~/rvc-random/contentvec_random.safetensors "
    "--rmvpe ~/rvc-random/rmvpe_random.safetensors\n\n"
    "For testing: random weights, output is noise.",
)
def models_create_random(
    out_dir: Annotated[
        Path,
        typer.Argument(
            help="Folder to write contentvec_random.safetensors and rmvpe_random.safetensors into.", show_default=False
        ),
    ],
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """FOR TESTING: write full-size ContentVec and RMVPE files with random weights (output is noise).

    Every command then runs at real speed with no network (to try or benchmark). `rvc models list` labels them.
    """
    _ui.set_quiet(quiet)
    with _ui.guard():
        from rvc_convert import weights
        from rvc_convert.errors import OutputExistsError

        there = [str(out_dir / name) for name in weights.RANDOM_FILES.values() if (out_dir / name).exists()]
        if there and not force:  # before the status line: one error line
            raise OutputExistsError(f"{' and '.join(there)} already there; pass --force to overwrite it")
        with _ui.status("writing random ContentVec (~360 MB) and RMVPE (~345 MB) weights..."):
            paths = weights.create_random_weights(out_dir, overwrite=force)
        cv, rm = paths["contentvec"], paths["rmvpe"]
        _ui.warn("for testing: random weights, output is noise")
        _ui.info(f"use them with --contentvec {cv} --rmvpe {rm}")
        _ui.info(f"or: export RVC_CONTENTVEC_WEIGHTS={cv} RVC_RMVPE_WEIGHTS={rm}")
        for key, path in paths.items():
            _ui.result(f"{key}\t{path}")


@index_app.command(
    "build",
    epilog="Examples:\n\n  rvc index build recordings/ -o voice.index\n\n"
    "  rvc index build recordings/ -o voice_v1.index --version v1 --force",
)
def index_build(
    audio_dir: Annotated[Path, typer.Argument(help="Folder of the target voice's recordings.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .index file to write.", show_default=False)],
    version: Annotated[
        Literal["v1", "v2"], typer.Option(help="Model version: v1 = 256-d, v2 = 768-d features.")
    ] = "v2",
    contentvec: ContentVec = None,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Build a retrieval index from recordings of the target voice (as RVC's index training)."""
    _ui.set_quiet(quiet)
    with _ui.guard():
        if not audio_dir.is_dir():
            raise _ui.CLIError(f"{audio_dir} is not a folder; expected a folder of the target voice's recordings")
        if output.is_dir():
            raise _ui.CLIError(
                f"{output} is a folder; expected the .index file to write, e.g. {output / 'voice.index'}"
            )
        if output.exists() and not force:
            raise _ui.CLIError(f"{output} already exists; pass --force to overwrite it")
        if not output.parent.is_dir():
            raise _ui.CLIError(f"output folder {output.parent} does not exist; create it first")
        from rvc_convert import weights

        with _ui.progress() as bar:
            task = bar.add_task("features", total=None)
            written = weights.build_voice_index(
                audio_dir,
                output,
                version=version,
                contentvec=contentvec,
                overwrite=force,
                progress=_ui.chunk_callback(bar, task),
            )
        _ui.result(str(written))


@app.command(
    epilog="Examples:\n\n  rvc ui\n\n  rvc ui --models-dir ~/voices --port 8000\n\n"
    "  rvc ui --host 0.0.0.0   (reachable from the network: anyone there can use it)"
)
def ui(
    host: Annotated[str, typer.Option(help="Address to listen on; 127.0.0.1 = this machine only.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the page.")] = 7865,
    models_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder of voice models (.pth, exported folders, .index); default $RVC_MODELS_DIR or ./models.",
            show_default=False,
        ),
    ] = None,
    contentvec: ContentVec = None,
    rmvpe: Annotated[
        Path | None,
        typer.Option(
            help="Local RMVPE weights (.safetensors), instead of $RVC_RMVPE_WEIGHTS or the HF cache.",
            show_default=False,
        ),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Open the web page (Gradio) on this machine: convert, batch-convert, manage models."""
    _ui.set_quiet(quiet)
    with _ui.guard():
        try:
            import rvc_ui
        except ImportError as exc:
            raise _ui.CLIError(
                f"the web page needs the rvc-ui package ({exc}); install it: pip install 'rvc-cli[ui]'"
            ) from exc

        if not rvc_ui.is_local_host(host):
            _ui.err.print(
                f"[yellow]warning:[/] listening on {host}: anyone on the network who can reach port {port} "
                "can use this page (upload files, run conversions, write to the models folder)"
            )
        if models_dir:
            settings = rvc_ui.Settings(models_dir=models_dir, contentvec=contentvec, rmvpe=rmvpe)
        else:
            settings = rvc_ui.Settings(contentvec=contentvec, rmvpe=rmvpe)
        rvc_ui.launch(settings, host=host, port=port, ready=lambda url: _ui.result(f"rvc ui: {url} (Ctrl+C stops)"))


app.command(name="bench", epilog=_BENCH_EPILOG)(_bench)
app.command(name="warmup", epilog=_WARMUP_EPILOG)(_warmup)
