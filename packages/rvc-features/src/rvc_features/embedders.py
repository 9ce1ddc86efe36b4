"""Applio's content embedders: Hugging Face ``HubertModel`` folders, loaded without torch into the
MLX HuBERT network (mlx-contentvec's ``ContentvecModel``, run by :class:`rvc_features.ContentVec`).

>>> from rvc_features import load_embedder
>>> emb = load_embedder("japanese-hubert-base")       # or a folder: load_embedder("my_embedder/")
>>> feats = emb(audio_16k, version="v2")              # (n, 768): hidden_states[12]

A folder holds ``config.json`` and the weights: ``model.safetensors`` or ``pytorch_model.bin``
(read with rvc-pth's restricted unpickler; nothing in the file runs). The positional conv's
weight norm may be spelt ``weight_g``/``weight_v`` or ``parametrizations.weight.original0/1``,
in either container. ``final_proj.*`` in the same file (Applio's ``HubertModelWithFinalProj``)
is the v1 projection. Outputs as the reference RVC: v2 = ``hidden_states[12]`` (the last layer),
v1 = ``final_proj(hidden_states[9])``.

Named embedders (:data:`EMBEDDERS`) are Applio's folders on the Hugging Face repo
``IAHispano/Applio`` (``Resources/embedders/<folder>/``), resolved through
``rvc_runtime.resolve_weights`` (Hugging Face cache, else a download).

transformers name -> fairseq name (then :mod:`rvc_features._hubert`'s fairseq -> MLX mapping):

=========================================================  ==========================================
``feature_extractor.conv_layers.{i}.conv.weight``           ``feature_extractor.conv_layers.{i}.0.weight``
``feature_extractor.conv_layers.0.layer_norm.*`` (GroupNorm)  ``feature_extractor.conv_layers.0.2.*``
``feature_projection.layer_norm.*``                         ``layer_norm.*``
``feature_projection.projection.*``                         ``post_extract_proj.*``
``encoder.pos_conv_embed.conv.*``                           ``encoder.pos_conv.0.*``
``encoder.layers.{i}.attention.*``                          ``encoder.layers.{i}.self_attn.*``
``encoder.layers.{i}.layer_norm.*``                         ``encoder.layers.{i}.self_attn_layer_norm.*``
``encoder.layers.{i}.feed_forward.intermediate_dense.*``    ``encoder.layers.{i}.fc1.*``
``encoder.layers.{i}.feed_forward.output_dense.*``          ``encoder.layers.{i}.fc2.*``
``masked_spec_embed``                                       dropped (training only)
=========================================================  ==========================================
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .errors import WeightsFormatError, WeightsNotFoundError

logger = logging.getLogger(__name__)

__all__ = ["EMBEDDERS", "HF_REPO", "embedder_files", "embedder_specs", "load_embedder"]

HF_REPO = "IAHispano/Applio"
# name -> Applio's folder under Resources/embedders/ (rvc/lib/utils.py load_embedding)
EMBEDDERS: dict[str, str] = {
    "contentvec": "contentvec",
    "spin": "spin",
    "spin-v2": "spin-v2",
    "chinese-hubert-base": "chinese_hubert_base",
    "japanese-hubert-base": "japanese_hubert_base",
    "korean-hubert-base": "korean_hubert_base",
}
FILES = ("config.json", "pytorch_model.bin")  # what Applio's folders hold
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # in this order of preference
LAYOUT = (
    "a Hugging Face HuBERT folder: config.json plus model.safetensors or pytorch_model.bin "
    "(as Applio's embedders, or transformers' save_pretrained, write it)"
)

# config.json key -> (HubertConfig default, what RVC's HuBERT-base family uses)
_DEFAULTS: dict[str, Any] = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "conv_dim": [512] * 7,
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_bias": False,
    "feat_extract_norm": "group",
    "feat_extract_activation": "gelu",
    "hidden_act": "gelu",
    "feat_proj_layer_norm": True,
    "do_stable_layer_norm": False,
    "conv_pos_batch_norm": False,
    "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16,
    "layer_norm_eps": 1e-5,
}
# settings of other HuBERT/wav2vec2 variants that the network here does not implement
_SUPPORTED: dict[str, Any] = {
    k: _DEFAULTS[k]
    for k in (
        "feat_extract_norm",
        "feat_extract_activation",
        "hidden_act",
        "feat_proj_layer_norm",
        "do_stable_layer_norm",
        "conv_pos_batch_norm",
    )
}


def embedder_specs(name: str) -> list[Any]:
    """The ``rvc_runtime.WeightsSpec`` of each file of the named embedder (config.json, pytorch_model.bin)."""
    from rvc_runtime import WeightsSpec

    if name not in EMBEDDERS:
        raise WeightsFormatError(
            f"unknown embedder {name!r}; expected one of {', '.join(EMBEDDERS)}, or the path of {LAYOUT}"
        )
    folder = EMBEDDERS[name]
    env = "RVC_" + re.sub(r"\W", "_", name.upper()) + "_EMBEDDER"
    return [
        WeightsSpec(
            f"{name} embedder {f}",
            HF_REPO,
            f"Resources/embedders/{folder}/{f}",
            env,
            option="embedder",
            cli="--embedder",
            expected=LAYOUT,
        )
        for f in FILES
    ]


def embedder_files(name: str, *, download: bool = True) -> Path:
    """The local folder of the named embedder (Hugging Face cache; downloaded when missing and
    ``download``), holding ``config.json`` and ``pytorch_model.bin``.

    Raises:
        ValueError: ``name`` is not one of :data:`EMBEDDERS`.
        WeightsNotFoundError: not cached and not downloadable (offline): one line saying so.
    """
    import rvc_runtime.errors
    from rvc_runtime import resolve_weights

    paths = []
    for spec in embedder_specs(name):
        try:
            paths.append(resolve_weights(spec, download=download, use_env=False))
        except rvc_runtime.errors.WeightsNotFoundError as exc:
            raise WeightsNotFoundError(
                f"embedder {name!r} ({HF_REPO}/Resources/embedders/{EMBEDDERS[name]}/) is not in the Hugging Face "
                f"cache and could not be fetched ({exc.reason}); run `rvc models download --embedder {name}` while "
                f"online, or pass the path of a local copy ({LAYOUT}) instead of the name"
            ) from None
    if paths[0].parent != paths[1].parent:  # the Hub cache keeps a repo folder's files together
        raise WeightsFormatError(f"embedder {name!r}: config.json and weights resolved to different folders {paths}")
    return paths[0].parent


def _hf_to_fairseq(key: str) -> str | None:
    """A transformers HuBERT tensor name -> its fairseq name (None: training-only, dropped)."""
    if key == "masked_spec_embed":
        return None
    rules = (
        (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
        (r"^feature_extractor\.conv_layers\.0\.layer_norm\.", "feature_extractor.conv_layers.0.2."),
        (r"^feature_projection\.layer_norm\.", "layer_norm."),
        (r"^feature_projection\.projection\.", "post_extract_proj."),
        (r"^encoder\.pos_conv_embed\.conv\.", "encoder.pos_conv.0."),
        (r"^(encoder\.layers\.\d+)\.attention\.", r"\1.self_attn."),
        (r"^(encoder\.layers\.\d+)\.layer_norm\.", r"\1.self_attn_layer_norm."),
        (r"^(encoder\.layers\.\d+)\.feed_forward\.intermediate_dense\.", r"\1.fc1."),
        (r"^(encoder\.layers\.\d+)\.feed_forward\.output_dense\.", r"\1.fc2."),
    )
    for pattern, repl in rules:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    return key  # encoder.layer_norm, encoder.layers.i.final_layer_norm, final_proj: the same names


def _config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsFormatError(f"embedder config {path} is not readable JSON ({exc}); expected {LAYOUT}") from None
    if not isinstance(cfg, dict):
        raise WeightsFormatError(f"embedder config {path} holds a {type(cfg).__name__}; expected a JSON object")
    if cfg.get("model_type", "hubert") != "hubert":
        raise WeightsFormatError(
            f"embedder {folder}: config.json says model_type={cfg.get('model_type')!r}; expected 'hubert' "
            "(HuBERT/ContentVec-family models, as Applio's embedders)"
        )
    out = {k: cfg.get(k, d) for k, d in _DEFAULTS.items()}
    bad = [f"{k}={out[k]!r}" for k, want in _SUPPORTED.items() if out[k] != want]
    if bad:
        raise WeightsFormatError(
            f"embedder {folder}: config.json has {', '.join(bad)}, a HuBERT variant (e.g. HuBERT-large) that is not "
            "supported; expected a HuBERT-base-family config ("
            + ", ".join(f"{k}={v!r}" for k, v in _SUPPORTED.items())
            + ")"
        )
    if not (isinstance(out["layer_norm_eps"], (int, float)) and abs(out["layer_norm_eps"] - 1e-5) < 1e-9):
        raise WeightsFormatError(f"embedder {folder}: layer_norm_eps={out['layer_norm_eps']!r}; expected 1e-05")
    return out


def _kwargs(folder: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """transformers' HubertConfig -> ContentvecModel kwargs."""
    from ._contentvec import BASE_KWARGS

    ints = (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "num_conv_pos_embeddings",
        "num_conv_pos_embedding_groups",
    )
    for key in ints:
        v = cfg[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise WeightsFormatError(f"embedder {folder}: config.json {key}={v!r}; expected a positive integer")
    convs = [cfg["conv_dim"], cfg["conv_kernel"], cfg["conv_stride"]]
    if not (
        all(isinstance(c, list) and c and all(isinstance(x, int) and x > 0 for x in c) for c in convs)
        and len({len(c) for c in convs}) == 1
    ):
        raise WeightsFormatError(
            f"embedder {folder}: config.json conv_dim/conv_kernel/conv_stride = {convs}; expected three lists of "
            "positive integers of one length"
        )
    if cfg["hidden_size"] % cfg["num_attention_heads"] or cfg["hidden_size"] % cfg["num_conv_pos_embedding_groups"]:
        raise WeightsFormatError(
            f"embedder {folder}: hidden_size {cfg['hidden_size']} is not divisible by num_attention_heads "
            f"{cfg['num_attention_heads']} and num_conv_pos_embedding_groups {cfg['num_conv_pos_embedding_groups']}"
        )
    if not isinstance(cfg["conv_bias"], bool):
        raise WeightsFormatError(f"embedder {folder}: config.json conv_bias={cfg['conv_bias']!r}; expected true/false")
    kw = dict(BASE_KWARGS)
    kw.update(
        conv_feature_layers=repr(list(zip(*convs))),
        conv_bias=cfg["conv_bias"],
        extractor_mode="default",
        encoder_embed_dim=cfg["hidden_size"],
        encoder_ffn_embed_dim=cfg["intermediate_size"],
        encoder_attention_heads=cfg["num_attention_heads"],
        encoder_layers=cfg["num_hidden_layers"],
        conv_pos=cfg["num_conv_pos_embeddings"],
        conv_pos_groups=cfg["num_conv_pos_embedding_groups"],
        layer_norm_first=False,
    )
    return kw


def _read_weights(folder: Path) -> tuple[Path, dict[str, np.ndarray]]:
    found = [folder / f for f in WEIGHT_FILES if (folder / f).is_file()]
    if not found:
        have = sorted(p.name for p in folder.iterdir())[:8]
        raise WeightsNotFoundError(
            f"embedder folder {folder} has no model.safetensors or pytorch_model.bin "
            f"(found: {', '.join(have) or 'nothing'}); expected {LAYOUT}"
        )
    path = found[0]
    if path.suffix == ".safetensors":
        import mlx.core as mx

        try:
            loaded = mx.load(str(path), format="safetensors")
        except Exception as exc:
            raise WeightsFormatError(f"embedder weights {path} are not a readable safetensors file ({exc})") from None
        return path, {k: np.array(v.astype(mx.float32)) for k, v in loaded.items()}
    import rvc_pth

    try:
        obj = rvc_pth.read_pth(path)
    except rvc_pth.CheckpointNotFoundError:
        raise WeightsNotFoundError(f"embedder weights {path} do not exist") from None
    except rvc_pth.PthError as exc:
        raise WeightsFormatError(f"embedder weights {path}: {exc}") from None
    if isinstance(obj, dict) and not any(isinstance(v, np.ndarray) for v in obj.values()):
        obj = obj.get("state_dict", obj.get("model", obj))  # a wrapped state dict
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise WeightsFormatError(
            f"embedder weights {path} hold a {type(obj).__name__}, not a state dict of tensors; expected "
            "transformers' HubertModel weights (save_pretrained or torch.save(model.state_dict()))"
        )
    return path, {str(k): v for k, v in obj.items()}


def _to_mlx(folder: Path, path: Path, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from ._hubert import fairseq_to_mlx

    if state and all(k.startswith("hubert.") for k in state if not k.startswith("final_proj.")):
        state = {k.removeprefix("hubert."): v for k, v in state.items()}  # HubertFor... wrappers
    fairseq: dict[str, np.ndarray] = {}
    for key, val in state.items():
        new = _hf_to_fairseq(key)
        if new is not None:
            fairseq[new] = val
    if "encoder.pos_conv.0.weight" in fairseq:
        raise WeightsFormatError(
            f"embedder weights {path}: the positional conv has a plain weight (no weight norm g/v); expected "
            "weight_g/weight_v or parametrizations.weight.original0/1"
        )
    try:
        return fairseq_to_mlx(fairseq)
    except WeightsFormatError as exc:
        msg = str(exc).replace("not a fairseq HuBERT/ContentVec state dict", f"embedder weights {path}: not HuBERT")
        raise WeightsFormatError(f"{msg}; expected transformers' HubertModel tensors ({LAYOUT})") from None


_CACHE: dict[tuple, Any] = {}
_LOCK = threading.Lock()


def _folder_of(name_or_path: str | os.PathLike[str], download: bool) -> Path:
    if isinstance(name_or_path, str) and name_or_path in EMBEDDERS:
        return embedder_files(name_or_path, download=download)
    p = Path(name_or_path).expanduser()
    if p.is_file() and p.name in (*WEIGHT_FILES, "config.json"):
        p = p.parent
    if not p.exists():
        raise WeightsNotFoundError(
            f"embedder {str(name_or_path)!r} is neither a known name ({', '.join(EMBEDDERS)}) nor an existing "
            f"path; expected a name or {LAYOUT}"
        )
    if not p.is_dir() or not (p / "config.json").is_file():
        found = "a file" if p.is_file() else "a folder without config.json"
        raise WeightsFormatError(f"embedder {p} is {found}; expected {LAYOUT}")
    return p


def load_embedder(name_or_path: str | os.PathLike[str], *, download: bool = True) -> Any:
    """Load (once per folder and file version) a HuBERT-family embedder as a :class:`ContentVec`.

    Args:
        name_or_path: one of :data:`EMBEDDERS` (Applio's folders on ``IAHispano/Applio``, from the
            Hugging Face cache, downloaded when missing and ``download``), or a local folder
            (Applio's custom embedders) holding ``config.json`` and ``model.safetensors`` or
            ``pytorch_model.bin`` (or the path of one of those files).

    Returns:
        a :class:`rvc_features.ContentVec`: ``emb(audio_16k, version="v2")`` -> (n, hidden_size)
        ``hidden_states[num_hidden_layers]``; ``version="v1"`` -> ``final_proj(hidden_states[9])``
        (needs ``final_proj.*`` in the weights file); ``emb.hidden(audio, output_layer=i)``.

    Raises:
        WeightsNotFoundError: no such name/folder, no weights file, not cached and offline.
        WeightsFormatError: malformed or unsupported config/weights (one line: what was found,
            what is expected).
    """
    folder = _folder_of(name_or_path, download)
    cfg = _config(folder)
    kw = _kwargs(folder, cfg)
    files = [folder / "config.json"] + [folder / f for f in WEIGHT_FILES if (folder / f).is_file()][:1]
    key = (str(folder.resolve()),) + tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        from ._contentvec import build

        path, state = _read_weights(folder)
        arrays = _to_mlx(folder, path, state)
        emb = build(arrays, kw, folder, what="embedder", hint=f"the weights do not fit config.json; expected {LAYOUT}")
        emb.v1_hint = (
            "this embedder's weights file has no final_proj.weight/final_proj.bias (Applio's HubertModelWithFinalProj "
            "saves them); use an embedder with final_proj for v1 models, or a v2 model"
        )
        _CACHE[key] = emb
    return emb
