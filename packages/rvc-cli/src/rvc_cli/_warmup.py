"""``rvc warmup``: build the kernels a first conversion needs (e.g. in a container build)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from . import _ui
from ._convert import PRECISION_HELP, Precision
from ._jobs import use_precision

if TYPE_CHECKING:
    from rvc_convert.warmup import WarmupStep

EPILOG = (
    "Examples:\n\n"
    "  rvc warmup                      (random full-size models, as rvc bench)\n\n"
    "  rvc warmup -m voice.pth --precision float16 --preset fp16\n\n"
    "  rvc warmup --precision tf32 --seconds 10 --seconds 60 --json\n\n"
    "  rvc warmup -m voice.pth --precision float16 --live-block 0.25   (and the live stream's kernels)\n\n"
    "On NVIDIA GPUs MLX's compiled kernels are kept in $XDG_CACHE_HOME/rvc/mlx-kernels (MLX_PTX_CACHE_DIR) "
    "and the driver's in ~/.nv/ComputeCache (raise CUDA_CACHE_MAXSIZE if it is small): run this once in "
    "the image build. It then marks that folder: later conversions use MLX's compiled graphs (H200: "
    "float16 60 s in 195 ms against 285 without them) and find them built (a first 10 s conversion "
    "2.0-3.6 s; building them on first use took a minute or more, so until this has run they are "
    "off). On GPUs each length is converted twice: a chunk length's graphs are compiled once it repeats."
)


def warmup(
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            "-m",
            help="Voice model (.pth or `rvc export` folder); default: random full-size.",
            show_default=False,
        ),
    ] = None,
    index: Annotated[Path | None, typer.Option("--index", "-i", help="The model's .index file.")] = None,
    precision: Annotated[Precision, typer.Option("--precision", help=PRECISION_HELP)] = "float32",
    preset: Annotated[str, typer.Option("--preset", help="Chunking preset: cpu, lowmem or fp16.")] = "cpu",
    seconds: Annotated[
        list[float] | None,
        typer.Option(
            "--seconds",
            "-s",
            help="Input length(s) to convert (default: 10 and just under the preset's x_max, the longest uncut chunk).",
        ),
    ] = None,
    live_block: Annotated[
        list[float] | None,
        typer.Option(
            "--live-block",
            help="Then warm a live stream at this block size in seconds (repeatable; rvc live's other defaults).",
            min=0.02,
            max=1.5,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the steps run as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Convert short test signals at the shapes a conversion uses, so that the kernels (and, on
    NVIDIA, the driver's JIT cache) are built before the first real conversion."""
    _ui.set_quiet(quiet)
    with _ui.guard():
        dtype = use_precision(precision)  # before MLX loads (tf32)
        if model is None and (index is not None or preset != "cpu"):
            raise _ui.CLIError("--index and --preset need --model; without one the random models use the cpu preset")
        import rvc_convert
        from rvc_convert.warmup import warmup as run

        converter = None
        if model is not None:
            with _ui.status(f"loading {model}..."):
                converter = rvc_convert.VoiceConverter(
                    model, index=index, dtype=dtype, options=rvc_convert.ConvertOptions(preset=preset)
                )

        def report(done: int, total: int, step: WarmupStep) -> None:
            _ui.info(f"warm-up {done}/{total}: {step.seconds:g} s, synthesizer frames {list(step.frames)}")

        with _ui.status(f"warming up ({precision})..."):
            steps = run(converter, precision=precision, seconds=seconds, live_blocks=live_block or (), progress=report)
        if as_json:
            rows = [{"seconds": s.seconds, "chunks": list(s.chunks), "frames": list(s.frames)} for s in steps]
            out = {"precision": precision, "steps": rows, "live_blocks": list(live_block or [])}
            typer.echo(json.dumps(out, indent=2))
