"""Applio's audio options, each a thin wrapper over the library Applio uses for it.

* :func:`shift_formants` - formant shifting of the 16 kHz input (``stftpitchshift``), with
  :data:`FORMANT_PRESETS`.
* :func:`reduce_noise` - "clean audio" of the output (``noisereduce``'s non-stationary gate).
* :func:`split_on_silence` / :func:`join_segments` - "split audio": convert the non-silent
  segments one by one and put them back on the input's timeline.
* :func:`apply_effects` - the post-processing chain (``pedalboard``) of the effect classes below,
  always in :data:`EFFECTS` order: Reverb, PitchShift, Limiter, Gain, Distortion, Chorus,
  Bitcrush, Clipping, Compressor, Delay.

Spec: ``shared/specs/applio-options.md`` sections 4-7. The libraries are imported on first use.
Every argument error is an :class:`~rvc_audio.errors.AudioValueError` with a one-line message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .errors import AudioValueError

__all__ = [
    "EFFECTS",
    "FORMANT_PRESETS",
    "Bitcrush",
    "Chorus",
    "Clipping",
    "Compressor",
    "Delay",
    "Distortion",
    "Effect",
    "Gain",
    "Limiter",
    "PitchShift",
    "Reverb",
    "apply_effects",
    "chain",
    "effect",
    "join_segments",
    "reduce_noise",
    "shift_formants",
    "split_on_silence",
]

# (quefrency ms, timbre): Applio's assets/formant_shift/*.json
FORMANT_PRESETS: dict[str, tuple[float, float]] = {"m2f": (1.0, 1.2), "f2m": (1.0, 0.8), "random": (32.0, 9.8)}
FORMANT_FRAME, FORMANT_HOP = 1024, 32  # Applio's StftPitchShift(1024, 32, 16000)


def _mono(audio: Any, what: str = "audio") -> np.ndarray:
    x = np.asarray(audio)
    if x.ndim != 1 or x.dtype.kind != "f":
        raise AudioValueError(f"{what} has shape {x.shape} and dtype {x.dtype}; expected (samples,) float mono")
    return x


def _in_range(value: Any, name: str, lo: float, hi: float, *, open_lo: bool = False) -> float:
    ok = not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating))
    if not ok or not np.isfinite(value) or value > hi or (value <= lo if open_lo else value < lo):
        raise AudioValueError(f"{name}={value!r}; expected a number in {'(' if open_lo else '['}{lo:g}, {hi:g}]")
    return float(value)


# --- formant shifting -------------------------------------------------------------------------


def shift_formants(audio: Any, *, quefrency: float = 1.0, timbre: float = 1.0, sample_rate: int = 16000) -> np.ndarray:
    """Move the spectral envelope (formants) by ``timbre`` and keep the pitch: Applio's formant shifting.

    ``StftPitchShift(1024, 32, sample_rate).shiftpitch(audio, 1, quefrency / 1000, timbre)``:
    timbre > 1 moves formants up (male to female: preset ``m2f`` = 1.2), < 1 down (``f2m`` = 0.8;
    content above ``timbre * sample_rate / 2`` is removed). The first and last ~32 ms are
    attenuated (incomplete window coverage) and the last <32 samples are zeros, as in Applio.

    Args:
        audio: (N,) float mono, N >= 1024 (64 ms at 16 kHz).
        quefrency: cepstral lifter in milliseconds, 0..32 (how detailed the envelope is; < 0.0625
            ms at 16 kHz turns the envelope off, and timbre with it).
        timbre: envelope scale factor, > 0 and <= 16.
        sample_rate: Hz (Applio: 16000, the pipeline's analysis rate).

    Returns:
        (N,) float32.
    """
    x = _mono(audio)
    q = _in_range(quefrency, "formant quefrency", 0, 32)
    t = _in_range(timbre, "formant timbre", 0, 16, open_lo=True)
    if len(x) < FORMANT_FRAME:
        raise AudioValueError(
            f"audio is {len(x)} samples; formant shifting needs at least {FORMANT_FRAME} "
            f"({FORMANT_FRAME / sample_rate * 1000:.0f} ms): turn it off for so short a clip"
        )
    from stftpitchshift import StftPitchShift

    shifter = StftPitchShift(FORMANT_FRAME, FORMANT_HOP, int(sample_rate))
    with np.errstate(divide="ignore", invalid="ignore"):  # silent frames: log10(0), zeroed by the library
        return np.asarray(shifter.shiftpitch(x, 1, q * 1e-3, t, False), dtype=np.float32)


# --- clean audio ------------------------------------------------------------------------------


def reduce_noise(audio: Any, sample_rate: int, *, strength: float = 0.5) -> np.ndarray:
    """Applio's "clean audio": ``noisereduce.reduce_noise(y=audio, sr=sample_rate, prop_decrease=strength)``.

    The non-stationary spectral gate with noisereduce's defaults (n_fft 1024, hop 256, noise
    floor smoothed over 2 s, mask smoothed over 500 Hz x 50 ms); ``strength`` is how much of the
    gated part is removed (0 = nothing, 1 = all).

    Args:
        audio: (N,) float mono.
        sample_rate: Hz.
        strength: 0..1.

    Returns:
        (N,) float32.
    """
    x = _mono(audio)
    p = _in_range(strength, "clean strength", 0, 1)
    import noisereduce

    return np.asarray(noisereduce.reduce_noise(y=x, sr=int(sample_rate), prop_decrease=p), dtype=np.float32)


# --- split audio ------------------------------------------------------------------------------


def split_on_silence(
    audio: Any, *, top_db: float = 60.0, frame_length: int = 4000, hop_length: int = 2000
) -> list[tuple[int, int]]:
    """Non-silent ``[start, end)`` sample spans: Applio's split audio (``librosa.effects.split``).

    A frame (``frame_length`` samples, centred, every ``hop_length``) is silent when its RMS is
    more than ``top_db`` below the loudest frame's; spans start and end at multiples of
    ``hop_length`` (clipped to the input). Defaults: Applio's, at 16 kHz (250 ms frames, 125 ms
    hop, -60 dB). An input of uniform level, or all zeros, is one span.
    """
    x = _mono(audio)
    if len(x) == 0:
        raise AudioValueError("audio is empty; expected at least one sample to split")
    # librosa 0.11's effects.split (rms(center=True, pad_mode="constant") -> power_to_db(ref=max)),
    # written out: librosa's first call JIT-compiles for ~15 s
    pad = frame_length // 2
    xp = np.pad(x, (pad, pad))
    n_frames = 1 + (len(xp) - frame_length) // hop_length
    frames = np.lib.stride_tricks.sliding_window_view(xp, frame_length)[::hop_length][:n_frames]
    mse = np.mean(np.abs(frames) ** 2, axis=-1)
    db = 10 * np.log10(np.maximum(1e-10, mse)) - 10 * np.log10(np.maximum(1e-10, mse.max()))
    loud = (db > -top_db).astype(int)
    edges: list[int] = (np.flatnonzero(np.diff(loud)) + 1).tolist()
    if loud[0]:
        edges.insert(0, 0)
    if loud[-1]:
        edges.append(len(loud))
    b = np.minimum(np.asarray(edges, dtype=np.int64) * hop_length, len(x)).reshape(-1, 2)
    return [(int(s), int(e)) for s, e in b] or [(0, len(x))]


def join_segments(
    pieces: Sequence[Any],
    spans: Sequence[tuple[int, int]],
    *,
    n_samples: int,
    sample_rate_in: int,
    sample_rate_out: int,
) -> np.ndarray:
    """Put converted segments back on the input's timeline (Applio's ``merge_audio``), zeros between.

    With ``ratio = sample_rate_out / sample_rate_in``: ``int(start * ratio)`` zeros before the
    first segment; after each segment, ``int(|d| * sample_rate_out)`` zeros where ``d`` is its
    duration lost in conversion (before it if it grew); then the gap ``int(next_start * ratio) -
    int(end * ratio)``. Unlike Applio, the trailing silence is restored too: the result is
    exactly ``round(n_samples * ratio)`` samples long (cut there if longer).

    Args:
        pieces: the converted segments, float at ``sample_rate_out``.
        spans: their ``[start, end)`` in input samples, ascending (:func:`split_on_silence`).
        n_samples: the input's length, in input samples.
        sample_rate_in, sample_rate_out: Hz.

    Returns:
        (round(n_samples * ratio),) float32.
    """
    if len(pieces) != len(spans) or not spans:
        raise AudioValueError(f"{len(pieces)} pieces for {len(spans)} spans; expected one converted piece per span")
    ratio = sample_rate_out / sample_rate_in
    out: list[np.ndarray] = []
    if spans[0][0] > 0:
        out.append(np.zeros(int(spans[0][0] * ratio), np.float32))
    for i, (piece, (start, end)) in enumerate(zip(pieces, spans)):
        y = np.asarray(piece, dtype=np.float32)
        d = len(y) / sample_rate_out - (end - start) / sample_rate_in
        fill = np.zeros(int(abs(d) * sample_rate_out), np.float32)
        out += [fill, y] if d > 0 else [y, fill]
        if i + 1 < len(spans):
            out.append(np.zeros(max(int(spans[i + 1][0] * ratio) - int(end * ratio), 0), np.float32))
    y = np.concatenate(out)
    total = round(n_samples * ratio)
    return np.pad(y, (0, total - len(y))) if len(y) < total else y[:total]


# --- post-processing effects ------------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    """Base class of the effects; fields are the ``pedalboard`` class's arguments, ``RANGES`` their limits."""

    NAME: ClassVar[str] = ""
    RANGES: ClassVar[dict[str, tuple[float, float]]] = {}

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            lo, hi = self.RANGES[f.name]
            object.__setattr__(self, f.name, _in_range(getattr(self, f.name), f"{self.NAME} {f.name}", lo, hi))

    def plugin(self) -> Any:
        """The configured ``pedalboard`` plugin."""
        import pedalboard

        return getattr(pedalboard, type(self).__name__)(**dataclasses.asdict(self))


