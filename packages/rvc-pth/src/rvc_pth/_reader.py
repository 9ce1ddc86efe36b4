"""The restricted unpickler: a torch-free, safe reader for PyTorch ``.pth``/``.pt`` checkpoints.

PyTorch checkpoints are pickles, and a pickle can run arbitrary code when loaded. This
reader never calls :func:`pickle.load` on the file's terms: it uses a restricted unpickler
whose only reachable globals are

* ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` -> rebuilt here as NumPy arrays,
* the storage types ``torch.{Float,Half,BFloat16,Long}Storage`` -> inert markers,
* ``collections.OrderedDict``,
* and, only when the caller's ``inert(module, name)`` accepts them, data-only
  :class:`Inert` placeholders (never the named class itself).

Any other global (``os.system``, ``builtins.eval``, ``torch.nn.Module``...) raises
:class:`UnsafeCheckpointError` naming it, before anything is called. Both the zip format
(PyTorch >= 1.6) and the legacy tar-less stream format are read.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .errors import (
    CheckpointFormatError,
    CheckpointNotFoundError,
    UnsafeCheckpointError,
)

__all__ = ["Inert", "read_pth"]

_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),  # widened to float32 after rebuilding
    "LongStorage": np.dtype("<i8"),
}


class _StorageType:
    """Inert stand-in for a ``torch.*Storage`` class named in the pickle."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


class _Storage:
    def __init__(self, data: np.ndarray, bfloat16: bool) -> None:
        self.data = data
        self.bfloat16 = bfloat16


def _rebuild_tensor_v2(storage: Any, offset: int, size: tuple, stride: tuple, *_: Any) -> np.ndarray:
    if not isinstance(storage, _Storage):
        raise CheckpointFormatError("malformed checkpoint: a tensor refers to no storage")
    data = storage.data
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if any(s < 0 for s in size) or any(s < 0 for s in stride) or offset < 0:
        raise CheckpointFormatError("malformed checkpoint: negative tensor size/stride/offset")
    last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset - 1
    if last >= data.size:
        raise CheckpointFormatError("malformed checkpoint: tensor extends past its storage")
    if not all(size):
        out = np.zeros(size, dtype=data.dtype)
    else:
        item = data.dtype.itemsize
        out = np.lib.stride_tricks.as_strided(
            data[offset:],
            shape=size,
            strides=tuple(s * item for s in stride),
            writeable=False,
        ).copy()
    if storage.bfloat16:
        out = (out.astype(np.uint32) << 16).view(np.float32)
    return out


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


_REBUILD: dict[tuple[str, str], Callable[..., Any]] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


def _allowed(module: str, name: str) -> Any:
    """The stand-in for an allowed global, or None. Functions and storage markers are fresh
    objects on every lookup, so a pickle's BUILD opcode (``setstate``) cannot alter anything
    shared with later loads; ``OrderedDict`` is a built-in type (its attributes are read-only)."""
    fn = _REBUILD.get((module, name))
    if fn is not None:
        return lambda *args: fn(*args)
    if (module, name) == ("collections", "OrderedDict"):
        return collections.OrderedDict
    if module == "torch" and name in _STORAGE_DTYPES:
        return _StorageType(name)
    return None


class Inert:
    """Inert stand-in for an object of a non-tensor class (e.g. a fairseq config).

    Records what the pickle says about it (``module``, ``name``, constructor ``args``,
    ``state``) and does nothing else: no code of the named class ever runs.
    """

    module = name = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<inert {self.module}.{self.name}>"


def _inert_class(module: str, name: str) -> type:
    return type(name, (Inert,), {"module": module, "name": name})


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(
        self,
        file: BinaryIO,
        load_storage: Callable[[tuple], _Storage],
        inert: Callable[[str, str], bool] | None = None,
    ) -> None:
        super().__init__(file)
        self._load_storage = load_storage
        self._inert = inert

    def find_class(self, module: str, name: str) -> Any:
        found = _allowed(module, name)
        if found is not None:
            return found
        if self._inert is not None and self._inert(module, name):
            return _inert_class(module, name)
        raise UnsafeCheckpointError(
            f"refused to load: the checkpoint's pickle asks for '{module}.{name}', which is not "
            "a tensor or a plain container; model weights never need it, so this file is not "
            "a plain weights checkpoint (it may be malicious). Nothing in it was executed."
        )

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise CheckpointFormatError(f"malformed checkpoint: unknown persistent id {pid!r:.80}")
        return self._load_storage(pid)


def _unpickle(
    data: bytes | BinaryIO,
    load_storage: Callable[[tuple], _Storage],
    inert: Callable[[str, str], bool] | None = None,
) -> Any:
    f = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        return _RestrictedUnpickler(f, load_storage, inert).load()
    except (UnsafeCheckpointError, CheckpointFormatError):
        raise
    except Exception as exc:  # noqa: BLE001 - truncated / corrupt pickle stream
        raise CheckpointFormatError(f"malformed checkpoint pickle ({type(exc).__name__}: {exc})") from None


def _storage_type(pid: tuple) -> _StorageType:
    st = pid[1] if len(pid) > 1 else None
    if not isinstance(st, _StorageType):
        raise CheckpointFormatError(f"malformed checkpoint: bad storage reference {pid!r:.80}")
    return st


