"""oneDNN matmul, softmax and layer norm on NumPy views, for the CPU paths of the rvc stages.

Public: :func:`matmul`, :func:`softmax`, :func:`layer_norm` (use them only once
:func:`rvc_runtime.onednn.available` said yes). Companions of :class:`rvc_runtime.onednn.Conv`:
the same library, the same thread pool and the same shared scratchpad.

Why: a transformer layer on two cores spends its time in a dozen BLAS calls (MLX's and
NumPy's OpenBLAS, each with its own threads) and single-threaded NumPy element-wise passes;
oneDNN's JIT matmul reads strided views directly (the heads of a packed ``(T, 3, H, d)`` q/k/v
buffer, a transposed weight), fuses bias, GELU and residual adds, and runs every step in one
OpenMP pool: ContentVec's attention on 12 s of audio, 2 cores, ~16 -> ~6 ms per layer.

Arrays: float32, any strides that are whole elements (views are fine); results are written
into the ``out`` arrays given. Primitives are cached per shapes, strides and post-ops (the
:data:`MAX_PRIMS` most recent; a new shape costs ~1-3 ms).
"""

from __future__ import annotations

import ctypes

import numpy as np

from . import onednn as _o

_SOFTMAX_ACCURATE = 0x30000
_USE_SCALE, _USE_SHIFT = 0x2, 0x4
_ARG_SCALE, _ARG_SHIFT = 51, 52
MAX_PRIMS = 64

_cache: dict = {}
_ready = False


def _setup() -> ctypes.CDLL:
    global _ready
    lib = _o._dnnl()
    if not _ready:
        P, dims = _o._P, _o._DIMS
        lib.dnnl_memory_desc_create_with_strides.argtypes = [ctypes.POINTER(P), ctypes.c_int, dims, ctypes.c_int, dims]
        lib.dnnl_matmul_primitive_desc_create.argtypes = [ctypes.POINTER(P), P, P, P, P, P, P]
        lib.dnnl_softmax_forward_primitive_desc_create.argtypes = [
            ctypes.POINTER(P),
            P,
            ctypes.c_int,
            ctypes.c_int,
            P,
            P,
            ctypes.c_int,
            P,
        ]
        lib.dnnl_layer_normalization_forward_primitive_desc_create.argtypes = [
            ctypes.POINTER(P),
            P,
            ctypes.c_int,
            P,
            P,
            P,
            ctypes.c_float,
            ctypes.c_uint,
            P,
        ]
        _ready = True
    return lib


