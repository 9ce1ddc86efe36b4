"""``ConvertOptions`` (the RVC WebUI single-conversion settings) and the chunking presets."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from rvc_audio import effects as _fx
from rvc_audio.errors import AudioValueError
from rvc_f0 import METHODS as F0_METHODS  # rvc_f0 imports no mlx
from rvc_f0.applio import parse_hybrid
from rvc_f0.errors import UnknownMethodError

from .errors import ConvertInputError

__all__ = ["ConvertOptions", "PITCH_RANGE", "PRESETS", "Preset"]

PITCH_RANGE = 48.0
"""Largest transposition either way, in semitones (four octaves: F0 x16 or /16)."""


class Preset(NamedTuple):
    """The reference's chunking config, in seconds: reflect padding added around every chunk
    (``x_pad``), half-width of the window searched for the quietest cut (``x_query``), distance
    between cuts (``x_center``) and the length above which the input is cut at all (``x_max``)."""

    x_pad: int
    x_query: int
    x_center: int
    x_max: int


PRESETS: dict[str, Preset] = {
    "cpu": Preset(1, 6, 38, 41),  # the reference's CPU / fp32 GPU config (default)
    "lowmem": Preset(1, 5, 30, 32),  # its config for GPUs with <= 4 GB
    "fp16": Preset(3, 10, 60, 65),  # its config for half-precision GPUs
}


@dataclass(frozen=True)
class ConvertOptions:
    """Conversion settings; the defaults are RVC WebUI's single conversion.

    Attributes:
        pitch: transposition in semitones (12 = one octave up), finite, within +-48.
        f0_method: pitch estimator, one of ``rvc_f0.METHODS`` (``rmvpe``, ``pm``, ``harvest``, ``dio``...).
        f0_curve: path of a ``time_seconds,hz`` CSV curve that replaces the estimate (overrides
            ``f0_method``); times count from the start of the input.
        index_rate: 0..1, how much of the retrieved (index) features replace the input's.
        filter_radius: harvest's median filter switch (> 2 on), as classic RVC.
        rms_mix_rate: 0..1, 1 keeps the converted loudness, 0 imposes the input's envelope.
        protect: 0..0.5, how much voiceless frames keep the input's features (>= 0.5 off).
        resample_sr: output rate in Hz (>= 16000), 0 = the model's rate.
        speaker: speaker id of multi-speaker models.
        seed: seeds the synthesizer's noise: the same seed gives the same output.
        preset: chunking preset, ``cpu`` (default), ``lowmem`` or ``fp16`` (see ``PRESETS``).

    Applio's options (all off by default: the output is then the reference's, bit for bit; see
    the README's "Applio options" for where each acts and how it differs from Applio):

    Attributes:
        f0_autotune: snap voiced f0 toward the nearest semitone note, after the transposition.
        f0_autotune_strength: 0..1, 1 = hard snap.
        proposed_pitch: add the whole-semitone shift (-12..12) that brings the median f0 of the
            input to ``proposed_pitch_threshold`` Hz, on top of ``pitch``.
        proposed_pitch_threshold: 50..1200 Hz, the target median (155 male models, 255 female).
        formant_shifting: shift the input's formants (``stftpitchshift``) before analysis.
        formant_quefrency: 0..32 ms, the envelope's detail (presets m2f/f2m: 1.0).
        formant_timbre: (0, 16], the envelope scale: > 1 up (m2f 1.2), < 1 down (f2m 0.8).
        split_audio: convert each non-silent segment (-60 dB, 250 ms frames) on its own; silences
            become digital zeros.
        clean_audio: noisereduce's spectral gate on the output.
        clean_strength: 0..1, how much of the noise is removed.
        effects: the post-processing chain, ``rvc_audio.effects`` instances (``Reverb()``,
            ``Gain(gain_db=3)``...) or a mapping ``{"reverb": {"room_size": 0.8}, "gain": {}}``;
            stored as a tuple in the chain's fixed order (reverb, pitch_shift, limiter, gain,
            distortion, chorus, bitcrush, clipping, compressor, delay).
    """

    pitch: float = 0.0
    f0_method: str = "rmvpe"
    f0_curve: str | None = None
    index_rate: float = 0.75
    filter_radius: int = 3
    rms_mix_rate: float = 0.25
    protect: float = 0.33
    resample_sr: int = 0
    speaker: int = 0
    seed: int | None = None
    preset: str = "cpu"
    # --- Applio's options (validated in _check_applio) ---
    f0_autotune: bool = False
    f0_autotune_strength: float = 1.0
    proposed_pitch: bool = False
    proposed_pitch_threshold: float = 155.0
    formant_shifting: bool = False
    formant_quefrency: float = 1.0
    formant_timbre: float = 1.0
    split_audio: bool = False
    clean_audio: bool = False
    clean_strength: float = 0.5
    effects: Any = ()

    def __post_init__(self) -> None:
        p = _number(
            self.pitch, "pitch", f"semitones between -{PITCH_RANGE:g} and {PITCH_RANGE:g}, e.g. 12 = one octave up"
        )
        if abs(p) > PITCH_RANGE:
            raise ConvertInputError(
                f"pitch={p!r} semitones; expected -{PITCH_RANGE:g}..{PITCH_RANGE:g} (four octaves; 12 = one octave up)"
            )
        if self.f0_method not in F0_METHODS:
            try:
                hybrid = parse_hybrid(self.f0_method, F0_METHODS)
            except UnknownMethodError as exc:
                raise ConvertInputError(f"f0_method: {exc}") from None
            if hybrid is None:
                raise ConvertInputError(
                    f"f0_method={self.f0_method!r}; expected one of {', '.join(F0_METHODS)}, or hybrid[a+b] "
                    "(e.g. hybrid[rmvpe+fcpe]), or give an F0 curve CSV with f0_curve="
                )
        if self.f0_curve is not None and not isinstance(self.f0_curve, str):
            object.__setattr__(self, "f0_curve", str(self.f0_curve))
        for name in ("index_rate", "rms_mix_rate"):
            v = _number(getattr(self, name), name, "a value between 0 and 1")
            if not 0 <= v <= 1:
                raise ConvertInputError(f"{name}={v!r}; expected a value between 0 and 1")
        v = _number(self.protect, "protect", "a value between 0 and 0.5")
        if not 0 <= v <= 1:
            raise ConvertInputError(f"protect={v!r}; expected a value between 0 and 0.5 (0.5 or more turns it off)")
        _integer(self.filter_radius, "filter_radius", 0)
        rs = _integer(self.resample_sr, "resample_sr", 0)
        if 0 < rs < 16000:
            raise ConvertInputError(f"resample_sr={rs}; expected 0 (keep the model's rate) or a rate >= 16000 Hz")
        _integer(self.speaker, "speaker", 0)
        if self.seed is not None:
            _integer(self.seed, "seed", 0)
        if self.preset not in PRESETS:
            raise ConvertInputError(f"preset={self.preset!r}; expected one of {', '.join(PRESETS)}")
        self._check_applio()

    def _check_applio(self) -> None:
        for name in ("f0_autotune", "proposed_pitch", "formant_shifting", "split_audio", "clean_audio"):
            if not isinstance(getattr(self, name), bool):
                raise ConvertInputError(f"{name}={getattr(self, name)!r}; expected True or False")
        for name, lo, hi in (
            ("f0_autotune_strength", 0, 1),
            ("proposed_pitch_threshold", 50, 1200),
            ("formant_quefrency", 0, 32),
            ("formant_timbre", 0, 16),
            ("clean_strength", 0, 1),
        ):
            v = _number(getattr(self, name), name, f"a number in [{lo}, {hi}]")
            if not lo <= v <= hi or (name == "formant_timbre" and v == 0):
                raise ConvertInputError(
                    f"{name}={v!r}; expected a number in {'(' if name == 'formant_timbre' else '['}{lo}, {hi}]"
                )
        effects = self.effects
        try:
            if isinstance(effects, dict):
                effects = [  # {name: params | True (defaults) | False/None (off) | an Effect}
                    e if isinstance(e, _fx.Effect) else _fx.effect(k, **({} if e is True else dict(e)))
                    for k, e in effects.items()
                    if e is not False and e is not None
                ]
            elif isinstance(effects, _fx.Effect) or not isinstance(effects, (tuple, list)):
                raise ConvertInputError(
                    f"effects={effects!r}; expected a tuple of rvc_audio.effects instances or a mapping "
                    "{name: {parameter: value}}"
                )
            object.__setattr__(self, "effects", _fx.chain(effects))
        except (AudioValueError, TypeError) as exc:
            raise ConvertInputError(f"effects: {exc}") from None

    @property
    def applio(self) -> bool:
        """True when any of Applio's options is on (the reference pipeline is then not run as is)."""
        return bool(
            self.f0_autotune
            or self.proposed_pitch
            or self.formant_shifting
            or self.split_audio
            or self.clean_audio
            or self.effects
        )

    def replace(self, **overrides: Any) -> ConvertOptions:
        """A copy with some fields changed; unknown names raise :class:`ConvertInputError`."""
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ConvertInputError(
                f"unknown option(s) {', '.join(unknown)}; expected any of {', '.join(sorted(fields))}"
            )
        return dataclasses.replace(self, **overrides) if overrides else self


def _number(value: Any, name: str, expected: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        # numpy scalars are int/float subclasses only for float64; accept them through float()
        try:
            import numpy as np

            if isinstance(value, np.generic) and not isinstance(value, np.bool_) and math.isfinite(float(value)):
                return float(value)
        except ImportError:  # pragma: no cover
            pass
        raise ConvertInputError(f"{name}={value!r}; expected {expected}")
    return float(value)


def _integer(value: Any, name: str, minimum: int) -> int:
    import numpy as np

    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConvertInputError(f"{name}={value!r}; expected an integer >= {minimum}")
    return int(value)
