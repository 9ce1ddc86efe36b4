"""A CPU-friendly forward pass for mlx-contentvec's ``ContentvecModel`` (same parameters, same
result within float32 rounding).

Why: on MLX's Linux CPU backend, ``conv1d`` with 512 channels runs at ~15 GFLOP/s, the grouped
positional conv (kernel 128, 16 groups) is slow, and transcendental element-wise ops
(``erf`` in GELU, ``exp``) cost ~30 ns per element. Here:

* the feature extractor streams over blocks of 256 output frames (each from its own receptive
  field), every convolution one GEMM over strided slices (im2col), which OpenBLAS runs at full
  speed; the first layer's group norm is folded into its GEMM (its statistics over the whole
  input follow from the 10 x 10 covariance of the input frames);
* the positional conv is a grouped GEMM over blocks of 8 kernel taps;
* GELU uses a compiled rational ``erf`` (float32 accuracy, max error 4.4e-7 on erf), ~6x
  faster than ``nn.gelu`` here (GPUs keep MLX's ``erf``: one fused kernel per GELU, where the
  rational one's depth splits into three);
* attention projects q, k, v with one GEMM (MLX), then runs on groups of heads in NumPy (SIMD
  ``exp``; at most ~64 MB of scores at a time); LayerNorm is ``mx.fast.layer_norm``.
* on the CPU with oneDNN the positional conv and the transformer layers run as oneDNN
  primitives instead (:mod:`._cv_cpu`).

Imported lazily (imports mlx).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten

from ._cv_ops import _conv_gemm, _taps, gelu, gelu_erf

POS_ONE_PASS_BYTES = 1 << 26  # the positional conv's taps in one matmul while its im2col fits this
MAX_GRAPHS = 8  # GPUs: compiled forwards kept (one per input length, output layer and dtype)
DNNL_BLOCKS = (256, 64, 16)  # frames per oneDNN feature-extractor call


class _Norm(NamedTuple):
    weight: mx.array
    bias: mx.array
    eps: float


def _cast(a: Any, dtype: mx.Dtype) -> Any:
    if a is None:
        return None
    if isinstance(a, mx.array):
        return a.astype(dtype)
    return _Norm(a.weight.astype(dtype), a.bias.astype(dtype), a.eps)  # a LayerNorm


class _GraphWeights(NamedTuple):
    """The GPU graph's weights: feature convolutions ``(k, s, w2, bias, norm)``, transformer
    layers (:meth:`FastContentvec._layer`'s tuples), positional conv, the feature LayerNorm, the
    projection ``(W^T, b)`` or None, the encoder LayerNorm."""

    convs: list
    layers: list
    pos_w: mx.array
    pos_b: mx.array
    ln_feat: Any
    proj: tuple[mx.array, mx.array] | None
    ln_enc: Any

    def cast(self, dtype: mx.Dtype) -> _GraphWeights:
        """A copy in ``dtype`` (evaluated), the first convolution left as it is (float32)."""
        convs = self.convs[:1] + [(k, s, *(_cast(a, dtype) for a in rest)) for k, s, *rest in self.convs[1:]]
        out = _GraphWeights(
            convs,
            [tuple(_cast(a, dtype) for a in lay) for lay in self.layers],
            _cast(self.pos_w, dtype),
            _cast(self.pos_b, dtype),
            _cast(self.ln_feat, dtype),
            None if self.proj is None else tuple(_cast(a, dtype) for a in self.proj),
            _cast(self.ln_enc, dtype),
        )
        mx.eval([a for _, a in tree_flatten(out) if isinstance(a, mx.array)])
        return out


class FastContentvec:
    """Runs a loaded ``ContentvecModel`` (eval mode, ``encoder_layers_1 = 0``) on one clip."""

    def __init__(
        self,
        model: Any,
        conv_layers: list[tuple[int, int, int]],
        *,
        mode: str,
        layer_norm_first: bool,
        heads: int,
        pos_groups: int,
    ) -> None:
        self.model = model
        self.mode = mode
        self.layer_norm_first = layer_norm_first
        self.heads = heads
        # the kernels are chosen once, here: on the CPU oneDNN convolutions (when installed) and
        # NumPy attention; on GPUs MLX's (fused attention)
        self.cpu = mx.default_device() == mx.cpu
        self.gelu = gelu if self.cpu else gelu_erf
        # MLX's CUDA attention for long queries is its generic fallback, which first multiplies q
        # by the scale (1 here: q is pre-scaled): the same matmul-softmax-matmul without that
        # kernel (12 per call); Metal keeps the fused kernel. In half precision it hands the
        # attention to cuDNN: measured against this, under 1 ms gained at 60 s and lost at 10 s
        self.fused_attention = not self.cpu and not mx.cuda.is_available()
        fe = model.feature_extractor
        self.convs = []
        for (_, k, s), blk in zip(conv_layers, fe.conv_layers):
            w = blk.conv.weight  # (O, K, I)
            w2 = w.reshape(w.shape[0], -1).T  # (K*I, O), tap-major like the im2col columns
            bias = blk.conv.bias if "bias" in blk.conv else None
            self.convs.append((k, s, w2, bias, blk.norm))
        # positional conv: weight norm over the kernel axis (mlx layout (O, K, I/g)), fused once
        wn = model.encoder.pos_conv.layers[0]
        v, g = wn.v, wn.g
        norm = mx.maximum(mx.sqrt(mx.sum(v * v, axis=(0, 2), keepdims=True)), 1e-5)
        w = g * (v / norm)
        o, k, ig = w.shape
        self.pos_k, self.pos_groups = k, pos_groups
        self.pos_w = w.reshape(pos_groups, o // pos_groups, k, ig).transpose(0, 2, 3, 1)  # (G, K, Ig, Og)
        self.pos_b = wn.module.bias
        self.layers = []
        for layer in model.encoder.layers:
            a = layer.self_attn
            wqkv = mx.concatenate([a.q_proj.weight * a.scaling, a.k_proj.weight, a.v_proj.weight], axis=0).T
            bqkv = mx.concatenate([a.q_proj.bias * a.scaling, a.k_proj.bias, a.v_proj.bias])
            self.layers.append(
                (
                    wqkv,
                    bqkv,
                    a.out_proj.weight.T,
                    a.out_proj.bias,
                    layer.self_attn_layer_norm,
                    layer.fc1.weight.T,
                    layer.fc1.bias,
                    layer.fc2.weight.T,
                    layer.fc2.bias,
                    layer.final_layer_norm,
                )
            )
        mx.eval(self.pos_w, [c[2] for c in self.convs], [lay[:4] + lay[5:9] for lay in self.layers])
        self._graphs: dict[tuple, Any] = {}  # GPUs: compiled forwards per length and dtype (static_shape)
        proj = model.post_extract_proj
        w32 = _GraphWeights(  # the GPU graph's weights; other dtypes: cast copies (weights())
            self.convs,
            self.layers,
            self.pos_w,
            self.pos_b,
            model.layer_norm,
            None if proj is None else (proj.weight.T, proj.bias),
            model.encoder.layer_norm,
        )
        self._weights: dict[mx.Dtype, _GraphWeights] = {mx.float32: w32}
        self._w0_np = np.array(self.convs[0][2], dtype=np.float64)  # the first layer, for the group-norm fold

    def weights(self, dtype: mx.Dtype) -> _GraphWeights:
        """The GPU graph's weights in ``dtype`` (float32, or float16/bfloat16 as the reference's
        half mode runs HuBERT: cast once, kept), the first convolution always float32."""
        if dtype not in self._weights:
            if dtype not in (mx.float16, mx.bfloat16):
                raise ValueError(f"dtype={dtype}; expected float32, float16 or bfloat16")
            self._weights[dtype] = self._weights[mx.float32].cast(dtype)
        return self._weights[dtype]

    # --- stages ---------------------------------------------------------------------------

    def features(self, audio: np.ndarray, block: int = 256) -> mx.array:
        """(N,) float32 -> (T, C) conv features (before the feature LayerNorm).

        Streamed: ``block`` output frames at a time, each from its own receptive field of the
        input (valid convolutions, so the frames are those of the whole-input pass), which keeps
        the 512-channel intermediate layers of a long chunk out of memory. The group norm of the
        first layer needs statistics over the whole input: they are computed first and folded
        into the first layer's weights."""
        stride, field = self._stride(), self._field()
        n = self._frames(len(audio))
        k0, s0, w0, b0, norm0 = self.convs[0]
        group_norm = self.mode != "layer_norm"
        if norm0 is not None and group_norm:
            w0, b0 = self._fold_group_norm(audio, k0, s0, self._w0_np, norm0)
        dnnl = self._dnnl_convs() if group_norm else []
        if dnnl and n > 0:
            return self._features_dnnl(
                audio, dnnl, _taps(w0, k0), None if b0 is None else np.array(b0), n, stride, field
            )
        outs = []
        for f0 in range(0, max(n, 0), block):
            f1 = min(n, f0 + block)
            seg = audio[stride * f0 : stride * (f1 - 1) + field]
            x = mx.array(seg)[:, None]
            for i, (k, s, w2, bias, norm) in enumerate(self.convs):
                if i == 0:
                    x = _conv_gemm(x, w0, k, s, b0)
                    x = (
                        gelu(x)
                        if norm is None or group_norm
                        else gelu(mx.fast.layer_norm(x, norm.weight, norm.bias, norm.eps))
                    )
                    continue
                x = _conv_gemm(x, w2, k, s, bias)
                if norm is not None and not group_norm:
                    x = gelu(mx.fast.layer_norm(x, norm.weight, norm.bias, norm.eps))
                else:  # (HuBERT's group norm sits on the first layer only)
                    x = gelu(x)
            mx.eval(x)
            outs.append(x)
        if not outs:
            return mx.zeros((0, self.convs[-1][2].shape[1]))
        return outs[0] if len(outs) == 1 else mx.concatenate(outs, axis=0)

    def _features_dnnl(
        self, audio: np.ndarray, convs: list, w0: np.ndarray, b0: np.ndarray | None, n: int, stride: int, field: int
    ) -> mx.array:
        """:meth:`features` on oneDNN, GELU fused: blocks of 256, 64 or 16 frames (the last one
        zero-padded), so that the primitives (whose creation costs up to ~0.2 s each) are made
        once per process, whatever the input length; the first layer's weights, which carry this
        input's group norm, are swapped in place."""
        convs[0].set_weights(w0, b0)
        outs, f0 = [], 0
        while f0 < n:
            size = next((b for b in DNNL_BLOCKS if b <= n - f0), DNNL_BLOCKS[-1])
            need = stride * (size - 1) + field
            seg = audio[stride * f0 : stride * f0 + need]
            xn = np.pad(seg, (0, need - len(seg)))[None, :, None]  # zeros reach only frames >= n
            for conv in convs:
                xn = conv(xn, post_ops=(("gelu",),))
            outs.append(xn[0, : n - f0])
            f0 += size
        return mx.array(np.concatenate(outs))

    def _dnnl_convs(self) -> list:
        """The feature extractor's layers as oneDNN convolutions (MLX on the CPU, oneDNN
        installed; rvc-synth's binding): 10 s of audio on 2 cores 0.97 -> ~0.4 s. Else []."""
        if not self.cpu:
            return []
        if getattr(self, "_dnnl", None) is None:
            from rvc_runtime import onednn as _dnnl

            self._dnnl = (
                []
                if not _dnnl.available()
                else [
                    _dnnl.Conv(_taps(w2, k), None if bias is None else np.array(bias), stride=s)
                    for k, s, w2, bias, _ in self.convs
                ]
            )
        return self._dnnl

    def _features_graph(
        self, x: mx.array, w0: mx.array, b0: mx.array | None, n: int, block: int = 512, *, dtype: mx.Dtype = mx.float32
    ) -> mx.array:
        """GPUs: :meth:`features` as one lazy graph (no evaluation between blocks): (N,) device
        audio, the first layer's folded weights -> (n, C). ``block`` frames per pass (512 = 10 s):
        each pass's 512-channel layers and im2col copies are all that is held at once (H200,
        exact float32, a 37 s chunk in one pass: 26.7 ms and 4.0 GB peak; in passes of 1024
        frames 27.0 ms and 3.5 GB, with the models' weights)."""
        stride, field = self._stride(), self._field()
        group_norm = self.mode != "layer_norm"
        outs = []
        for f0 in range(0, n, block):
            f1 = min(n, f0 + block)
            y = x[stride * f0 : stride * (f1 - 1) + field][:, None]
            for i, (k, s, w2, bias, norm) in enumerate(self.weights(dtype).convs):
                y = _conv_gemm(y, w0 if i == 0 else w2, k, s, b0 if i == 0 else bias)
                if norm is not None and not group_norm:
                    y = mx.fast.layer_norm(y, norm.weight, norm.bias, norm.eps)
                y = self.gelu(y)
                if i == 0:  # the first layer (its group-norm statistics too) is float32
                    y = y.astype(dtype)
            outs.append(y)
        return outs[0] if len(outs) == 1 else mx.concatenate(outs, axis=0)

    def _graph(
        self, x: mx.array, w0: mx.array, b0: mx.array | None, n: int, n_layers: int, final: bool, dtype: mx.Dtype
    ) -> mx.array:
        """GPUs: the whole forward as one lazy graph: (N,) device audio -> (n, D) float32, computed
        in ``dtype`` after the first layer."""
        w = self.weights(dtype)
        y = self._features_graph(x, w0, b0, n, dtype=dtype)
        y = mx.fast.layer_norm(y, w.ln_feat.weight, w.ln_feat.bias, w.ln_feat.eps)
        if w.proj is not None:
            y = mx.addmm(w.proj[1], y, w.proj[0])
        y = y + self.pos_conv(y, weights=(w.pos_w, w.pos_b))
        enc = w.ln_enc
        if not self.layer_norm_first:
            y = mx.fast.layer_norm(y, enc.weight, enc.bias, enc.eps)
        for params in w.layers[:n_layers]:
            y = self._layer(y, params)
        if final:
            y = mx.fast.layer_norm(y, enc.weight, enc.bias, enc.eps)
        return y.astype(mx.float32)

    def lazy(
        self,
        audio: np.ndarray | mx.array,
        *,
        output_layer: int | None = None,
        static_shape: bool = False,
        dtype: mx.Dtype = mx.float32,
    ) -> mx.array:
        """GPUs: the hidden states as an unevaluated array (the caller evaluates it, e.g. with
        ``mx.async_eval`` while other work is queued). ``static_shape``: the graph is
        ``mx.compile``d for this input length (fewer kernels, no graph building in Python once
        traced; the last ``MAX_GRAPHS`` lengths are kept): for lengths that repeat (live blocks,
        the pipeline's chunk lengths once they repeat). ``dtype``: see :meth:`weights`.
        On the CPU it is :meth:`__call__`'s (evaluated, float32) result. An ``mx.array``
        ``audio`` is used where it is (a pipeline's one upload); anything else is copied."""
        if self.cpu:
            return self(np.asarray(audio, dtype=np.float32), output_layer=output_layer)
        x = mx.array(audio, dtype=mx.float32)
        n_layers = len(self.layers) if output_layer is None else output_layer
        final = self.layer_norm_first and output_layer is None
        if not static_shape:
            return self._forward(x, n_layers, final, dtype)
        key = (n_layers, final, x.shape[0], dtype)
        fn = self._graphs.pop(key, None)
        if fn is None:  # the group-norm statistics and their fold inside the graph: fused too
            if len(self._graphs) >= MAX_GRAPHS:  # the least recently used length goes
                del self._graphs[next(iter(self._graphs))]
            fn = mx.compile(lambda x: self._forward(x, n_layers, final, dtype))
        self._graphs[key] = fn  # most recently used last
        return fn(x)

    def _forward(self, x: mx.array, n_layers: int, final: bool, dtype: mx.Dtype) -> mx.array:
        """GPUs: (N,) device audio -> (n, D), lazily: the first layer's group norm folded into
        its weights (:meth:`_fold_group_norm_mx`), then :meth:`_graph`."""
        k0, s0, w0, b0, norm0 = self.convs[0]
        if norm0 is not None and self.mode != "layer_norm":
            w0, b0 = self._fold_group_norm_mx(x, k0, s0, w0, norm0)
        return self._graph(x, w0, b0, self._frames(x.shape[0]), n_layers, final, dtype)

    def _frames(self, n: int) -> int:
        """Output frames of the feature extractor for ``n`` samples (valid convolutions)."""
        for k, s, *_ in self.convs:
            n = (n - k) // s + 1
        return n

    def _stride(self) -> int:
        stride = 1
        for _k, s, *_ in self.convs:
            stride *= s
        return stride

    def _field(self) -> int:
        field = 1
        for k, s, *_ in reversed(self.convs):
            field = (field - 1) * s + k
        return field

    def _cpu_encoder(self) -> Any:
        """The transformer layers on oneDNN (:class:`._cv_cpu.CpuEncoder`), built once; None
        unless MLX runs on the CPU and oneDNN is installed."""
        if not self._dnnl_convs():
            return None
        if getattr(self, "_cpu_enc", None) is None:
            from ._cv_cpu import CpuEncoder

            mx.eval([(lay[4].parameters(), lay[9].parameters()) for lay in self.layers])
            self._cpu_enc = CpuEncoder(
                self.layers,
                heads=self.heads,
                layer_norm_first=self.layer_norm_first,
                pos_conv=(self.pos_w, self.pos_b, self.pos_k),
                layer_norm=self.model.encoder.layer_norm,
            )
        return self._cpu_enc

    @staticmethod
    def _fold_group_norm(audio: np.ndarray, k: int, s: int, w2: np.ndarray, norm: Any) -> tuple[mx.array, mx.array]:
        """The first conv (1 -> C channels) followed by group norm (one group per channel, over
        time) is an affine map of the input frames: the conv output's per-channel mean and
        variance follow exactly from the k x k covariance of the input frames (float64). Returns
        the folded (k, C) weight and (C,) bias. (A conv bias would cancel in the norm.)"""
        t_out = (len(audio) - k) // s + 1
        cols = np.lib.stride_tricks.sliding_window_view(audio, k)[::s][:t_out].astype(np.float64)  # (T, k)
        mean = cols.mean(axis=0)
        cov = cols.T @ cols / t_out - np.outer(mean, mean)
        w = np.asarray(w2, dtype=np.float64)  # (k, C)
        var = np.einsum("kc,kl,lc->c", w, cov, w)
        scale = np.array(norm.weight, dtype=np.float64) / np.sqrt(np.maximum(var, 0.0) + norm.eps)
        shift = np.array(norm.bias, dtype=np.float64) - (mean @ w) * scale
        return mx.array((w * scale).astype(np.float32)), mx.array(shift.astype(np.float32))

    @staticmethod
    def _fold_group_norm_mx(x: mx.array, k: int, s: int, w2: mx.array, norm: Any) -> tuple[mx.array, mx.array]:
        """GPUs: :meth:`_fold_group_norm` on the device, lazily: the statistics in float32 from
        the first layer's output, as PyTorch's GroupNorm computes them, instead of a float64 host
        pass over the input before any kernel runs (2-core CPU: 3.8 ms per 36.7 s chunk)."""
        y = _conv_gemm(x[:, None], w2, k, s, None)  # (T, C): the first layer before its norm
        mean = mx.mean(y, axis=0)
        var = mx.mean(mx.square(y - mean), axis=0)
        scale = norm.weight * mx.rsqrt(var + norm.eps)
        return w2 * scale, norm.bias - mean * scale

    def pos_conv(self, x: mx.array, block: int = 8, *, weights: tuple[mx.array, mx.array] | None = None) -> mx.array:
        """The grouped positional conv (+ GELU): ``(T, C) -> (T, C)``, ``block`` kernel taps per
        matmul, or all of them in one when their im2col copy fits :data:`POS_ONE_PASS_BYTES`
        (live blocks, ~2.8 s: 2 kernels instead of ~47 on GPUs)."""
        pos_w, pos_b = weights if weights is not None else (self.pos_w, self.pos_b)
        t, c = x.shape
        g, k = self.pos_groups, self.pos_k
        if t * k * c * x.itemsize <= POS_ONE_PASS_BYTES:
            block = k
        ig = c // g
        xp = mx.pad(x, ((k // 2, k // 2), (0, 0))).reshape(-1, g, ig).transpose(1, 0, 2)  # (G, T+K, Ig)
        xp = mx.contiguous(xp)
        n = xp.shape[1]

        def taps(k0: int) -> mx.array:  # taps k0 .. k0+block-1, as one matmul per group
            nb = min(block, k - k0)
            # (G, T, nb*Ig): frame t's row is xp[:, t + k0 : t + k0 + nb] flattened, a strided view
            cols = mx.as_strided(xp, (g, t, nb * ig), (n * ig, ig, 1), k0 * ig)
            return cols @ pos_w[:, k0 : k0 + nb].reshape(g, nb * ig, -1)

        y = taps(0)
        for k0 in range(block, k, block):
            y = y + taps(k0)
        y = y.transpose(1, 0, 2).reshape(t, -1) + pos_b  # SamePad: the extra last frame is never made
        return self.gelu(y)

    def _attention(self, x: mx.array, wqkv: mx.array, bqkv: mx.array) -> mx.array:
        """Multi-head self-attention core (q pre-scaled). On the CPU: projections in MLX, then NumPy on
        groups of heads (its SIMD ``exp`` is ~20x faster than MLX's on CPU), at most ~64 MB of
        (heads, T, T) scores at a time."""
        t, d = x.shape
        h = self.heads
        hd = d // h
        qkv = mx.addmm(bqkv, x, wqkv)  # the bias in the GEMM: one kernel
        if not self.cpu:  # GPUs: MLX's fused attention (no (H, T, T) scores kept)
            # one copy to head-major (3H, T, hd): q, k and v are then contiguous slices, which
            # the attention's matmuls take as they are (strided views were copied one by one)
            qkv = mx.contiguous(qkv.reshape(t, 3 * h, hd).transpose(1, 0, 2))
            q, k, v = qkv[:h], qkv[h : 2 * h], qkv[2 * h :]
            if self.fused_attention:
                o = mx.fast.scaled_dot_product_attention(q[None], k[None], v[None], scale=1.0)[0]
            else:
                o = mx.softmax(q @ k.transpose(0, 2, 1), axis=-1, precise=True) @ v
            return o.transpose(1, 0, 2).reshape(t, d)
        mx.eval(qkv)
        a = np.asarray(qkv).reshape(t, 3, h, hd).transpose(1, 2, 0, 3)  # (3, H, T, hd), zero-copy view
        out = np.empty((t, d), np.float32)
        group = max(1, min(h, (1 << 24) // (t * t)))
        for g0 in range(0, h, group):
            g1 = min(h, g0 + group)
            s = np.matmul(a[0, g0:g1], a[1, g0:g1].transpose(0, 2, 1))  # (g, T, T)
            s -= s.max(axis=2, keepdims=True)
            np.exp(s, out=s)
            den = s.sum(axis=2, keepdims=True)
            o = np.matmul(s, a[2, g0:g1])
            o /= den
            out[:, g0 * hd : g1 * hd] = o.transpose(1, 0, 2).reshape(t, -1)
        return mx.array(out)

    def _layer(self, x: mx.array, params: tuple) -> mx.array:
        wqkv, bqkv, wo, bo, ln1, w1, b1, w2, b2, ln2 = params
        if self.layer_norm_first:
            h = mx.fast.layer_norm(x, ln1.weight, ln1.bias, ln1.eps)
            x = x + self._attention(h, wqkv, bqkv) @ wo + bo
            h = mx.fast.layer_norm(x, ln2.weight, ln2.bias, ln2.eps)
            return self._ffn(h, x, params)
        x = mx.fast.layer_norm(x + self._attention(x, wqkv, bqkv) @ wo + bo, ln1.weight, ln1.bias, ln1.eps)
        return mx.fast.layer_norm(self._ffn(x, x, params), ln2.weight, ln2.bias, ln2.eps)

    def _ffn(self, h: mx.array, res: mx.array, params: tuple) -> mx.array:
        """``res + gelu(h @ w1 + b1) @ w2 + b2`` (GPUs, or the CPU without oneDNN: with it the
        whole layer runs in :mod:`._cv_cpu`)."""
        w1, b1, w2, b2 = params[5:9]
        return res + self.gelu(h @ w1 + b1) @ w2 + b2

    def __call__(self, audio: np.ndarray, *, output_layer: int | None = None, dtype: mx.Dtype = mx.float32) -> mx.array:
        """(N,) float32 16 kHz -> (T, D) hidden states of transformer layer ``output_layer``
        (1-indexed; None = the last, with the final LayerNorm when ``layer_norm_first``).
        ``dtype``: the GPU graph's (:meth:`weights`); the CPU forward is float32."""
        if not self.cpu:  # GPUs: one lazy graph, evaluated here
            out = self.lazy(audio, output_layer=output_layer, dtype=dtype)
            mx.eval(out)
            return out
        m = self.model
        x = self.features(np.asarray(audio, dtype=np.float32))
        x = mx.fast.layer_norm(x, m.layer_norm.weight, m.layer_norm.bias, m.layer_norm.eps)
        if m.post_extract_proj is not None:
            x = m.post_extract_proj(x)
        enc = m.encoder
        n = len(self.layers) if output_layer is None else output_layer
        encoder = self._cpu_encoder()
        if encoder is not None:  # the CPU with oneDNN: pos conv and layers in oneDNN (_cv_cpu)
            x = mx.array(encoder(np.array(x), n))
        else:
            x = x + self.pos_conv(x)
            if not self.layer_norm_first:
                x = mx.fast.layer_norm(x, enc.layer_norm.weight, enc.layer_norm.bias, enc.layer_norm.eps)
        for params in self.layers[:n] if encoder is None else ():
            x = self._layer(x, params)
            mx.eval(x)
        if self.layer_norm_first and output_layer is None:
            x = mx.fast.layer_norm(x, enc.layer_norm.weight, enc.layer_norm.bias, enc.layer_norm.eps)
        return x