@dataclass(frozen=True)
class Reverb(Effect):
    """JUCE FreeVerb. Defaults: Applio's UI (its CLI's are a frozen reverb: freeze_mode 0.5)."""

    NAME = "reverb"
    RANGES: ClassVar[dict[str, tuple[float, float]]] = {
        k: (0.0, 1.0) for k in ("room_size", "damping", "wet_level", "dry_level", "width", "freeze_mode")
    }
    room_size: float = 0.5
    damping: float = 0.5
    wet_level: float = 0.33
    dry_level: float = 0.4
    width: float = 1.0
    freeze_mode: float = 0.0


@dataclass(frozen=True)
class PitchShift(Effect):
    """Rubber Band pitch shift of the output (formants move with it), same length."""

    NAME = "pitch_shift"
    RANGES: ClassVar[dict[str, tuple[float, float]]] = {"semitones": (-12.0, 12.0)}
    semitones: float = 0.0


@dataclass(frozen=True)
class Limiter(Effect):
    """JUCE limiter; ``release_ms`` in milliseconds (Applio's default 0.05 ms is near-instantaneous)."""

    NAME = "limiter"
    RANGES: ClassVar[dict[str, tuple[float, float]]] = {"threshold_db": (-60.0, 0.0), "release_ms": (0.01, 1000.0)}
    threshold_db: float = -6.0
    release_ms: float = 0.05


