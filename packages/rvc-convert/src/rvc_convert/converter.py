"""``VoiceConverter``: one voice model and everything it needs, loaded once, converting any number
of clips or files."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConvertInputError, ModelMismatchError, OutputExistsError
from .options import ConvertOptions
from .pipeline import DEFAULT_NOISE_SCALE, SR, WINDOW, run_pipeline

logger = logging.getLogger(__name__)

__all__ = ["VoiceConverter"]

Progress = Callable[[int, int], None]
DTYPES = ("float32", "float16", "bfloat16")


def _on_cpu() -> bool:
    import mlx.core as mx

    return mx.default_device() == mx.cpu


class VoiceConverter:
    """Convert speech or singing into the voice of an RVC model, as RVC WebUI does.

    Args:
        model: an RVC ``.pth`` (or a folder from ``rvc export``), or a loaded
            ``rvc_synth.Synthesizer``.
        index: the voice's ``.index`` file (path or ``rvc_index.FeatureIndex``), or None.
        contentvec: ContentVec weights (mlx-contentvec safetensors); else
            ``$RVC_CONTENTVEC_WEIGHTS``, else the Hugging Face cache (see :mod:`rvc_convert.weights`).
        rmvpe: RMVPE weights (mlx-rmvpe safetensors); else ``$RVC_RMVPE_WEIGHTS``, else the cache.
        embedder: replaces ContentVec: any callable ``(N,) float32 16 kHz -> (n, C)`` frames at
            50 Hz, ``C`` = the model's feature width (768 v2, 256 v1).
        options: default :class:`ConvertOptions`; each ``convert`` call may override fields.
        dtype: the synthesizer's precision when ``model`` is a path: ``"float32"`` (default),
            or ``"float16"``/``"bfloat16"`` (GPUs, as RVC's half precision; the NSF phase stays
            float32). ContentVec and RMVPE stay float32. On NVIDIA, float32 is exact unless
            ``MLX_ENABLE_TF32=1`` is set before MLX is imported.

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
        embedder: Callable[[np.ndarray], Any] | None = None,
        options: ConvertOptions = ConvertOptions(),
        dtype: str = "float32",
    ) -> None:
        import rvc_runtime

        rvc_runtime.configure_cpu()  # OpenBLAS for MLX's CPU matmuls, oneDNN: before MLX first loads
        import rvc_synth

        if not isinstance(options, ConvertOptions):
            raise ConvertInputError(f"options must be a ConvertOptions, got {type(options).__name__}")
        if dtype not in DTYPES:
            raise ConvertInputError(f"dtype={dtype!r}; expected one of {', '.join(DTYPES)}")
        self.options = options
        self.synth = model if isinstance(model, rvc_synth.Synthesizer) else rvc_synth.load(model, dtype=dtype)
        if dtype != "float32" and _on_cpu():
            logger.warning("%s on the CPU: MLX has no fast half-precision convolutions there (the "
                           "synthesizer runs ~50x slower than in float32); half precision is for GPUs", dtype)
        info = self.synth.info
        self.index = self._load_index(index, info)
        self._contentvec_arg, self._rmvpe_arg = contentvec, rmvpe
        self._rmvpe_path: Path | None = None
        self._lock = threading.Lock()
        if embedder is not None:
            if not callable(embedder):
                raise ConvertInputError(f"embedder must be callable (audio_16k -> (frames, {info.feature_dim})), got {embedder!r}")
            self.embedder = embedder
        else:
            from rvc_features import load_contentvec
            from .weights import resolve_weights

            self.contentvec = load_contentvec(resolve_weights("contentvec", contentvec))
            self.embedder = self.contentvec.embedder(info.version)
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
            raise ModelMismatchError(
                f"index {name} holds {idx.dim}-d features ({'v1' if idx.dim == 256 else 'v2' if idx.dim == 768 else '?'}), "
                f"but the model is {info.version} with {info.feature_dim}-d features: use the index trained with this model"
            )
        return idx

    def _ensure_rmvpe(self) -> Path:
        if self._rmvpe_path is None:
            from rvc_f0 import load_rmvpe

            from ._backends import lend_cpu_kernels
            from .weights import resolve_weights

            path = resolve_weights("rmvpe", self._rmvpe_arg)
            lend_cpu_kernels(load_rmvpe(path))  # load now (cached by rvc_f0 per file), so errors surface here
            self._rmvpe_path = path
        return self._rmvpe_path

    @property
    def info(self) -> Any:
        """The model's ``rvc_synth.SynthInfo`` (version, has_f0, sample_rate, hop, n_speakers, ...)."""
        return self.synth.info

    # --- conversion ---------------------------------------------------------------------

    def _f0_fn(self, opts: ConvertOptions) -> Callable[[np.ndarray, int], np.ndarray]:
        from rvc_f0 import extract_f0

        from .options import PRESETS

        if opts.f0_curve is not None:
            offset = PRESETS[opts.preset].x_pad * SR // WINDOW  # the reference writes the curve after t_pad
            curve = Path(opts.f0_curve)

            def from_curve(audio_pad: np.ndarray, p_len: int) -> np.ndarray:
                f0 = extract_f0(audio_pad[: (p_len - offset) * WINDOW], method=curve, p_len=p_len - offset)
                return np.concatenate([np.zeros(offset, np.float32), f0])

            return from_curve
        weights = self._ensure_rmvpe() if opts.f0_method == "rmvpe" else None

        def estimate(audio_pad: np.ndarray, p_len: int) -> np.ndarray:
            return extract_f0(audio_pad, method=opts.f0_method, p_len=p_len, filter_radius=opts.filter_radius,
                              weights=weights)

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
        x = normalize_peak(x.astype(np.float32, copy=False))  # vc_single: peak above 0.95 scaled down
        info = self.info
        with self._lock:
            return run_pipeline(
                x, synth=self.synth, embedder=self.embedder, f0_fn=self._f0_fn(opts) if info.has_f0 else None,
                index=self.index, options=opts, noise_scale=DEFAULT_NOISE_SCALE, progress=progress,
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
