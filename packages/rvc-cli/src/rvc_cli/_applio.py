"""``rvc convert``'s flags for Applio's options (pitch, formant, clean/split, effects), made from a table.

The defaults here are ``rvc_convert.ConvertOptions``'s and ``rvc_audio.effects``'s (hard-coded:
importing them would load SciPy for ``--help``; a test checks they agree).
"""

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from ._ui import CLIError

PITCH = "Pitch"
FORMANT = "Formant shifting"
CLEAN = "Clean and split"
EFFECTS = "Effects (after conversion, in this order)"

FormantPreset = Literal["m2f", "f2m", "random"]
FORMANT_PRESETS = {"m2f": (1.0, 1.2), "f2m": (1.0, 0.8), "random": (32.0, 9.8)}  # = rvc_audio.effects's

# effect -> (help, {parameter: (default, help)}), in the chain's order (= rvc_audio.effects.EFFECTS)
EFFECT_PARAMS: dict[str, tuple[str, dict[str, tuple[float, str]]]] = {
    "reverb": (
        "Reverb (FreeVerb).",
        {
            "room_size": (0.5, "0..1"),
            "damping": (0.5, "0..1"),
            "wet_level": (0.33, "0..1"),
            "dry_level": (0.4, "0..1"),
            "width": (1.0, "0..1"),
            "freeze_mode": (0.0, "0..1, >= 0.5 freezes"),
        },
    ),
    "pitch_shift": ("Pitch-shift the output audio (formants move too).", {"semitones": (0.0, "-12..12")}),
    "limiter": ("Limiter.", {"threshold_db": (-6.0, "-60..0 dB"), "release_ms": (0.05, "0.01..1000 ms")}),
    "gain": ("Gain.", {"gain_db": (0.0, "-60..60 dB")}),
    "distortion": ("Distortion: tanh(x * drive).", {"drive_db": (25.0, "-60..60 dB")}),
    "chorus": (
        "Chorus.",
        {
            "rate_hz": (1.0, "0..100 Hz"),
            "depth": (0.25, "0..1"),
            "centre_delay_ms": (7.0, "1..100 ms"),
            "feedback": (0.0, "0..1"),
            "mix": (0.5, "0..1"),
        },
    ),
    "bitcrush": ("Bitcrush.", {"bit_depth": (8.0, "1..32 bits")}),
    "clipping": ("Hard clipping.", {"threshold_db": (-6.0, "-60..0 dB")}),
    "compressor": (
        "Compressor.",
        {
            "threshold_db": (0.0, "-60..0 dB"),
            "ratio": (1.0, "1..20"),
            "attack_ms": (1.0, "0..100 ms"),
            "release_ms": (100.0, "0.01..100 ms"),
        },
    ),
    "delay": (
        "Delay (echo).",
        {"delay_seconds": (0.5, "0..5 s"), "feedback": (0.0, "0..1"), "mix": (0.5, "0..1 wet")},
    ),
}

EXAMPLES = (
    "Examples:\n\n"
    "  rvc convert in.wav out.wav -m voice.pth --f0-method 'hybrid\\[rmvpe+fcpe]'"
    " --autotune --autotune-strength 0.8\n\n"
    "  rvc convert in.wav out.wav -m voice.pth --proposed-pitch --proposed-pitch-threshold 255\n\n"
    "  rvc convert in.wav out.wav -m voice.pth --embedder spin-v2\n\n"
    "  rvc convert in.wav out.wav -m voice.pth --f0-method crepe --f0-weights full.pth\n\n"
    "  rvc convert in.wav out.wav -m voice.pth --formant-preset m2f --clean-audio --split-audio\n\n"
    "  rvc convert in.wav out.flac -m voice.pth --reverb --reverb-room-size 0.8 --compressor-threshold-db -18 "
    "--compressor-ratio 4"
)


def _flag(effect: str, param: str) -> str:
    name = param if param.startswith(effect) else f"{effect}_{param}"
    return "--" + name.replace("_", "-")


