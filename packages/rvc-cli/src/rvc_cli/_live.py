"""``rvc live``: a microphone to the model's voice on an output device, or a file through the same
streaming converter at real-time pace (measured)."""

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from . import _ui
from ._convert import PRECISION_HELP, F0Method, Precision
from ._jobs import use_precision

_DEV = "Devices"
_FILE = "File (instead of devices)"
_SET = "Conversion"
_ADV = "Weights"
PORTAUDIO_HINT = (
    "PortAudio is not installed (sounddevice needs it): install it with `apt-get install libportaudio2` "
    "(Debian/Ubuntu), `brew install portaudio` (macOS) or `dnf install portaudio` (Fedora); "
    "`rvc live --input in.wav --output out.wav` needs no sound card"
)
EPILOG = (
    "Examples:\n\n"
    "  rvc live -m voice.pth                                 (default microphone -> default speakers)\n\n"
    "  rvc live --list-devices\n\n"
    "  rvc live -m voice.pth --input-device 2 --output-device 5 --pitch 12 --block 0.15 --record take.wav\n\n"
    "  rvc live -m voice.pth --input speech.wav --output out.wav   (simulated device, real-time pace)\n\n"
    "  rvc live -m voice.pth --input speech.wav --output out.wav --pace fast --json\n\n"
    "Latency = block + crossfade + 10 ms (algorithmic) + one block (the conversion runs while the next "
    "block is recorded) + the device's buffers. Ctrl-C stops."
)


def _opt(*decls: str, help: str, panel: str | None = None, **kw: object) -> Any:
    return typer.Option(*decls, help=help, rich_help_panel=panel, **kw)  # type: ignore[arg-type]


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # the module loads PortAudio when imported
        raise _ui.CLIError(PORTAUDIO_HINT) from exc
    return sounddevice


def _device(value: str | None) -> int | str | None:
    if value is None:
        return None
    return int(value) if value.strip().isdigit() else value