@dataclass(frozen=True)
class Gain(Effect):
    """``y = x * 10^(gain_db / 20)``."""

    NAME = "gain"
    RANGES: ClassVar[dict[str, tuple[float, float]]] = {"gain_db": (-60.0, 60.0)}
    gain_db: float = 0.0


@dataclass(frozen=True)
class Distortion(Effect):
    """``y = tanh(x * 10^(drive_db / 20))``."""

    NAME = "distortion"
    RANGES: ClassVar[dict[str, tuple[float, float]]] = {"drive_db": (-60.0, 60.0)}
    drive_db: float = 25.0


@dataclass(frozen=True)
class Chorus(Effect):
    """JUCE chorus: an LFO-modulated delay mixed with the dry signal."""

    NAME = "chorus"
    RANGES: ClassVar[dict[str, tuple[float, float]]] = {
        "rate_hz": (0.0, 100.0),
        "depth": (0.0, 1.0),
        "centre_delay_ms": (1.0, 100.0),
        "feedback": (0.0, 1.0),
        "mix": (0.0, 1.0),
    }
    rate_hz: float = 1.0
    depth: float = 0.25
    centre_delay_ms: float = 7.0
    feedback: float = 0.0
    mix: float = 0.5


@dataclass(frozen=True)
class Bitcrush(Effect):
    """``y = round(x * 2^bit_depth) / 2^bit_depth``."""

    NAME = "bitcrush"
    RANGES: ClassVar[dict[str, tuple[float, float]]] = {"bit_depth": (1.0, 32.0)}
    bit_depth: float = 8.0


