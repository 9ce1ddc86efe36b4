"""The page's server-side state: where models and extractor weights are, and the loaded voices."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["ConverterCache", "Settings"]

MODELS_ENV = "RVC_MODELS_DIR"


def default_models_dir() -> Path:
    """``$RVC_MODELS_DIR``, else ``./models``."""
    return Path(os.environ.get(MODELS_ENV) or "models").expanduser()


@dataclass(frozen=True)
class Settings:
    """What the page works with.

    Attributes:
        models_dir: the voices folder: ``.pth`` files, ``rvc export`` folders and ``.index``
            files (searched one level deep, so ``voice/voice.pth`` + ``voice/voice.index`` work).
        contentvec: ContentVec weights (.safetensors); None = ``$RVC_CONTENTVEC_WEIGHTS`` or the
            Hugging Face cache, as :func:`rvc_convert.weights.resolve_weights`.
        rmvpe: RMVPE weights; None = ``$RVC_RMVPE_WEIGHTS`` or the cache.
        output_dir: where converted files are written (the browser downloads them from there);
            None = ``rvc-ui-<pid>`` in the system's temp directory.
        max_loaded: how many voices stay loaded at once (least recently used dropped first).
    """

    models_dir: Path = field(default_factory=default_models_dir)
    contentvec: Path | None = None
    rmvpe: Path | None = None
    output_dir: Path | None = None
    max_loaded: int = 2

    def __post_init__(self) -> None:
        for name in ("models_dir", "contentvec", "rmvpe", "output_dir"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value).expanduser())
        if self.output_dir is None:
            object.__setattr__(self, "output_dir", Path(tempfile.gettempdir()) / f"rvc-ui-{os.getpid()}")

    def outputs(self) -> Path:
        """The output folder, created on first use."""
        assert self.output_dir is not None
        self.output_dir.mkdir(parents=True, exist_ok=True)
        return self.output_dir


class ConverterCache:
    """Loaded ``VoiceConverter`` objects keyed by ``(model, index, contentvec, rmvpe)``.

    A voice is loaded once and reused by every later conversion with the same files; at most
    ``max_loaded`` stay in memory. Thread-safe: two browser tabs asking for the same voice get the
    same converter (which itself serialises its conversions with a lock).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._items: OrderedDict[tuple[str, ...], Any] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # how many converters were built (tests read it)

    def get(self, model: str | os.PathLike[str], index: str | os.PathLike[str] | None = None) -> Any:
        """The converter of ``model`` (a .pth or an exported folder) with ``index`` (or None)."""
        from rvc_convert import VoiceConverter

        s = self.settings
        key = tuple(str(Path(p).resolve()) if p else "" for p in (model, index, s.contentvec, s.rmvpe))
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            logger.info("loading voice %s (index %s)", model, index or "none")
            vc = VoiceConverter(
                Path(model), index=Path(index) if index else None, contentvec=s.contentvec, rmvpe=s.rmvpe
            )
            self.loads += 1
            self._items[key] = vc
            while len(self._items) > max(1, s.max_loaded):
                self._items.popitem(last=False)
            return vc

    def clear(self) -> None:
        """Forget every loaded voice (after a model file was replaced)."""
        with self._lock:
            self._items.clear()
