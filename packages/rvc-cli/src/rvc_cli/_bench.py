"""``rvc bench``: the whole pipeline timed per stage (or what each of Applio's options costs)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from . import _ui
from ._convert import PRECISION_HELP, Precision, finite

EPILOG = (
    "Examples:\n\n  rvc bench\n\n  rvc bench --seconds 10 --seconds 60 --json\n\n"
    "  rvc bench --options --seconds 30   (what each of Applio's options costs)\n\n"
    "  rvc bench --precision float16   (each length runs in a fresh process)"
)


def _finite_seconds(values: list[float] | None) -> list[float] | None:
    for v in values or ():
        finite(v)
    return values


def bench(
    seconds: Annotated[
        list[float] | None,
        typer.Option(
            "--seconds",
            "-s",
            help="Input length(s) to time, in seconds (default: 10 and 60).",
            min=0.5,
            callback=_finite_seconds,
        ),
    ] = None,
    precision: Annotated[Precision, typer.Option("--precision", help=PRECISION_HELP)] = "float32",
    repeats: Annotated[
        int, typer.Option("--repeats", "-r", min=1, help="Timed conversions per length; the median is reported.")
    ] = 1,
    options: Annotated[
        bool,
        typer.Option(
            "--options", help="Instead: what each of Applio's options (autotune, formants, clean, effects...) adds."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars or messages on stderr (errors and results remain).")
    ] = False,
) -> None:
    """Time the whole pipeline per stage on the active MLX device: real-time factors (seconds per
    second of audio), peak RSS and peak device memory (MLX's allocator: GPU memory on a GPU)."""
    _ui.set_quiet(quiet)
    with _ui.guard():
        from rvc_convert import bench as _bench

        if options:  # Applio's options: their own compute, in this process (no models)
            length = (seconds or [10.0])[0]
            with _ui.status(f"timing Applio's options on {length:g} s of audio..."):
                rows = _bench.options(length)
            if as_json:
                typer.echo(json.dumps(rows, indent=2))
                return
            from rich.table import Table

            table = Table(title=f"rvc bench --options: seconds each option adds to {length:g} s of audio")
            for col in ("option", "ms", "ms per s of audio"):
                table.add_column(col, justify="left" if col == "option" else "right")
            for r in rows:
                table.add_row(r["option"], f"{r['seconds'] * 1000:.1f}", f"{r['rtf'] * 1000:.2f}")
            _ui.out.print(table)
            return

        seconds = seconds or [10.0, 60.0]

        with _ui.status(f"benchmarking {', '.join(f'{s:g} s' for s in seconds)} of audio ({precision})..."):
            try:
                rows = _bench.run(seconds=tuple(seconds), precision=precision, repeats=repeats)
            except RuntimeError as exc:  # a measurement subprocess failed; its last line says why
                raise _ui.CLIError(str(exc)) from exc
        if as_json:
            typer.echo(json.dumps(rows, indent=2, default=str))
            return
        _ui.out.print(_bench_table(rows))


def _bench_table(rows: list[dict]) -> object:
    from rich.table import Table

    stages = ("contentvec", "f0", "index", "synth", "other")
    where = ", ".join(sorted({f"{r['device']} {r.get('precision', '')}".strip() for r in rows if r.get("device")}))
    table = Table(
        title="rvc bench: seconds of compute per second of audio (lower is better)" + (f" on {where}" if where else ""),
        caption="peak memory: RSS (the process), dev (MLX's allocator: GPU memory on a GPU); "
        "1st s: the first conversion at that length (kernels and plans built)",
    )
    table.add_column("audio", justify="right")
    for name in ("cvec", *stages[1:], "total"):  # ContentVec, F0, index, synthesizer, the rest
        table.add_column(name, justify="right")
    table.add_column("RSS MB", justify="right")  # peaks
    table.add_column("dev MB", justify="right")
    first = any(r.get("first_call_s") is not None for r in rows)  # the warm-up at this length
    if first:
        table.add_column("1st s", justify="right")
    for r in rows:
        dur = float(r["seconds"])
        cells = [f"{float(r[k]) / dur:.3f}" if r.get(k) is not None else "-" for k in stages]
        total = float(r["rtf"]) if r.get("rtf") is not None else float(r["total"]) / dur
        rss = f"{float(r['peak_rss_mb']):.0f}" if r.get("peak_rss_mb") is not None else "-"
        dev = f"{float(r['peak_device_mb']):.0f}" if r.get("peak_device_mb") is not None else "-"
        extra = [f"{float(r['first_call_s']):.2f}" if r.get("first_call_s") is not None else "-"] if first else []
        table.add_row(f"{dur:g} s", *cells, f"[bold]{total:.3f}[/]", rss, dev, *extra)
    return table
