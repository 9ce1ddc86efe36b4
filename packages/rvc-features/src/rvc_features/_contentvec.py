"""ContentVec content features through mlx-contentvec, as the reference uses them.

* v2 models: the last transformer layer (768-d), ``last_hidden_state``.
* v1 models: transformer layer 9, then ``final_proj`` (768 -> 256), exactly as the reference's
  ``model.final_proj(model.extract_features(..., output_layer=9)[0])``; never the first 256
  dimensions of anything.

Weights are mlx-contentvec safetensors (``contentvec_base.safetensors`` of
``lexandstuff/mlx-contentvec``, or what :func:`rvc_features.import_hubert` writes from RVC's
``hubert_base.pt``). ``final_proj.weight``/``final_proj.bias`` may sit in the same file (the
importer writes them); the network's constructor kwargs may sit in the metadata key
``contentvec_kwargs`` (JSON), else the real base size is assumed. The model is built with
``encoder_layers_1=0`` as ``ContentvecModel.from_pretrained`` does, loaded strictly, in eval mode.
"""

from __future__ import annotations

import ast
import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from rvc_runtime import check_keys

from .errors import WeightsFormatError

logger = logging.getLogger(__name__)

__all__ = ["BASE_KWARGS", "ContentVec", "load_contentvec"]

BASE_KWARGS: dict[str, Any] = {  # the real ContentVec/HuBERT base, as from_pretrained builds it
    "conv_feature_layers": "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2",
    "conv_bias": False,
    "extractor_mode": "default",
    "encoder_embed_dim": 768,
    "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12,
    "encoder_layers": 12,
    "encoder_layers_1": 0,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "dropout": 0.0,
    "attention_dropout": 0.0,
    "activation_dropout": 0.0,
    "activation_fn": "gelu",
    "layer_norm_first": False,
}
_TYPES = {k: type(v) for k, v in BASE_KWARGS.items()}
V1_LAYER = 9  # the reference: output_layer=9 then final_proj for v1 models
IMPORT_HINT = (
    "run `rvc models import-hubert hubert_base.pt contentvec_fp.safetensors` (rvc_features.import_hubert) "
    "on RVC's hubert_base.pt and pass the result as the ContentVec weights (--contentvec / RVC_CONTENTVEC_WEIGHTS)"
)


