"""The decoder's convolution stack on oneDNN (CPU, float32), activations fused as post-ops.

Same arithmetic as :meth:`.generator.Generator._decode`, on NumPy buffers:

- ``leaky_relu(x)`` before a stage's resblocks is computed once and shared by the first
  pair of every resblock;
- ``c1`` carries its leaky ReLU as a post-op; ``c2`` adds its residual as a post-op (in
  place for the later pairs), and the last pair of each resblock adds straight into the
  running sum of the resblocks, the last one scaling it by ``1/len(resblocks)``;
- each upsampler's NSF noise convolution adds in place onto its output; ``conv_post``
  carries the ``tanh``.
"""

from __future__ import annotations

import numpy as np

from rvc_runtime import onednn as _dnnl

LRELU_SLOPE = 0.1


def _np(a) -> np.ndarray:
    return np.array(a, dtype=np.float32)


def _conv(layer) -> _dnnl.Conv:
    bias = _np(layer.bias) if "bias" in layer else None
    return _dnnl.Conv(_np(layer.weight), bias, stride=layer.stride, padding=layer.padding, dilation=layer.dilation)


class _PolyphaseConv(_dnnl.Conv):
    """A transposed convolution run as a kernel-``m`` convolution with ``u * cout_signal``
    output channels (see :func:`_polyphase`): the signal's kernel ``k_signal``, its cropping."""

    m: int
    u: int
    k_signal: int
    crop: int
    cout_signal: int


class _UnpaddedConv(_dnnl.Conv):
    """A stride-1 convolution run on inputs that already carry its ``pad`` zeros each side."""

    pad: int


class _Pool:
    """Reused float32 buffers: all stages of a stretch need about the same bytes (the channels
    halve as the length doubles), and fresh 25-50 MB arrays per layer fragment the heap (the
    peak RSS tripled with them)."""

    def __init__(self) -> None:
        self.free: list[np.ndarray] = []

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        n = int(np.prod(shape))
        for i, buf in enumerate(self.free):
            if buf.size >= n:
                return self.free.pop(i)[:n].reshape(shape)
        if self.free:  # too small for this shape: replace the smallest
            del self.free[min(range(len(self.free)), key=lambda i: self.free[i].size)]
        return np.empty(n, np.float32).reshape(shape)

    def give(self, *arrays: np.ndarray) -> None:
        for a in arrays:
            self.free.append(a.base if a.base is not None else a.reshape(-1))


def tile_for(channels: int) -> int:
    """Samples per convolution call. Creating a primitive costs ~4 us per output sample at
    32-64 channels (~20 ms flat at 128+); 4096-sample tiles lose little speed, and the
    shorter early stages (10x fewer samples per upsampler) get shorter tiles so that rounding
    up to whole tiles wastes little."""
    return 256 if channels >= 512 else 2048 if channels >= 256 else 4096


