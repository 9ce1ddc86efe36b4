"""``ConvertOptions`` (the RVC WebUI single-conversion settings) and the chunking presets."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from rvc_f0 import METHODS as F0_METHODS  # rvc_f0 imports no mlx

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

    def __post_init__(self) -> None:
        p = _number(self.pitch, "pitch", f"semitones between -{PITCH_RANGE:g} and {PITCH_RANGE:g}, e.g. 12 = one octave up")
        if abs(p) > PITCH_RANGE:
            raise ConvertInputError(
                f"pitch={p!r} semitones; expected -{PITCH_RANGE:g}..{PITCH_RANGE:g} (four octaves; 12 = one octave up)"
            )
        if self.f0_method not in F0_METHODS:
            raise ConvertInputError(
                f"f0_method={self.f0_method!r}; expected one of {', '.join(F0_METHODS)} "
                "(or give an F0 curve CSV with f0_curve=)"
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
