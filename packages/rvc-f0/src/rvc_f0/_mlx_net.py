"""The MLX side of RMVPE: build mlx-rmvpe's ``E2E``, load weights strictly, correct the decoder,
and run it (with a faster but numerically equivalent up-sampling and BiGRU).

Imported lazily: importing this module imports mlx.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten
from mlx_rmvpe import E2E

from rvc_runtime import check_keys

from . import _gru_cuda
from .errors import RVCF0Error, WeightsFormatError

logger = logging.getLogger(__name__)

# RMVPE() builds E2E(4, 1, (2, 2)); files of narrower test networks carry their kwargs in metadata.
DEFAULT_E2E_KWARGS: dict[str, Any] = {"n_blocks": 4, "n_gru": 1, "kernel_size": (2, 2)}
_E2E_KEYS = {"n_blocks", "n_gru", "kernel_size", "en_de_layers", "inter_layers", "in_channels", "en_out_channels"}
_PREFIX = "model."  # mlx-rmvpe stores the E2E under RMVPE.model


def load_net(path: Path, *, correct: bool = True) -> tuple[E2E, bool]:
    """Build the E2E a weights file describes, load it strictly, upcast to float32, eval mode.

    Returns ``(net, corrected)``: whether the decoder correction had to be applied.
    """
    try:
        arrays, meta = mx.load(str(path), format="safetensors", return_metadata=True)
    except Exception as exc:
        raise WeightsFormatError(
            f"RMVPE weights {path}: not a readable safetensors file ({exc}); expected mlx-rmvpe weights "
            "(rmvpe.safetensors from lexandstuff/mlx-rmvpe)"
        ) from exc
    kwargs = _e2e_kwargs(path, meta)
    try:
        net = E2E(**kwargs)
    except Exception as exc:
        raise WeightsFormatError(
            f"RMVPE weights {path}: metadata e2e_kwargs={kwargs} do not build an E2E ({exc})"
        ) from exc
    _check_keys(path, arrays, dict(tree_flatten(net.parameters())))
    weights = [(k[len(_PREFIX) :], v if v.dtype == mx.float32 else v.astype(mx.float32)) for k, v in arrays.items()]
    net.load_weights(weights, strict=True)
    net.eval()  # MLX modules start in training mode (BatchNorm statistics, Dropout)
    corrected = correct_decoder(net) if correct else False
    mx.eval(net.parameters())
    return net, corrected


def _e2e_kwargs(path: Path, meta: dict[str, str]) -> dict[str, Any]:
    raw = meta.get("e2e_kwargs")
    if raw is None:
        return dict(DEFAULT_E2E_KWARGS)
    try:
        kw = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise WeightsFormatError(f"RMVPE weights {path}: metadata e2e_kwargs is not JSON ({exc})") from exc
    if not isinstance(kw, dict) or not set(kw) <= _E2E_KEYS:
        raise WeightsFormatError(
            f"RMVPE weights {path}: metadata e2e_kwargs={raw[:200]}; "
            f"expected a JSON object with keys among {sorted(_E2E_KEYS)}"
        )
    if "kernel_size" in kw:
        kw["kernel_size"] = tuple(kw["kernel_size"])
    if kw.get("n_gru", 1) != 1:
        raise WeightsFormatError(
            f"RMVPE weights {path}: n_gru={kw['n_gru']}; only RMVPE's single BiGRU layer (n_gru=1) is supported"
        )
    return kw


def _check_keys(path: Path, arrays: dict[str, mx.array], params: dict[str, mx.array]) -> None:
    expected = {_PREFIX + k: tuple(v.shape) for k, v in params.items()}
    got = {k: tuple(v.shape) for k, v in arrays.items()}
    problems = check_keys(expected, got)
    if problems:
        raise WeightsFormatError(
            f"RMVPE weights {path} do not match the network "
            f"({len(got)} tensors in the file, {len(expected)} expected): "
            + problems
            + ". Use an mlx-rmvpe safetensors file "
            "(rmvpe.safetensors from lexandstuff/mlx-rmvpe, or a converter's output)"
        )


# --- the decoder correction ---------------------------------------------------------------


def correct_decoder(net: E2E) -> bool:
    """Give every decoder up-sampling layer PyTorch RMVPE's ``output_padding`` (same weights).

    mlx-rmvpe 0.1.0 builds ``ConvTranspose2d(k=3, stride=2, padding=1)`` without
    ``output_padding=1``: each stage yields (2H-1)x(2W-1) and the missing last time row and top
    mel column are zero-filled. A layer that already doubles its input (an upstream release with
    the fix) is left alone. Returns whether any layer was rebuilt.
    """
    changed = False
    for i, layer in enumerate(net.unet.decoder.layers):
        ct = layer.conv_transpose
        stride = _pair(ct.stride)
        out = ct(mx.zeros((1, 2, 2, ct.weight.shape[-1]))).shape[1:3]
        if tuple(out) == (2 * stride[0], 2 * stride[1]):
            continue  # up-samples exactly by its stride already: stand aside
        if tuple(ct.weight.shape[1:3]) != (3, 3) or _pair(ct.padding) != (1, 1) or _pair(ct.dilation) != (1, 1):
            raise RVCF0Error(
                f"mlx-rmvpe decoder layer {i} is {ct}; expected ConvTranspose2d(kernel 3, padding 1): "
                "this mlx-rmvpe release is not one rvc-f0 knows how to correct"
            )
        # PyTorch RMVPE: output_padding = (0, 1) if stride == (1, 2) else (1, 1)
        op = (0, 1) if stride == (1, 2) else (1, 1)
        cin, cout = ct.weight.shape[-1], ct.weight.shape[0]
        cls = _SubpixelConvTranspose2d if stride == (2, 2) else nn.ConvTranspose2d
        new = cls(cin, cout, 3, stride=stride, padding=1, output_padding=op, bias="bias" in ct)
        new.weight = ct.weight
        if "bias" in ct:
            new.bias = ct.bias
        layer.conv_transpose = new
        changed = True
    logger.debug("mlx-rmvpe decoder correction %s", "applied" if changed else "not needed (upstream has it)")
    return changed


def keep_matrices(net: E2E) -> None:
    """Build the corrected up-sampling layers' tap matrices once (:meth:`_SubpixelConvTranspose2d.keep_matrix`)."""
    for layer in net.unet.decoder.layers:
        if isinstance(layer.conv_transpose, _SubpixelConvTranspose2d):
            layer.conv_transpose.keep_matrix()


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class _SubpixelConvTranspose2d(nn.ConvTranspose2d):
    """``ConvTranspose2d(k=3, stride=2, padding=1, output_padding=1)`` as one matrix product.

    Same parameters and result as the MLX layer (up to float32 summation order), but MLX's CPU
    transposed convolution is ~40x slower than this: output pixel (2m+a, 2n+b) only sees input
    pixels (m, n), (m, n+1), (m+1, n), (m+1, n+1) through fixed kernel taps (o = 2i - 1 + k).
    """

    def matrix(self) -> mx.array:
        """(4 I, 4 O): rows the inputs x[m,n], x[m,n+1], x[m+1,n], x[m+1,n+1], columns the output
        parities (0,0) (0,1) (1,0) (1,1), each block the kernel tap that joins them. The one
        :meth:`keep_matrix` made while the weight is the same array (built at every call it was
        20 copy kernels per layer on GPUs: 100 of a 10 s RMVPE call's ~470 kernels)."""
        kept = self.__dict__.get("_rvc_matrix")
        return kept[1] if kept is not None and kept[0] is self.weight else self._matrix(self.weight)

    def keep_matrix(self) -> None:
        """Build and evaluate :meth:`matrix` once for the current weight (outside any
        ``mx.compile``: the loader calls it)."""
        m = self._matrix(self.weight)
        mx.eval(m)
        object.__setattr__(self, "_rvc_matrix", (self.weight, m))  # not a parameter

    @staticmethod
    def _matrix(wt: mx.array) -> mx.array:
        # wt: (O, 3, 3, I); tap (kh, kw) maps input i to output 2i - 1 + k
        o, c = wt.shape[0], wt.shape[-1]

        def tap(kh: int, kw: int) -> mx.array:  # (I, O); slices, as integer indices gather
            return wt[:, kh : kh + 1, kw : kw + 1, :].reshape(o, c).T

        z = mx.zeros((c, o), dtype=wt.dtype)
        return mx.concatenate(
            [
                mx.concatenate([tap(1, 1), tap(1, 2), tap(2, 1), tap(2, 2)], axis=1),
                mx.concatenate([z, tap(1, 0), z, tap(2, 0)], axis=1),
                mx.concatenate([z, z, tap(0, 1), tap(0, 2)], axis=1),
                mx.concatenate([z, z, z, tap(0, 0)], axis=1),
            ],
            axis=0,
        )

    def __call__(self, x: mx.array) -> mx.array:
        b, h, w, c = x.shape
        o = self.weight.shape[0]
        xp = mx.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))  # the zero row/column beyond the edge
        cols = mx.concatenate([xp[:, :h, :w], xp[:, :h, 1:], xp[:, 1:, :w], xp[:, 1:, 1:]], axis=-1)
        y = (cols.reshape(-1, 4 * c) @ self.matrix()).reshape(b, h, w, 2, 2, o)
        y = y.transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, o)
        return y + self.bias if "bias" in self else y


