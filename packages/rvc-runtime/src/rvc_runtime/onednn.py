"""oneDNN (ctypes) convolutions for the CPU paths of the rvc stages, when the library is installed.

Public: :func:`available`, :class:`Conv`, :func:`leaky_relu`, :class:`DnnlError`. Importing this
module loads nothing; the library is loaded by the first :func:`available` call (or by
:func:`rvc_runtime.configure_cpu`).

MLX's CPU backend has no fast dilated/transposed convolution; rvc-synth's per-tap GEMMs reach
~100 GFLOP/s at 128+ channels but 30-55 at 32-64. oneDNN's JIT
convolutions (what PyTorch uses on x86 CPUs) run the same layers at 140-180 GFLOP/s on two
cores and fuse the activations and residual adds as post-ops. Nothing here is required:
:func:`available` is False unless ``libdnnl.so.3`` is found (``pip install onednn-cpu-gomp``
puts it in ``<env>/lib``; ``$RVC_DNNL`` may name the file, ``RVC_DNNL=0`` disables it).

Only float32, channels-last ``(N, W, C)`` arrays, NumPy in and out. Nothing is executed
from model files: the library only ever sees shapes and float buffers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import logging
import os
import sys
import threading

import numpy as np

logger = logging.getLogger(__name__)

# enum values of oneDNN 3.x (dnnl_types.h / dnnl_common_types.h; stable across 3.x)
_F32, _TAG_ANY, _TAG_X, _TAG_NWC, _TAG_OWI, _TAG_NHWC, _TAG_OHWI = 3, 1, 2, 15, 15, 22, 22
_CPU, _STREAM_DEFAULT, _FWD_INFERENCE = 1, 1, 96
_CONV_DIRECT = 1
_RELU, _TANH, _LINEAR, _GELU_ERF, _BINARY_ADD = 32, 33, 38, 49, 131056
_ARG_SRC, _ARG_SRC_1, _ARG_DST, _ARG_WEIGHTS, _ARG_BIAS, _ARG_FROM, _ARG_TO = 1, 2, 17, 33, 41, 1, 17
_ARG_POST_OP_BASE = 32768
_Q_WEIGHTS_MD, _Q_SCRATCHPAD_MD = 131, 136
_SCRATCHPAD_USER, _ARG_SCRATCHPAD = 1, 80
_ALLOCATE = ctypes.c_void_p(-1 & 0xFFFFFFFFFFFFFFFF)

_P = ctypes.c_void_p
_DIMS = ctypes.c_int64 * 12


class _Arg(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_int), ("memory", _P)]


class DnnlError(RuntimeError):
    pass


_lib: ctypes.CDLL | None = None
_engine = _P()
_stream = _P()
_lock = threading.RLock()  # one user at a time: shared scratchpad, reused memory objects
_tried = False


def _candidates() -> list[str]:
    env = os.environ.get("RVC_DNNL")
    if env:
        return [env]
    out = glob.glob(os.path.join(sys.prefix, "lib", "libdnnl.so.3"))
    found = ctypes.util.find_library("dnnl")
    if found:
        out.append(found)
    return out


def available() -> bool:
    """Is oneDNN loaded (loading it on first call)? Linux x86-64 only; ``RVC_DNNL=0`` says no."""
    global _lib, _tried
    if _tried:
        return _lib is not None
    with _lock:
        if _tried:
            return _lib is not None
        _tried = True
        if os.environ.get("RVC_DNNL") == "0" or sys.platform != "linux":
            return False
        for path in _candidates():
            try:
                lib = ctypes.CDLL(path)
                _setup(lib)
                _check(lib.dnnl_engine_create(ctypes.byref(_engine), _CPU, 0), "engine")
                _check(lib.dnnl_stream_create(ctypes.byref(_stream), _engine, _STREAM_DEFAULT), "stream")
            except (OSError, AttributeError, DnnlError) as exc:
                logger.debug("oneDNN at %s not usable: %s", path, exc)
                continue
            _lib = lib
            logger.debug("oneDNN convolutions from %s", path)
            return True
        return False


def _setup(lib: ctypes.CDLL) -> None:
    lib.dnnl_primitive_desc_query_md.restype = _P
    lib.dnnl_primitive_desc_query_md.argtypes = [_P, ctypes.c_int, ctypes.c_int]
    lib.dnnl_memory_desc_create_with_tag.argtypes = [
        ctypes.POINTER(_P),
        ctypes.c_int,
        _DIMS,
        ctypes.c_int,
        ctypes.c_int,
    ]
    lib.dnnl_memory_create.argtypes = [ctypes.POINTER(_P), _P, _P, _P]
    lib.dnnl_primitive_execute.argtypes = [_P, _P, ctypes.c_int, ctypes.POINTER(_Arg)]
    lib.dnnl_post_ops_append_eltwise.argtypes = [_P, ctypes.c_int, ctypes.c_float, ctypes.c_float]
    lib.dnnl_post_ops_append_sum.argtypes = [_P, ctypes.c_float, ctypes.c_int32, ctypes.c_int]
    lib.dnnl_post_ops_append_binary.argtypes = [_P, ctypes.c_int, _P]
    lib.dnnl_primitive_attr_set_post_ops.argtypes = [_P, _P]
    lib.dnnl_convolution_forward_primitive_desc_create.argtypes = [
        ctypes.POINTER(_P),
        _P,
        ctypes.c_int,
        ctypes.c_int,
        _P,
        _P,
        _P,
        _P,
        _DIMS,
        _DIMS,
        _DIMS,
        _DIMS,
        _P,
    ]
    lib.dnnl_eltwise_forward_primitive_desc_create.argtypes = [
        ctypes.POINTER(_P),
        _P,
        ctypes.c_int,
        ctypes.c_int,
        _P,
        _P,
        ctypes.c_float,
        ctypes.c_float,
        _P,
    ]
    lib.dnnl_reorder_primitive_desc_create.argtypes = [ctypes.POINTER(_P), _P, _P, _P, _P, _P]
    lib.dnnl_primitive_create.argtypes = [ctypes.POINTER(_P), _P]
    lib.dnnl_memory_destroy.argtypes = [_P]
    lib.dnnl_memory_set_data_handle.argtypes = [_P, _P]
    lib.dnnl_stream_wait.argtypes = [_P]
    lib.dnnl_memory_desc_equal.argtypes = [_P, _P]
    lib.dnnl_memory_desc_clone.argtypes = [ctypes.POINTER(_P), _P]
    for name in (
        "dnnl_primitive_destroy",
        "dnnl_primitive_attr_destroy",
        "dnnl_post_ops_destroy",
        "dnnl_primitive_desc_destroy",
        "dnnl_memory_desc_destroy",
    ):
        getattr(lib, name).argtypes = [_P]
    lib.dnnl_primitive_attr_set_scratchpad_mode.argtypes = [_P, ctypes.c_int]
    lib.dnnl_memory_desc_get_size.argtypes = [_P]
    lib.dnnl_memory_desc_get_size.restype = ctypes.c_size_t


def _dnnl() -> ctypes.CDLL:
    """The loaded library (the functions below run only once :func:`available` said yes)."""
    if _lib is None:
        raise DnnlError("oneDNN is not loaded; check rvc_runtime.onednn.available() first")
    return _lib


def _check(status: int, what: str) -> None:
    if status != 0:
        raise DnnlError(f"oneDNN {what} failed (status {status})")


def _md(dims: tuple[int, ...], tag: int) -> _P:
    md = _P()
    _check(
        _dnnl().dnnl_memory_desc_create_with_tag(ctypes.byref(md), len(dims), _DIMS(*dims), _F32, tag), "memory desc"
    )
    return md


def _free_mds(*mds: _P) -> None:
    """Descriptors are copied by whatever is built from them (memories, primitive descs)."""
    for md in mds:
        _dnnl().dnnl_memory_desc_destroy(md)


def _mem(md: _P, array: np.ndarray | None, *, empty: bool = False) -> _P:
    m = _P()
    handle = _P(array.ctypes.data) if array is not None else _P(None) if empty else _ALLOCATE
    _check(_dnnl().dnnl_memory_create(ctypes.byref(m), md, _engine, handle), "memory")
    return m


def _execute(prim: _P, args: list[tuple[int, _P]]) -> None:
    arr = (_Arg * len(args))(*[_Arg(a, m) for a, m in args])
    _check(_dnnl().dnnl_primitive_execute(prim, _stream, len(args), arr), "execute")
    _check(_dnnl().dnnl_stream_wait(_stream), "wait")


def _attr(post_ops: tuple, dst_dims: tuple[int, ...]) -> _P:
    """Post-ops: ("relu", slope) | ("tanh",) | ("gelu",) | ("linear", a, b) | ("sum",) | ("add",)."""
    attr, po = _P(), _P()
    _check(_dnnl().dnnl_primitive_attr_create(ctypes.byref(attr)), "attr")
    _check(_dnnl().dnnl_post_ops_create(ctypes.byref(po)), "post ops")
    for op in post_ops:
        if op[0] == "relu":
            _check(_dnnl().dnnl_post_ops_append_eltwise(po, _RELU, op[1], 0.0), "relu")
        elif op[0] == "tanh":
            _check(_dnnl().dnnl_post_ops_append_eltwise(po, _TANH, 0.0, 0.0), "tanh")
        elif op[0] == "gelu":  # exact (erf) GELU
            _check(_dnnl().dnnl_post_ops_append_eltwise(po, _GELU_ERF, 0.0, 0.0), "gelu")
        elif op[0] == "linear":
            _check(_dnnl().dnnl_post_ops_append_eltwise(po, _LINEAR, op[1], op[2]), "linear")
        elif op[0] == "sum":
            _check(_dnnl().dnnl_post_ops_append_sum(po, 1.0, 0, 0), "sum")
        elif op[0] == "add":
            md = _md(dst_dims, _TAG_NWC if len(dst_dims) == 3 else _TAG_NHWC)
            _check(_dnnl().dnnl_post_ops_append_binary(po, _BINARY_ADD, md), "add")
            _free_mds(md)
        else:  # pragma: no cover
            raise ValueError(op)
    _check(_dnnl().dnnl_primitive_attr_set_post_ops(attr, po), "set post ops")
    _dnnl().dnnl_post_ops_destroy(po)  # the attribute keeps its own copy
    # one scratchpad shared by every primitive (library-managed ones are kept per primitive:
    # gigabytes across a decoder's ~100 layers)
    _check(_dnnl().dnnl_primitive_attr_set_scratchpad_mode(attr, _SCRATCHPAD_USER), "scratchpad mode")
    return attr


_scratch = np.empty(0, np.uint8)


def _scratchpad(pd: _P) -> tuple[_P, int]:
    md = _P(_dnnl().dnnl_primitive_desc_query_md(pd, _Q_SCRATCHPAD_MD, 0))
    return md, _dnnl().dnnl_memory_desc_get_size(md)


def _scratch_ptr(size: int) -> int:
    global _scratch
    if _scratch.size < size + 64:
        _scratch = np.empty(size + 4096, np.uint8)
    return (_scratch.ctypes.data + 63) // 64 * 64  # 64-byte aligned


def _create(make, post_ops: tuple, dst_dims: tuple[int, ...]) -> tuple[_P, _P]:
    """``make(pd_ptr, attr)`` creates a primitive descriptor; returns it (the caller destroys it
    once it has queried it) and its primitive."""
    pd, prim, attr = _P(), _P(), _attr(post_ops, dst_dims)
    try:
        _check(make(ctypes.byref(pd), attr), "primitive desc")
    finally:
        _dnnl().dnnl_primitive_attr_destroy(attr)  # the descriptor keeps its own copy
    _check(_dnnl().dnnl_primitive_create(ctypes.byref(prim), pd), "primitive")
    return pd, prim


def _reorder(src_md: _P, src: _P, dst_md: _P, dst: _P) -> None:
    """Copy one memory into another layout (weights, once per layout)."""
    rpd, rprim = _P(), _P()
    _check(
        _dnnl().dnnl_reorder_primitive_desc_create(ctypes.byref(rpd), src_md, _engine, dst_md, _engine, None),
        "reorder desc",
    )
    _check(_dnnl().dnnl_primitive_create(ctypes.byref(rprim), rpd), "reorder")
    with _lock:
        _execute(rprim, [(_ARG_FROM, src), (_ARG_TO, dst)])
    _dnnl().dnnl_primitive_destroy(rprim)
    _dnnl().dnnl_primitive_desc_destroy(rpd)


MAX_SHAPES = 8  # primitives kept per layer: the tiled ones need 1-2, the others one per length


class Conv:
    """A 1-D or 2-D convolution with fixed weights (MLX's layouts ``(out, k, in)`` and
    ``(out, kh, kw, in)``; stride, padding and dilation the same along every spatial axis);
    primitives are cached per input shape and post-ops (the :data:`MAX_SHAPES` most recent),
    the weights reordered once per layout a primitive asks for."""

    def __init__(
        self, weight: np.ndarray, bias: np.ndarray | None, *, stride: int = 1, padding: int = 0, dilation: int = 1
    ) -> None:
        self.weight: np.ndarray | None = np.ascontiguousarray(weight, dtype=np.float32)  # None once reordered
        if self.weight.ndim not in (3, 4):
            raise ValueError(f"weights of shape {self.weight.shape}: expected (out, k, in) or (out, kh, kw, in)")
        self.shape = self.weight.shape
        cout, *self.ks, cin = self.shape
        self.k = self.ks[0]
        self.cin, self.cout = cin, cout
        self.bias = np.ascontiguousarray(bias if bias is not None else np.zeros(cout), dtype=np.float32)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self._prims: dict = {}
        self._weights: list[tuple[_P, _P]] = []  # (layout, reordered weights)

    def out_len(self, n: int, k: int | None = None) -> int:
        k, s, p, d = k or self.k, self.stride, self.padding, self.dilation
        return (n + 2 * p - d * (k - 1) - 1) // s + 1

    def _prim(self, b: int, spatial: tuple[int, ...], post_ops: tuple):
        key = (b, spatial, post_ops)
        hit = self._prims.get(key)
        if hit is not None:
            return hit
        nd, tag = len(spatial), _TAG_NWC if len(spatial) == 1 else _TAG_NHWC
        dst_dims = (b, self.cout, *[self.out_len(n, k) for n, k in zip(spatial, self.ks)])
        src_md, dst_md = _md((b, self.cin, *spatial), tag), _md(dst_dims, tag)
        b_md = _md((self.cout,), _TAG_X)
        dims = [_DIMS(*[v] * nd) for v in (self.stride, self.dilation - 1, self.padding, self.padding)]
        w_any = _md((self.cout, self.cin, *self.ks), _TAG_ANY)
        pd, prim = _create(
            lambda pd, attr: _dnnl().dnnl_convolution_forward_primitive_desc_create(
                pd, _engine, _FWD_INFERENCE, _CONV_DIRECT, src_md, w_any, b_md, dst_md, *dims, attr
            ),
            post_ops,
            dst_dims,
        )
        w_mem = self._reordered(_P(_dnnl().dnnl_primitive_desc_query_md(pd, _Q_WEIGHTS_MD, 0)))
        # memory objects made once; each call only points them at its buffers
        n_add = sum(op[0] == "add" for op in post_ops)
        scratch_md, scratch_size = _scratchpad(pd)
        mds = [src_md, dst_md, b_md] + [dst_md] * n_add + [scratch_md]
        mems = [_mem(md, None, empty=True) for md in mds]
        _dnnl().dnnl_primitive_desc_destroy(pd)
        _free_mds(src_md, dst_md, b_md, w_any)
        ids = [_ARG_SRC, _ARG_DST, _ARG_BIAS]
        ids += [_ARG_POST_OP_BASE * (i + 1) | _ARG_SRC_1 for i, op in enumerate(post_ops) if op[0] == "add"]
        ids += [_ARG_SCRATCHPAD]
        args = (_Arg * (len(mems) + 1))(*[_Arg(a, m) for a, m in zip(ids, mems)], _Arg(_ARG_WEIGHTS, w_mem))
        return _keep(self._prims, key, (prim, mems, args, scratch_size))  # a folder of files of every length

    def _reordered(self, w_md: _P) -> _P:
        """The weights in the layout ``w_md``, reordered on first request. Once one layout
        exists the NumPy copy is dropped (later layouts are reordered from the first): a
        network's weights are then held once here, not twice."""
        for md, mem in self._weights:
            if _dnnl().dnnl_memory_desc_equal(md, w_md):
                return mem
        kept = _P()
        _check(_dnnl().dnnl_memory_desc_clone(ctypes.byref(kept), w_md), "clone")  # w_md dies with its pd
        w_mem = _mem(w_md, None)
        if self.weight is not None:
            user_md = _md((self.cout, self.cin, *self.ks), _TAG_OWI if len(self.ks) == 1 else _TAG_OHWI)
            user = _mem(user_md, self.weight)
            _reorder(user_md, user, kept, w_mem)
            _dnnl().dnnl_memory_destroy(user)
            _free_mds(user_md)
            self.weight = None
        else:
            _reorder(*self._weights[0], kept, w_mem)
        self._weights.append((kept, w_mem))
        return w_mem

    def set_weights(self, weight: np.ndarray, bias: np.ndarray | None = None) -> None:
        """New values of the same shape: the primitives stay (their creation can cost far more
        than a call), the reordered copies are refreshed in place."""
        weight = np.ascontiguousarray(weight, dtype=np.float32)
        if weight.shape != self.shape:
            raise ValueError(f"weights of shape {weight.shape}; this convolution has {self.shape}")
        self.bias = np.ascontiguousarray(bias if bias is not None else np.zeros(self.cout), dtype=np.float32)
        if not self._weights:
            self.weight = weight
            return
        user_md = _md((self.cout, self.cin, *self.ks), _TAG_OWI if len(self.ks) == 1 else _TAG_OHWI)
        user = _mem(user_md, weight)
        for md, mem in self._weights:
            _reorder(user_md, user, md, mem)
        _dnnl().dnnl_memory_destroy(user)
        _free_mds(user_md)

    def __call__(
        self,
        x: np.ndarray,
        *,
        post_ops: tuple = (),
        out: np.ndarray | None = None,
        add: tuple[np.ndarray, ...] = (),
        bias: np.ndarray | None = None,
        tile: int | None = None,
    ) -> np.ndarray:
        """``x`` ``(N, W, in)`` (or ``(N, H, W, in)``) float32 -> ``(N, W', out)`` (``(N, H', W', out)``).

        ``out`` (C-contiguous) is written in place (and read first by a ``("sum",)``
        post-op); ``add`` gives the arrays of the ``("add",)`` post-ops, in order; ``bias``
        replaces the layer's bias. ``tile`` (unpadded stride-1 convolutions of one sequence,
        ``W'`` a multiple of it) runs one primitive of ``tile`` outputs along the sequence:
        the primitives are then the same for every length, and oneDNN's small-channel
        kernels build tables of ~200 bytes per output sample (and ~4 us per sample to
        create them) that stay small.
        """
        if x.dtype != np.float32 or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != len(self.ks) + 2 or x.shape[-1] != self.cin:
            raise ValueError(f"input of shape {x.shape} for a convolution of weights {self.shape}")
        b, n = x.shape[:2]
        shape = (b, *[self.out_len(m, k) for m, k in zip(x.shape[1:-1], self.ks)], self.cout)
        n_out = shape[1]
        if out is None:
            out = np.empty(shape, np.float32)
        for a in (out, *add):
            if a.shape != shape or a.dtype != np.float32 or not a.flags.c_contiguous:
                raise ValueError(f"output/add buffers must be C-contiguous float32 {shape}, got {a.dtype} {a.shape}")
        bias = self.bias if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
        if tile is None or n_out <= tile:
            self._run(x, out, post_ops, add, bias)
            return out
        if b > 1 or x.ndim != 3 or n_out % tile or self.padding or self.stride != 1:
            raise ValueError("tiles need one unpadded stride-1 sequence, a whole number of tiles long")
        span = self.dilation * (self.k - 1)
        for o in range(0, n_out, tile):
            self._run(
                x[:, o : o + tile + span], out[:, o : o + tile], post_ops, [a[:, o : o + tile] for a in add], bias
            )
        return out

    def _run(self, x: np.ndarray, out: np.ndarray, post_ops: tuple, add, bias: np.ndarray) -> None:
        ptrs = [x.ctypes.data, out.ctypes.data, bias.ctypes.data] + [a.ctypes.data for a in add]
        _bind_and_run(self._prim(x.shape[0], x.shape[1:-1], post_ops), ptrs)


