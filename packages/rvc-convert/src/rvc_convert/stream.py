"""``Stream``: live conversion one audio block at a time, as RVC WebUI's realtime mode.

>>> vc = VoiceConverter("voice.pth")
>>> stream = vc.stream(sample_rate=48000, block=0.25)
>>> out = stream.process(block_of_48k_samples)        # exactly one block out per block in

Everything runs at the device rate ``sr`` with ``zc = sr // 100`` samples per 10 ms frame. A
rolling input buffer holds ``extra + crossfade + sola_search + block`` samples; each call shifts
one block in, gates 10 ms frames below the silence threshold, resamples the new part (plus
20 ms of overlap) to 16 kHz, computes content features over the whole buffer, pitch on the
newest ``block + 50 ms`` only (into a rolling pitch cache), and asks the synthesizer for the new
frames alone (``skip_head = extra``, ``return_length = block + sola_buffer + sola_search``).
The result is mixed to the input's loudness envelope (``rms_mix_rate``), then joined to the
previous block by SOLA: the offset in ``[0, sola_search]`` with the highest normalised
cross-correlation, a sin² crossfade over ``sola_buffer = min(crossfade, 40 ms)`` samples.

On GPUs, where every block has the same shapes, the content features are compiled for the
block's length and queued on an MLX stream of their own while the pitch is estimated, and the
synthesizer's whole call is compiled for the block's shapes (``static_shape``); RMVPE picks its
direct-convolution U-Net for such short inputs on NVIDIA (rvc-f0's backend). :meth:`Stream.warmup`
builds all of it before the first real block.

Differences from the reference, on purpose: the pitch cache holds raw F0 and transposition is
applied to the whole cache every block (a pitch change takes effect on the next block in full,
where the reference transposes each frame once, when it is estimated); no noise reduction.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .errors import ConvertInputError

STAGES = ("features", "index", "f0", "synth")  # Stream.stage_seconds: seconds summed over the blocks

__all__ = ["Stream", "StreamSettings"]

SR16 = 16000
HOP16 = 160  # 16 kHz samples per 10 ms frame
F0Fn = Callable[[np.ndarray, int], np.ndarray]  # (16 kHz audio, n_frames) -> (n_frames,) Hz, frame t at 160 t


@dataclass(frozen=True)
class StreamSettings:
    """What may change between blocks (:meth:`Stream.update`).

    Attributes:
        pitch: transposition in semitones.
        formant: formant shift in semitones (the reference's: the decoder stretches its frames
            by ``2 ** (formant / 12)``, the output is resampled back).
        index_rate: 0..1 retrieval blend on the frames after the extra context (needs an index).
        rms_mix_rate: 0..1; 1 keeps the converted loudness, 0 imposes the input's envelope.
        threshold_db: 10 ms frames whose RMS (40 ms frames) is below it are zeroed; -60 or
            lower turns the gate off (as the reference's slider).
        f0_method: ``rmvpe`` (default), ``fcpe``, ``pm``, ... (``rvc_f0.METHODS``).
        speaker: speaker id of multi-speaker models.
        noise_scale: the synthesizer's prior noise (0.66666; 0 = deterministic).
    """

    pitch: float = 0.0
    formant: float = 0.0
    index_rate: float = 0.0
    rms_mix_rate: float = 0.0
    threshold_db: float = -60.0
    f0_method: str = "rmvpe"
    speaker: int = 0
    noise_scale: float = 0.66666

    def __post_init__(self) -> None:
        from rvc_f0 import METHODS

        for name in ("pitch", "formant", "threshold_db", "noise_scale"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not math.isfinite(v):
                raise ConvertInputError(f"{name}={v!r}; expected a finite number")
        for name in ("index_rate", "rms_mix_rate"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not 0 <= v <= 1:
                raise ConvertInputError(f"{name}={v!r}; expected a value between 0 and 1")
        if not -24 <= self.formant <= 24:
            raise ConvertInputError(f"formant={self.formant!r}; expected semitones between -24 and 24")
        if self.f0_method not in METHODS:
            raise ConvertInputError(f"f0_method={self.f0_method!r}; expected one of {', '.join(METHODS)}")
        if isinstance(self.speaker, bool) or not isinstance(self.speaker, (int, np.integer)) or self.speaker < 0:
            raise ConvertInputError(f"speaker={self.speaker!r}; expected an integer >= 0")


def _frames(seconds: float, zc: int, name: str, lo: float, hi: float) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not lo <= seconds <= hi:
        raise ConvertInputError(f"{name}={seconds!r}; expected seconds between {lo:g} and {hi:g}")
    return max(1, round(seconds * 100)) * zc  # whole 10 ms frames


class Stream:
    """Live conversion of one voice, block by block (create it with :meth:`VoiceConverter.stream`).

    Args:
        converter: a loaded :class:`rvc_convert.VoiceConverter` (its synthesizer, content-feature
            extractor, index and pitch weights are used, not copied).
        sample_rate: the device rate in Hz (input and output).
        block: seconds per block (0.02-1.5), crossfade (0.01-0.15) and extra context (0.05-5),
            each rounded to whole 10 ms frames.
        seed: seeds the synthesizer's noise (block ``k`` uses ``seed + k``); None = random.
        f0_fn: replaces the pitch estimator: ``(16 kHz audio, n) -> (n,)`` Hz, frame ``t``
            centred on sample ``160 t`` (tests, custom estimators).
        **settings: :class:`StreamSettings` fields.

    ``process`` is not thread-safe against itself; ``update`` may be called from any thread
    (the new settings are picked up by the next block).
    """

    def __init__(
        self,
        converter: Any,
        *,
        sample_rate: int = 48000,
        block: float = 0.25,
        crossfade: float = 0.05,
        extra: float = 2.5,
        seed: int | None = None,
        f0_fn: F0Fn | None = None,
        **settings: Any,
    ) -> None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate < 16000:
            raise ConvertInputError(f"sample_rate={sample_rate!r}; expected an integer rate >= 16000 Hz")
        if sample_rate % 100:
            raise ConvertInputError(f"sample_rate={sample_rate}; expected a multiple of 100 Hz (10 ms frames)")
        self.vc = converter
        self.settings = self._settings(StreamSettings(), settings)
        info = converter.info
        self.sample_rate = sr = int(sample_rate)
        self.zc = zc = sr // 100
        self.block_frame = _frames(block, zc, "block", 0.02, 1.5)
        self.crossfade_frame = _frames(crossfade, zc, "crossfade", 0.01, 0.15)
        self.extra_frame = _frames(extra, zc, "extra", 0.05, 5.0)
        self.sola_buffer_frame = min(self.crossfade_frame, 4 * zc)
        self.sola_search_frame = zc
        n = self.extra_frame + self.crossfade_frame + self.sola_search_frame + self.block_frame
        self.frames = n // zc  # 10 ms frames in the buffer = the synthesizer's p_len
        self.skip_head = self.extra_frame // zc
        self.return_length = (self.block_frame + self.sola_buffer_frame + self.sola_search_frame) // zc
        self.block16 = HOP16 * self.block_frame // zc
        self.seed, self.f0_fn = seed, f0_fn
        self.tgt_sr, self.hop = info.sample_rate, info.hop
        # preallocated state
        self.input_wav = np.zeros(n, np.float32)
        self.input_wav_res = np.zeros(HOP16 * self.frames, np.float32)
        self.rms_buffer = np.zeros(4 * zc, np.float32)
        self.f0_cache = np.zeros(self.frames, np.float32)  # raw Hz, frame i centred on 16 kHz sample 160 i
        self.sola_buffer = np.zeros(self.sola_buffer_frame, np.float32)
        self.out = np.zeros(self.block_frame, np.float32)
        t = np.linspace(0.0, 1.0, self.sola_buffer_frame)
        self.fade_in = (np.sin(0.5 * np.pi * t) ** 2).astype(np.float32)
        self.fade_out = (1 - self.fade_in).astype(np.float32)
        self._gate = np.zeros(self.block_frame + 4 * zc, np.float32)
        self.raw: np.ndarray | None = None  # the last block's synthesizer output (model rate, before SOLA)
        self.sola_offset = 0
        self.blocks = 0
        self.stage_seconds = dict.fromkeys(STAGES, 0.0)  # wall seconds per stage, summed over the blocks
        self._lock = threading.Lock()
        # GPUs: the content features are queued (compiled for the block's one length) on a stream
        # of their own and run while the pitch is estimated; the synthesizer's whole call is
        # compiled for the block's shapes too (static_shape)
        self._gpu = converter.backends.device == "gpu"
        self._lazy: Callable[..., Any] | None = getattr(converter.embedder, "lazy", None) if self._gpu else None
        self._cv_stream: Any = None
        if self._lazy is not None:
            import mlx.core as mx

            self._cv_stream = mx.new_stream(mx.default_device())

    # --- settings -----------------------------------------------------------------------

    @staticmethod
    def _settings(base: StreamSettings, changes: dict[str, Any]) -> StreamSettings:
        known = set(StreamSettings.__dataclass_fields__)
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConvertInputError(
                f"unknown setting(s) {', '.join(unknown)}; expected any of {', '.join(sorted(known))}"
            )
        return replace(base, **changes) if changes else base

    def update(self, **changes: Any) -> StreamSettings:
        """Change settings (``pitch=``, ``formant=``, ``index_rate=``, ...); the next block uses them."""
        with self._lock:
            self.settings = self._settings(self.settings, changes)
            return self.settings

    @property
    def latency(self) -> float:
        """Algorithmic latency in seconds: ``block + crossfade + sola_search`` (an input sample
        waits for its block, then sits ``crossfade + sola_search - offset`` into the output), as
        the reference's display without the device's own buffers."""
        return (self.block_frame + self.crossfade_frame + self.sola_search_frame) / self.sample_rate

    @property
    def block_size(self) -> int:
        """Samples per block at ``sample_rate``."""
        return self.block_frame

    def reset(self) -> None:
        """Forget all audio (buffers, pitch cache, SOLA tail); settings stay."""
        for a in (
            self.input_wav,
            self.input_wav_res,
            self.rms_buffer,
            self.f0_cache,
            self.sola_buffer,
            self.out,
        ):
            a[:] = 0
        self.raw, self.sola_offset, self.blocks = None, 0, 0
        self.stage_seconds = dict.fromkeys(STAGES, 0.0)

    def warmup(self, blocks: int = 2) -> None:
        """Convert ``blocks`` blocks of quiet noise, then :meth:`reset` (settings stay): the first
        real block then finds its kernels built, its graphs compiled and its plans cached (on a
        GPU the first block of a process takes seconds and would play late)."""
        rng = np.random.default_rng(0)
        for _ in range(max(1, int(blocks))):
            self.process((0.01 * rng.standard_normal(self.block_frame)).astype(np.float32))
        self.reset()

    # --- one block ------------------------------------------------------------------------

    def process(self, block: np.ndarray) -> np.ndarray:
        """Convert one block: ``(block_size,)`` float samples in [-1, 1] at ``sample_rate`` ->
        ``(block_size,)`` float32 (a buffer reused by the next call: copy it to keep it)."""
        x = np.asarray(block)
        if x.shape != (self.block_frame,):
            raise ConvertInputError(
                f"block has shape {x.shape}; expected ({self.block_frame},) samples at {self.sample_rate} Hz"
            )
        s = self.settings  # one consistent set for this block
        bf = self.block_frame
        new = self._gated(x, s.threshold_db)
        self.input_wav[:-bf] = self.input_wav[bf:]
        self.input_wav[-len(new) :] = new
        self._resample_in(len(new))
        with self.vc._lock:
            infer = self._infer(s)
        if s.rms_mix_rate < 1:
            infer = self._mix_rms(infer, s.rms_mix_rate)
        self._sola(infer)
        self.blocks += 1
        return self.out

    def _gated(self, x: np.ndarray, threshold_db: float) -> np.ndarray:
        """The reference's silence gate: ``block`` samples (gate off) or ``block + 2 zc`` (the
        last 20 ms of the previous block re-gated with their right context)."""
        if threshold_db <= -60:
            return x
        zc, g = self.zc, self._gate
        g[: 4 * zc] = self.rms_buffer
        g[4 * zc :] = x
        self.rms_buffer[:] = g[-4 * zc :]
        n_frames = len(g) // zc + 1  # librosa.feature.rms(frame 4 zc, hop zc, centred, zero padded)
        pad = np.pad(g.astype(np.float64), (2 * zc, 2 * zc))
        frames = np.lib.stride_tricks.sliding_window_view(pad, 4 * zc)[::zc][:n_frames]
        rms = np.sqrt(np.mean(frames * frames, axis=1))[2:]
        db = 20 * np.log10(np.maximum(rms, 1e-10))  # librosa.amplitude_to_db(ref=1, amin=1e-5, top_db=80)
        db = np.maximum(db, max(-100.0, db.max() - 80.0))
        out = g[2 * zc - zc // 2 :].copy()
        for i in np.flatnonzero(db < threshold_db):
            out[i * zc : (i + 1) * zc] = 0
        return out[zc // 2 :]

    def _resample_in(self, n_new: int) -> None:
        """Shift the 16 kHz buffer one block and write the new part (+10 ms re-done with context)."""
        b16, zc = self.block16, self.zc
        self.input_wav_res[:-b16] = self.input_wav_res[b16:]
        k = n_new // zc + 1
        src = self.input_wav[-n_new - 2 * zc :]
        if self.sample_rate == SR16:
            res = src
        else:
            from rvc_audio import resample

            res = _fit(resample(src, self.sample_rate, SR16), HOP16 * (k + 1))
        self.input_wav_res[-HOP16 * k :] = res[HOP16:]

    def _pitch(self, s: StreamSettings, factor: float) -> tuple[np.ndarray, np.ndarray]:
        """Estimate F0 on the newest ``block + 50 ms`` into the cache; the cache transposed."""
        from rvc_f0 import postprocess_f0

        fe = self.block16 + 800
        if s.f0_method == "rmvpe":
            fe = 5120 * ((fe - 1) // 5120 + 1) - 160
        fe = min(fe, len(self.input_wav_res))
        audio = self.input_wav_res[-fe:]
        n = fe // HOP16 + 1
        f0 = np.asarray(
            self.f0_fn(audio, n) if self.f0_fn is not None else self._estimate(audio, n, s),
            np.float32,
        )
        shift = self.block16 // HOP16
        self.f0_cache[:-shift] = self.f0_cache[shift:]
        self.f0_cache[4 - n :] = f0[3:-1]  # each estimate's first 3 and last frame are edge frames
        pitchf, pitch = postprocess_f0(self.f0_cache, semitones=s.pitch - s.formant, unvoiced="keep")
        if factor != 1:
            pitchf = pitchf * np.float32(factor)
        return pitch, pitchf

    def _estimate(self, audio: np.ndarray, n: int, s: StreamSettings) -> np.ndarray:
        from rvc_f0 import extract_f0

        weights = self.vc._ensure_rmvpe() if s.f0_method == "rmvpe" else None
        return extract_f0(audio, method=s.f0_method, p_len=n, weights=weights)

    def _infer(self, s: StreamSettings) -> np.ndarray:
        """The synthesizer's output for the new frames, resampled to ``sample_rate``:
        ``(return_length * zc,)`` float32."""
        t0 = time.perf_counter()
        early = None
        blend = bool(s.index_rate) and self.vc.index is not None
        raw: Any
        if self._cv_stream is not None and self._lazy is not None:  # queued now, collected after the pitch
            import mlx.core as mx

            with mx.stream(self._cv_stream):
                pending = self._lazy(self.input_wav_res, static_shape=True)
                mx.async_eval(pending)
            t_queued = time.perf_counter()
            early = self._f0(s, t_queued)
            t0 += time.perf_counter() - t_queued  # features: queueing (+ waiting), not the pitch
            # without blending the features stay on the device: the synthesizer's graph is queued behind them
            raw = np.array(pending, np.float32) if blend else pending
        else:
            raw = np.asarray(self.vc.embedder(self.input_wav_res), np.float32)
        dim = self.vc.info.feature_dim
        if raw.ndim != 2 or raw.shape[1] != dim or raw.shape[0] == 0:
            raise ConvertInputError(f"the content-feature extractor gave shape {raw.shape}; expected (frames, {dim})")
        t1 = time.perf_counter()
        self.stage_seconds["features"] += t1 - t0
        feats = self._frames100(raw, s) if isinstance(raw, np.ndarray) else self._frames100_mx(raw)
        t2 = time.perf_counter()
        self.stage_seconds["index"] += t2 - t1
        pitch, pitchf = early if early is not None else self._f0(s, t2)
        t3 = time.perf_counter()
        length2 = self._length2(s)
        out = self.vc.synth(
            feats[None],
            None if pitch is None else pitch[None],
            None if pitchf is None else pitchf[None],
            speaker=s.speaker,
            noise_scale=s.noise_scale,
            seed=None if self.seed is None else self.seed + self.blocks,
            skip_head=self.skip_head,
            return_length=self.return_length,
            decode_frames=length2 if length2 != self.return_length else None,
            **({"static_shape": True} if self._gpu else {}),
        )
        y = np.array(out.squeeze(0), dtype=np.float32)  # (an integer index would be a gather on the device)
        self.stage_seconds["synth"] += time.perf_counter() - t3
        hop = self.hop
        upp_res = math.floor(2 ** (s.formant / 12) * self.tgt_sr // 100)
        if upp_res != hop:  # formant: back to return_length frames
            from rvc_audio import resample

            y = _fit(
                resample(y[: self.return_length * upp_res], upp_res, hop),
                self.return_length * hop,
            )
        self.raw = y
        if self.tgt_sr != self.sample_rate:
            from rvc_audio import resample

            y = resample(y, self.tgt_sr, self.sample_rate)
        return _fit(y, self.return_length * self.zc)

    def _frames100(self, feats: np.ndarray, s: StreamSettings) -> np.ndarray:
        """50 Hz features -> the synthesizer's ``(frames, dim)`` at 100 Hz: the last frame once
        more (as the reference), index blending after the extra context, each frame twice."""
        p_len = self.frames
        feats = np.concatenate([feats, feats[-1:]])
        if s.index_rate and self.vc.index is not None:
            h = self.skip_head // 2
            feats[h:] = self.vc.index.blend(feats[h:], rate=s.index_rate)
        feats = np.repeat(feats, 2, axis=0)[:p_len]
        if len(feats) < p_len:
            feats = np.pad(feats, ((0, p_len - len(feats)), (0, 0)), mode="edge")
        return feats

    def _frames100_mx(self, feats: Any) -> Any:
        """:meth:`_frames100` without blending, on the device (MLX, not evaluated)."""
        import mlx.core as mx

        p_len = self.frames
        n = feats.shape[0] + 1
        last = feats[-1:]
        parts = [feats, last] + [last] * max(0, -(-p_len // 2) - n)  # edge frames up to p_len
        out = mx.repeat(mx.concatenate(parts), 2, axis=0)
        return out[:p_len]

    def _length2(self, s: StreamSettings) -> int:
        """Frames the decoder makes: ``return_length`` stretched by the formant shift."""
        return math.ceil(self.return_length * 2 ** (s.formant / 12))

    def _f0(self, s: StreamSettings, t0: float) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The pitch for this block (None, None for models without), timed as stage ``f0``."""
        out: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
        if self.vc.info.has_f0:
            out = self._pitch(s, self._length2(s) / self.return_length)
        self.stage_seconds["f0"] += time.perf_counter() - t0
        return out

    def _mix_rms(self, infer: np.ndarray, rate: float) -> np.ndarray:
        """The reference's realtime RMS mix: 40 ms frames, 10 ms hop, linear (align_corners)."""
        zc = self.zc
        src = self.input_wav[self.extra_frame :][: len(infer)]
        rms1 = _interp_corners(_frame_rms(src, zc), len(infer))
        rms2 = np.maximum(_interp_corners(_frame_rms(infer, zc), len(infer)), 1e-3)
        gain = rms1 / rms2 if rate == 0 else np.power(rms1 / rms2, 1 - rate)  # (x ** 1 is x)
        return (infer * gain).astype(np.float32)

    def _sola(self, infer: np.ndarray) -> None:
        """Align ``infer`` on the kept tail, crossfade, write one block to ``self.out``."""
        sb, ss, bf = self.sola_buffer_frame, self.sola_search_frame, self.block_frame
        head = infer[: sb + ss].astype(np.float64)
        nom = np.correlate(head, self.sola_buffer.astype(np.float64), "valid")  # (ss + 1,)
        energy = np.concatenate(([0.0], np.cumsum(head * head)))  # each window's energy, O(n)
        den = np.sqrt(energy[sb:] - energy[:-sb] + 1e-8)
        k = int(np.argmax(nom / den))
        self.sola_offset = k
        y = infer[k:]  # infer is this block's own array: modified in place, as the reference
        y[:sb] = y[:sb] * self.fade_in + self.sola_buffer * self.fade_out
        self.sola_buffer[:] = y[bf : bf + sb]
        self.out[:] = y[:bf]


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    """``y`` cut or zero-padded to ``n`` samples, as a new float32 array."""
    out = np.zeros(n, np.float32)
    m = min(n, len(y))
    out[:m] = y[:m]
    return out


def _frame_rms(y: np.ndarray, zc: int) -> np.ndarray:
    """``librosa.feature.rms(y, frame_length=4 zc, hop_length=zc)`` (centred, zero padded)."""
    n_frames = len(y) // zc + 1
    pad = np.pad(np.asarray(y, np.float64), (2 * zc, 2 * zc))
    frames = np.lib.stride_tricks.sliding_window_view(pad, 4 * zc)[::zc][:n_frames]
    return np.sqrt(np.mean(frames * frames, axis=1))


def _interp_corners(v: np.ndarray, n: int) -> np.ndarray:
    """``F.interpolate(v, size=n + 1, mode="linear", align_corners=True)[:-1]``."""
    pos = np.arange(n, dtype=np.float64) * ((len(v) - 1) / n)
    return np.interp(pos, np.arange(len(v)), v)