def parse_conv_layers(spec: Any) -> list[tuple[int, int, int]]:
    """``"[(512,10,5)] + [(512,3,2)] * 4"`` (fairseq's notation) or a list -> list of (dim, k, stride).

    Evaluated on the syntax tree (lists, tuples, integers, ``+`` and ``*`` only), never with
    ``eval``: the string comes from a weights file.
    """

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [ev(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Mult) and isinstance(b, int) and 0 <= b <= 64:
                return a * b
            if isinstance(node.op, ast.Add) and isinstance(a, list) and isinstance(b, list):
                return a + b
        raise ValueError("only lists of (dim, kernel, stride) integer tuples, '+' and '* n' are allowed")

    try:
        value = ev(ast.parse(spec, mode="eval")) if isinstance(spec, str) else [tuple(x) for x in spec]
        layers = [tuple(int(v) for v in t) for t in value]
        if not layers or any(len(t) != 3 or min(t) < 1 for t in layers):
            raise ValueError("expected (dim, kernel, stride) triples of positive integers")
    except (SyntaxError, ValueError, TypeError) as exc:
        raise WeightsFormatError(f"conv_feature_layers={str(spec)[:120]!r} is not a conv layer list ({exc})") from None
    return layers  # type: ignore[return-value]


def _kwargs(path: Path, meta: dict[str, str] | None, override: dict[str, Any] | None) -> dict[str, Any]:
    kw = dict(BASE_KWARGS)
    raw = (meta or {}).get("contentvec_kwargs")
    given: dict[str, Any] = {}
    if raw is not None:
        try:
            given = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise WeightsFormatError(
                f"ContentVec weights {path}: metadata contentvec_kwargs is not JSON ({exc})"
            ) from None
    if override:
        given = {**given, **override}
    if not isinstance(given, dict):
        raise WeightsFormatError(f"ContentVec weights {path}: contentvec_kwargs must be a JSON object")
    for key, value in given.items():
        if key not in _TYPES:
            raise WeightsFormatError(
                f"ContentVec weights {path}: unknown constructor argument {key!r}; expected some of {', '.join(_TYPES)}"
            )
        want = _TYPES[key]
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise WeightsFormatError(f"ContentVec weights {path}: {key}={value!r}; expected a {want.__name__}")
        kw[key] = value
    if kw["activation_fn"] != "gelu" or kw["extractor_mode"] not in ("default", "group_norm_masked", "layer_norm"):
        raise WeightsFormatError(
            f"ContentVec weights {path}: activation_fn={kw['activation_fn']!r}, "
            f"extractor_mode={kw['extractor_mode']!r}; "
            "expected gelu and default/layer_norm (HuBERT/ContentVec)"
        )
    layers = parse_conv_layers(kw["conv_feature_layers"])
    kw["conv_feature_layers"] = repr(layers)  # a plain literal: what mlx-contentvec evaluates
    kw["encoder_layers_1"] = 0  # RVC's ContentVec has no speaker-conditioned layers (from_pretrained: 0)
    for key in ("dropout", "attention_dropout", "activation_dropout"):
        kw[key] = 0.0
    if kw["encoder_embed_dim"] % kw["encoder_attention_heads"] or kw["encoder_embed_dim"] % kw["conv_pos_groups"]:
        raise WeightsFormatError(f"ContentVec weights {path}: embed dim not divisible by heads/groups in {given}")
    return kw


class ContentVec:
    """A loaded ContentVec: ``contentvec(audio_16k, version="v2")`` -> (n, 768) / v1 (n, 256).

    Attributes: ``path``, ``kwargs`` (constructor arguments), ``dim`` (hidden width),
    ``n_layers``, ``has_final_proj``, ``model`` (the mlx-contentvec ``ContentvecModel``).
    Frames: ``n = (N - 400) // 320 + 1`` at 50 Hz. Thread-safe (one clip at a time).
    """

    def __init__(
        self,
        model: Any,
        kwargs: dict[str, Any],
        final_proj: tuple[np.ndarray, np.ndarray] | None,
        path: Path | None = None,
    ) -> None:
        from ._cv_fast import FastContentvec

        self.model, self.kwargs, self.path = model, kwargs, path
        self.dim = int(kwargs["encoder_embed_dim"])
        self.n_layers = int(kwargs["encoder_layers"])
        self.final_proj = final_proj
        self._final_proj_mx: Any = None  # final_proj on the device (lazy), made at the first use
        self._fast = FastContentvec(
            model,
            parse_conv_layers(kwargs["conv_feature_layers"]),
            mode=kwargs["extractor_mode"],
            layer_norm_first=kwargs["layer_norm_first"],
            heads=kwargs["encoder_attention_heads"],
            pos_groups=kwargs["conv_pos_groups"],
        )
        self._lock = threading.Lock()
        self.v1_hint = IMPORT_HINT  # what to do when v1 features are asked for without final_proj

    @property
    def has_final_proj(self) -> bool:
        return self.final_proj is not None

    def hidden(
        self, audio_16k: Any, *, output_layer: int | None = None, fast: bool = True, dtype: str = "float32"
    ) -> np.ndarray:
        """(N,) float 16 kHz -> (n, dim) float32 output of transformer layer ``output_layer``
        (1-indexed, = transformers' ``hidden_states[output_layer]``; None = the last).
        ``fast`` (the default) runs rvc-convert's forward: GEMM convolutions over blocks of
        frames (memory bounded at any length), attention in NumPy on the CPU and fused on GPUs;
        ``fast=False`` runs mlx-contentvec's own forward on the device (same numbers, but its
        conv front end holds whole-input activations: ~6 GB on a GPU for 40 s). ``dtype``:
        ``"float16"``/``"bfloat16"`` run the GPU forward in half precision, as the reference's
        half mode runs HuBERT (the first convolution and its group norm stay float32; float32
        features out); the CPU forward is float32 whatever it says."""
        import mlx.core as mx

        half = _dtype(dtype)

        x = np.asarray(audio_16k, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"audio has shape {x.shape}; expected (samples,) mono 16 kHz")
        if output_layer is not None and not 1 <= output_layer <= self.n_layers:
            raise ValueError(f"output_layer={output_layer}; this ContentVec has layers 1..{self.n_layers}")
        if len(x) < 400:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            if fast:
                out = self._fast(x, output_layer=output_layer, dtype=half)
            else:
                out = self.model(mx.array(x)[None], output_layer=output_layer)["x"][0]
            return np.array(out, dtype=np.float32)

    def __call__(self, audio_16k: Any, *, version: str = "v2", dtype: str = "float32") -> np.ndarray:
        """Content features for an RVC ``version`` model: v2 (n, dim) last layer; v1 (n, 256)
        ``final_proj(layer 9)`` (raises :class:`WeightsFormatError` without ``final_proj``);
        ``dtype`` as :meth:`hidden`'s."""
        if version == "v2":
            return self.hidden(audio_16k, dtype=dtype)
        if version != "v1":
            raise ValueError(f"version={version!r}; expected 'v1' or 'v2'")
        if self.final_proj is None:
            raise WeightsFormatError(
                f"ContentVec weights {self.path} have no final_proj, which v1 (256-d) models need; {self.v1_hint}"
            )
        w, b = self.final_proj
        return (self.hidden(audio_16k, output_layer=V1_LAYER, dtype=dtype) @ w.T + b).astype(np.float32)

    def lazy(self, audio_16k: Any, *, version: str = "v2", static_shape: bool = False, dtype: str = "float32") -> Any:
        """:meth:`__call__`'s features as an MLX array that GPUs have not computed yet (evaluate
        it with ``mx.eval``/``mx.async_eval``, e.g. while other work is queued on another stream;
        on the CPU it comes evaluated). ``static_shape``: this input length repeats (live
        blocks), so on GPUs the forward is ``mx.compile``d for it (fewer kernels; H200, 2.8 s:
        12.7 -> 4.5 ms). ``dtype`` as :meth:`hidden`'s. ``audio_16k``: (N,) float samples; an
        ``mlx.core.array`` is used where it is (GPUs: a pipeline's one upload shared by its
        stages), anything else is copied to the device. Not thread-safe."""
        import mlx.core as mx

        half = _dtype(dtype)

        x = audio_16k if isinstance(audio_16k, mx.array) else np.asarray(audio_16k, dtype=np.float32)
        if x.ndim != 1 or x.shape[0] < 400:
            raise ValueError(f"audio has shape {tuple(x.shape)}; expected (samples,) mono 16 kHz, at least 400 samples")
        if version not in ("v1", "v2"):
            raise ValueError(f"version={version!r}; expected 'v1' or 'v2'")
        if version == "v2":
            return self._fast.lazy(x, static_shape=static_shape, dtype=half)
        if self.final_proj is None:
            raise WeightsFormatError(
                f"ContentVec weights {self.path} have no final_proj, which v1 (256-d) models need; {self.v1_hint}"
            )
        if self._final_proj_mx is None:  # made once (uploaded at every call they were two host copies)
            w, b = self.final_proj
            self._final_proj_mx = (mx.array(np.ascontiguousarray(w.T)), mx.array(b))
            mx.eval(self._final_proj_mx)
        wt, b = self._final_proj_mx
        h = self._fast.lazy(x, output_layer=V1_LAYER, static_shape=static_shape, dtype=half)
        return h @ wt + b

    def embedder(self, version: str, *, dtype: str = "float32") -> Any:
        """A callable ``audio_16k -> features`` for ``version`` (checks final_proj now), whose
        ``lazy(audio, static_shape=)`` is :meth:`lazy` for that version; ``dtype`` as
        :meth:`hidden`'s (VoiceConverter passes its half precision on GPUs)."""
        _dtype(dtype)
        if version == "v1" and self.final_proj is None:
            raise WeightsFormatError(
                f"ContentVec weights {self.path} have no final_proj, which v1 (256-d) models need; {self.v1_hint}"
            )
        return _Embedder(self, version, dtype)


def _dtype(name: str) -> Any:
    """A ``dtype`` argument (``"float32"``, ``"float16"``, ``"bfloat16"``) as MLX's dtype."""
    import mlx.core as mx

    if name not in ("float32", "float16", "bfloat16"):
        raise ValueError(f"dtype={name!r}; expected float32, float16 or bfloat16")
    return getattr(mx, name)


class _Embedder:
    """``ContentVec.embedder(version)``: ``emb(audio) -> (n, D)`` NumPy; ``emb.lazy(audio,
    static_shape=)`` -> unevaluated MLX array (:meth:`ContentVec.lazy`)."""

    def __init__(self, cv: ContentVec, version: str, dtype: str = "float32") -> None:
        self.cv, self.version, self.dtype = cv, version, dtype

    def __call__(self, audio: Any) -> np.ndarray:
        return self.cv(audio, version=self.version, dtype=self.dtype)

    def lazy(self, audio: Any, *, static_shape: bool = False) -> Any:
        return self.cv.lazy(audio, version=self.version, static_shape=static_shape, dtype=self.dtype)

    def __repr__(self) -> str:
        return f"{self.cv!r}.embedder({self.version!r}, dtype={self.dtype!r})"


_CACHE: dict[tuple[str, int, int], ContentVec] = {}
_CACHE_LOCK = threading.Lock()


def load_contentvec(path: str | Path, *, kwargs: dict[str, Any] | None = None) -> ContentVec:
    """Load (once per file; later calls return the cached model) mlx-contentvec safetensors.

    ``kwargs`` overrides constructor arguments (else the file's ``contentvec_kwargs`` metadata,
    else the base size). Loading is strict: the file's tensors (apart from ``final_proj.*``) must
    be exactly the network's, with equal shapes; float16/bfloat16 are upcast to float32.
    """
    path = Path(path).expanduser()
    from .errors import WeightsNotFoundError

    if not path.is_file():
        raise WeightsNotFoundError(
            f"ContentVec weights file {path} does not exist; expected an mlx-contentvec .safetensors"
        )
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size) if kwargs is None else None
    with _CACHE_LOCK:
        if key is not None and key in _CACHE:
            return _CACHE[key]
        cv = _load(path, kwargs)
        if key is not None:
            _CACHE[key] = cv
    return cv