_eltwise_cache: dict = {}


def leaky_relu(x: np.ndarray, slope: float, *, out: np.ndarray | None = None) -> np.ndarray:
    """``max(x, 0) + slope * min(x, 0)`` of a C-contiguous float32 ``(N, W, C)`` array, multithreaded."""
    b, n, c = x.shape
    key = (b, n, c, slope)
    hit = _eltwise_cache.get(key)
    if hit is None:
        md = _md((b, c, n), _TAG_NWC)
        pd, prim = _create(
            lambda pd, attr: _dnnl().dnnl_eltwise_forward_primitive_desc_create(
                pd, _engine, _FWD_INFERENCE, _RELU, md, md, slope, 0.0, attr
            ),
            (),
            (),
        )
        scratch_md, scratch_size = _scratchpad(pd)
        mems = [_mem(md, None, empty=True), _mem(md, None, empty=True), _mem(scratch_md, None, empty=True)]
        _dnnl().dnnl_primitive_desc_destroy(pd)
        _free_mds(md)
        args = (_Arg * 3)(*[_Arg(a, m) for a, m in zip((_ARG_SRC, _ARG_DST, _ARG_SCRATCHPAD), mems)])
        hit = _keep(_eltwise_cache, key, (prim, mems, args, scratch_size), 4 * MAX_SHAPES)
    if out is None:
        out = np.empty_like(x)
    _bind_and_run(hit, [x.ctypes.data, out.ctypes.data])
    return out


def _keep(cache: dict, key: object, hit: tuple, limit: int = MAX_SHAPES) -> tuple:
    """Store a primitive ``(prim, mems, args, scratch_size)`` under ``key``, first destroying the
    oldest one when ``cache`` holds ``limit`` (inputs of many shapes); returns ``hit``."""
    if len(cache) >= limit:
        old_prim, old_mems, *_ = cache.pop(next(iter(cache)))
        _dnnl().dnnl_primitive_destroy(old_prim)
        for m in old_mems:
            _dnnl().dnnl_memory_destroy(m)
    cache[key] = hit
    return hit


def _bind_and_run(hit: tuple, ptrs: list[int]) -> None:
    """Point a cached primitive's memory objects at ``ptrs`` (+ the scratchpad) and run it."""
    prim, mems, args, scratch_size = hit
    with _lock:
        for m, ptr in zip(mems, [*ptrs, _scratch_ptr(scratch_size)]):
            _check(_dnnl().dnnl_memory_set_data_handle(m, ptr), "set handle")
        _check(_dnnl().dnnl_primitive_execute(prim, _stream, len(args), args), "execute")
        _check(_dnnl().dnnl_stream_wait(_stream), "wait")
