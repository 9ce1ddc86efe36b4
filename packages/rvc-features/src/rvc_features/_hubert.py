"""Import RVC's ``hubert_base.pt`` (a fairseq HuBERT/ContentVec checkpoint) into mlx-contentvec
safetensors, ``final_proj`` included, without torch and without executing anything in the file.

The checkpoint is read with rvc-pth's restricted unpickler: tensors are rebuilt as NumPy arrays
and fairseq's config objects (omegaconf ``DictConfig``, ``argparse.Namespace``, fairseq's
``Dictionary``...) become inert placeholders whose recorded fields are read as data.

fairseq name -> mlx-contentvec name (layouts: PyTorch conv ``(O, I, K)`` -> MLX ``(O, K, I)``):

==========================================================  ==============================================
``feature_extractor.conv_layers.{i}.0.weight`` (O, I, K)     ``feature_extractor.conv_layers.{i}.conv.weight`` (O, K, I)
``feature_extractor.conv_layers.{i}.0.bias`` (conv_bias)     ``feature_extractor.conv_layers.{i}.conv.bias``
``feature_extractor.conv_layers.0.2.{weight,bias}`` (GroupNorm)  ``feature_extractor.conv_layers.0.norm.*``
``feature_extractor.conv_layers.{i}.2.1.{weight,bias}`` (layer_norm mode)  ``feature_extractor.conv_layers.{i}.norm.*``
``layer_norm.*``, ``post_extract_proj.*``                     same names
``encoder.pos_conv.0.weight_g`` (1, 1, K)                    ``encoder.pos_conv.layers.0.g`` (1, K, 1)
``encoder.pos_conv.0.weight_v`` (O, I/G, K)                  ``encoder.pos_conv.layers.0.v`` (O, K, I/G)
``encoder.pos_conv.0.bias``                                  ``encoder.pos_conv.layers.0.module.bias``
(``...parametrizations.weight.original0/1``: same as g/v)    (+ ``module.weight`` = g v / ||v||, derived)
``encoder.layers.{i}.{self_attn.{q,k,v,out}_proj, self_attn_layer_norm, fc1, fc2, final_layer_norm}.*``  same names
``encoder.layer_norm.*``                                     same name
``final_proj.*`` (768 -> 256)                                ``final_proj.*`` (kept: v1 models need it)
``mask_emb``, ``label_embs_concat``                          dropped (training only)
==========================================================  ==============================================

(transformers' ``HubertModel`` names differ again: ``feature_projection.projection`` for
``post_extract_proj``, ``encoder.pos_conv_embed.conv`` for ``encoder.pos_conv.0``,
``attention.*`` / ``feed_forward.intermediate_dense`` / ``output_dense`` inside layers.)
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ._contentvec import BASE_KWARGS
from .errors import OutputExistsError, WeightsFormatError, WeightsNotFoundError

logger = logging.getLogger(__name__)

# Globals a fairseq checkpoint pickles besides tensors: config and bookkeeping objects. They are
# turned into inert placeholders (data only; nothing named here is ever imported or called).
_INERT_ROOTS = (
    "omegaconf",
    "fairseq",
    "argparse",
    "typing",
    "enum",
    "collections",
    "numpy",
    "pathlib",
    "copyreg",
    "copy_reg",
)
_INERT_BUILTINS = {
    "dict",
    "list",
    "tuple",
    "set",
    "frozenset",
    "int",
    "float",
    "str",
    "bool",
    "object",
    "type",
    "slice",
}


def _inert(module: str, name: str) -> bool:
    if module in ("builtins", "__builtin__"):  # pickle protocol 2 (torch.save) writes Python 2 names
        return name in _INERT_BUILTINS
    return module.split(".")[0] in _INERT_ROOTS


def _plain(obj: Any, depth: int = 0) -> Any:
    """Inert placeholders (omegaconf nodes/containers, Namespace, enums) -> plain Python data."""
    from rvc_pth import Inert

    if depth > 40:
        return None
    if isinstance(obj, dict):
        return {k: _plain(v, depth + 1) for k, v in obj.items() if not (isinstance(k, str) and k.startswith("_"))}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, depth + 1) for v in obj]
    if isinstance(obj, Inert):
        st = obj.state
        if isinstance(st, tuple) and len(st) == 2 and isinstance(st[1], dict):  # (state, slotstate)
            st = {**(st[0] or {}), **st[1]} if isinstance(st[0], dict) or st[0] is None else st[1]
        if isinstance(st, dict):
            if "_content" in st:
                return _plain(st["_content"], depth + 1)
            if "_val" in st:
                return _plain(st["_val"], depth + 1)
            return _plain(st, depth + 1)
        if len(obj.args) == 1 and isinstance(obj.args[0], (str, int, float, bool)):  # Enum(value)
            return obj.args[0]
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return None


def _model_config(ckpt: dict) -> dict[str, Any]:
    cfg = _plain(ckpt.get("cfg"))
    if isinstance(cfg, dict) and isinstance(cfg.get("model"), dict):
        return cfg["model"]
    args = _plain(ckpt.get("args"))
    return args if isinstance(args, dict) else {}


_CONV = re.compile(r"^feature_extractor\.conv_layers\.(\d+)\.(.+)$")
_LAYER = re.compile(r"^encoder\.layers\.(\d+)\.(.+)$")
_DROP = {"mask_emb", "label_embs_concat"}


def fairseq_to_mlx(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rename and re-lay-out a fairseq HuBERT state dict for mlx-contentvec (float32)."""
    out: dict[str, np.ndarray] = {}
    pos: dict[str, np.ndarray] = {}
    unknown = []
    for key, val in state.items():
        if not isinstance(val, np.ndarray):
            continue
        v = val.astype(np.float32)
        if key in _DROP:
            continue
        m = _CONV.match(key)
        if m:
            i, rest = m.groups()
            base = f"feature_extractor.conv_layers.{i}"
            if rest in ("0.weight", "0.bias"):
                out[f"{base}.conv.{rest[2:]}"] = v.transpose(0, 2, 1) if v.ndim == 3 else v
            elif rest in ("2.weight", "2.bias", "2.1.weight", "2.1.bias"):
                out[f"{base}.norm.{rest.rsplit('.', 1)[1]}"] = v
            else:
                unknown.append(key)
            continue
        if key.startswith("encoder.pos_conv.0."):
            pos[key[len("encoder.pos_conv.0.") :]] = v
            continue
        if (
            _LAYER.match(key)
            or key.split(".")[0] in ("layer_norm", "post_extract_proj", "final_proj")
            or key.startswith("encoder.layer_norm.")
        ):
            out[key] = v
            continue
        unknown.append(key)
    if unknown:
        raise WeightsFormatError(
            f"not a fairseq HuBERT/ContentVec state dict: unexpected tensors {', '.join(sorted(unknown)[:5])}"
            + (f", ... ({len(unknown)} in all)" if len(unknown) > 5 else "")
        )
    g = pos.get("weight_g", pos.get("parametrizations.weight.original0"))
    w_v = pos.get("weight_v", pos.get("parametrizations.weight.original1"))
    if g is None or w_v is None or "bias" not in pos:
        raise WeightsFormatError(
            "not a fairseq HuBERT/ContentVec state dict: the weight-normalised positional conv "
            "(encoder.pos_conv.0.weight_g / weight_v / bias) is missing"
        )
    if g.shape != (1, 1, w_v.shape[2]):
        raise WeightsFormatError(f"positional conv weight_g has shape {g.shape}; expected (1, 1, {w_v.shape[2]})")
    g_mlx, v_mlx = g.transpose(0, 2, 1), w_v.transpose(0, 2, 1)  # (1, K, 1), (O, K, I/G)
    norm = np.sqrt(np.sum(v_mlx.astype(np.float64) ** 2, axis=(0, 2), keepdims=True))
    out["encoder.pos_conv.layers.0.g"] = g_mlx
    out["encoder.pos_conv.layers.0.v"] = v_mlx
    out["encoder.pos_conv.layers.0.module.bias"] = pos["bias"]
    out["encoder.pos_conv.layers.0.module.weight"] = (g_mlx * v_mlx / np.maximum(norm, 1e-5)).astype(np.float32)
    return out