def _load(path: Path, override: dict[str, Any] | None) -> ContentVec:
    import mlx.core as mx

    try:
        arrays, meta = mx.load(str(path), format="safetensors", return_metadata=True)
    except Exception as exc:
        raise WeightsFormatError(
            f"ContentVec weights {path}: not a readable safetensors file ({exc}); expected mlx-contentvec weights "
            "(contentvec_base.safetensors from lexandstuff/mlx-contentvec, or `rvc models import-hubert` output)"
        ) from None
    kw = _kwargs(path, meta, override)
    return build(arrays, kw, path)


def build(
    arrays: dict[str, Any],
    kw: dict[str, Any],
    path: Path | None,
    *,
    what: str = "ContentVec weights",
    hint: str = "use mlx-contentvec safetensors (constructor kwargs for other sizes go in the metadata key "
    "contentvec_kwargs)",
) -> ContentVec:
    """A :class:`ContentVec` from mlx-contentvec tensors (MLX or NumPy arrays, ``final_proj.*``
    optional) and checked constructor kwargs; strict names and shapes, float32."""
    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_unflatten
    from mlx_contentvec import ContentvecModel

    arrays = {k: (v if isinstance(v, mx.array) else mx.array(v)) for k, v in arrays.items()}
    fp_w, fp_b = arrays.pop("final_proj.weight", None), arrays.pop("final_proj.bias", None)
    model = ContentvecModel(**kw)
    expected = {k: tuple(v.shape) for k, v in tree_flatten(model.parameters())}
    derived = "encoder.pos_conv.layers.0.module.weight"  # g * v / |v|, recomputed at every call
    got = {k: tuple(v.shape) for k, v in arrays.items()}
    problems = check_keys(expected, got, optional=[derived], shown=5)
    if problems:
        raise WeightsFormatError(
            f"{what} {path} do not match a ContentVec of {kw['encoder_layers']} layers x "
            f"{kw['encoder_embed_dim']} ({problems}); {hint}"
        )
    params = {k: (v if v.dtype == mx.float32 else v.astype(mx.float32)) for k, v in arrays.items()}
    if derived not in params:
        v, g = params[derived[: -len("module.weight")] + "v"], params[derived[: -len("module.weight")] + "g"]
        params[derived] = g * (v / mx.maximum(mx.sqrt(mx.sum(v * v, axis=(0, 2), keepdims=True)), 1e-5))
    model.update(tree_unflatten(list(params.items())))
    model.eval()
    mx.eval(model.parameters())
    final_proj = None
    if (fp_w is None) != (fp_b is None):
        raise WeightsFormatError(f"{what} {path}: final_proj.weight and final_proj.bias must come together")
    if fp_w is not None:
        if fp_w.ndim != 2 or fp_w.shape[1] != kw["encoder_embed_dim"] or fp_b.shape != (fp_w.shape[0],):
            raise WeightsFormatError(
                f"{what} {path}: final_proj.weight {tuple(fp_w.shape)} / bias {tuple(fp_b.shape)}; "
                f"expected (n, {kw['encoder_embed_dim']}) / (n,), n = 256 for RVC v1"
            )
        final_proj = (np.array(fp_w.astype(mx.float32)), np.array(fp_b.astype(mx.float32)))
    logger.info(
        "loaded %s %s (%d layers x %d, final_proj: %s)",
        what,
        path,
        kw["encoder_layers"],
        kw["encoder_embed_dim"],
        final_proj is not None,
    )
    return ContentVec(model, kw, final_proj, path)
