"""oneDNN's GRU for the CPU paths (RMVPE's BiGRU): every step of both directions in one primitive.

PyTorch's (and MLX's) GRU is oneDNN's "linear-before-reset" GRU: ``n = tanh(W_n x + b_n + r *
(U_n h + b_hn))``. Stepped in NumPy, RMVPE's BiGRU costs ~14 small calls per frame (1216 frames
of a padded 10 s clip: ~70 ms on two cores); oneDNN runs the same equations in one JIT-compiled
primitive. Results equal the step-by-step equations to float32 rounding. Needs
:func:`rvc_runtime.onednn.available`.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import numpy as np

from .onednn import (
    _ARG_BIAS,
    _ARG_SCRATCHPAD,
    _FWD_INFERENCE,
    _P,
    _TAG_ANY,
    _Arg,
    _bind_and_run,
    _create,
    _dnnl,
    _engine,
    _free_mds,
    _keep,
    _md,
    _mem,
    _reorder,
    _scratchpad,
)

# enum values of oneDNN 3.x (dnnl_common_types.h / dnnl_types.h)
_TAG_TNC, _TAG_LDGO, _TAG_LDIGO = 4, 5, 6  # abc, abcd, abcde
_BIDIRECTIONAL_CONCAT = 3
_ARG_SRC_LAYER, _ARG_DST_LAYER, _ARG_WEIGHTS_LAYER, _ARG_WEIGHTS_ITER = 1, 17, 33, 34
_Q_WEIGHTS_MD = 131  # index 0: the layer weights, 1: the iteration weights

GateWeights = Sequence[np.ndarray]  # (wx, wh, b, bhn)


def _setup_rnn() -> None:
    fn = _dnnl().dnnl_lbr_gru_forward_primitive_desc_create
    fn.argtypes = [ctypes.POINTER(_P), _P, ctypes.c_int, ctypes.c_int, *[_P] * 7, ctypes.c_uint, _P]


class BiGRU:
    """A one-layer bidirectional GRU with fixed weights, outputs of both directions concatenated
    (PyTorch's ``bidirectional=True`` layout; the backward direction runs on the reversed
    sequence and its outputs are aligned with the input's frames).

    ``forward`` and ``backward``: ``(wx (3H, I), wh (3H, H), b (3H,), bhn (H,))`` in MLX's
    ``nn.GRU`` form, gates in the order (r, z, n): ``b`` is the input bias plus the hidden
    biases of r and z, ``bhn`` the hidden bias of n. Primitives are cached per sequence length
    (the :data:`MAX_SHAPES` most recent), the weights reordered once per layout.
    """

    def __init__(self, forward: GateWeights, backward: GateWeights) -> None:
        wx, wh, _, _ = (np.asarray(a, np.float32) for a in forward)
        self.hidden, self.inputs = wh.shape[1], wx.shape[1]
        h, i = self.hidden, self.inputs
        for name, ws in (("forward", forward), ("backward", backward)):
            shapes, want = tuple(np.shape(a) for a in ws), ((3 * h, i), (3 * h, h), (3 * h,), (h,))
            if shapes != want:
                raise ValueError(f"{name} GRU weights of shapes {shapes}; expected {want}")
        order = [1, 0, 2]  # oneDNN's gates: u (MLX's z), r, o (n)

        def gates(w: np.ndarray, n_in: int) -> np.ndarray:  # (3H, in) -> (in, 3, H)
            return np.asarray(w, np.float32).reshape(3, h, n_in)[order].transpose(2, 0, 1)

        dirs = (forward, backward)
        self._w_layer = np.ascontiguousarray(np.stack([gates(d[0], i) for d in dirs])[None])  # (1, 2, I, 3, H)
        self._w_iter = np.ascontiguousarray(np.stack([gates(d[1], h) for d in dirs])[None])  # (1, 2, H, 3, H)
        bias = [
            np.concatenate([np.asarray(b, np.float32).reshape(3, h)[order], np.asarray(bhn, np.float32)[None]])
            for _, _, b, bhn in dirs
        ]
        self.bias = np.ascontiguousarray(np.stack(bias)[None])  # (1, 2, 4, H): u, r, o, and o's hidden bias
        self._weights: dict[int, list[tuple[_P, _P]]] = {_ARG_WEIGHTS_LAYER: [], _ARG_WEIGHTS_ITER: []}
        self._prims: dict[int, tuple] = {}

    def _reordered(self, arg: int, want: _P) -> _P:
        for md, mem in self._weights[arg]:
            if _dnnl().dnnl_memory_desc_equal(md, want):
                return mem
        kept = _P()
        _dnnl().dnnl_memory_desc_clone(ctypes.byref(kept), want)  # want dies with its pd
        user = self._w_layer if arg == _ARG_WEIGHTS_LAYER else self._w_iter
        user_md = _md(user.shape, _TAG_LDIGO)
        src, mem = _mem(user_md, user), _mem(kept, None)
        _reorder(user_md, src, kept, mem)
        _dnnl().dnnl_memory_destroy(src)
        _free_mds(user_md)
        self._weights[arg].append((kept, mem))
        return mem

    def _prim(self, t: int) -> tuple:
        hit = self._prims.get(t)
        if hit is not None:
            return hit
        _setup_rnn()
        h = self.hidden
        src_md, dst_md = _md((t, 1, self.inputs), _TAG_TNC), _md((t, 1, 2 * h), _TAG_TNC)
        wl_any, wi_any = _md(self._w_layer.shape, _TAG_ANY), _md(self._w_iter.shape, _TAG_ANY)
        b_md = _md(self.bias.shape, _TAG_LDGO)
        pd, prim = _create(
            lambda pd, attr: _dnnl().dnnl_lbr_gru_forward_primitive_desc_create(
                pd, _engine, _FWD_INFERENCE, _BIDIRECTIONAL_CONCAT,
                src_md, None, wl_any, wi_any, b_md, dst_md, None, 0, attr,
            ),
            (),
            (),
        )  # fmt: skip
        w_layer = self._reordered(_ARG_WEIGHTS_LAYER, _P(_dnnl().dnnl_primitive_desc_query_md(pd, _Q_WEIGHTS_MD, 0)))
        w_iter = self._reordered(_ARG_WEIGHTS_ITER, _P(_dnnl().dnnl_primitive_desc_query_md(pd, _Q_WEIGHTS_MD, 1)))
        scratch_md, scratch_size = _scratchpad(pd)
        mems = [_mem(md, None, empty=True) for md in (src_md, dst_md, b_md, scratch_md)]
        _dnnl().dnnl_primitive_desc_destroy(pd)
        _free_mds(src_md, dst_md, b_md, wl_any, wi_any)
        ids = (_ARG_SRC_LAYER, _ARG_DST_LAYER, _ARG_BIAS, _ARG_SCRATCHPAD)
        args = (_Arg * 6)(
            *[_Arg(a, m) for a, m in zip(ids, mems)], _Arg(_ARG_WEIGHTS_LAYER, w_layer), _Arg(_ARG_WEIGHTS_ITER, w_iter)
        )
        return _keep(self._prims, t, (prim, mems, args, scratch_size))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``x`` ``(T, I)`` float32 -> ``(T, 2H)``: forward outputs, then backward outputs."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.inputs or x.shape[0] == 0:
            want = f"(T >= 1, {self.inputs})"
            raise ValueError(f"input of shape {x.shape} for a GRU of {self.inputs} inputs; expected {want}")
        out = np.empty((x.shape[0], 2 * self.hidden), np.float32)
        _bind_and_run(self._prim(x.shape[0]), [x.ctypes.data, out.ctypes.data, self.bias.ctypes.data])
        return out