def infer_kwargs(weights: dict[str, np.ndarray], cfg: dict[str, Any]) -> dict[str, Any]:
    """ContentvecModel kwargs: the checkpoint's config where it has one, checked against the shapes."""
    kw = dict(BASE_KWARGS)
    for key in (
        "encoder_layers",
        "encoder_embed_dim",
        "encoder_ffn_embed_dim",
        "encoder_attention_heads",
        "conv_pos",
        "conv_pos_groups",
    ):
        if isinstance(cfg.get(key), int) and not isinstance(cfg.get(key), bool):
            kw[key] = cfg[key]
    for key in ("conv_bias", "layer_norm_first"):
        if isinstance(cfg.get(key), bool):
            kw[key] = cfg[key]
    if isinstance(cfg.get("extractor_mode"), str):
        kw["extractor_mode"] = cfg["extractor_mode"]
    if isinstance(cfg.get("conv_feature_layers"), str):
        kw["conv_feature_layers"] = cfg["conv_feature_layers"]
    # shapes are the truth for sizes; fall back on them where the config is silent or disagrees
    n_layers = 1 + max((int(m.group(1)) for k in weights if (m := _LAYER.match(k))), default=-1)
    embed = weights["encoder.layers.0.fc1.weight"].shape[1] if n_layers else kw["encoder_embed_dim"]
    ffn = weights["encoder.layers.0.fc1.weight"].shape[0] if n_layers else kw["encoder_ffn_embed_dim"]
    v = weights["encoder.pos_conv.layers.0.v"]
    kw.update(
        encoder_layers=n_layers,
        encoder_embed_dim=int(embed),
        encoder_ffn_embed_dim=int(ffn),
        conv_pos=int(v.shape[1]),
        conv_pos_groups=int(embed // v.shape[2]),
    )
    if "encoder_attention_heads" not in cfg and embed != 768:
        raise WeightsFormatError(
            f"the checkpoint's config does not say how many attention heads its {embed}-wide encoder has"
        )
    convs = sorted(
        (int(m.group(1)), w) for k, w in weights.items() if (m := _CONV.match(k)) and m.group(2) == "conv.weight"
    )
    from ._contentvec import parse_conv_layers

    layers = parse_conv_layers(kw["conv_feature_layers"])
    shapes = [(w.shape[0], w.shape[1]) for _, w in convs]
    if [(d, k) for d, k, _ in layers] != shapes:
        raise WeightsFormatError(
            f"conv_feature_layers {layers} do not match the checkpoint's conv weights (dim, kernel) {shapes}"
        )
    kw["conv_feature_layers"] = repr(layers)
    kw["conv_bias"] = any(k.endswith(".conv.bias") for k in weights)
    return kw


def import_hubert(
    pt_path: str | os.PathLike[str], out_path: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Convert RVC's ``hubert_base.pt`` (fairseq HuBERT/ContentVec) to mlx-contentvec safetensors.

    The output holds the mlx-contentvec tensors, ``final_proj.weight``/``final_proj.bias`` (what
    v1 models need) and the constructor kwargs in the metadata key ``contentvec_kwargs``. It is
    written atomically (temp file + rename); an existing file is replaced only with
    ``overwrite=True``. Nothing in the checkpoint is executed.

    Raises:
        WeightsNotFoundError: ``pt_path`` does not exist.
        WeightsFormatError: not a fairseq HuBERT checkpoint (or unsafe: it names code to run).
        OutputExistsError: ``out_path`` exists and ``overwrite`` is False.
    """
    from safetensors.numpy import save_file

    from rvc_pth import CheckpointNotFoundError, PthError, read_pth

    src, dst = Path(pt_path).expanduser(), Path(out_path).expanduser()
    if dst.exists() and not overwrite:
        raise OutputExistsError(f"{dst} exists; pass overwrite=True (--force) to replace it")
    if not dst.parent.is_dir():
        raise WeightsNotFoundError(f"output folder {dst.parent} does not exist")
    try:
        ckpt = read_pth(src, inert=_inert)
    except CheckpointNotFoundError:
        raise WeightsNotFoundError(f"HuBERT checkpoint {src} does not exist; expected RVC's hubert_base.pt") from None
    except PthError as exc:
        raise WeightsFormatError(f"{src}: {exc}") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise WeightsFormatError(
            f"{src} is not a fairseq checkpoint (expected a dict with a 'model' state dict, like RVC's hubert_base.pt)"
        )
    weights = fairseq_to_mlx(ckpt["model"])
    if "final_proj.weight" not in weights:
        raise WeightsFormatError(f"{src} has no final_proj (768 -> 256): it is not RVC's hubert_base.pt")
    kw = infer_kwargs(weights, _model_config(ckpt))
    _check_against_model(src, weights, kw)
    meta = {"format": "mlx-contentvec", "contentvec_kwargs": json.dumps(kw), "source": src.name}
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part", dir=dst.parent)
    os.close(fd)
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, tmp, metadata=meta)
        if dst.exists() and not overwrite:  # appeared meanwhile
            raise OutputExistsError(f"{dst} exists; pass overwrite=True (--force) to replace it")
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    logger.info("imported %s -> %s (%d tensors)", src, dst, len(weights))
    return dst


def _check_against_model(src: Path, weights: dict[str, np.ndarray], kw: dict[str, Any]) -> None:
    """The converted tensors must be exactly mlx-contentvec's (names and shapes)."""
    from mlx.utils import tree_flatten
    from mlx_contentvec import ContentvecModel

    expected = {k: tuple(v.shape) for k, v in tree_flatten(ContentvecModel(**kw).parameters())}
    got = {k: tuple(v.shape) for k, v in weights.items() if not k.startswith("final_proj.")}
    if got != expected:
        missing = sorted(set(expected) - set(got))[:4]
        extra = sorted(set(got) - set(expected))[:4]
        bad = [k for k in set(got) & set(expected) if got[k] != expected[k]][:4]
        raise WeightsFormatError(
            f"{src}: the converted tensors do not fit a ContentVec of {kw['encoder_layers']} layers x "
            f"{kw['encoder_embed_dim']} (missing {missing}, unexpected {extra}, wrong shape {bad})"
        )