def _params() -> list[inspect.Parameter]:
    def p(name: str, annotation: Any, default: Any) -> inspect.Parameter:
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)

    def opt(*decls: str, help: str, panel: str, **kw: Any) -> Any:
        return typer.Option(*decls, help=help, rich_help_panel=panel, **kw)

    out = [
        p(
            "f0_autotune",
            Annotated[bool, opt("--autotune", "--f0-autotune", help="Snap the pitch to semitone notes.", panel=PITCH)],
            False,
        ),
        p(
            "f0_autotune_strength",
            Annotated[
                float,
                opt(
                    "--autotune-strength",
                    "--f0-autotune-strength",
                    help="0 = off .. 1 = hard snap.",
                    panel=PITCH,
                    min=0.0,
                    max=1.0,
                ),
            ],
            1.0,
        ),
        p(
            "proposed_pitch",
            Annotated[
                bool,
                opt(
                    "--proposed-pitch",
                    help="Shift by whole semitones (-12..12) so the median pitch reaches --proposed-pitch-threshold "
                    "(added to --pitch).",
                    panel=PITCH,
                ),
            ],
            False,
        ),
        p(
            "proposed_pitch_threshold",
            Annotated[
                float,
                opt(
                    "--proposed-pitch-threshold",
                    help="Target median pitch in Hz: ~155 male models, ~255 female ones.",
                    panel=PITCH,
                    min=50.0,
                    max=1200.0,
                ),
            ],
            155.0,
        ),
        p(
            "formant_shifting",
            Annotated[bool, opt("--formant-shifting", help="Shift the input's formants (timbre).", panel=FORMANT)],
            False,
        ),
        p(
            "formant_preset",
            Annotated[
                FormantPreset | None,
                opt(
                    "--formant-preset",
                    help="m2f (timbre 1.2), f2m (0.8) or random (32 ms, 9.8); turns formant shifting on.",
                    panel=FORMANT,
                    show_default=False,
                ),
            ],
            None,
        ),
        p(
            "formant_quefrency",
            Annotated[
                float, opt("--formant-quefrency", help="Envelope detail, 0..32 ms.", panel=FORMANT, min=0.0, max=32.0)
            ],
            1.0,
        ),
        p(
            "formant_timbre",
            Annotated[
                float,
                opt("--formant-timbre", help=">1 formants up, <1 down (0..16].", panel=FORMANT, min=0.0, max=16.0),
            ],
            1.0,
        ),
        p(
            "split_audio",
            Annotated[
                bool,
                opt("--split-audio", help="Convert each non-silent part on its own (silence -> zeros).", panel=CLEAN),
            ],
            False,
        ),
        p(
            "clean_audio",
            Annotated[bool, opt("--clean-audio", help="Denoise the output (noisereduce).", panel=CLEAN)],
            False,
        ),
        p(
            "clean_strength",
            Annotated[
                float, opt("--clean-strength", help="How much noise to remove, 0..1.", panel=CLEAN, min=0.0, max=1.0)
            ],
            0.5,
        ),
    ]
    for effect, (what, params) in EFFECT_PARAMS.items():
        out.append(
            p(f"fx_{effect}", Annotated[bool, opt("--" + effect.replace("_", "-"), help=what, panel=EFFECTS)], False)
        )
        for param, (default, rng) in params.items():
            out.append(
                p(
                    f"fx_{effect}__{param}",
                    Annotated[
                        float | None,
                        opt(
                            _flag(effect, param),
                            help=f"{rng} \\[default: {default:g}] (turns {effect.replace('_', ' ')} on).",
                            panel=EFFECTS,
                            show_default=False,
                        ),
                    ],
                    None,
                )
            )
    return out


PARAMS = _params()


def add_options(func: Callable) -> Callable:
    """Replace ``func``'s ``**applio`` with the flags above (typer reads ``__signature__``)."""
    sig = inspect.signature(func)
    kept = [q for q in sig.parameters.values() if q.kind is not inspect.Parameter.VAR_KEYWORD]
    func.__signature__ = sig.replace(parameters=kept + PARAMS)  # type: ignore[attr-defined]
    func.__annotations__ = {**func.__annotations__, **{q.name: q.annotation for q in PARAMS}}
    return func


def to_options(values: dict[str, Any]) -> dict[str, Any]:
    """The flags' values -> ``ConvertOptions`` fields (``effects`` as ``{name: {param: value}}``)."""
    opts = {k: v for k, v in values.items() if not k.startswith("fx_") and k != "formant_preset"}
    preset = values.get("formant_preset")
    if preset is not None:
        opts["formant_shifting"] = True
        opts["formant_quefrency"], opts["formant_timbre"] = FORMANT_PRESETS[preset]
    effects: dict[str, dict[str, float]] = {}
    for effect, (_, params) in EFFECT_PARAMS.items():
        given = {q: values[f"fx_{effect}__{q}"] for q in params if values.get(f"fx_{effect}__{q}") is not None}
        if values.get(f"fx_{effect}") or given:
            effects[effect] = given
    opts["effects"] = effects
    return opts


# --- the Embedder panel and --f0-weights (checked before any model loads) ---

EMBEDDER_NAMES = ("contentvec", "spin", "spin-v2", "chinese-hubert-base", "japanese-hubert-base", "korean-hubert-base")
F0_NETWORKS = ("crepe", "crepe-tiny", "fcpe")  # = rvc_f0.weights.WEIGHTS (a test checks they agree)


def embedder_arg(value: str) -> str:
    """A known name, or the path of an existing folder (checked here, before any model loads)."""
    if value in EMBEDDER_NAMES:
        return value
    path = Path(value).expanduser()
    if not path.exists():
        raise CLIError(
            f"--embedder {value}: neither an embedder name ({', '.join(EMBEDDER_NAMES)}) nor an existing folder; "
            "give a name, or the path of a Hugging Face HuBERT folder (config.json + model.safetensors or "
            "pytorch_model.bin)"
        )
    return str(path)


def f0_weights_arg(method: str, path: Path | None) -> dict[str, str]:
    """``--f0-weights`` -> ``VoiceConverter(f0_weights=)``: the file of the one network the method uses."""
    if path is None:
        return {}
    nets = [m.strip() for m in (method[7:-1].split("+") if method.startswith("hybrid[") else [method])]
    nets = [m for m in nets if m in F0_NETWORKS]
    if len(nets) != 1:
        found = f"--f0-method {method} " + (f"uses {' and '.join(nets)}" if nets else "takes no such file")
        raise CLIError(
            f"--f0-weights is for the one crepe, crepe-tiny or fcpe network of --f0-method, but {found}; "
            "set RVC_CREPE_WEIGHTS / RVC_CREPE_TINY_WEIGHTS / RVC_FCPE_WEIGHTS instead (rmvpe: --rmvpe)"
        )
    return {nets[0]: str(path)}