def live(
    model: Annotated[
        Path | None,
        _opt(
            "--model",
            "-m",
            help="Voice model: RVC .pth or a folder from `rvc export`.",
            show_default=False,
        ),
    ] = None,
    list_devices: Annotated[bool, _opt("--list-devices", help="List audio devices and exit.", panel=_DEV)] = False,
    input_device: Annotated[
        str | None,
        _opt(
            "--input-device",
            help="Microphone: number or name (see --list-devices).",
            panel=_DEV,
            show_default=False,
        ),
    ] = None,
    output_device: Annotated[
        str | None,
        _opt(
            "--output-device",
            help="Speakers: number or name.",
            panel=_DEV,
            show_default=False,
        ),
    ] = None,
    record: Annotated[
        Path | None,
        _opt(
            "--record",
            help="Also write what is played to this file.",
            panel=_DEV,
            show_default=False,
        ),
    ] = None,
    input: Annotated[
        Path | None,
        _opt(
            "--input",
            help="Convert this file through the live path instead of a microphone.",
            panel=_FILE,
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        _opt(
            "--output",
            help="Where --input's conversion goes (format from the suffix).",
            panel=_FILE,
            show_default=False,
        ),
    ] = None,
    pace: Annotated[
        Literal["realtime", "fast"],
        _opt(
            "--pace",
            help="realtime: a simulated device callback every block; fast: back to back.",
            panel=_FILE,
        ),
    ] = "realtime",
    as_json: Annotated[bool, _opt("--json", help="Print the figures as JSON.", panel=_FILE)] = False,
    force: Annotated[bool, _opt("--force", "-f", help="Overwrite --output/--record.")] = False,
    sample_rate: Annotated[int, _opt("--sample-rate", help="Device rate in Hz.", min=16000)] = 48000,
    block: Annotated[
        float,
        _opt(
            "--block",
            help="Seconds per block (0.02-1.5): latency vs compute headroom.",
            panel=_SET,
            min=0.02,
            max=1.5,
        ),
    ] = 0.25,
    crossfade: Annotated[
        float,
        _opt(
            "--crossfade",
            help="Seconds of crossfade between blocks (0.01-0.15).",
            panel=_SET,
            min=0.01,
            max=0.15,
        ),
    ] = 0.05,
    extra: Annotated[
        float,
        _opt(
            "--extra",
            help="Seconds of past context the model sees (0.05-5): quality vs compute.",
            panel=_SET,
            min=0.05,
            max=5.0,
        ),
    ] = 2.5,
    threshold: Annotated[
        float,
        _opt("--threshold", help="Silence gate in dB (-60 = off).", panel=_SET, max=0.0),
    ] = -60.0,
    pitch: Annotated[float, _opt("--pitch", "-p", help="Transpose by semitones.", panel=_SET)] = 0.0,
    formant: Annotated[
        float,
        _opt("--formant", help="Formant shift in semitones.", panel=_SET, min=-24, max=24),
    ] = 0.0,
    f0_method: Annotated[F0Method, _opt("--f0-method", help="Pitch estimator.", panel=_SET)] = "rmvpe",
    index: Annotated[
        Path | None,
        _opt(
            "--index",
            "-i",
            help="The model's .index file.",
            panel=_SET,
            show_default=False,
        ),
    ] = None,
    index_rate: Annotated[
        float,
        _opt(
            "--index-rate",
            help="Index blend (0 = none; costs a search per block).",
            panel=_SET,
            min=0.0,
            max=1.0,
        ),
    ] = 0.0,
    rms_mix_rate: Annotated[
        float,
        _opt(
            "--rms-mix-rate",
            help="Loudness: 0 = the input's envelope, 1 = the model's.",
            panel=_SET,
            min=0.0,
            max=1.0,
        ),
    ] = 0.0,
    late: Annotated[
        Literal["silence", "dry"],
        _opt("--late", help="What a block not converted in time plays.", panel=_SET),
    ] = "silence",
    speaker: Annotated[
        int,
        _opt("--speaker", help="Speaker id of multi-speaker models.", panel=_SET, min=0),
    ] = 0,
    seed: Annotated[
        int | None,
        _opt("--seed", help="Seed the synthesizer noise.", panel=_SET, show_default=False),
    ] = None,
    precision: Annotated[Precision, _opt("--precision", help=PRECISION_HELP, panel=_ADV)] = "float32",
    contentvec: Annotated[
        Path | None,
        _opt(
            "--contentvec",
            help="Local ContentVec weights.",
            panel=_ADV,
            show_default=False,
        ),
    ] = None,
    rmvpe: Annotated[
        Path | None,
        _opt("--rmvpe", help="Local RMVPE weights.", panel=_ADV, show_default=False),
    ] = None,
    quiet: Annotated[bool, _opt("--quiet", "-q", help="No status line or messages on stderr.")] = False,
) -> None:
    """Live conversion: microphone -> the model's voice, or a file through the same streaming path."""
    _ui.set_quiet(quiet)
    with _ui.guard():
        if list_devices:
            _ui.result(str(_sounddevice().query_devices()))
            return
        if model is None:
            raise _ui.CLIError("no model: pass --model voice.pth (or --list-devices)")
        if (input is None) != (output is None):
            raise _ui.CLIError("--input and --output go together (a file in, a file out)")
        for what, path in (
            ("model", model),
            ("index", index),
            ("input", input),
            ("ContentVec weights", contentvec),
            ("RMVPE weights", rmvpe),
        ):
            if path is not None and not path.exists():
                raise _ui.CLIError(f"{what} not found: {path}")
        for path in (output, record):
            if path is not None and path.exists() and not force:
                raise _ui.CLIError(f"{path} already exists; pass --force to overwrite it")
        sd = _sounddevice() if input is None else None  # PortAudio checked before the slow model load
        dtype = use_precision(precision)
        import rvc_convert
        import rvc_runtime

        rvc_runtime.configure_gpu(compile=True)  # GPUs: compiled graphs for the live blocks, built by the warm-up
        with _ui.status(f"loading {model}..."):
            vc = rvc_convert.VoiceConverter(
                model,
                index=index,
                contentvec=contentvec,
                rmvpe=rmvpe,
                dtype=dtype,
                options=rvc_convert.ConvertOptions(f0_method=f0_method),
            )
            stream = vc.stream(
                sample_rate=sample_rate,
                block=block,
                crossfade=crossfade,
                extra=extra,
                threshold_db=threshold,
                f0_method=f0_method,
                pitch=pitch,
                formant=formant,
                index_rate=index_rate,
                rms_mix_rate=rms_mix_rate,
                speaker=speaker,
                seed=seed,
            )
        with _ui.status("building kernels (two blocks of quiet noise)..."):
            stream.warmup()  # the first real block would otherwise play late (GPUs: seconds)
        if input is not None:
            assert output is not None  # --input and --output go together (checked above)
            _from_file(
                stream,
                input,
                output,
                pace=pace,
                late=late,
                force=force,
                as_json=as_json,
            )
        else:
            _from_devices(
                sd,
                stream,
                _device(input_device),
                _device(output_device),
                late=late,
                record=record,
                force=force,
            )


def _from_file(
    stream: Any,
    src: Path,
    dst: Path,
    *,
    pace: str,
    late: str,
    force: bool,
    as_json: bool,
) -> None:
    from rvc_audio import load_audio, save_audio
    from rvc_convert.live import run_file

    audio = load_audio(src, sample_rate=stream.sample_rate)
    seconds = len(audio) / stream.sample_rate
    with _ui.status(f"converting {src.name} ({seconds:.1f} s, {pace} pace)..."):
        out, figures = run_file(stream, audio, pace=pace, late=late)
    written = save_audio(dst, out, stream.sample_rate, overwrite=force)
    figures["input_seconds"] = round(seconds, 3)
    figures["output"] = str(written)
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
        return
    c, a = figures["compute_ms"], figures["arrival_to_output_ms"]
    _ui.result(
        f"latency: {figures['algorithmic_latency_ms']:.0f} ms algorithmic, "
        f"{figures['end_to_end_latency_ms']:.0f} ms with the worker's block (+ device buffers)"
    )
    _ui.result(
        f"compute per {figures['block_ms']:.0f} ms block: p50 {c['p50']:.1f}, p95 {c['p95']:.1f}, "
        f"p99 {c['p99']:.1f}, max {c['max']:.1f} ms; arrival to output p50 {a['p50']:.1f}, max {a['max']:.1f} ms"
    )
    _ui.result(
        f"late blocks: {figures['late_blocks']} of {figures['blocks']}"
        + (f", dropped: {figures['dropped_blocks']}" if figures["dropped_blocks"] else "")
    )
    _ui.result(str(written))


def _from_devices(
    sd: Any,
    stream: Any,
    in_dev: Any,
    out_dev: Any,
    *,
    late: str,
    record: Path | None,
    force: bool,
) -> None:
    import numpy as np

    from rvc_convert.live import LiveLoop, device_stream, summarize

    n = stream.block_size
    played: list[np.ndarray] = []
    xruns = [0]
    loop = LiveLoop(stream, late=late)

    def count_xrun() -> None:
        xruns[0] += 1

    def status() -> None:
        if loop.error is not None:
            raise loop.error
        if not _ui.quiet():
            line = _status_line(summarize(loop, stream, pace="device"), device_ms, xruns[0])
            _ui.err.print(line, end="\r", highlight=False)

    device_ms = 0.0
    with device_stream(
        sd,
        loop,
        device=(in_dev, out_dev),
        on_status=count_xrun,
        on_played=(lambda block: played.append(block.copy())) if record is not None else None,
    ) as dev:
        device_ms = 1000 * sum(dev.latency)
        _ui.info(f"live: {stream.sample_rate} Hz, block {1000 * n / stream.sample_rate:.0f} ms; Ctrl-C stops")
        try:  # conversions run here, on the thread that loaded the models; PortAudio calls callback()
            loop.serve(tick=status)
        except KeyboardInterrupt:
            pass
    if not _ui.quiet():
        _ui.err.print()
    fig = summarize(loop, stream, pace="device")
    _ui.info(
        f"stopped after {fig['blocks']} blocks: {fig['late_blocks']} late, {fig['dropped_blocks']} dropped, "
        f"{xruns[0]} device over/underruns"
    )
    if record is not None and played:
        from rvc_audio import save_audio

        _ui.result(str(save_audio(record, np.concatenate(played), stream.sample_rate, overwrite=force)))


def _status_line(fig: dict, device_ms: float, xruns: int) -> str:
    c = fig["compute_ms"]
    comp = f"{c['p50']:.0f} ms (p95 {c['p95']:.0f})" if c["p50"] is not None else "-"
    return (
        f"latency {fig['end_to_end_latency_ms'] + device_ms:.0f} ms | compute {comp} per "
        f"{fig['block_ms']:.0f} ms block | late {fig['late_blocks']} | dropped {fig['dropped_blocks']}"
        f" | xruns {xruns}   "
    )
