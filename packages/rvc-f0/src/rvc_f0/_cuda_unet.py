"""RMVPE's U-Net on short inputs (live blocks) as direct-convolution CUDA kernels (MLX's CUDA backend).

A live block asks RMVPE for ~32 frames: ~2 GFLOP over ~130 convolutions, each of them a cuDNN
call plus a BatchNorm/ReLU kernel in the compiled MLX U-Net, whose host-side launch cost is most of
the time. Here each ``ConvBlockRes`` is two launches of one small kernel: BatchNorm folded into
the weights, ReLU, the residual add and the 1x1 shortcut convolution fused into the second
(``relu(bn2(conv2(h))) + shortcut(x)``). The decoder's up-sampling is the same kernel as a 2x2
convolution to the four output parities (the layer's own tap matrix) and a pixel shuffle.

The kernel: one thread block per ``PX`` output pixels x ``OT`` output channels; its ``KS``
warps-worth of threads split the input channels, each thread holds ``PX`` sums (a weight read
once serves ``PX`` pixels), the slices meet in shared memory. Float32 throughout (same
equations as MLX's convolution; the summation order differs).

:class:`DeviceUnet` walks the network with any such convolution: :func:`conv_cuda` (the kernel)
or :func:`conv_mlx` (MLX's ``conv2d``: the reference for the tests, on any device). Imported lazily.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import mlx.core as mx
import numpy as np

from ._cpu_unet import _fold, parity_weights

log = logging.getLogger("rvc_f0")

_SOURCE = """
    constexpr int NT = OT * KS;
    __shared__ float part[KS * PX * OT];
    __shared__ float part0[MODE == 2 ? KS * PX * OT : 1];
    const int H = dims[0], W = dims[1], I = dims[2], O = dims[3], I0 = dims[4], NPIX = dims[5];
    const int tid = threadIdx.x, ot = tid % OT, ks = tid / OT;
    const int tiles = (O + OT - 1) / OT;
    const int tile = blockIdx.x % tiles;
    const int pix0 = (blockIdx.x / tiles) * PX;
    const int o = tile * OT + ot;
    const int HW = H * W;
    float acc[PX], acc0[PX];
    #pragma unroll
    for (int p = 0; p < PX; ++p) { acc[p] = 0.0f; acc0[p] = 0.0f; }
    if (o < O) {
        int ph[PX], pw[PX], pn[PX];
        #pragma unroll
        for (int p = 0; p < PX; ++p) {
            const int pix = pix0 + p;
            const int r = pix % HW;
            pn[p] = pix / HW;
            ph[p] = pix < NPIX ? r / W : -(1 << 20);
            pw[p] = r % W;
        }
        const int ic = (I + KS - 1) / KS, i0 = ks * ic, i1 = min(I, i0 + ic);
        for (int dy = 0; dy < KH; ++dy) {
            for (int dx = 0; dx < KW; ++dx) {
                const float* xp[PX];
                bool ok[PX];
                #pragma unroll
                for (int p = 0; p < PX; ++p) {
                    const int yy = ph[p] + dy - PAD, xx = pw[p] + dx - PAD;
                    ok[p] = yy >= 0 && yy < H && xx >= 0 && xx < W;
                    xp[p] = x + (((size_t)pn[p] * H + (ok[p] ? yy : 0)) * W + (ok[p] ? xx : 0)) * I;
                }
                const float* wp = w + (size_t)(dy * KW + dx) * I * O + o;
                for (int i = i0; i < i1; ++i) {
                    const float wv = wp[(size_t)i * O];
                    #pragma unroll
                    for (int p = 0; p < PX; ++p) if (ok[p]) acc[p] = fmaf(xp[p][i], wv, acc[p]);
                }
            }
        }
        if (MODE == 2) {
            const int jc = (I0 + KS - 1) / KS, j0 = ks * jc, j1 = min(I0, j0 + jc);
            for (int j = j0; j < j1; ++j) {
                const float wv = ws[(size_t)j * O + o];
                #pragma unroll
                for (int p = 0; p < PX; ++p)
                    if (pix0 + p < NPIX) acc0[p] = fmaf(x0[(size_t)(pix0 + p) * I0 + j], wv, acc0[p]);
            }
        }
    }
    #pragma unroll
    for (int p = 0; p < PX; ++p) {
        part[(ks * PX + p) * OT + ot] = acc[p];
        if (MODE == 2) part0[(ks * PX + p) * OT + ot] = acc0[p];
    }
    __syncthreads();
    for (int e = tid; e < PX * OT; e += NT) {
        const int p = e / OT, t = e % OT, oo = tile * OT + t, pix = pix0 + p;
        if (oo >= O || pix >= NPIX) continue;
        float s = 0.0f, s0 = 0.0f;
        for (int k = 0; k < KS; ++k) {
            s += part[(k * PX + p) * OT + t];
            if (MODE == 2) s0 += part0[(k * PX + p) * OT + t];
        }
        float y = s + b[oo];
        if (RELU) y = fmaxf(y, 0.0f);
        if (MODE == 1) y += x0[(size_t)pix * O + oo];
        if (MODE == 2) y += s0 + bs[oo];
        out[(size_t)pix * O + oo] = y;
    }