@dataclass(frozen=True)
class Clipping(Effect):
    """Hard clip at ``10^(threshold_db / 20)``."""

    NAME = "clipping"
    RANGES: ClassVar[dict[str, tuple[float, float]]] = {"threshold_db": (-60.0, 0.0)}
    threshold_db: float = -6.0


@dataclass(frozen=True)
class Compressor(Effect):
    """JUCE compressor (the defaults, Applio's, leave the signal unchanged: 0 dB, ratio 1)."""

    NAME = "compressor"
    RANGES: ClassVar[dict[str, tuple[float, float]]] = {
        "threshold_db": (-60.0, 0.0),
        "ratio": (1.0, 20.0),
        "attack_ms": (0.0, 100.0),
        "release_ms": (0.01, 100.0),
    }
    threshold_db: float = 0.0
    ratio: float = 1.0
    attack_ms: float = 1.0
    release_ms: float = 100.0


@dataclass(frozen=True)
class Delay(Effect):
    """Echo: ``floor(delay_seconds * sr)`` samples, ``feedback`` into the line, ``mix`` wet."""

    NAME = "delay"
    RANGES: ClassVar[dict[str, tuple[float, float]]] = {
        "delay_seconds": (0.0, 5.0),
        "feedback": (0.0, 1.0),
        "mix": (0.0, 1.0),
    }
    delay_seconds: float = 0.5
    feedback: float = 0.0
    mix: float = 0.5


EFFECTS: tuple[type[Effect], ...] = (
    Reverb,
    PitchShift,
    Limiter,
    Gain,
    Distortion,
    Chorus,
    Bitcrush,
    Clipping,
    Compressor,
    Delay,
)  # the chain's fixed order (Applio's post_process_audio)
_BY_NAME = {cls.NAME: cls for cls in EFFECTS}


def effect(name: str, **params: float) -> Effect:
    """The effect called ``name`` (``reverb``, ``pitch_shift``, ... see :data:`EFFECTS`) with ``params``."""
    cls = _BY_NAME.get(name)
    if cls is None:
        raise AudioValueError(f"unknown effect {name!r}; expected one of {', '.join(_BY_NAME)}")
    unknown = sorted(set(params) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        allowed = ", ".join(f.name for f in dataclasses.fields(cls))
        raise AudioValueError(f"{name} has no parameter {unknown[0]!r}; expected any of {allowed}")
    return cls(**params)


def chain(effects: Iterable[Effect]) -> tuple[Effect, ...]:
    """``effects`` in :data:`EFFECTS` order; each effect at most once."""
    items = tuple(effects)
    for e in items:
        if not isinstance(e, Effect) or type(e) not in EFFECTS:
            raise AudioValueError(
                f"{e!r} is not an effect; expected instances of {', '.join(c.__name__ for c in EFFECTS)}"
            )
    names = [e.NAME for e in items]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise AudioValueError(f"effect {twice[0]!r} given twice; each effect runs at most once in the chain")
    return tuple(sorted(items, key=lambda e: EFFECTS.index(type(e))))


def apply_effects(audio: Any, sample_rate: int, effects: Iterable[Effect]) -> np.ndarray:
    """Run ``effects`` as one ``pedalboard.Pedalboard``, in :data:`EFFECTS` order whatever order they come in.

    Same length out (pedalboard compensates PitchShift's latency; reverb and delay tails are cut).

    Args:
        audio: (N,) float mono.
        sample_rate: Hz.
        effects: :class:`Effect` instances, each type at most once.

    Returns:
        (N,) float32.
    """
    x = _mono(audio)
    board = chain(effects)
    if not board:
        return x.astype(np.float32)
    import pedalboard

    out = pedalboard.Pedalboard([e.plugin() for e in board])(x.astype(np.float32), float(sample_rate))
    return np.asarray(out, dtype=np.float32).reshape(-1)
