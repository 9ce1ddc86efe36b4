"""`Synthesizer`: the RVC generator network (``enc_p`` -> ``flow`` -> ``dec``, speaker ``emb_g``)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten, tree_map

from .backends import Backend, choose
from .checkpoint import Checkpoint, read_checkpoint
from .config import SynthConfig
from .encoder import MultiHeadAttention, TextEncoder
from .errors import InputShapeError, UnsupportedCheckpointError
from .flow import ResidualCouplingBlock
from .generator import Generator, _ResBlock
from .layers import Kernels

logger = logging.getLogger(__name__)

DEFAULT_NOISE_SCALE = 0.66666
_MAX_GRAPHS = 16  # compiled graphs kept per model (the oldest made is dropped)
_FLOW_CONTEXT = 24  # frames of flow context the reference keeps before skip_head
_warned_half_cpu = False


def _warn_half_on_cpu(backend: Backend) -> bool:
    """Log once per process when a half-precision network is set to run on the CPU (MLX's CPU
    float16/bfloat16 kernels are scalar: ~18x slower than float32 there); returns whether it warned."""
    global _warned_half_cpu
    if _warned_half_cpu or backend.device != "cpu" or backend.dtype == "float32":
        return False
    _warned_half_cpu = True
    logger.warning(
        "the synthesizer runs in %s on the CPU, which is ~18x slower than float32 there; load it with "
        "dtype='float32' (the default; the CLI's --precision float32): half precision pays off on GPUs only",
        backend.dtype,
    )
    return True


@dataclass(frozen=True)
class SynthInfo:
    """What a loaded model is: ``feature_dim`` 256 (v1) / 768 (v2); ``hop`` samples per 10 ms frame;
    ``backend`` the kernels in use (``"mlx"``, ``"numpy"``, ``"onednn"``: :mod:`rvc_synth.backends`),
    ``precision`` the arithmetic (``"float32"``, ``"tf32"``, ``"float16"``, ``"bfloat16"``);
    ``stored_dtype`` the dtype of the weights in the file it was loaded from (``"float16"`` for
    RVC's usual ``.pth`` and ``rvc export --dtype float16`` folders; None when built in memory):
    loading casts them to the dtype asked for (float32 by default)."""

    version: str
    has_f0: bool
    sample_rate: int
    hop: int
    n_speakers: int
    feature_dim: int
    n_params: int
    metadata: dict[str, Any] = field(default_factory=dict)
    backend: str = "mlx"
    precision: str = "float32"
    stored_dtype: str | None = None

    @property
    def embedder(self) -> str | None:
        """The content-feature model the voice was trained with, when its metadata says so
        (Applio stores ``embedder_model``: contentvec, spin, chinese-hubert-base, custom...)."""
        value = self.metadata.get("embedder_model")
        return str(value) if value not in (None, "") else None


def _fuse_weight_norm(g: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``w = g * v / ||v||``, the norm over every axis but 0 of the stored tensor."""
    v64 = v.astype(np.float64)
    norm = np.sqrt((v64 * v64).reshape(v.shape[0], -1).sum(axis=1))
    return (g.astype(np.float64).reshape(-1, *[1] * (v.ndim - 1)) * v64 / norm.reshape(-1, *[1] * (v.ndim - 1))).astype(
        np.float32
    )


_UPS = re.compile(r"^dec\.ups\.\d+\.weight$")
_LINEAR_OR_TABLE = re.compile(r"(emb_phone|emb_pitch|emb_g|l_linear)\.weight$")


def sanitize(weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Checkpoint tensors -> this model's parameters (pure, key-driven).

    Drops the training-only posterior encoder ``enc_q.*``; fuses weight norm
    (``weight_g``/``weight_v`` and ``parametrizations.weight.original0/1``) into ``weight``;
    casts to float32; turns PyTorch conv layouts into MLX's: Conv1d ``(out, in, k)`` ->
    ``(out, k, in)``, ConvTranspose1d (``dec.ups.*``) ``(in, out, k)`` -> ``(out, k, in)``.
    """
    out: dict[str, np.ndarray] = {}
    for key, val in weights.items():
        if key.startswith("enc_q."):
            continue
        if key.endswith(".weight_g") or key.endswith(".parametrizations.weight.original0"):
            continue
        if key.endswith(".weight_v"):
            base = key[: -len("_v")]
            w = _fuse_weight_norm(weights[base + "_g"], val)
        elif key.endswith(".parametrizations.weight.original1"):
            base = key[: -len(".parametrizations.weight.original1")] + ".weight"
            w = _fuse_weight_norm(weights[key[:-1] + "0"], val)
        else:
            base, w = key, val.astype(np.float32)
        if base.endswith(".weight") and w.ndim == 3 and not _LINEAR_OR_TABLE.search(base):
            w = w.transpose(1, 2, 0) if _UPS.match(base) else w.transpose(0, 2, 1)
        out[base] = np.ascontiguousarray(w)
    return out


class Synthesizer(nn.Module):
    """RVC synthesizer (``SynthesizerTrnMs{256,768}NSFsid[_nono]``), channels-last inside.

    ``backend`` (a name of :data:`rvc_synth.backends.BACKENDS` or a
    :class:`~rvc_synth.backends.Backend`) and ``tf32`` choose the kernels once, here (see
    :func:`rvc_synth.backends.choose`); :meth:`set_backend` changes them later.
    """

    def __init__(
        self,
        config: SynthConfig,
        *,
        metadata: Mapping[str, Any] | None = None,
        backend: str | Backend = "auto",
        tf32: bool | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.metadata = dict(metadata or {})
        self.enc_p = TextEncoder(config)
        self.flow = ResidualCouplingBlock(config)
        self.dec = Generator(config)
        self.emb_g = nn.Embedding(config.n_speakers, config.gin_channels)
        self.stored_dtype: str | None = None  # the weights file's dtype (set by load)
        self.set_backend(backend, tf32=tf32)

    sanitize = staticmethod(sanitize)

    @property
    def dtype(self) -> mx.Dtype:
        """Compute dtype of the network (float32, or float16/bfloat16 after :meth:`set_dtype`)."""
        return self.emb_g.weight.dtype

    def set_dtype(self, dtype: mx.Dtype | str) -> Synthesizer:
        """Run in reduced precision (``"float16"``/``"bfloat16"``) or back in float32.

        Every weight and activation takes ``dtype``, except the NSF phase, which is always
        accumulated exactly (int64 fixed point, float32 sine) before the merge layer.
        """
        dt = getattr(mx, dtype) if isinstance(dtype, str) else dtype
        if dt not in (mx.float32, mx.float16, mx.bfloat16):
            raise ValueError(f"dtype must be float32, float16 or bfloat16, got {dtype}")
        self.update(tree_map(lambda a: a.astype(dt), self.parameters()))
        # cast now: a compiled graph (decoder stretches, live blocks) captures its weights as they
        # are, and would repeat lazy casts at every call (H200 live block: 45 cast kernels)
        mx.eval(self.parameters())
        self.set_backend(replace(self.backend, dtype=str(dt).rsplit(".", 1)[-1]))
        return self

    @property
    def backend(self) -> Backend:
        """The kernels in use (:class:`~rvc_synth.backends.Backend`): name, device, precision."""
        return self.__dict__["_backend"]

    def set_backend(self, backend: str | Backend = "auto", *, tf32: bool | None = None) -> Synthesizer:
        """Choose the kernels: a backend name (resolved by :func:`rvc_synth.backends.choose`,
        ``$RVC_BACKEND`` included, for this model's dtype) or a :class:`Backend` as is."""
        if not isinstance(backend, Backend):
            backend = choose(backend, dtype=str(self.dtype).rsplit(".", 1)[-1], tf32=tf32)
        kernels = Kernels(backend.conv, backend.math, backend.gather)
        for _, m in self.named_modules():
            if isinstance(m, (Generator, _ResBlock)):
                object.__setattr__(m, "backend", backend)
            if "kernels" in dir(type(m)):
                object.__setattr__(m, "kernels", kernels)
        self.__dict__["_backend"] = backend
        self._reset_compiled()
        _warn_half_on_cpu(backend)
        return self

    def _reset_compiled(self) -> None:
        """Compiled graphs capture the weights: drop them whenever weights change (and join the
        attention's q/k/v weights again where MLX runs the attention)."""
        self.__dict__["_graphs"] = {}
        self.dec._fn = self.dec._fn2 = None
        if self.backend.math == "mlx":
            for _, m in self.named_modules():
                if isinstance(m, MultiHeadAttention):
                    m.fuse_qkv()

    def _compiled(self, name: str, fn, *key: object, static: bool = False):
        if self.backend.compile != "all" and not (static and self.backend.compile != "off"):
            return fn  # encoder/flow shapes vary per call: compiled only when asked (compile="all", static_shape)
        graphs = self.__dict__.setdefault("_graphs", {})
        if (name, key) not in graphs:
            if len(graphs) >= _MAX_GRAPHS:  # e.g. a live formant slider: each value is a new shape
                del graphs[next(iter(graphs))]
            graphs[(name, key)] = mx.compile(fn)
        return graphs[(name, key)]

    @property
    def info(self) -> SynthInfo:
        c = self.config
        n = self.__dict__.get("_n_params")
        if n is None:  # the config fixes the parameters: counted once (the walk took ~3 ms per
            # access on a 2-core CPU, and a live stream reads ``info`` every block)
            n = self.__dict__["_n_params"] = sum(v.size for _, v in tree_flatten(self.parameters()))
        b = self.backend
        return SynthInfo(
            c.version,
            c.has_f0,
            c.sample_rate,
            c.hop,
            c.n_speakers,
            c.feature_dim,
            n,
            dict(self.metadata),
            b.name,
            b.precision,
            self.stored_dtype,
        )

    def load_checkpoint_weights(self, ckpt: Checkpoint) -> None:
        """Strictly load (sanitized) weights: every parameter present, nothing extra, shapes equal;
        cast to float32 whatever the file stores (:meth:`set_dtype` then picks the compute dtype)."""
        params = ckpt.weights if ckpt.converted else sanitize(ckpt.weights)
        expected = dict(tree_flatten(self.parameters()))
        missing = sorted(set(expected) - set(params))
        extra = sorted(set(params) - set(expected))
        if missing or extra:
            raise UnsupportedCheckpointError(
                f"checkpoint tensors do not match a {self.config.version} "
                f"{'f0' if self.config.has_f0 else 'no-f0'} {self.config.sample_rate // 1000}k synthesizer: "
                f"missing {missing[:4]}{'...' if len(missing) > 4 else ''}, "
                f"unexpected {extra[:4]}{'...' if len(extra) > 4 else ''}"
            )
        bad = [k for k, v in params.items() if tuple(v.shape) != tuple(expected[k].shape)]
        if bad:
            k = bad[0]
            raise UnsupportedCheckpointError(
                f"checkpoint tensor {k} has shape {tuple(params[k].shape)}, the config implies "
                f"{tuple(expected[k].shape)} ({len(bad)} mismatched)"
            )
        self.load_weights([(k, mx.array(np.asarray(v, dtype=np.float32))) for k, v in params.items()], strict=True)
        self.stored_dtype = ckpt.stored_dtype
        self._reset_compiled()
        self.eval()

    def __call__(
        self,
        features: mx.array | np.ndarray,
        pitch: mx.array | np.ndarray | None = None,
        f0: mx.array | np.ndarray | None = None,
        *,
        speaker: int = 0,
        noise_scale: float = DEFAULT_NOISE_SCALE,
        seed: int | None = None,
        skip_head: int = 0,
        return_length: int | None = None,
        chunk_frames: int | None = None,
        out_frames: tuple[int, int] | None = None,
        decode_frames: int | None = None,
        static_shape: bool = False,
    ) -> mx.array:
        """Synthesize audio.

        Args:
            features: ``(B, T, feature_dim)`` content features at 100 frames/s.
            pitch: ``(B, T)`` coarse pitch 1..255 (pitch models only).
            f0: ``(B, T)`` F0 in Hz, 0 = unvoiced (pitch models only).
            speaker: speaker id, ``0 <= speaker < info.n_speakers``.
            noise_scale: prior noise scale (the reference's 0.66666). ``0`` is the reference's
                zero-noise convention: no prior noise and no NSF additive noise (deterministic).
            seed: seeds every random draw; ``None`` uses MLX's global generator.
            skip_head, return_length: the reference's streaming arguments: synthesize only
                frames ``[skip_head, skip_head + return_length)`` (with up to 24 frames of
                flow context before them).
            chunk_frames: decoder stretch length in frames (default 500; 1000 on the CPU with
                oneDNN; on GPUs 1200 for exact float32 and 1500 for TF32 and half precision; ``0`` =
                whole input).
                Any value gives the same audio; it bounds memory on long inputs.
            out_frames: ``(start, stop)``: return only the audio of frames ``start..stop-1``,
                the same samples as slicing the whole output (the rest of the input is context:
                the encoder and flow see all of it, the decoder only what those frames need).
                Not with the streaming arguments.
            decode_frames: with the streaming arguments: the decoder stretches the
                ``return_length`` frames (latents and harmonic source, linearly) to this many
                frames, as the reference's ``return_length2`` (its realtime formant shift);
                the output then has ``decode_frames * hop`` samples.
            static_shape: compile for these shapes, on backends that compile (GPUs): for
                shapes that repeat (live blocks, the pipeline's chunk lengths once they
                repeat). Where the decoder runs in one stretch the whole call
                (encoder, prior noise, flow, decoder) is one ``mx.compile``d graph per shape
                (same numbers; H200, a 0.25 s block with 2.5 s of context: 13.1 -> 7.5 ms
                against compiling the encoder and flow only); else the encoder and the flow are
                compiled per length beside the decoder's stretches. The model keeps its last
                16 graphs.

        Returns:
            ``(B, T_out * hop)`` float32 audio at ``info.sample_rate``, ``T_out = T``,
            ``return_length`` or ``stop - start``.
        """
        cfg = self.config
        x = mx.array(features).astype(self.dtype)
        if x.ndim != 3 or x.shape[-1] != cfg.feature_dim:
            raise InputShapeError(
                f"features have shape {tuple(x.shape)}, expected (batch, frames, {cfg.feature_dim}) "
                f"for a {cfg.version} model"
            )
        b, t, _ = x.shape
        if not 0 <= speaker < cfg.n_speakers:
            raise InputShapeError(f"speaker {speaker} is out of range: this model has {cfg.n_speakers} speakers")
        p = nsff0 = None
        if cfg.has_f0:
            if pitch is None or f0 is None:
                raise InputShapeError("this is a pitch (f0) model: pass both `pitch` (coarse 1..255) and `f0` (Hz)")
            p, nsff0 = mx.array(pitch).astype(mx.int32), mx.array(f0).astype(mx.float32)
            if p.shape != (b, t) or nsff0.shape != (b, t):
                raise InputShapeError(
                    f"pitch {tuple(p.shape)} and f0 {tuple(nsff0.shape)} must both be (batch, frames) = {(b, t)}"
                )
        head = int(skip_head)
        length = t - head if return_length is None else int(return_length)
        if head < 0 or length <= 0 or head + length > t:
            raise InputShapeError(f"skip_head={head}, return_length={return_length} do not fit {t} frames")
        streaming = head > 0 or return_length is not None
        if decode_frames is not None and (not streaming or int(decode_frames) <= 0):
            raise InputShapeError(f"decode_frames={decode_frames} needs skip_head/return_length and must be > 0")
        if out_frames is not None:
            a, b_ = (int(v) for v in out_frames)
            if streaming or not 0 <= a < b_ <= t:
                raise InputShapeError(f"out_frames={tuple(out_frames)} do not fit {t} frames (nor streaming arguments)")
            out_frames = (a, b_)
        flow_head = max(head - _FLOW_CONTEXT, 0) if streaming else 0
        dec_head = head - flow_head

        if noise_scale:
            keys = mx.random.split(mx.random.key(seed) if seed is not None else mx.random.key(np.random.randint(2**31)))
            k_prior, k_nsf = keys[0:1].reshape(2), keys[1:2].reshape(2)  # views (integer indices gather)
        else:
            k_prior = k_nsf = None
        row = self.emb_g.weight[speaker : speaker + 1]  # a slice: an index array would be a gather
        g = mx.broadcast_to(row, (b, row.shape[1]))[:, None, :]  # (B, 1, gin)
        geometry = (flow_head, dec_head, head, length, streaming, chunk_frames, out_frames, decode_frames)
        if static_shape and self.dec.traceable(decode_frames or length, chunk_frames):
            # the whole call (encoder, prior noise, flow, decoder) as one compiled graph: fewer
            # kernels (element-wise ops fused) and no graph building in Python
            args = (x, p, nsff0, g, k_prior, k_nsf)
            given = tuple(a is not None for a in args)  # a compiled graph takes arrays only

            def whole(*arrays: mx.array) -> mx.array:
                it = iter(arrays)
                full = [next(it) if has else None for has in given]
                return self._forward(*full, noise_scale=noise_scale, geometry=geometry, whole=True)

            fn = self._compiled("whole", whole, given, noise_scale, geometry, static=True)
            return fn(*(a for a in args if a is not None))
        return self._forward(
            x, p, nsff0, g, k_prior, k_nsf, noise_scale=noise_scale, geometry=geometry, static=static_shape
        )

    def _forward(
        self,
        x: mx.array,
        p: mx.array | None,
        nsff0: mx.array | None,
        g: mx.array,
        k_prior: mx.array | None,
        k_nsf: mx.array | None,
        *,
        noise_scale: float,
        geometry: tuple,
        whole: bool = False,
        static: bool = False,
    ) -> mx.array:
        """Encoder, prior noise, flow and decoder (:meth:`__call__`'s arguments, checked);
        ``whole``: traced into one compiled graph (no evaluation inside); ``static``: the
        encoder and the flow compiled for this length (where the backend compiles)."""
        flow_head, dec_head, head, length, streaming, chunk_frames, out_frames, decode_frames = geometry
        shape = (x.shape[:2],) if static else ()  # one graph per length (bounded)
        if p is None:
            enc0 = lambda x: self.enc_p(x, None, skip_head=flow_head)  # noqa: E731
            m_p, logs_p = self._compiled("enc0", enc0, flow_head, *shape, static=static)(x)
        else:
            enc = lambda x, p: self.enc_p(x, p, skip_head=flow_head)  # noqa: E731
            m_p, logs_p = self._compiled("enc", enc, flow_head, *shape, static=static)(x, p)
        z_p = m_p
        if k_prior is not None:
            z_p = m_p + mx.exp(logs_p) * mx.random.normal(m_p.shape, key=k_prior).astype(m_p.dtype) * noise_scale
        z = self._compiled("flow", self.flow.reverse, *shape, static=static)(z_p, g)
        if self.backend.device != "cpu" and not whole:
            mx.eval(z)  # GPUs: the encoder's and flow's transient memory is freed before the decoder
        if streaming:
            z = z[:, dec_head : dec_head + length]
            if nsff0 is not None:
                nsff0 = nsff0[:, head : head + length]
        return self.dec(
            z,
            nsff0,
            g,
            key=k_nsf,
            chunk_frames=chunk_frames,
            out_frames=out_frames,
            n_res=decode_frames,
        ).astype(mx.float32)


def load(
    path: str | Path, *, dtype: str = "float32", backend: str | Backend = "auto", tf32: bool | None = None
) -> Synthesizer:
    """Load an RVC model: a ``.pth`` (inference or training format) or a converted folder.

    Untrusted files are read with a restricted unpickler (nothing in them runs).

    Args:
        path: the checkpoint file or folder.
        dtype: ``"float32"`` (default), or ``"float16"``/``"bfloat16"`` to run the network in
            half precision (GPUs; on the CPU it is ~18x slower, logged once). The weights take
            this dtype whatever the file stores (``info.stored_dtype``): a float16 folder from
            ``rvc export --dtype float16`` runs in float32 unless half precision is asked for.
        backend: ``"auto"`` (default; ``$RVC_BACKEND`` may name another), ``"mlx"``,
            ``"numpy"`` or ``"onednn"``, or a :class:`~rvc_synth.backends.Backend`; chosen here,
            once (see :mod:`rvc_synth.backends`). ``model.info.backend`` says which.
        tf32: NVIDIA GPUs: float32 matmuls/convolutions in TF32 (``True``) or exact
            (``False``); ``None`` keeps ``MLX_ENABLE_TF32`` if the caller set it, else exact
            float32 with a float32 ``dtype`` and TF32 (for ContentVec and RMVPE) with a half one.

    Raises:
        BackendError: an unknown backend name, or ``"onednn"`` without the library.
    """
    if isinstance(backend, str):  # an unknown name fails before the file is read
        backend = choose(backend, dtype=dtype, tf32=tf32)
    ckpt = read_checkpoint(path)
    from ._slow_blas import warn_if_reference_blas  # issue 21: say once when MLX's CPU BLAS is slow

    warn_if_reference_blas()
    model = Synthesizer(ckpt.config, metadata=ckpt.metadata, backend=replace(backend, dtype="float32"))
    model.load_checkpoint_weights(ckpt)
    if dtype != "float32":
        model.set_dtype(dtype)
    logger.debug("loaded %s: %s, backend %s", path, model.info, model.backend)
    return model