"""

Conv = Callable[..., mx.array]
_kernel: Any = None
_dims: dict[tuple[int, ...], mx.array] = {}
_one = None


def _pow2_floor(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


def plan(npix: int, cin: int, cout: int) -> tuple[int, int, int]:
    """``(OT, KS, PX)``: output channels per block, input-channel slices, pixels per block.

    4 pixels per block (8 where a level has few pixels and wide weights: a weight read once
    serves them all); up to 32 channels per block, fewer where that leaves under 128 blocks
    (the deep levels: a few pixels, 512 channels); the input channels split so that each thread
    sums ~8 of them, at most 256 threads a block (the registers of 8 pixels' sums must fit)."""
    px = min(8 if npix <= 64 else 4, 1 << max(0, (npix - 1).bit_length()))
    ot = min(32, 1 << max(0, (cout - 1).bit_length()))
    while ot > 8 and -(-npix // px) * -(-cout // ot) < 128:
        ot //= 2
    ks = min(256 // ot, _pow2_floor(cin // 8))
    return ot, ks, px


def conv_cuda(
    x: mx.array,
    w: mx.array,
    b: mx.array,
    *,
    k: int,
    pad: int,
    relu: bool,
    res: mx.array | None = None,
    short: tuple[mx.array, mx.array, mx.array] | None = None,
) -> mx.array:
    """``relu?(conv(x) + b) [+ res | + x0 @ ws + bs]`` as one kernel launch.

    ``x`` (N, H, W, I) float32, ``w`` (k * k * I, O) (taps row-major, then input channels),
    ``b`` (O,); stride 1, the output keeps ``H x W``: zero padding ``pad`` before and ``k - 1 -
    pad`` after each spatial axis. ``res`` (N, H, W, O) is added after the ReLU; ``short`` =
    ``(x0 (N, H, W, I0), ws (I0, O), bs (O,))``, a 1x1 convolution added after the ReLU."""
    global _kernel, _one
    if _kernel is None:
        _kernel = mx.fast.cuda_kernel(
            name="rvc_rmvpe_conv",
            input_names=["x", "w", "b", "x0", "ws", "bs", "dims"],
            output_names=["out"],
            source=_SOURCE,
        )
        _one = mx.zeros((1,), mx.float32)
    n, h, wd, cin = x.shape
    cout = w.shape[1]
    mode, x0, ws, bs, cin0 = 0, _one, _one, _one, 0
    if res is not None:
        mode, x0 = 1, res
    elif short is not None:
        (x0, ws, bs), mode = short, 2
        cin0 = x0.shape[-1]
    npix = n * h * wd
    key = (h, wd, cin, cout, cin0, npix)
    dims = _dims.get(key)
    if dims is None:
        dims = _dims[key] = mx.array(np.array(key, np.int32))
        mx.eval(dims)
    ot, ks, px = plan(npix, cin, cout)
    blocks = -(-npix // px) * -(-cout // ot)
    (out,) = _kernel(
        inputs=[x, w, b, x0, ws, bs, dims],
        template=[
            ("KH", k),
            ("KW", k),
            ("PAD", pad),
            ("RELU", int(relu)),
            ("MODE", mode),
            ("OT", ot),
            ("KS", ks),
            ("PX", px),
        ],
        grid=(blocks * ot * ks, 1, 1),
        threadgroup=(ot * ks, 1, 1),
        output_shapes=[(n, h, wd, cout)],
        output_dtypes=[mx.float32],
    )
    return out


def conv_mlx(
    x: mx.array,
    w: mx.array,
    b: mx.array,
    *,
    k: int,
    pad: int,
    relu: bool,
    res: mx.array | None = None,
    short: tuple[mx.array, mx.array, mx.array] | None = None,
) -> mx.array:
    """:func:`conv_cuda`'s result with MLX's ``conv2d`` (any device)."""
    cin, cout = x.shape[-1], w.shape[1]
    after = k - 1 - pad
    xp = mx.pad(x, ((0, 0), (pad, after), (pad, after), (0, 0))) if pad or after else x
    y = mx.conv2d(xp, w.reshape(k, k, cin, cout).transpose(3, 0, 1, 2)) + b
    if relu:
        y = mx.maximum(y, 0)
    if res is not None:
        y = y + res
    if short is not None:
        x0, ws, bs = short
        y = y + (x0 @ ws + bs)
    return y


# (n, h, w, cin, cout, k, pad) that check conv_cuda against conv_mlx: odd sizes, one input channel,
# channels over a tile, a 1-row image at the widest layer, an even kernel without padding
CHECK_SHAPES = (
    (1, 3, 5, 16, 9, 3, 1),
    (1, 32, 128, 1, 16, 3, 1),
    (2, 4, 6, 70, 40, 3, 1),
    (1, 1, 4, 512, 512, 3, 1),
    (1, 3, 3, 6, 20, 2, 0),
)


def _mat(w: np.ndarray) -> mx.array:
    """(O, kh, kw, I) -> (kh * kw * I, O)."""
    return mx.array(np.ascontiguousarray(w.transpose(1, 2, 3, 0).reshape(-1, w.shape[0])))


class DeviceUnet:
    """``net.cnn(net.unet(x))`` of an mlx-rmvpe ``E2E`` with fused convolutions (``conv``:
    :func:`conv_cuda` or :func:`conv_mlx`), in MLX arrays on the default device.

    Raises ValueError for a network it does not cover (the decoder's up-sampling not rvc-f0's
    corrected one): the caller keeps MLX's U-Net."""

    def __init__(self, net: Any, conv: Conv) -> None:
        self.conv = conv
        unet = net.unet
        self.bn = unet.encoder.bn
        self.encoder = [
            ([self._block(b) for b in layer.conv_blocks], tuple(layer.kernel_size)) for layer in unet.encoder.layers
        ]
        self.intermediate = [self._block(b) for layer in unet.intermediate.layers for b in layer.conv_blocks]
        self.decoder = []
        for layer in unet.decoder.layers:
            parity = parity_weights(layer)  # the up-sampling: a 2x2 convolution to four parities
            if parity is None:
                raise ValueError("RMVPE's decoder up-sampling is not the corrected one")
            wu, bu = parity
            up = (_mat(wu), mx.array(bu), wu.shape[0] // 4)
            self.decoder.append((up, [self._block(b) for b in layer.conv_blocks]))
        self.cnn = (
            _mat(np.array(net.cnn.weight, dtype=np.float32)),
            mx.array(np.array(net.cnn.bias, dtype=np.float32)),
        )
        mx.eval(self.__dict__)

    @staticmethod
    def _block(block: Any) -> tuple:
        w1, b1 = _fold(block.conv1, block.bn1)
        w2, b2 = _fold(block.conv2, block.bn2)
        sc = block.shortcut
        short = None
        if sc is not None:
            ws = np.array(sc.weight, dtype=np.float32)  # (O, 1, 1, I0)
            short = (mx.array(np.ascontiguousarray(ws[:, 0, 0, :].T)), mx.array(np.array(sc.bias, dtype=np.float32)))
        return (_mat(w1), mx.array(b1)), (_mat(w2), mx.array(b2)), short

    def _run(self, blk: tuple, x: mx.array) -> mx.array:
        (w1, b1), (w2, b2), short = blk
        h = self.conv(x, w1, b1, k=3, pad=1, relu=True)
        if short is None:
            return self.conv(h, w2, b2, k=3, pad=1, relu=True, res=x)
        return self.conv(h, w2, b2, k=3, pad=1, relu=True, short=(x, *short))

    def __call__(self, x: mx.array) -> mx.array:
        """``(1, T, 128, 1)`` log-mel (T a multiple of 32) -> ``(1, T, 128, 3)``."""
        h = self.bn(x)
        skips = []
        for blocks, (kh, kw) in self.encoder:
            for blk in blocks:
                h = self._run(blk, h)
            skips.append(h)
            b_, hh, ww, c = h.shape
            h = h[:, : hh // kh * kh, : ww // kw * kw].reshape(b_, hh // kh, kh, ww // kw, kw, c).mean(axis=(2, 4))
        for blk in self.intermediate:
            h = self._run(blk, h)
        for ((wu, bu, o), blocks), skip in zip(self.decoder, reversed(skips)):
            b_, hh, ww, _ = h.shape
            up = self.conv(h, wu, bu, k=2, pad=0, relu=True)  # (1, h, w, 4 O): the four parities
            up = up.reshape(b_, hh, ww, 2, 2, o).transpose(0, 1, 3, 2, 4, 5).reshape(b_, 2 * hh, 2 * ww, o)
            h = mx.concatenate([up, skip], axis=-1)
            for blk in blocks:
                h = self._run(blk, h)
        return self.conv(h, *self.cnn, k=3, pad=1, relu=False)


class ShortInputs:
    """The U-Net for ``(1, T, 128, 1)`` inputs: ``direct()``'s (built on first use) up to
    ``frames`` frames, ``fallback`` beyond, and for good if the direct one fails to build or run
    (logged once). Each new input length's first direct pass is evaluated here, so that a kernel
    that cannot be built here fails now, not later in the caller's graph."""

    def __init__(self, direct: Callable[[], Callable[[mx.array], mx.array]], fallback: Conv, frames: int) -> None:
        self._make, self.fallback, self.frames = direct, fallback, frames
        self._direct: Callable[[mx.array], mx.array] | None = None
        self._seen: set[tuple[int, ...]] = set()
        self.failed = False

    def __call__(self, x: mx.array) -> mx.array:
        if self.failed or x.shape[1] > self.frames:
            return self.fallback(x)
        try:
            if self._direct is None:
                self._direct = self._make()
            y = self._direct(x)
            if x.shape not in self._seen:
                mx.eval(y)
                self._seen.add(x.shape)
            return y
        except Exception as exc:  # noqa: BLE001 (a JIT or launch failure: the MLX U-Net from now on)
            self.failed = True
            log.warning("RMVPE direct-convolution kernels unavailable (%s); using MLX's U-Net", exc)
            return self.fallback(x)
