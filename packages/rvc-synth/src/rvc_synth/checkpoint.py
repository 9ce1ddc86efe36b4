"""Reading RVC checkpoints of every kind users have into (config, weights, metadata)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import rvc_pth

from .config import SynthConfig, derive_config
from .errors import CheckpointNotFoundError, UnsafeCheckpointError, UnsupportedCheckpointError

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
_HIFIGAN = {"hifi-gan", "hifigan", "hifi_gan"}


@dataclass
class Checkpoint:
    """A checkpoint's parsed content: weights are raw (checkpoint keys, PyTorch layouts)."""

    config: SynthConfig
    weights: dict[str, np.ndarray]
    metadata: dict[str, Any] = field(default_factory=dict)
    converted: bool = False  # True for a converted folder (weights already sanitized)

    @property
    def stored_dtype(self) -> str:
        """The floating dtype the file stores its weights in: ``"float32"``, ``"float16"``...,
        or ``"mixed (float16, float32)"``. Loading casts them to the dtype asked for."""
        names = sorted({str(v.dtype) for v in self.weights.values() if np.issubdtype(v.dtype, np.floating)})
        if len(names) == 1:
            return names[0]
        return f"mixed ({', '.join(names)})" if names else "none"


def _plain(v: Any) -> Any:
    """Metadata values as JSON-friendly plain data (arrays summarised)."""
    if isinstance(v, np.ndarray):
        return v.tolist() if v.size <= 16 else f"<array {v.dtype} {list(v.shape)}>"
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return str(v)


def _tensors(d: Any, what: str) -> dict[str, np.ndarray]:
    if not isinstance(d, Mapping) or not d:
        raise UnsupportedCheckpointError(f"checkpoint '{what}' entry is not a non-empty state dict")
    out = {}
    for k, v in d.items():
        if not isinstance(k, str) or not isinstance(v, np.ndarray):
            raise UnsupportedCheckpointError(f"checkpoint '{what}' holds a non-tensor entry {k!r:.60}")
        out[k] = v
    return out


def parse_checkpoint(obj: Any, *, name: str = "checkpoint") -> Checkpoint:
    """Turn the unpickled content of an RVC ``.pth`` into a :class:`Checkpoint`.

    Inference format: ``weight``, ``config``, ``info``, ``sr``, ``f0``, ``version`` (+ Applio's
    extra keys, kept as metadata). Training format: ``model`` (+ ``iteration``,
    ``learning_rate``, ``optimizer``): the config is derived from the weight shapes.
    """
    if not isinstance(obj, Mapping):
        raise UnsupportedCheckpointError(f"{name}: holds a {type(obj).__name__}, expected an RVC model dict")
    vocoder = obj.get("vocoder")
    if vocoder is not None and str(vocoder).strip().lower() not in _HIFIGAN:
        raise UnsupportedCheckpointError(
            f"{name}: uses the '{vocoder}' vocoder; only HiFi-GAN (NSF) RVC models are supported"
        )
    if "weight" in obj:
        weights = _tensors(obj["weight"], "weight")
        if "config" not in obj:
            raise UnsupportedCheckpointError(f"{name}: has 'weight' but no 'config'; not an RVC voice model")
        version = str(obj.get("version", "v1"))
        has_f0 = bool(int(obj.get("f0", 1)))
        cfg = list(obj["config"]) if isinstance(obj["config"], (list, tuple)) else obj["config"]
        if isinstance(cfg, list) and len(cfg) == 18 and "emb_g.weight" in weights:
            cfg[-3] = int(weights["emb_g.weight"].shape[0])  # as the reference: speakers from emb_g
        config = SynthConfig.from_list(cfg, version=version, has_f0=has_f0)
        meta = {k: _plain(v) for k, v in obj.items() if k not in ("weight", "config")}
    elif "model" in obj:
        weights = _tensors(obj["model"], "model")
        config = derive_config(weights)  # uses enc_q.pre's shape (spectrogram bins) when present
        weights = {k: v for k, v in weights.items() if not k.startswith("enc_q.")}
        meta = {k: _plain(v) for k, v in obj.items() if k not in ("model", "optimizer")}
        meta["format"] = "training"
        logger.info("%s: training-format checkpoint; config derived from weight shapes", name)
    else:
        keys = ", ".join(sorted(map(str, obj))[:8])
        raise UnsupportedCheckpointError(
            f"{name}: has keys [{keys}], expected an RVC model ('weight' + 'config', or a training 'model')"
        )
    _check_consistent(config, weights, name)
    return Checkpoint(config=config, weights=weights, metadata=meta)


def _check_consistent(cfg: SynthConfig, w: Mapping[str, np.ndarray], name: str) -> None:
    phone = w.get("enc_p.emb_phone.weight")
    if phone is None or phone.ndim != 2:
        raise UnsupportedCheckpointError(f"{name}: no 'enc_p.emb_phone.weight'; not an RVC synthesizer")
    if phone.shape[1] != cfg.feature_dim:
        raise UnsupportedCheckpointError(
            f"{name}: says version {cfg.version} ({cfg.feature_dim}-d features) but its weights take "
            f"{phone.shape[1]}-d features"
        )
    if cfg.has_f0 != ("enc_p.emb_pitch.weight" in w):
        raise UnsupportedCheckpointError(
            f"{name}: says f0={int(cfg.has_f0)} but its weights {'lack' if cfg.has_f0 else 'have'} a pitch embedding"
        )


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a ``.pth`` (any RVC format) or a folder written by :func:`convert_checkpoint`."""
    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(f"model not found: {path} (expected an RVC .pth file or a converted folder)")
    if path.is_dir():
        return _read_folder(path)
    return parse_checkpoint(read_pth(path), name=path.name)


def read_pth(path: Path) -> Any:
    """``rvc_pth.read_pth`` (nothing in the file is executed), its errors as rvc-synth's."""
    try:
        return rvc_pth.read_pth(path)
    except rvc_pth.UnsafeCheckpointError as exc:
        raise UnsafeCheckpointError(str(exc)) from None
    except rvc_pth.CheckpointNotFoundError as exc:
        raise CheckpointNotFoundError(str(exc)) from None
    except rvc_pth.CheckpointFormatError as exc:
        raise UnsupportedCheckpointError(str(exc)) from None


def _read_folder(path: Path) -> Checkpoint:
    from safetensors.numpy import load_file

    cfg_path, w_path = path / CONFIG_FILE, path / WEIGHTS_FILE
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise CheckpointNotFoundError(
                f"{path} is a folder without {p.name}; expected a folder written by 'rvc export' or an RVC .pth file"
            )
    try:
        doc = json.loads(cfg_path.read_text())
        config = SynthConfig.from_dict(doc["config"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UnsupportedCheckpointError(f"{cfg_path}: not an rvc-synth config ({exc})") from None
    try:
        weights = load_file(str(w_path))
    except Exception as exc:  # safetensors raises its own error types
        raise UnsupportedCheckpointError(f"{w_path}: unreadable safetensors file ({exc})") from None
    return Checkpoint(config=config, weights=weights, metadata=doc.get("metadata", {}), converted=True)
