"""A torch-free, safe reader for the PyTorch ``.pth``/``.pt`` files of CREPE and FCPE.

Trimmed copy of ``rvc_synth/pth.py`` (``read_pth``; rvc-f0 may not import another stage): the
same restricted unpickler, without the ``inert`` placeholders (these files hold only tensors,
dicts, lists and numbers) and without bfloat16 storages. The only globals a pickle may name are

* ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` -> rebuilt here as NumPy arrays,
* the storage types ``torch.{Float,Half,Long}Storage`` -> inert markers,
* ``collections.OrderedDict``.

Any other global (``os.system``, ``builtins.eval``, ``torch.nn.Module``...) raises
:class:`UnsafeWeightsError` naming it before anything is called. Both the zip format
(PyTorch >= 1.6) and the legacy stream format are read.
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

from .errors import UnsafeWeightsError, WeightsFormatError

_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
}


class _StorageType:
    """Inert stand-in for a ``torch.*Storage`` class named in the pickle."""

    def __init__(self, name: str) -> None:
        self.dtype = _STORAGE_DTYPES[name]


class _Storage:
    def __init__(self, data: np.ndarray) -> None:
        self.data = data


def _bad(what: str) -> WeightsFormatError:
    return WeightsFormatError(f"malformed PyTorch checkpoint: {what}")


def _rebuild_tensor_v2(storage: Any, offset: int, size: tuple, stride: tuple, *_: Any) -> np.ndarray:
    if not isinstance(storage, _Storage):
        raise _bad("a tensor refers to no storage")
    data = storage.data
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if any(s < 0 for s in size) or any(s < 0 for s in stride) or offset < 0:
        raise _bad("negative tensor size/stride/offset")
    if not all(size):
        return np.zeros(size, dtype=data.dtype)
    if offset + sum((n - 1) * s for n, s in zip(size, stride)) >= data.size:
        raise _bad("a tensor extends past its storage")
    item = data.dtype.itemsize
    return np.lib.stride_tricks.as_strided(
        data[offset:], shape=size, strides=tuple(s * item for s in stride), writeable=False
    ).copy()


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): lambda data, *_: data,
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, load_storage: Callable[[tuple], _Storage]) -> None:
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle API
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeWeightsError(
                f"refused to load: the checkpoint's pickle asks for '{module}.{name}', which is not a tensor "
                "or a plain container; CREPE/FCPE weights never need it, so this is not a plain weights file "
                "(it may be malicious). Nothing in it was executed."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise _bad(f"unknown persistent id {pid!r:.80}")
        return self._load_storage(pid)


def _unpickle(
    data: bytes | BinaryIO, load_storage: Callable[[tuple], _Storage], cls: type = _RestrictedUnpickler
) -> Any:
    f = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        return cls(f, load_storage).load()
    except WeightsFormatError:
        raise
    except Exception as exc:  # truncated / corrupt pickle stream
        raise _bad(f"{type(exc).__name__}: {exc}") from None


def _storage_type(pid: tuple) -> _StorageType:
    st = pid[1] if len(pid) > 1 else None
    if not isinstance(st, _StorageType):
        raise _bad(f"bad storage reference {pid!r:.80}")
    return st


def _read_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if not pkl:
            raise _bad(f"{path.name}: zip archive without a '<folder>/data.pkl' member")
        prefix = pkl[0][: -len("data.pkl")]
        cache: dict[str, _Storage] = {}

        def load_storage(pid: tuple) -> _Storage:
            st = _storage_type(pid)
            key = str(pid[2])
            if key not in cache:
                member = f"{prefix}data/{key}"
                if member not in names:
                    raise _bad(f"storage '{member}' missing")
                raw = zf.read(member)
                usable = len(raw) // st.dtype.itemsize * st.dtype.itemsize
                cache[key] = _Storage(np.frombuffer(raw[:usable], dtype=st.dtype))
            return cache[key]

        return _unpickle(zf.read(pkl[0]), load_storage)


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


def _read_legacy(f: BinaryIO) -> Any:
    """Pre-1.6 format: magic, protocol, sys_info, main pickle, storage keys, raw storages."""

    def no_storage(pid: tuple) -> _Storage:
        raise _bad("legacy header refers to a storage")

    if _unpickle(f, no_storage) != 0x1950A86A20F9469CFC6C:
        raise _bad("bad magic number (not a PyTorch checkpoint)")
    _unpickle(f, no_storage)  # protocol version
    _unpickle(f, no_storage)  # sys info
    storages: dict[str, tuple[_Storage, int]] = {}

    def defer(pid: tuple) -> _Storage:
        st = _storage_type(pid)
        key = str(pid[2])
        if key not in storages:
            storages[key] = (_Storage(np.zeros(0, st.dtype)), int(pid[4]))
        return storages[key][0]

    obj = _unpickle(f, defer, _LegacyUnpickler)
    keys = _unpickle(f, no_storage)
    for key in keys if isinstance(keys, list) else []:
        if str(key) not in storages:
            raise _bad("unknown legacy storage key")
        storage, numel = storages[str(key)]
        head = f.read(8)
        n = struct.unpack("<q", head)[0] if len(head) == 8 else -1
        raw = f.read(max(n, 0) * storage.data.dtype.itemsize)
        if n != numel or len(raw) != n * storage.data.dtype.itemsize:
            raise _bad("truncated legacy storage")
        storage.data = np.frombuffer(raw, dtype=storage.data.dtype)
    return _materialize(obj)


def read_pth(path: Path) -> Any:
    """Read a PyTorch checkpoint without torch and without executing anything in it.

    Returns the pickled object with every tensor as a NumPy array (float32, float16 or int64).
    Raises :class:`UnsafeWeightsError` for a pickle naming any other global and
    :class:`WeightsFormatError` for a file that is not a (readable) PyTorch checkpoint. The
    caller checks that ``path`` is an existing file.
    """
    if path.stat().st_size == 0:
        raise WeightsFormatError(f"{path} is empty (0 bytes); expected a PyTorch .pth/.pt weights file")
    if zipfile.is_zipfile(path):
        try:
            return _read_zip(path)
        except zipfile.BadZipFile as exc:
            raise _bad(f"{path}: corrupt zip archive ({exc})") from None
    with open(path, "rb") as f:
        if f.read(1) != b"\x80":
            raise WeightsFormatError(
                f"{path} is neither a zip archive nor a pickle; expected a PyTorch .pth/.pt weights file"
            )
        f.seek(0)
        return _read_legacy(f)
