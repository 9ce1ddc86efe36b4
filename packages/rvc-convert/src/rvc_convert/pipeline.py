"""The reference pipeline (``infer/vc/pipeline.py`` ``Pipeline.pipeline`` and ``Pipeline.vc``),
stage by stage, with every stage passed in: the synthesizer, the content-feature extractor, the
f0 estimator and the index.

All audio here is 16 kHz mono until the synthesizer, which produces its own rate. Frames: content
features come at 50 Hz (320 samples), f0 and the synthesizer at 100 Hz (160 samples).

Peak pre-normalisation (``vc_single``) is the caller's job (:class:`VoiceConverter` does it);
:func:`run_pipeline` starts at the high-pass, exactly where ``Pipeline.pipeline`` starts.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from rvc_audio import highpass, mix_rms, resample

from ._applio import adjust_f0
from .errors import ConvertInputError, ModelMismatchError
from .options import PRESETS, ConvertOptions, Preset

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_NOISE_SCALE",
    "Chunk",
    "RMVPEF0",
    "chunk_plan",
    "prepare_features",
    "run_pipeline",
    "split_points",
    "to_int16",
]

SR = 16000  # analysis rate
WINDOW = 160  # samples per 10 ms frame at 16 kHz
DEFAULT_NOISE_SCALE = 0.66666  # the reference's prior noise scale (0 = its zero-noise goldens)
_SUM_BLOCK = 32768  # split_points' running sums per block: 256 KiB of float64 (2-core AMD, 60 s: 5.8 -> 4.1 ms)
MIN_SAMPLES = 800  # 0.05 s at 16 kHz: shorter inputs give no output after the t_pad trimming
# GPUs: padded inputs up to this many samples (17 min, 64 MB of float32) go to the device once,
# for every stage; longer ones are copied per stage, so that an hour's copy (230 MB) is not held
# beside the synthesizer's working memory (peak < 4 GB)
SHARED_UPLOAD = 1 << 24
# GPUs: ContentVec and the synthesizer ``mx.compile``d per chunk length (their ``static_shape``)
# once a length repeats: fewer kernels (fused element-wise work) and no graph building in Python
# (H200, in-process A/B, float16: 10 s 47.5 -> 38.8 ms, 60 s 187.6 -> 167.3), while a length met
# once (a folder of files of distinct lengths) pays no tracing
COMPILE_CHUNKS = True
_SEEN: collections.OrderedDict[int, None] = collections.OrderedDict()  # chunk lengths met, the last 64

Embedder = Callable[[np.ndarray], Any]  # (N,) float32 16 kHz -> (n, C) frames at 50 Hz
F0Fn = Callable[[np.ndarray, int], np.ndarray]  # (padded 16 kHz audio, p_len) -> (p_len,) raw Hz


class Chunk(NamedTuple):
    """One chunk of the ``t_pad``-padded input: samples ``[start, end)`` and f0 frames
    ``[f0_start, f0_end)`` (the reference's slices)."""

    start: int
    end: int
    f0_start: int
    f0_end: int


def split_points(audio: np.ndarray, preset: Preset) -> list[int]:
    """Where the reference cuts a long input (``opt_ts``), in samples of the unpadded input.

    For ``t = x_center, 2 x_center, ... < len(audio)`` (seconds at 16 kHz) the cut is the start of
    the quietest 160-sample window (sum of ``|x|`` over the input reflect-padded by 80) within
    ``x_query`` seconds of ``t``, first minimum on ties. Nothing is cut when the padded input is
    not longer than ``x_max`` seconds. Computed window by window (no whole-file ``audio_sum``),
    with the reference's float64 summation order, so the result is identical.
    """
    n = len(audio)
    t_query, t_center, t_max = SR * preset.x_query, SR * preset.x_center, SR * preset.x_max
    if n + WINDOW <= t_max:
        return []
    half = WINDOW // 2
    out = []
    for t in range(t_center, n, t_center):
        lo, hi = t - t_query, min(t + t_query, n)
        idx = np.arange(lo - half, hi + half - 1)  # audio_pad[lo : hi + 159] in input coordinates
        idx = np.abs(idx)  # reflect at the start (numpy "reflect": no edge repeat)
        idx = np.where(idx >= n, 2 * (n - 1) - idx, idx)
        seg = np.abs(audio[idx])
        acc = np.zeros(hi - lo, dtype=np.float64)
        for b0 in range(0, hi - lo, _SUM_BLOCK):  # cache-sized blocks; each element's sum in its order
            b1 = min(b0 + _SUM_BLOCK, hi - lo)
            blk = acc[b0:b1]
            for i in range(WINDOW):  # audio_sum += np.abs(audio_pad[i : i - window]), in this order
                blk += seg[b0 + i : b1 + i]
        out.append(lo + int(np.argmin(acc)))
    return out


def chunk_plan(n_samples: int, opt_ts: list[int], preset: Preset) -> list[Chunk]:
    """The reference's chunks of the ``t_pad``-padded input (length ``n_samples + 2 t_pad``)."""
    t_pad = SR * preset.x_pad
    total = n_samples + 2 * t_pad
    chunks, s, t = [], 0, 0
    for t in opt_ts:
        t = t // WINDOW * WINDOW
        chunks.append(Chunk(s, t + 2 * t_pad + WINDOW, s // WINDOW, (t + 2 * t_pad) // WINDOW))
        s = t
    chunks.append(Chunk(t, total, t // WINDOW, total // WINDOW))
    return chunks


def prepare_features(
    feats: np.ndarray,
    *,
    index: Any = None,
    index_rate: float = 0.0,
    pitchf: np.ndarray | None = None,
    protect: float = 0.5,
    p_len: int,
) -> tuple[np.ndarray, int]:
    """What ``Pipeline.vc`` does to the content features before the synthesizer.

    Args:
        feats: (n, C) float32 features at 50 Hz; an ``mlx.core.array`` stays on its device (GPU
            pipelines: no host round trip between the stages) and an MLX array is returned.
        index: an ``rvc_index.FeatureIndex`` (or anything with ``blend(feats, rate=)``) or None.
        index_rate: retrieval blend rate; 0 skips the search (as the reference).
        pitchf: (p,) f0 in Hz for pitch models (None for models without pitch).
        protect: < 0.5 mixes the pre-retrieval features back where ``pitchf < 1`` (weight
            ``1 - protect``); ignored without ``pitchf``.
        p_len: the chunk's frame count ``len(chunk) // 160``.

    Returns:
        ``(feats100 (p_len', C) float32, p_len')`` with ``p_len' = min(p_len, 2n)``.
    """
    if type(feats).__module__.startswith("mlx"):
        return _prepare_features_mx(
            feats, index=index, index_rate=index_rate, pitchf=pitchf, protect=protect, p_len=p_len
        )
    feats = np.asarray(feats, dtype=np.float32)
    use_protect = protect < 0.5 and pitchf is not None
    feats0 = feats
    if index is not None and index_rate != 0:
        feats = index.blend(feats, rate=index_rate)
    feats = np.repeat(feats, 2, axis=0)  # F.interpolate(scale_factor=2), nearest: 50 -> 100 Hz
    p_len = min(p_len, feats.shape[0])
    feats = feats[:p_len]  # (the real extractor never gives more than p_len frames)
    if use_protect:
        f0 = np.asarray(pitchf)[:p_len]
        mask = np.where(f0 > 0, np.float32(1), f0.astype(np.float32))
        mask = np.where(f0 < 1, np.float32(protect), mask)[:, None]
        feats0 = np.repeat(feats0, 2, axis=0)[:p_len]
        feats = (feats * mask + feats0 * (1 - mask)).astype(np.float32)
    return feats, p_len


def _prepare_features_mx(
    feats: Any, *, index: Any, index_rate: float, pitchf: Any, protect: float, p_len: int
) -> tuple[Any, int]:
    """:func:`prepare_features` on MLX arrays, the same float32 arithmetic on the device."""
    import mlx.core as mx

    feats = feats.astype(mx.float32)
    use_protect = protect < 0.5 and pitchf is not None
    feats0 = feats
    if index is not None and index_rate != 0:
        feats = index.blend(feats, rate=index_rate)  # FeatureIndex: MLX in, MLX out
    feats = mx.repeat(feats, 2, axis=0)
    p_len = min(p_len, feats.shape[0])
    feats = feats[:p_len]
    if use_protect:
        f0 = mx.array(pitchf, dtype=mx.float32)[:p_len]  # (the pipeline's is on the device already)
        mask = mx.where(f0 > 0, 1.0, f0)
        mask = mx.where(f0 < 1, protect, mask)[:, None]
        feats0 = mx.repeat(feats0, 2, axis=0)[:p_len]
        feats = feats * mask + feats0 * (1 - mask)
    return feats, p_len


def to_int16(audio: np.ndarray) -> np.ndarray:
    """The reference's 16-bit output: scale so the peak is at most 0.99 of full scale, then
    truncate toward zero (``astype(int16)``, not rounding), in the reference's dtypes."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.size == 0:
        return np.zeros(0, np.int16)
    return (audio * _int16_scale(np.abs(audio).max())).astype(np.int16)


def _int16_scale(peak: Any) -> Any:
    """:func:`to_int16`'s factor for a float32 ``peak`` (max ``|audio|``): 32768, divided by
    ``peak / 0.99`` when that exceeds 1, in NumPy's float32 arithmetic as the reference."""
    audio_max = np.float32(peak) / 0.99
    return 32768 / audio_max if audio_max > 1 else 32768


class RMVPEF0:
    """An ``f0_fn`` over a loaded ``rvc_f0`` RMVPE model: ``f0_fn(audio, p_len)`` -> ``(p_len,)``
    Hz, the model's estimate cut or zero-padded to ``p_len`` (``extract_f0``'s values), and
    ``start(audio, p_len, on_device=)`` -> a function returning the same values later
    (``RMVPEModel.start``; ``on_device``: the same samples already on the device, or None:
    on GPUs the network's work is queued, not waited for)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __call__(self, audio: np.ndarray, p_len: int) -> np.ndarray:
        return _fit(self.model(np.asarray(audio, np.float32)), p_len)

    def start(self, audio: np.ndarray, p_len: int, *, on_device: Any = None) -> Callable[[], np.ndarray]:
        finish = self.model.start(np.asarray(audio, np.float32), on_device=on_device)
        return lambda: _fit(finish(), p_len)


def _fit(f0: np.ndarray, n: int) -> np.ndarray:
    return np.pad(f0, (0, max(0, n - len(f0))))[:n]


def _compiled(chunk: Chunk) -> dict[str, bool]:
    """GPU plans: ``{"static_shape": True}`` (compile this chunk's graphs) when a chunk of this
    length was met before in this process, else ``{}``; the length is recorded."""
    n = chunk.end - chunk.start
    repeat = _SEEN.pop(n, False) is None  # re-inserted below: the most recent last
    _SEEN[n] = None
    if len(_SEEN) > 64:
        _SEEN.popitem(last=False)
    return {"static_shape": True} if repeat and COMPILE_CHUNKS else {}


def _segment(audio_pad: np.ndarray, dev: Any, c: Chunk) -> Any:
    """Chunk ``c`` of the padded input: a slice of its device copy ``dev``, or a float32 copy."""
    return audio_pad[c.start : c.end].astype(np.float32) if dev is None else dev[c.start : c.end]


def _chunk_seed(seed: int | None, k: int) -> int | None:
    if seed is None:
        return None
    return int(np.random.SeedSequence([seed, k]).generate_state(1)[0] & 0x7FFFFFFF)


class _Timer:
    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings

    def add(self, key: str, since: float) -> float:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[key] = self.timings.get(key, 0.0) + now - since
        return now


_BLAS: Any = None


def _one_blas_thread(on: bool) -> contextlib.AbstractContextManager:
    """With ``on`` the BLAS work inside runs on one thread. OpenBLAS's worker threads spin for
    ~0.1 s after each call (2^28 cycles), taking the cores from the OpenMP threads of FAISS's
    search and oneDNN's primitives that run next.

    GPUs (the plan's ``one_blas_thread``): the whole pipeline, whose own BLAS work is small
    there (mel, index blending). Measured on an H100 host (16 cores) with
    ``OPENBLAS_NUM_THREADS=1``: index stage 42 -> 18 ms per 10 s, 100 files of 3 s 16.2 ->
    11.5 s. CPUs with oneDNN (the plan's ``one_blas_stages``): the f0 estimate and the index
    blending. 2-core AMD EPYC, alternated in one process (all threads / the whole pipeline on
    one / those two stages on one): 10 s 4.48 / 4.21 / 4.25 s (RMVPE 0.444 / 0.366 / 0.375, its
    first full-resolution convolutions ran at half speed beside the mel's spinning workers),
    60 s 27.11 / 28.38 / 27.16 s (the synthesizer's MLX matmuls 20.07 / 20.82 / 19.96 s).
    Without oneDNN, MLX's CPU matmuls need those threads: nothing changes there."""
    global _BLAS
    if not on:
        return contextlib.nullcontext()
    if _BLAS is None:  # the libraries are all loaded by the first conversion
        from threadpoolctl import ThreadpoolController

        # not OpenMP builds (faiss-cpu's): their thread count is FAISS's own OpenMP pool
        c = ThreadpoolController()
        pthreads = [i["filepath"] for i in c.info() if i["user_api"] == "blas" and i.get("threading_layer") != "openmp"]
        _BLAS = c.select(filepath=pthreads)
    return _BLAS.limit(limits=1)


def _gpu_blas_policy(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        backends = kwargs.get("backends")
        if backends is None:
            from ._backends import plan

            backends = kwargs["backends"] = plan(kwargs["synth"])
        with _one_blas_thread(backends.one_blas_thread):
            return fn(*args, **kwargs)

    return wrapper


@_gpu_blas_policy
def run_pipeline(
    audio: np.ndarray,
    *,
    synth: Any,
    embedder: Embedder,
    f0_fn: F0Fn | None,
    index: Any = None,
    options: ConvertOptions = ConvertOptions(),
    noise_scale: float = DEFAULT_NOISE_SCALE,
    progress: Callable[[int, int], None] | None = None,
    timings: dict[str, float] | None = None,
    float_output: bool = False,
    backends: Any = None,
) -> tuple[np.ndarray, int]:
    """``Pipeline.pipeline``: 16 kHz audio in, int16 audio at the model's (or resampled) rate out.

    Args:
        audio: (N,) float 16 kHz mono, already peak-normalised (``vc_single`` does that first).
        synth: an ``rvc_synth.Synthesizer``.
        embedder: content features, ``(N,) float32 16 kHz -> (n, C) 50 Hz`` with C the model's
            ``feature_dim``; called once per chunk.
        f0_fn: ``(padded audio float64, p_len) -> (p_len,) raw f0 Hz (0 = unvoiced)``, called
            once on the whole ``t_pad``-padded input; ignored (may be None) for models without f0.
            On a GPU plan, one with ``start(audio, p_len, on_device=)`` (:class:`RMVPEF0`),
            returning a function that gives the same f0 later, has its network queued first.
        index: a ``FeatureIndex`` or None.
        options: pitch, index_rate, protect, rms_mix_rate, resample_sr, speaker, seed, preset
            are used here (f0_method/f0_curve/filter_radius are ``f0_fn``'s business).
        noise_scale: the synthesizer's prior noise; 0 reproduces the reference's zero-noise goldens.
        progress: ``progress(done_chunks, total_chunks)`` after each chunk, and once with 0 first,
            after the whole-input F0 pass (so a caller can show that pass until this first call).
        timings: if given, seconds are added under ``contentvec``, ``f0``, ``index``, ``synth``, ``other``.
        float_output: return the float32 output before the int16 conversion (for Applio's
            post-processing: clean audio, effects, split audio).
        backends: the device plan (``VoiceConverter.backends``); None: made from ``synth``.
            On a GPU plan, with an embedder that has ``lazy`` (ContentVec's), the features stay
            on the device from the extractor to the synthesizer (blend, x2 and protect in MLX)
            and so does the audio until its int16 copy (RMS mix and int16 in :mod:`._output`);
            the padded input goes to the device once (the f0 estimate's mel, the chunks'
            features and the RMS mix read that copy; up to ``SHARED_UPLOAD`` samples) and the
            f0 once (protect, synthesizer).

    Returns:
        ``(int16 (M,), sample_rate)`` (float32 with ``float_output``).
    """
    info = synth.info
    preset = PRESETS[options.preset]
    x = np.asarray(audio)
    if x.ndim != 1 or x.dtype.kind != "f":
        raise ConvertInputError(f"audio has shape {x.shape} and dtype {x.dtype}; expected (samples,) float mono")
    if len(x) < MIN_SAMPLES:
        raise ConvertInputError(
            f"audio is {len(x)} samples ({len(x) / SR:.3f} s) at 16 kHz; need at least {MIN_SAMPLES / SR:.2f} s"
        )
    if not 0 <= options.speaker < info.n_speakers:
        raise ModelMismatchError(
            f"speaker={options.speaker}, but this model has {info.n_speakers} speaker(s): use 0..{info.n_speakers - 1}"
        )
    clock = _Timer(timings)
    t0 = time.perf_counter()
    t_pad = SR * preset.x_pad
    t_pad_tgt = info.sample_rate * preset.x_pad
    hp = highpass(x, sample_rate=SR)  # float64, as the reference
    audio_pad = np.pad(hp, (t_pad, t_pad), mode="reflect")
    del hp
    hp = audio_pad[t_pad : len(audio_pad) - t_pad]  # a view: the high-passed input (change_rms's data1)
    p_len = len(audio_pad) // WINDOW
    lazy = getattr(embedder, "lazy", None) if backends.device == "gpu" else None
    dev: Any = None
    if lazy is not None:  # GPUs: the padded input is copied to the device once, for every stage
        import mlx.core as mx

        if len(audio_pad) <= SHARED_UPLOAD:
            dev = mx.array(audio_pad.astype(np.float32))
    t0 = clock.add("other", t0)

    # GPUs overlap the stages: the f0 network is queued (f0_fn.start) and the host cuts the input
    # and queues the first chunk's features behind it before waiting for the f0
    finish = None
    if info.has_f0:
        if f0_fn is None:
            raise ConvertInputError("this model uses pitch (f0): an f0 estimator is needed")
        start = getattr(f0_fn, "start", None) if lazy is not None else None
        if start is not None:
            finish = start(audio_pad, p_len, on_device=dev)
        else:
            finish = functools.partial(f0_fn, audio_pad, p_len)
        t0 = clock.add("f0", t0)
    chunks = chunk_plan(len(hp), split_points(hp, preset), preset)
    static = [_compiled(c) if lazy is not None else {} for c in chunks]
    t0 = clock.add("other", t0)
    first = None
    if lazy is not None and finish is not None:
        first = lazy(_segment(audio_pad, dev, chunks[0]), **static[0])
        mx.async_eval(first)
        t0 = clock.add("contentvec", t0)
    pitch = pitchf = None
    if finish is not None:
        with _one_blas_thread("f0" in backends.one_blas_stages):
            raw = np.asarray(finish())
        if raw.shape != (p_len,):
            raise ConvertInputError(f"the f0 estimator returned shape {raw.shape}; expected ({p_len},)")
        pitchf, pitch = adjust_f0(raw, options)  # = postprocess_f0(raw, semitones=pitch) unless Applio's options
        if lazy is not None:  # both to the device in one copy (the coarse pitch 1..255 is exact in float32)
            both = mx.array(np.stack([pitch.astype(np.float32), pitchf.astype(np.float32)]))
            pitch, pitchf = both[0:1].reshape(-1), both[1:2].reshape(-1)  # (an integer index would be a gather)
        t0 = clock.add("f0", t0)

    if progress is not None:
        progress(0, len(chunks))
    pieces = []
    for k, c in enumerate(chunks):
        seg = _segment(audio_pad, dev, c)
        t0 = clock.add("other", t0)
        if lazy is not None:  # GPUs: the features stay on the device until the synthesizer
            feats = first if k == 0 and first is not None else lazy(seg, **static[k])
            first = None
            mx.eval(feats)
        else:
            feats = np.asarray(embedder(seg))
        t0 = clock.add("contentvec", t0)
        if feats.ndim != 2 or feats.shape[1] != info.feature_dim:
            raise ModelMismatchError(
                f"the content-feature extractor gave shape {feats.shape}; this {info.version} model takes "
                f"(frames, {info.feature_dim}) features ({'v1: 256-d' if info.version == 'v1' else 'v2: 768-d'})"
            )
        cp = cf = None
        if pitch is not None and pitchf is not None:
            cp, cf = pitch[c.f0_start : c.f0_end], pitchf[c.f0_start : c.f0_end]
        with _one_blas_thread("index" in backends.one_blas_stages):
            feats100, n = prepare_features(
                feats,
                index=index,
                index_rate=options.index_rate,
                pitchf=cf,
                protect=options.protect,
                p_len=(c.end - c.start) // WINDOW,
            )
        if cp is not None and cf is not None:
            n = min(n, len(cp))
            cp, cf, feats100 = cp[:n], cf[:n], feats100[:n]
        if lazy is not None:
            mx.eval(feats100)  # (timed as the index stage)
        t0 = clock.add("index", t0)
        # the t_pad frames each side are context the reference synthesizes and then drops: the
        # decoder computes only the kept frames (same samples; the encoder still sees them all)
        pad = t_pad_tgt // info.hop
        keep = (pad, n - pad) if pad * info.hop == t_pad_tgt and n > 2 * pad else None
        out = synth(
            feats100[None],
            None if cp is None else cp[None],
            None if cf is None else cf[None],
            speaker=options.speaker,
            noise_scale=noise_scale,
            seed=_chunk_seed(options.seed, k),
            out_frames=keep,
            **static[k],
        )
        if lazy is not None:  # GPUs: the audio stays on the device for the last steps
            y = out.squeeze(0).astype(mx.float32)  # (an integer index would be a gather)
            mx.eval(y)
        else:
            y = np.array(out[0], dtype=np.float32)
        del out, feats100, feats, seg
        pieces.append(y if keep is not None else y[t_pad_tgt : y.shape[0] - t_pad_tgt])
        t0 = clock.add("synth", t0)
        logger.debug("chunk %d/%d: %d samples in", k + 1, len(chunks), c.end - c.start)
        if progress is not None:
            progress(k + 1, len(chunks))

    sr = info.sample_rate
    if lazy is not None:
        from . import _output

        y = mx.concatenate(pieces) if len(pieces) > 1 else pieces[0]
        del pieces
        if options.rms_mix_rate != 1:
            source = hp if dev is None else dev[t_pad : dev.shape[0] - t_pad]  # hp in float32, as a copy of hp
            y = _output.mix_rms(source, SR, y, sr, options.rms_mix_rate, take=backends.gather.take)
        if not float_output and not (options.resample_sr and options.resample_sr != sr):
            out16 = _output.to_int16(y)
            clock.add("other", t0)
            return out16, sr
        y = np.array(y, dtype=np.float32)
    else:
        y = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
        del pieces
        if options.rms_mix_rate != 1:
            y = mix_rms(hp, SR, y, sr, options.rms_mix_rate)
    del audio_pad, hp
    if options.resample_sr and options.resample_sr != sr:
        y = resample(y, sr, options.resample_sr)
        sr = options.resample_sr
    if float_output:  # Applio's post-processing (rvc_convert._applio) converts to int16 itself
        clock.add("other", t0)
        return y.astype(np.float32, copy=False), sr
    out16 = to_int16(y)
    clock.add("other", t0)
    return out16, sr