def _strides(a: np.ndarray) -> tuple[int, ...]:
    if a.dtype != np.float32 or any(s % 4 for s in a.strides):
        raise ValueError(f"float32 arrays of whole-element strides expected, got {a.dtype} strides {a.strides}")
    return tuple(s // 4 for s in a.strides)


def _md(shape: tuple[int, ...], strides: tuple[int, ...]) -> _o._P:
    md = _o._P()
    _o._check(
        _setup().dnnl_memory_desc_create_with_strides(
            ctypes.byref(md), len(shape), _o._DIMS(*shape), _o._F32, _o._DIMS(*strides)
        ),
        "memory desc",
    )
    return md


def _attr(post_ops: tuple, adds: list[np.ndarray]) -> _o._P:
    """Post-ops ("gelu",) | ("relu", slope) | ("add",) (one array of ``adds`` each, in order)."""
    lib = _setup()
    attr, po = _o._P(), _o._P()
    _o._check(lib.dnnl_primitive_attr_create(ctypes.byref(attr)), "attr")
    _o._check(lib.dnnl_post_ops_create(ctypes.byref(po)), "post ops")
    it = iter(adds)
    for op in post_ops:
        if op[0] == "gelu":
            _o._check(lib.dnnl_post_ops_append_eltwise(po, _o._GELU_ERF, 0.0, 0.0), "gelu")
        elif op[0] == "relu":
            _o._check(lib.dnnl_post_ops_append_eltwise(po, _o._RELU, op[1], 0.0), "relu")
        elif op[0] == "add":
            a = next(it)
            md = _md(a.shape, _strides(a))
            _o._check(lib.dnnl_post_ops_append_binary(po, _o._BINARY_ADD, md), "add")
            _o._free_mds(md)
        else:
            raise ValueError(f"unknown post-op {op!r}")
    _o._check(lib.dnnl_primitive_attr_set_post_ops(attr, po), "set post ops")
    lib.dnnl_post_ops_destroy(po)
    _o._check(lib.dnnl_primitive_attr_set_scratchpad_mode(attr, _o._SCRATCHPAD_USER), "scratchpad mode")
    return attr


def _build(key: tuple, make, mds: list, ids: list[int], post_ops: tuple, adds: list[np.ndarray]) -> tuple:
    """Create (and cache under ``key``) a primitive: ``make(pd_ptr, attr)`` makes its descriptor;
    ``mds``/``ids`` the memory descriptors and argument ids of the arrays bound per call."""
    lib = _setup()
    pd, prim, attr = _o._P(), _o._P(), _attr(post_ops, adds)
    try:
        _o._check(make(ctypes.byref(pd), attr), "primitive desc")
    finally:
        lib.dnnl_primitive_attr_destroy(attr)
    _o._check(lib.dnnl_primitive_create(ctypes.byref(prim), pd), "primitive")
    scratch_md, scratch_size = _o._scratchpad(pd)
    mems = [_o._mem(md, None, empty=True) for md in [*mds, scratch_md]]
    lib.dnnl_primitive_desc_destroy(pd)
    args = (_o._Arg * len(mems))(*[_o._Arg(a, m) for a, m in zip([*ids, _o._ARG_SCRATCHPAD], mems)])
    return _store(key, (prim, mems, args, scratch_size))


def _store(key: tuple, hit: tuple) -> tuple:
    """Cache a primitive, forgetting the oldest beyond :data:`MAX_PRIMS`."""
    lib = _setup()
    if len(_cache) >= MAX_PRIMS:
        old_prim, old_mems, *_ = _cache.pop(next(iter(_cache)))
        lib.dnnl_primitive_destroy(old_prim)
        for m in old_mems:
            lib.dnnl_memory_destroy(m)
    _cache[key] = hit
    return hit


def _sig(*arrays: np.ndarray | None) -> tuple:
    return tuple(None if a is None else (a.shape, _strides(a)) for a in arrays)


def matmul(
    src: np.ndarray,
    weights: np.ndarray,
    out: np.ndarray,
    *,
    bias: np.ndarray | None = None,
    post_ops: tuple = (),
    add: tuple[np.ndarray, ...] = (),
) -> np.ndarray:
    """``out = post_ops(src @ weights + bias)``: ``src`` ``(..., M, K)``, ``weights``
    ``(..., K, N)``, ``out`` ``(..., M, N)`` (batch axes equal), ``bias`` ``(N,)``; post-ops
    ``("gelu",)`` (exact erf), ``("relu", slope)``, ``("add",)`` (the next array of ``add``, shaped
    as ``out``). Any strides: e.g. heads sliced out of a packed q/k/v buffer, transposed weights."""
    if src.ndim != weights.ndim or src.ndim != out.ndim or src.shape[-1] != weights.shape[-2]:
        raise ValueError(f"matmul of {src.shape} and {weights.shape} into {out.shape}")
    if out.shape != (*src.shape[:-1], weights.shape[-1]) or src.shape[:-2] != weights.shape[:-2]:
        raise ValueError(f"matmul of {src.shape} and {weights.shape} into {out.shape}")
    if bias is not None:
        bias = np.ascontiguousarray(bias, dtype=np.float32)
        if bias.shape != (out.shape[-1],):
            raise ValueError(f"bias of shape {bias.shape} for {out.shape[-1]} outputs")
    adds = list(add)
    if len(adds) != sum(op[0] == "add" for op in post_ops) or any(a.shape != out.shape for a in adds):
        raise ValueError("one array shaped as the output per ('add',) post-op expected")
    key = ("mm", _sig(src, weights, out, bias, *adds), post_ops)
    ptrs = [src.ctypes.data, weights.ctypes.data, out.ctypes.data]
    ptrs += ([bias.ctypes.data] if bias is not None else []) + [a.ctypes.data for a in adds]
    with _o._lock:
        hit = _cache.get(key)
        if hit is None:
            nd = out.ndim
            mds = [_md(a.shape, _strides(a)) for a in (src, weights, out)]
            if bias is not None:
                mds.append(_md((1,) * (nd - 1) + (out.shape[-1],), (0,) * (nd - 1) + (1,)))
            mds += [_md(a.shape, _strides(a)) for a in adds]
            b_md = mds[3] if bias is not None else _o._P(None)
            ids = [_o._ARG_SRC, _o._ARG_WEIGHTS, _o._ARG_DST] + ([_o._ARG_BIAS] if bias is not None else [])
            ids += [_o._ARG_POST_OP_BASE * (i + 1) | _o._ARG_SRC_1 for i, op in enumerate(post_ops) if op[0] == "add"]
            lib = _setup()
            try:
                hit = _build(
                    key,
                    lambda pd, attr: lib.dnnl_matmul_primitive_desc_create(
                        pd, _o._engine, mds[0], mds[1], b_md, mds[2], attr
                    ),
                    mds,
                    ids,
                    post_ops,
                    adds,
                )
            finally:
                _o._free_mds(*mds)
        _o._bind_and_run(hit, ptrs)
    return out


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of ``x``, in place (max subtracted first)."""
    key = ("softmax", _sig(x))
    with _o._lock:
        hit = _cache.get(key)
        if hit is None:
            md = _md(x.shape, _strides(x))
            lib = _setup()
            try:
                hit = _build(
                    key,
                    lambda pd, attr: lib.dnnl_softmax_forward_primitive_desc_create(
                        pd, _o._engine, _o._FWD_INFERENCE, _SOFTMAX_ACCURATE, md, md, x.ndim - 1, attr
                    ),
                    [md, md],
                    [_o._ARG_SRC, _o._ARG_DST],
                    (),
                    [],
                )
            finally:
                _o._free_mds(md)
        _o._bind_and_run(hit, [x.ctypes.data, x.ctypes.data])
    return x


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float, out: np.ndarray) -> np.ndarray:
    """``out = (x - mean) / sqrt(var + eps) * weight + bias`` over the last axis (biased variance)."""
    if out.shape != x.shape or weight.shape != (x.shape[-1],) or bias.shape != (x.shape[-1],):
        raise ValueError(f"layer norm of {x.shape} into {out.shape} with weight {weight.shape}, bias {bias.shape}")
    weight = np.ascontiguousarray(weight, dtype=np.float32)
    bias = np.ascontiguousarray(bias, dtype=np.float32)
    key = ("ln", _sig(x, out), float(eps))
    with _o._lock:
        hit = _cache.get(key)
        if hit is None:
            src, dst, c = _md(x.shape, _strides(x)), _md(out.shape, _strides(out)), _md((x.shape[-1],), (1,))
            lib = _setup()
            try:
                hit = _build(
                    key,
                    lambda pd, attr: lib.dnnl_layer_normalization_forward_primitive_desc_create(
                        pd, _o._engine, _o._FWD_INFERENCE, src, dst, None, eps, _USE_SCALE | _USE_SHIFT, attr
                    ),
                    [src, dst, c, c],
                    [_o._ARG_SRC, _o._ARG_DST, _ARG_SCALE, _ARG_SHIFT],
                    (),
                    [],
                )
            finally:
                _o._free_mds(src, dst, c)
        _o._bind_and_run(hit, [x.ctypes.data, out.ctypes.data, weight.ctypes.data, bias.ctypes.data])
    return out


class GroupedConv1d:
    """A grouped 1-D convolution of one sequence, channels last: ``x`` ``(T, C)`` ->
    ``post_ops(conv(x) + bias)`` ``(T', O)``, stride 1, zero padding ``(left, right)``.
    ``weight`` ``(G, K, C/G, O/G)`` (tap-major per group), reordered once into the layout the
    primitive wants; primitives cached per length (in the shared cache)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, *, padding: tuple[int, int]) -> None:
        self.weight = np.ascontiguousarray(weight, dtype=np.float32)
        self.groups, self.k, self.cin_g, self.cout_g = self.weight.shape
        self.bias = np.ascontiguousarray(bias, dtype=np.float32)
        if self.bias.shape != (self.groups * self.cout_g,):
            raise ValueError(f"bias of shape {self.bias.shape} for {self.groups * self.cout_g} outputs")
        self.padding = padding
        self._weights: list[tuple[_o._P, _o._P]] = []
        self._prims: dict = {}  # per length (at most _o.MAX_SHAPES)

    def out_len(self, n: int) -> int:
        return n + sum(self.padding) - self.k + 1

    def _reordered(self, w_md: _o._P) -> _o._P:
        lib = _setup()
        for md, mem in self._weights:
            if lib.dnnl_memory_desc_equal(md, w_md):
                return mem
        kept = _o._P()
        _o._check(lib.dnnl_memory_desc_clone(ctypes.byref(kept), w_md), "clone")
        g, k, i, o = self.weight.shape
        user_md = _md((g, o, i, k), (k * i * o, 1, o, i * o))  # dims (G, O/G, I/G, K) of this array
        user, w_mem = _o._mem(user_md, self.weight), _o._mem(kept, None)
        _o._reorder(user_md, user, kept, w_mem)
        lib.dnnl_memory_destroy(user)
        _o._free_mds(user_md)
        self._weights.append((kept, w_mem))
        return w_mem

    def __call__(
        self, x: np.ndarray, out: np.ndarray, *, post_ops: tuple = (), add: tuple[np.ndarray, ...] = ()
    ) -> np.ndarray:
        t, c = x.shape
        o = self.groups * self.cout_g
        if c != self.groups * self.cin_g or out.shape != (self.out_len(t), o) or not x.flags.c_contiguous:
            raise ValueError(
                f"grouped conv of {x.shape} into {out.shape}: C-contiguous (T, {self.groups * self.cin_g})"
            )
        if not out.flags.c_contiguous or any(a.shape != out.shape or not a.flags.c_contiguous for a in add):
            raise ValueError("output and added arrays: C-contiguous float32, shaped as the output")
        chw = lambda a: a.reshape(1, *a.shape).transpose(0, 2, 1)  # noqa: E731  (1, C, T) views
        adds = [chw(a) for a in add]
        key = (_sig(x, out), post_ops)
        with _o._lock:
            hit = self._prims.get(key)
            if hit is None:
                lib = _setup()
                mds = [_md(chw(x).shape, _strides(chw(x))), _md(chw(out).shape, _strides(chw(out)))]
                mds += [_md((o,), (1,))] + [_md(a.shape, _strides(a)) for a in adds]
                w_any = _o._md((self.groups, self.cout_g, self.cin_g, self.k), _o._TAG_ANY)
                dims = [_o._DIMS(v) for v in (1, 0, *self.padding)]
                ids = [_o._ARG_SRC, _o._ARG_DST, _o._ARG_BIAS]
                ids += [
                    _o._ARG_POST_OP_BASE * (i + 1) | _o._ARG_SRC_1 for i, op in enumerate(post_ops) if op[0] == "add"
                ]
                try:
                    pd, prim, attr = _o._P(), _o._P(), _attr(post_ops, adds)
                    try:
                        _o._check(
                            lib.dnnl_convolution_forward_primitive_desc_create(
                                ctypes.byref(pd),
                                _o._engine,
                                _o._FWD_INFERENCE,
                                _o._CONV_DIRECT,
                                mds[0],
                                w_any,
                                mds[2],
                                mds[1],
                                *dims,
                                attr,
                            ),
                            "grouped conv desc",
                        )
                    finally:
                        lib.dnnl_primitive_attr_destroy(attr)
                    _o._check(lib.dnnl_primitive_create(ctypes.byref(prim), pd), "primitive")
                    w_mem = self._reordered(_o._P(lib.dnnl_primitive_desc_query_md(pd, _o._Q_WEIGHTS_MD, 0)))
                    scratch_md, scratch_size = _o._scratchpad(pd)
                    mems = [_o._mem(md, None, empty=True) for md in [*mds, scratch_md]]
                    lib.dnnl_primitive_desc_destroy(pd)
                finally:
                    _o._free_mds(*mds, w_any)
                args = [_o._Arg(a, m) for a, m in zip([*ids, _o._ARG_SCRATCHPAD], mems)]
                args.append(_o._Arg(_o._ARG_WEIGHTS, w_mem))
                hit = _o._keep(self._prims, key, (prim, mems, (_o._Arg * len(args))(*args), scratch_size))
            _o._bind_and_run(
                hit, [x.ctypes.data, out.ctypes.data, self.bias.ctypes.data, *[a.ctypes.data for a in add]]
            )
        return out
