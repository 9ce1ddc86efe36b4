"""``VoiceConverter``: one voice model and everything it needs, loaded once, converting any number
of clips or files."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import _applio
from .errors import ConvertInputError, ModelMismatchError, OutputExistsError
from .options import ConvertOptions
from .pipeline import DEFAULT_NOISE_SCALE, MIN_SAMPLES, SR, WINDOW, run_pipeline

logger = logging.getLogger(__name__)

__all__ = ["VoiceConverter"]

Progress = Callable[[int, int], None]
DTYPES = ("float32", "float16", "bfloat16")


def _embedder_names() -> list[str]:
    from rvc_features import EMBEDDERS

    return list(EMBEDDERS)


class VoiceConverter:
    """Convert speech or singing into the voice of an RVC model, as RVC WebUI does.

    Args:
        model: an RVC ``.pth`` (or a folder from ``rvc export``), or a loaded
            ``rvc_synth.Synthesizer``.
        index: the voice's ``.index`` file (path or ``rvc_index.FeatureIndex``), or None.
        contentvec: ContentVec weights (mlx-contentvec safetensors); else
            ``$RVC_CONTENTVEC_WEIGHTS``, else the Hugging Face cache (see :mod:`rvc_convert.weights`).
        rmvpe: RMVPE weights (mlx-rmvpe safetensors); else ``$RVC_RMVPE_WEIGHTS``, else the cache.
        embedder: the content features. ``"contentvec"`` or None (default): ContentVec from
            ``contentvec``; one of ``rvc_features.EMBEDDERS`` (``"spin"``, ``"spin-v2"``,
            ``"chinese-hubert-base"``, ``"japanese-hubert-base"``, ``"korean-hubert-base"``: Applio's
            folders from the Hugging Face cache or a download); a path to a Hugging Face HuBERT folder
            (``config.json`` + ``model.safetensors``/``pytorch_model.bin``: Applio's custom embedders);
            or any callable ``(N,) float32 16 kHz -> (n, C)`` frames at 50 Hz, ``C`` = the model's
            feature width (768 v2, 256 v1). v2 models take the last layer, v1 models ``final_proj``
            of layer 9 (as the reference RVC).
        f0_weights: weights files of the f0 networks by method (``{"crepe": "full.pth"}``; keys
            ``crepe``, ``crepe-tiny``, ``fcpe``); else ``$RVC_CREPE_WEIGHTS``... (``rvc_f0.weights``).
            The default options' method is resolved first, before anything loads.
        options: default :class:`ConvertOptions`; each ``convert`` call may override fields.
        dtype: the synthesizer's precision when ``model`` is a path: ``"float32"`` (default),
            or ``"float16"``/``"bfloat16"`` (GPUs, as RVC's half precision; the NSF phase stays
            float32). On GPUs ContentVec (or the embedder) runs in it too, as the reference's
            half mode runs HuBERT (its first layer stays float32); RMVPE stays float32 (TF32 on
            NVIDIA). On NVIDIA, float32 is exact unless
            ``tf32=True`` (or ``MLX_ENABLE_TF32=1`` in the environment: see ``rvc_synth.backends``).
        backend: the synthesizer's backend when ``model`` is a path (``rvc_synth.load``):
            ``"auto"`` (default), ``"mlx"``, ``"numpy"``, ``"onednn"``.
        tf32: NVIDIA only: float32 matmuls in TF32 (True), exact (False), or as the environment
            says (None).

    Where each stage runs is decided here, once (:attr:`backends`: the synthesizer's backend
    and device, the oneDNN convolution lent to RMVPE on the CPU).

    Everything the default options need is loaded here (the RMVPE network only if the model
    uses pitch and ``f0_method`` is ``rmvpe``); a method chosen later is loaded on first use
    and kept. Raises the loading errors (missing weights, bad model/index, index width not the
    model's) right away.
    """

    def __init__(
        self,
        model: Any,
        *,
        index: Any = None,
        contentvec: str | os.PathLike[str] | None = None,
        rmvpe: str | os.PathLike[str] | None = None,
        embedder: Callable[[np.ndarray], Any] | str | os.PathLike[str] | None = None,
        f0_weights: Mapping[str, str | os.PathLike[str]] | None = None,
        options: ConvertOptions = ConvertOptions(),
        dtype: str = "float32",
        backend: str = "auto",
        tf32: bool | None = None,
    ) -> None:
        import rvc_runtime

        rvc_runtime.configure_cpu()  # OpenBLAS for MLX's CPU matmuls, oneDNN: before MLX first loads
        rvc_runtime.configure_gpu()  # MLX CUDA: plan cache, kernels on disk, graphs off, memory limit
        import rvc_synth

        if not isinstance(options, ConvertOptions):
            raise ConvertInputError(f"options must be a ConvertOptions, got {type(options).__name__}")
        if dtype not in DTYPES:
            raise ConvertInputError(f"dtype={dtype!r}; expected one of {', '.join(DTYPES)}")
        # the f0 networks' weights first: a missing CREPE/FCPE file fails before any model loads
        self._f0_weights_arg = dict(f0_weights or {})
        self._f0_paths: dict[str, Path] = {}
        if options.f0_curve is None:
            for method in self._f0_networks(options.f0_method):
                self._f0_weights(method)
        self.options = options
        self.synth = (
            model
            if isinstance(model, rvc_synth.Synthesizer)
            else rvc_synth.load(model, dtype=dtype, backend=backend, tf32=tf32)
        )
        from ._backends import content_dtype, plan

        self.backends = plan(self.synth)
        if dtype != "float32" and self.backends.device == "cpu":
            logger.warning(
                "%s on the CPU: MLX has no fast half-precision convolutions there (the "
                "synthesizer runs ~50x slower than in float32); half precision is for GPUs",
                dtype,
            )
        info = self.synth.info
        self.index = self._load_index(index, info)
        self._contentvec_arg, self._rmvpe_arg = contentvec, rmvpe
        self._rmvpe_path: Path | None = None
        self._lock = threading.Lock()
        if embedder is not None and not isinstance(embedder, (str, os.PathLike)) and not callable(embedder):
            raise ConvertInputError(
                f"embedder must be a name ({', '.join(_embedder_names())}), a Hugging Face HuBERT folder, or a "
                f"callable (audio_16k -> (frames, {info.feature_dim})); got {embedder!r}"
            )
        # GPUs: a half ContentVec with a half synthesizer (asked only then: embedders need not know dtype)
        content = content_dtype(self.backends)
        half = {"dtype": content} if content != "float32" else {}
        if callable(embedder):
            self.embedder = embedder
        elif embedder is not None and str(embedder) != "contentvec":
            from rvc_features import load_embedder

            cv = self.contentvec = load_embedder(embedder)
            self.embedder = cv.embedder(info.version, **half)
            width = cv.dim if info.version == "v2" else cv.final_proj[0].shape[0]
            if width != info.feature_dim:
                raise ModelMismatchError(
                    f"embedder {embedder} gives {width}-d features for {info.version} models, but this model takes "
                    f"{info.feature_dim}-d ones: use the embedder the model was trained with"
                )
        else:
            from rvc_features import load_contentvec

            from .weights import resolve_weights

            self.contentvec = load_contentvec(resolve_weights("contentvec", contentvec))
            self.embedder = self.contentvec.embedder(info.version, **half)
            cv = self.contentvec
            width = cv.dim if info.version == "v2" else cv.final_proj[0].shape[0]
            if width != info.feature_dim:
                raise ModelMismatchError(
                    f"ContentVec {cv.path} gives {width}-d features for {info.version} models, but this model takes "
                    f"{info.feature_dim}-d ones: use the real ContentVec base weights"
                )
        if info.has_f0 and options.f0_curve is None and options.f0_method == "rmvpe":
            self._ensure_rmvpe()

    # --- loading ------------------------------------------------------------------------

    @staticmethod
    def _load_index(index: Any, info: Any) -> Any:
        if index is None:
            return None
        from rvc_index import FeatureIndex

        idx = index if isinstance(index, FeatureIndex) else FeatureIndex.load(index)
        if idx.dim != info.feature_dim:
            name = getattr(idx, "path", None) or "the index"
            kind = {256: "v1", 768: "v2"}.get(idx.dim, "?")
            raise ModelMismatchError(
                f"index {name} holds {idx.dim}-d features ({kind}), but the model is {info.version} with "
                f"{info.feature_dim}-d features: use the index trained with this model"
            )
        return idx

    @staticmethod
    def _f0_networks(method: str) -> list[str]:
        """The methods among ``method`` (single or hybrid) whose networks need a weights file here
        (rmvpe has its own path: ``rmvpe=``)."""
        from rvc_f0 import METHODS
        from rvc_f0.applio import parse_hybrid
        from rvc_f0.weights import WEIGHTS

        return [m for m in (parse_hybrid(method, METHODS) or (method,)) if m in WEIGHTS]

    def _f0_weights(self, method: str) -> Path:
        """The weights file of the f0 network ``method`` (resolved once; rvc_f0.weights)."""
        if method not in self._f0_paths:
            from rvc_f0.weights import resolve_weights as resolve_f0

            self._f0_paths[method] = resolve_f0(method, self._f0_weights_arg.get(method))
        return self._f0_paths[method]

    def _ensure_rmvpe(self) -> Path:
        if self._rmvpe_path is None:
            from rvc_f0 import load_rmvpe

            from ._backends import lend_cpu_kernels
            from .weights import resolve_weights

            path = resolve_weights("rmvpe", self._rmvpe_arg)
            lend_cpu_kernels(
                load_rmvpe(path), self.backends.conv2d
            )  # load now (cached by rvc_f0 per file), so errors surface here
            self._rmvpe_path = path
        return self._rmvpe_path

    @property
    def info(self) -> Any:
        """The model's ``rvc_synth.SynthInfo`` (version, has_f0, sample_rate, hop, n_speakers, ...)."""
        return self.synth.info

    # --- conversion ---------------------------------------------------------------------

    def _f0_fn(self, opts: ConvertOptions, start: int = 0) -> Callable[[np.ndarray, int], np.ndarray]:
        """``start``: the input sample the audio starts at (split audio), for F0 curve times."""
        from rvc_f0 import METHODS, extract_f0
        from rvc_f0.applio import parse_hybrid

        from .options import PRESETS

        if opts.f0_curve is not None:
            offset = PRESETS[opts.preset].x_pad * SR // WINDOW  # the reference writes the curve after t_pad
            curve = Path(opts.f0_curve)

            skip = start // WINDOW

            def from_curve(audio_pad: np.ndarray, p_len: int) -> np.ndarray:
                if skip:  # a segment of split audio: the curve's frames from the segment's start
                    n = skip + p_len - offset
                    f0 = extract_f0(np.zeros(n * WINDOW, np.float32), method=curve, p_len=n)[skip:]
                else:
                    f0 = extract_f0(audio_pad[: (p_len - offset) * WINDOW], method=curve, p_len=p_len - offset)
                return np.concatenate([np.zeros(offset, np.float32), f0])

            return from_curve
        weights: Any = self._ensure_rmvpe() if opts.f0_method == "rmvpe" else None
        nets = {m: self._f0_weights(m) for m in self._f0_networks(opts.f0_method)}
        if opts.f0_method in nets:
            weights = nets[opts.f0_method]
        hybrid = parse_hybrid(opts.f0_method, METHODS)
        if hybrid:  # weights per method
            weights = {**nets, **({"rmvpe": self._ensure_rmvpe()} if "rmvpe" in hybrid else {})}

        if opts.f0_method == "rmvpe":  # extract_f0's values, with start(): queued on GPUs
            from rvc_f0 import load_rmvpe

            from .pipeline import RMVPEF0

            return RMVPEF0(load_rmvpe(weights))

        def estimate(audio_pad: np.ndarray, p_len: int) -> np.ndarray:
            return extract_f0(
                audio_pad, method=opts.f0_method, p_len=p_len, filter_radius=opts.filter_radius, weights=weights
            )

        return estimate

    def convert(
        self,
        audio: np.ndarray,
        *,
        sample_rate: int,
        progress: Progress | None = None,
        **overrides: Any,
    ) -> tuple[np.ndarray, int]:
        """Convert one clip.

        Args:
            audio: (N,) float32 mono samples in [-1, 1] at ``sample_rate`` (resampled to 16 kHz
                with soxr when it is another rate).
            sample_rate: Hz.
            progress: ``progress(done_chunks, total_chunks)``; long inputs are cut into chunks of
                about ``x_center`` seconds (38 s with the cpu preset).
            **overrides: any :class:`ConvertOptions` field for this call.

        Returns:
            ``(int16 (M,), rate)``: the model's rate, or ``resample_sr``; about ``N / sample_rate``
            seconds (the reference's frame bookkeeping drops up to ~20 ms at the end).
        """
        from rvc_audio import normalize_peak, resample

        opts = self.options.replace(**overrides)
        x = np.asarray(audio)
        if x.ndim != 1 or x.dtype.kind != "f":
            raise ConvertInputError(
                f"audio has shape {x.shape} and dtype {x.dtype}; expected (samples,) float mono "
                "(mix channels down and divide int16 PCM by 32768)"
            )
        if not np.isfinite(x).all():
            raise ConvertInputError("audio contains NaN or infinite samples; expected finite samples in [-1, 1]")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise ConvertInputError(f"sample_rate={sample_rate!r}; expected a positive integer in Hz")
        if sample_rate != SR:
            x = resample(x.astype(np.float32), int(sample_rate), SR)
        x = _applio.pre_process(x, opts)  # Applio's formant shifting (off: x unchanged)
        x = normalize_peak(x.astype(np.float32, copy=False))  # vc_single: peak above 0.95 scaled down
        info = self.info
        with self._lock:
            if _applio.needs_float(opts):  # Applio's split / clean / effects (off: the reference's path below)

                def run(seg: np.ndarray, prog: Progress | None, start: int = 0) -> tuple[np.ndarray, int]:
                    return run_pipeline(
                        seg,
                        synth=self.synth,
                        embedder=self.embedder,
                        f0_fn=self._f0_fn(opts, start) if info.has_f0 else None,
                        index=self.index,
                        options=opts,
                        noise_scale=DEFAULT_NOISE_SCALE,
                        progress=prog,
                        float_output=True,
                    )

                return _applio.convert_post(run, x, opts, progress, MIN_SAMPLES)
            return run_pipeline(
                x,
                synth=self.synth,
                embedder=self.embedder,
                f0_fn=self._f0_fn(opts) if info.has_f0 else None,
                index=self.index,
                options=opts,
                noise_scale=DEFAULT_NOISE_SCALE,
                progress=progress,
                backends=self.backends,
            )

    def convert_file(
        self,
        src: str | os.PathLike[str],
        dst: str | os.PathLike[str],
        *,
        format: str | None = None,
        overwrite: bool = False,
        progress: Progress | None = None,
        **overrides: Any,
    ) -> Path:
        """Convert an audio file (anything FFmpeg reads) and write the result atomically.

        The input is decoded to 16 kHz mono (``rvc_audio.load_audio``, as the reference's
        ``load_audio(path, 16000)``); the output format comes from ``format`` or ``dst``'s suffix
        (wav, flac, mp3, ogg, opus, m4a). An existing ``dst`` is only replaced with
        ``overwrite=True`` (checked before converting); a failure leaves no partial file.
        Returns the path written.
        """
        from rvc_audio import load_audio, save_audio

        dst = Path(dst).expanduser()
        if dst.exists() and not overwrite:
            raise OutputExistsError(f"{dst} exists; pass overwrite=True (--force) to replace it")
        self.options.replace(**overrides)  # option errors before the (slow) decoding
        audio = load_audio(src, sample_rate=SR)
        out, sr = self.convert(audio, sample_rate=SR, progress=progress, **overrides)
        return save_audio(dst, out, sr, format=format, overwrite=overwrite)

    def stream(
        self,
        *,
        sample_rate: int = 48000,
        block: float = 0.25,
        crossfade: float = 0.05,
        extra: float = 2.5,
        threshold_db: float = -60.0,
        f0_method: str = "rmvpe",
        pitch: float = 0.0,
        formant: float = 0.0,
        index_rate: float = 0.0,
        rms_mix_rate: float = 0.0,
        **kwargs: Any,
    ) -> Any:
        """A live :class:`rvc_convert.stream.Stream` on this converter's models (RVC WebUI's realtime
        defaults): ``stream.process(block) -> block``. See :mod:`rvc_convert.stream` for the
        settings and ``kwargs`` (``speaker``, ``noise_scale``, ``seed``, ``f0_fn``)."""
        from .stream import Stream

        return Stream(
            self,
            sample_rate=sample_rate,
            block=block,
            crossfade=crossfade,
            extra=extra,
            threshold_db=threshold_db,
            f0_method=f0_method,
            pitch=pitch,
            formant=formant,
            index_rate=index_rate,
            rms_mix_rate=rms_mix_rate,
            **kwargs,
        )