# --- forward ------------------------------------------------------------------------------


def log_mel_mx(
    audio: np.ndarray, *, frames: tuple[int, int] | None = None, on_device: mx.array | None = None
) -> mx.array:
    """:func:`rvc_f0._rmvpe.log_mel` on MLX's device in float32 (as the reference's
    ``torch.stft``): (N,) 16 kHz -> (128, T) unevaluated; ``frames=(a, b)``: frames a..b-1.
    ``on_device``: the same N samples as a float32 MLX array (a pipeline's one upload, shared by
    its stages): the whole clip's centred frames are cut from it on the device (the reflected
    ends are slices of it), with no copy of ``audio``."""
    from ._rmvpe import HOP, N_FFT

    n = len(audio)
    a, b = frames if frames is not None else (0, n // HOP + 1)
    if on_device is not None and frames is None and n > N_FFT and on_device.shape == (n,):
        half, x = N_FFT // 2, on_device.astype(mx.float32)
        right = (b - 1) * HOP + N_FFT - half - n  # samples past the end, reflected (1..512)
        x = mx.concatenate([x[1 : half + 1][::-1], x, x[n - 1 - right : n - 1][::-1]])
    else:
        from ._rmvpe import _reflect_index

        x = mx.array(np.ascontiguousarray(audio[_reflect_index(n, a, b)], dtype=np.float32))
    window, basis = _mel_constants()
    fr = mx.as_strided(x, (b - a, N_FFT), (HOP, 1)) * window
    mag = mx.abs(mx.fft.rfft(fr, axis=1))  # (T, 513)
    return mx.log(mx.maximum(basis @ mag.T, 1e-5))


_MEL: tuple[mx.array, mx.array] | None = None


def _mel_constants() -> tuple[mx.array, mx.array]:
    """The periodic Hann window (1024,) and the mel basis (128, 513), float32 MLX arrays made
    once (uploaded at every call they were two host copies per estimate)."""
    global _MEL
    if _MEL is None:
        from ._rmvpe import _mel_basis, _window

        _MEL = (mx.array(_window().astype(np.float32)), mx.array(_mel_basis()))
        mx.eval(_MEL)
    return _MEL


def salience(
    net: E2E,
    mel: np.ndarray | mx.array,
    *,
    unet: Any = None,
    cuda_gru: bool = False,
    numpy_gru: bool = False,
    host_gru: Any = None,
    lazy: bool = False,
) -> Any:
    """(128, T) log-mel -> (T, 360) float32 salience, the reference's ``mel2hidden``:
    zero-pad the mel to a multiple of 32 frames, one pass over the whole clip, crop to T.
    ``unet`` replaces ``net.cnn(net.unet(.))`` (:class:`._cpu_unet.CpuUnet`); ``cuda_gru`` runs
    the BiGRU in one CUDA kernel (:mod:`._gru_cuda`; MLX CUDA backend only); ``numpy_gru``
    steps it in NumPy (:func:`_bigru_numpy`, the CPU); ``host_gru`` is a CPU kernel for the
    whole BiGRU, ``(T, I)`` NumPy -> ``(T, 2H)`` (:class:`rvc_runtime.onednn_rnn.BiGRU`).
    ``lazy``: the unevaluated MLX array instead of a NumPy copy."""
    t = mel.shape[1]
    tp = 32 * ((t - 1) // 32 + 1)
    if isinstance(mel, mx.array):
        x = mx.pad(mel, ((0, 0), (0, tp - t))).T[None, :, :, None]  # (1, time, mels, 1), channels last
    else:
        x = mx.array(np.ascontiguousarray(np.pad(mel, ((0, 0), (0, tp - t))).T[None, :, :, None], dtype=np.float32))
    x = unet(x) if unet is not None else net.cnn(net.unet(x))  # (1, time, mels, 3)
    x = x.transpose(0, 1, 3, 2).reshape(1, tp, -1)  # PyTorch's transpose(1, 2).flatten(-2)
    if host_gru is not None:
        x = mx.array(host_gru(np.array(x[0], dtype=np.float32))[None])
    else:
        x = _bigru_numpy(net.bigru, x) if numpy_gru else _bigru(net.bigru, x, cuda=cuda_gru)
    x = mx.sigmoid(net.linear(x))  # dropout is the identity in eval mode
    x = x.squeeze(0)[:t]  # a view (an integer index would be a gather: a CUDA module to build)
    return x if lazy else np.array(x)


def _bigru(bigru: nn.Module, x: mx.array, *, cuda: bool = False) -> mx.array:
    """mlx-rmvpe's BiGRU (two ``nn.GRU``, the backward one on the reversed sequence) with both
    directions stepped together as a batch of two and a compiled step: same equations. With
    ``cuda`` (MLX's CUDA backend) all steps run in one kernel (``_gru_cuda``) when it builds."""
    hs = bigru.gru_forward.hidden_size
    x0 = x.squeeze(0)
    seq = mx.stack([x0, x0[::-1]])  # (2, T, I)
    wx, bx, wh, bhn = _stacked(bigru)
    proj = seq @ wx + bx  # (2, T, 3H)
    out = None
    if cuda and _gru_cuda.available(proj, hs):  # one kernel for all steps
        out = _gru_cuda.gru_sequences(proj, wh, bhn.squeeze(1))  # (an integer index would be a gather)
    if out is None:
        h = mx.zeros((2, 1, hs), dtype=proj.dtype)
        outs = []
        for i in range(proj.shape[1]):
            h = _gru_step(proj[:, i : i + 1, :], h, wh, bhn)
            outs.append(h)
        out = mx.concatenate(outs, axis=1)  # (2, T, H)
    return mx.concatenate([out[:1], out[1:, ::-1]], axis=-1)  # (1, T, 2H)


def _stacked(bigru: nn.Module) -> tuple[mx.array, mx.array, mx.array, mx.array]:
    """Both directions' weights stacked (``Wx^T`` (2, I, 3H), ``b`` (2, 1, 3H), ``Wh^T`` (2, H, 3H),
    ``bhn`` (2, 1, H)), evaluated once and kept while the weights are the same arrays: stacked
    at every call they were four copy kernels each time (a live block's pitch, GPUs)."""
    f, b = bigru.gru_forward, bigru.gru_backward
    now = (f.Wx, b.Wx, f.b, b.b, f.Wh, b.Wh, f.bhn, b.bhn)
    cached = bigru.__dict__.get("_rvc_stacked")
    if cached is None or any(a is not c for a, c in zip(cached[0], now)):
        out = (
            mx.stack([f.Wx.T, b.Wx.T]),
            mx.stack([f.b, b.b])[:, None, :],
            mx.stack([f.Wh.T, b.Wh.T]),
            mx.stack([f.bhn, b.bhn])[:, None, :],
        )
        mx.eval(out)
        cached = (now, out)
        object.__setattr__(bigru, "_rvc_stacked", cached)  # not a parameter
    return cached[1]


def _bigru_numpy(bigru: nn.Module, x: mx.array) -> mx.array:
    """:func:`_bigru` stepped in NumPy, the same equations on preallocated buffers: on the CPU
    a step of MLX's compiled graph costs ~0.2 ms, of these NumPy calls ~0.06 (12 s of audio,
    1216 steps: ~0.24 -> ~0.08 s)."""
    f, b = bigru.gru_forward, bigru.gru_backward
    hs = f.hidden_size
    seq = np.array(x[0], dtype=np.float32)  # (T, I)
    t = seq.shape[0]
    proj = np.empty((t, 2, 3 * hs), np.float32)  # the input projections of both directions
    proj[:, 0] = seq @ np.array(f.Wx).T + np.array(f.b)
    proj[:, 1] = seq[::-1] @ np.array(b.Wx).T + np.array(b.b)
    wh = np.ascontiguousarray(np.stack([np.array(f.Wh).T, np.array(b.Wh).T]))  # (2, H, 3H)
    bhn = np.stack([np.array(f.bhn), np.array(b.bhn)])  # (2, H)
    out = np.empty((t, 2, hs), np.float32)
    h = np.zeros((2, 1, hs), np.float32)
    hp = np.empty((2, 1, 3 * hs), np.float32)
    rz = np.empty((2, 2 * hs), np.float32)
    n = np.empty((2, hs), np.float32)
    hh = h[:, 0]
    for i in range(t):
        np.matmul(h, wh, out=hp)
        xt = proj[i]
        np.add(xt[:, : 2 * hs], hp[:, 0, : 2 * hs], out=rz)
        np.negative(rz, out=rz)  # sigmoid(a) = 1 / (1 + exp(-a))
        np.exp(rz, out=rz)
        rz += 1
        np.reciprocal(rz, out=rz)
        np.add(hp[:, 0, 2 * hs :], bhn, out=n)
        n *= rz[:, :hs]
        n += xt[:, 2 * hs :]
        np.tanh(n, out=n)
        hh -= n  # h' = (1 - z) n + z h = n + z (h - n)
        hh *= rz[:, hs:]
        hh += n
        out[i] = hh
    return mx.array(np.concatenate([out[:, 0], out[::-1, 1]], axis=-1)[None])


@mx.compile
def _gru_step(xt: mx.array, h: mx.array, wh: mx.array, bhn: mx.array) -> mx.array:
    """One GRU step (gate order r, z, n as MLX and PyTorch): h' = (1 - z) n + z h."""
    hs = h.shape[-1]
    hp = h @ wh
    rz = mx.sigmoid(xt[..., : 2 * hs] + hp[..., : 2 * hs])
    r, z = rz[..., :hs], rz[..., hs:]
    n = mx.tanh(xt[..., 2 * hs :] + r * (hp[..., 2 * hs :] + bhn))
    return (1 - z) * n + z * h