class DnnlDecoder:
    """Built once from a :class:`~.generator.Generator`'s (float32) weights.

    A stage's activations of ``n`` samples live in buffers laid out as ``margin`` zeros,
    the ``n`` samples, zeros up to the next whole tile plus ``margin``. The resblock
    convolutions then run unpadded, in fixed tiles: the same few dozen primitives serve every
    input length (oneDNN's padded convolutions also precompute large tables). Samples past
    ``n`` hold garbage after a convolution and are zeroed again.
    """

    def __init__(self, gen) -> None:
        cfg = gen.cfg
        self.nk = len(cfg.resblock_kernel_sizes)
        self.conv_pre = _conv(gen.conv_pre)
        self.ups = [_polyphase(u) for u in gen.ups]
        self.noise_convs = [_conv(c) for c in gen.noise_convs] if "noise_convs" in gen else None
        rbs = [
            list(zip(rb.convs1, rb.convs2)) if cfg.resblock == "1" else [(c, None) for c in rb.convs]
            for rb in gen.resblocks
        ]
        pads = [c.padding for pairs in rbs for pair in pairs for c in pair if c is not None]
        self.margin = max(pads + [gen.conv_post.padding] + [u.m - 1 for u in self.ups] + [u.crop for u in self.ups])
        self.blocks = [
            [(_unpadded(c1), _unpadded(c2) if c2 is not None else None) for c1, c2 in pairs] for pairs in rbs
        ]
        self.conv_post = _unpadded(gen.conv_post)
        self.pool = _Pool()

    def _padded(self, n: int, c: int, *, need: int = 0) -> np.ndarray:
        """A pooled buffer for ``n`` samples of ``c`` channels (and a spare tile), zero outside
        them; at least ``need`` rows."""
        m, tile = self.margin, tile_for(c)
        buf = self.pool.take((1, max(m + (-(-n // tile) + 1) * tile + m, need), c))
        buf[:, :m] = 0
        buf[:, m + n :] = 0
        return buf

    def _rezero(self, buf: np.ndarray, n: int) -> None:
        buf[:, self.margin + n :] = 0

    def _inner(self, buf: np.ndarray, n: int) -> np.ndarray:
        """The ``n`` samples of a padded buffer."""
        return buf[:, self.margin : self.margin + n]

    def _tiles(self, buf: np.ndarray, n: int, pad: int = 0) -> np.ndarray:
        """The whole tiles over ``n`` samples of a padded buffer, ``pad`` rows of margin each side."""
        tile = tile_for(buf.shape[2])
        return buf[:, self.margin - pad : self.margin + -(-n // tile) * tile + pad]

    def _lrelu(self, x: np.ndarray, slope: float) -> np.ndarray:
        return _dnnl.leaky_relu(x, slope, out=self.pool.take(x.shape))

    def __call__(self, x: np.ndarray, har: np.ndarray | None, cond: np.ndarray | None) -> np.ndarray:
        """``x`` ``(1, T, inter)``, ``har`` ``(1, T*hop, 1)``, ``cond`` ``(ch0,)`` -> ``(1, T*hop)``.

        The result is a view of a pooled buffer: copy it before the next call.
        """
        bias = self.conv_pre.bias + cond if cond is not None else None
        n = self.conv_pre.out_len(x.shape[1])
        xp = self._padded(n, self.conv_pre.cout)
        self.conv_pre(x, bias=bias, out=self._inner(xp, n))
        for i, up in enumerate(self.ups):
            t = self._lrelu(xp, LRELU_SLOPE)
            self.pool.give(xp)
            xp, n = self._upsample(up, t, n)
            self.pool.give(t)
            if self.noise_convs is not None:
                assert har is not None, "an NSF decoder needs the harmonic source"
                self.noise_convs[i](har, post_ops=(("sum",),), out=self._inner(xp, n))
            xp = self._stage(xp, n, self.blocks[i * self.nk : (i + 1) * self.nk])
        t = self._lrelu(xp, 0.01)  # zero stays zero
        post = self.conv_post
        y = self.pool.take((1, self._tiles(t, n).shape[1], 1))
        post(self._tiles(t, n, post.pad), post_ops=(("tanh",),), out=y, tile=tile_for(t.shape[2]))
        self.pool.give(xp, t, y)  # y stays readable until the next take
        return y[:, :n, 0]

    def _upsample(self, up: _PolyphaseConv, t: np.ndarray, n: int) -> tuple[np.ndarray, int]:
        """The transposed convolution, polyphase (see :func:`_polyphase`), from the padded
        ``t`` of ``n`` samples straight into a new padded buffer."""
        m, tile = self.margin, tile_for(t.shape[2])
        frames = -(-(n + up.m - 1) // tile) * tile  # whole tiles of polyphase frames
        src = t[:, m - (up.m - 1) : m + frames]
        n_out = (n - 1) * up.u - 2 * up.crop + up.k_signal
        xp = self._padded(n_out, up.cout_signal, need=m - up.crop + frames * up.u)
        dst = xp[:, m - up.crop : m - up.crop + frames * up.u].reshape(1, frames, up.u * up.cout_signal)
        up(src, out=dst, tile=tile)
        xp[:, :m] = 0
        self._rezero(xp, n_out)
        return xp, n_out

    def _stage(self, x: np.ndarray, n: int, blocks: list) -> np.ndarray:
        """The mean of a stage's resblocks on the padded ``x`` (given back to the pool)."""
        c = x.shape[2]
        tile = tile_for(c)
        first = self._lrelu(x, LRELU_SLOPE)  # the first pair of every resblock starts here
        xs = None
        nk = len(blocks)
        for j, pairs in enumerate(blocks):
            y = x  # read-only until replaced by a fresh buffer
            for p, (c1, c2) in enumerate(pairs):
                t = first if p == 0 else self._lrelu(y, LRELU_SLOPE)
                if c2 is None:  # ResBlock2: y = c(lrelu(y)) + y
                    u, conv = t, c1
                else:
                    u = self._padded(n, c)
                    c1(self._tiles(t, n, c1.pad), post_ops=(("relu", LRELU_SLOPE),), out=self._tiles(u, n), tile=tile)
                    self._rezero(u, n)
                    conv = c2
                src = self._tiles(u, n, conv.pad)
                last = p == len(pairs) - 1
                if last and xs is not None:  # xs = (c2(u) + y) + xs [/ nk]
                    ops = (("add",), ("sum",)) + ((("linear", 1.0 / nk, 0.0),) if j == nk - 1 else ())
                    conv(src, post_ops=ops, out=self._tiles(xs, n), add=(self._tiles(y, n),), tile=tile)
                    self._rezero(xs, n)
                    if y is not x:
                        self.pool.give(y)
                else:
                    if y is x:  # a new buffer: c2(u) + x
                        y = self._padded(n, c)
                        conv(src, post_ops=(("add",),), add=(self._tiles(x, n),), out=self._tiles(y, n), tile=tile)
                    else:
                        conv(src, post_ops=(("sum",),), out=self._tiles(y, n), tile=tile)
                    self._rezero(y, n)
                if u is not t:
                    self.pool.give(u)
                if t is not first:
                    self.pool.give(t)
            if xs is None:
                xs = y
        self.pool.give(x, first)
        assert xs is not None  # a stage has at least one resblock
        return xs


def _polyphase(layer) -> _PolyphaseConv:
    """``ConvTranspose1d`` (stride ``u``, kernel ``k``, padding ``p``) as an ordinary conv.

    Output sample ``j = s*u + r`` of the uncropped transposed conv is
    ``sum_i x[s - i] @ W[:, i*u + r]`` (``i < m = ceil(k/u)``): a kernel-``m`` convolution
    over ``x`` zero-padded by ``m - 1`` each side, with ``u * out`` channels ordered
    ``(r, out)``, so that its ``(frames, u*out)`` output *is* the ``(frames*u, out)`` signal.
    Cropping ``p`` samples each side gives the layer's output.
    """
    w = _np(layer.weight)  # (out, k, in)
    cout, k, cin = w.shape
    u = layer.stride
    m = -(-k // u)
    wp = np.zeros((cout, m * u, cin), np.float32)
    wp[:, :k] = w
    # conv tap q reads x[s - (m - 1 - q)]: weight index i = m - 1 - q
    taps = wp.reshape(cout, m, u, cin)[:, ::-1]  # (out, q, r, in)
    conv = _PolyphaseConv(
        np.ascontiguousarray(taps.transpose(2, 0, 1, 3).reshape(u * cout, m, cin)), np.tile(_np(layer.bias), u)
    )
    conv.m, conv.u, conv.k_signal, conv.crop, conv.cout_signal = m, u, k, layer.padding, cout
    return conv


def _unpadded(layer) -> _UnpaddedConv:
    """A stride-1 conv run on inputs that carry its zero padding (see :class:`DnnlDecoder`)."""
    conv = _UnpaddedConv(_np(layer.weight), _np(layer.bias) if "bias" in layer else None, dilation=layer.dilation)
    conv.pad = layer.padding
    return conv
