"""Write PyTorch-format checkpoints without torch (test helper).

Pickles through stand-ins registered under torch's module names, so the bytes are what
``torch.save`` writes for tensors, OrderedDicts and plain containers (zip or legacy format).
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import sys
import types
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

_STORAGE = {np.dtype("float32"): "FloatStorage", np.dtype("float16"): "HalfStorage", np.dtype("int64"): "LongStorage"}


def _rebuild_tensor_v2(*args: Any) -> None:  # never called: only its name is pickled
    raise AssertionError


class _StorageClass:
    pass


@contextmanager
def _fake_torch():
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in [*_STORAGE.values(), "BFloat16Storage"]:
        cls = type(name, (_StorageClass,), {"__module__": "torch"})
        setattr(torch, name, cls)
    torch._utils = utils
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        yield torch
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class Tensor:
    def __init__(self, arr: np.ndarray, key: str, storage_name: str | None = None) -> None:
        self.arr, self.key, self.storage_name = arr, key, storage_name or _STORAGE[arr.dtype]

    def __reduce__(self):
        a = self.arr
        stride = tuple(s // a.itemsize for s in a.strides) if a.ndim else ()
        return (_rebuild_tensor_v2, (_Pid(self), 0, a.shape, stride, False, collections.OrderedDict()))


class _Pid:
    def __init__(self, t: Tensor) -> None:
        self.t = t


def _wrap(obj: Any, tensors: list[Tensor]) -> Any:
    if isinstance(obj, np.ndarray):
        t = Tensor(np.ascontiguousarray(obj), str(len(tensors)))
        tensors.append(t)
        return t
    if isinstance(obj, Tensor):
        tensors.append(obj)
        return obj
    if isinstance(obj, dict):
        return type(obj)((k, _wrap(v, tensors)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_wrap(v, tensors) for v in obj)
    return obj


class _Pickler(pickle.Pickler):
    def __init__(self, f: Any, torch: Any, legacy: bool) -> None:
        super().__init__(f, protocol=2)
        self.torch, self.legacy = torch, legacy

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, _Pid):
            t = obj.t
            cls = getattr(self.torch, t.storage_name)
            if self.legacy:
                return ("storage", cls, t.key, "cpu", t.arr.size, None)
            return ("storage", cls, t.key, "cpu", t.arr.size)
        return None


def save(obj: Any, path: str | Path, *, legacy: bool = False, raw_pickle: bytes | None = None) -> Path:
    """Write ``obj`` (numpy arrays become tensors) as a .pth; ``raw_pickle`` replaces data.pkl."""
    path = Path(path)
    tensors: list[Tensor] = []
    wrapped = _wrap(obj, tensors)
    with _fake_torch() as torch:
        buf = io.BytesIO()
        if raw_pickle is None:
            _Pickler(buf, torch, legacy).dump(wrapped)
            data = buf.getvalue()
        else:
            data = raw_pickle
    if legacy:
        with open(path, "wb") as f:
            for head in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
                pickle.dump(head, f, protocol=2)
            f.write(data)
            pickle.dump([t.key for t in tensors], f, protocol=2)
            for t in tensors:
                f.write(struct.pack("<q", t.arr.size))
                f.write(t.arr.tobytes())
        return path
    stem = path.stem
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{stem}/data.pkl", data)
        for t in tensors:
            zf.writestr(f"{stem}/data/{t.key}", t.arr.tobytes())
        zf.writestr(f"{stem}/version", "3\n")
    return path