def _read_zip(path: Path, inert: Callable[[str, str], bool] | None = None) -> Any:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if not pkl:
            raise CheckpointFormatError(f"{path.name}: zip archive without a '<folder>/data.pkl' member")
        prefix = pkl[0][: -len("data.pkl")]
        cache: dict[str, _Storage] = {}

        def load_storage(pid: tuple) -> _Storage:
            st = _storage_type(pid)
            key = str(pid[2])
            if key not in cache:
                member = f"{prefix}data/{key}"
                if member not in names:
                    raise CheckpointFormatError(f"malformed checkpoint: storage '{member}' missing")
                raw = zf.read(member)
                usable = len(raw) // st.dtype.itemsize * st.dtype.itemsize
                cache[key] = _Storage(
                    np.frombuffer(raw[:usable], dtype=st.dtype),
                    st.name == "BFloat16Storage",
                )
            return cache[key]

        return _unpickle(zf.read(pkl[0]), load_storage, inert)


class _LazyTensor:
    """A tensor of a legacy checkpoint, whose storage bytes come after the pickle."""

    def __init__(self, args: tuple) -> None:
        self.args = args


def _materialize(o: Any) -> Any:
    if isinstance(o, _LazyTensor):
        return _rebuild_tensor_v2(*o.args)
    if isinstance(o, dict):
        return type(o)((k, _materialize(v)) for k, v in o.items())
    if isinstance(o, (list, tuple)):
        return type(o)(_materialize(v) for v in o)
    return o


class _LegacyUnpickler(_RestrictedUnpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda *args: _LazyTensor(args)
        return super().find_class(module, name)


def _read_legacy(f: BinaryIO, inert: Callable[[str, str], bool] | None = None) -> Any:
    """Pre-1.6 format: magic, protocol, sys_info, main pickle, storage keys, raw storages."""

    def no_storage(pid: tuple) -> _Storage:
        raise CheckpointFormatError("malformed legacy checkpoint header")

    if _unpickle(f, no_storage) != 0x1950A86A20F9469CFC6C:
        raise CheckpointFormatError("not a PyTorch checkpoint (bad magic number)")
    _unpickle(f, no_storage)  # protocol version
    _unpickle(f, no_storage)  # sys info
    storages: dict[str, tuple[_Storage, int]] = {}

    def defer(pid: tuple) -> _Storage:
        st = _storage_type(pid)
        key = str(pid[2])
        if key not in storages:
            storages[key] = (
                _Storage(np.zeros(0, st.dtype), st.name == "BFloat16Storage"),
                int(pid[4]),
            )
        return storages[key][0]

    try:
        obj = _LegacyUnpickler(f, defer, inert).load()
    except (UnsafeCheckpointError, CheckpointFormatError):
        raise
    except Exception as exc:  # noqa: BLE001 - any other corrupt stream
        raise CheckpointFormatError(f"malformed legacy checkpoint pickle ({exc})") from None
    keys = _unpickle(f, no_storage)
    for key in keys if isinstance(keys, list) else []:
        if str(key) not in storages:
            raise CheckpointFormatError("malformed legacy checkpoint: unknown storage key")
        storage, numel = storages[str(key)]
        head = f.read(8)
        n = struct.unpack("<q", head)[0] if len(head) == 8 else -1
        raw = f.read(max(n, 0) * storage.data.dtype.itemsize)
        if n != numel or len(raw) != n * storage.data.dtype.itemsize:
            raise CheckpointFormatError("malformed legacy checkpoint: truncated storage")
        storage.data = np.frombuffer(raw, dtype=storage.data.dtype)
    return _materialize(obj)


def read_pth(path: str | Path, *, inert: Callable[[str, str], bool] | None = None) -> Any:
    """Read a PyTorch checkpoint without torch and without executing anything in it.

    ``inert(module, name)`` may accept further globals: they become :class:`Inert`
    placeholders (data only, never executed), as needed for fairseq's config objects in
    ``hubert_base.pt``. RVC voice models, CREPE and FCPE weights need none.

    Returns the pickled object with every tensor as a NumPy array (float32, float16 or
    int64; bfloat16 is widened to float32). Raises :class:`UnsafeCheckpointError` for a
    pickle that names any other global and :class:`CheckpointFormatError` for a file
    that is not a (readable) PyTorch checkpoint, :class:`CheckpointNotFoundError` for a
    missing path.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(f"checkpoint file not found: {path}")
    if path.is_dir():
        raise CheckpointFormatError(f"{path} is a folder; expected a PyTorch .pth/.pt checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointFormatError(f"{path} is empty (0 bytes); expected a PyTorch .pth/.pt checkpoint")
    if zipfile.is_zipfile(path):
        try:
            return _read_zip(path, inert)
        except zipfile.BadZipFile as exc:
            raise CheckpointFormatError(f"{path}: corrupt zip checkpoint ({exc})") from None
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(0)
        if len(head) < 2 or head[0] != 0x80:
            raise CheckpointFormatError(
                f"{path} is not a PyTorch checkpoint (neither a zip archive nor a pickle); "
                "expected a .pth/.pt file written by torch.save"
            )
        return _read_legacy(f, inert)
