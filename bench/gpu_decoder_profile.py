"""Where the synthesizer's GPU time goes: per component and per decoder layer shape, with
alternative formulations of the slow ones. Not a test; for choosing GPU code paths.

    python bench/gpu_decoder_profile.py [--seconds 10] [--dtype float16]
    MLX_ENABLE_TF32=1 python bench/gpu_decoder_profile.py    # TF32; MLX_USE_CUDA_GRAPHS=0: no CUDA graphs

Single-op timings include ~0.1 ms of eval/sync round trip each; the "ten in a row" section
chains ten ops in one graph, which gives their cost without it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import rvc_runtime

rvc_runtime.configure_cpu()  # OpenBLAS/oneDNN for MLX's CPU paths: must run before MLX is first imported
rvc_runtime.configure_gpu(compile=True)  # MLX CUDA: plan cache, kernels on disk, graphs off, memory limit

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402
import numpy as np  # noqa: E402

from rvc_synth.bench import random_model  # noqa: E402


def timed(fn, *args, n: int = 7) -> float:
    for _ in range(2):
        mx.eval(fn(*args))
    mx.synchronize()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        mx.eval(fn(*args))
        mx.synchronize()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1000


def dilated_by_fold(x: mx.array, w: mx.array, d: int) -> mx.array:
    """Dilated 'same' conv as an undilated one over d interleaved sequences (batch)."""
    b, t, c = x.shape
    k = w.shape[1]
    tp = -(-t // d) * d
    if tp != t:
        x = mx.pad(x, [(0, 0), (0, tp - t), (0, 0)])
    xf = x.reshape(b, tp // d, d, c).transpose(0, 2, 1, 3).reshape(b * d, tp // d, c)
    y = mx.conv1d(xf, w, padding=(k - 1) // 2)
    y = y.reshape(b, d, tp // d, -1).transpose(0, 2, 1, 3).reshape(b, tp, -1)
    return y[:, :t]


def convT_as_conv(x: mx.array, w: mx.array, u: int, p: int) -> mx.array:
    """conv_transpose1d (weight (out, k, in), stride u, padding p) as one conv1d with u*out
    channels (polyphase), then interleave and crop."""
    cout, k, cin = w.shape
    m = -(-k // u)
    wp = mx.pad(w, [(0, 0), (0, m * u - k), (0, 0)]).reshape(cout, m, u, cin)  # tap j = i*u + r
    # y[t*u + r] = sum_i W[i*u + r] x[t - i]  -> conv over x with kernel taps reversed in i
    wc = wp[:, ::-1].transpose(2, 0, 1, 3).reshape(u * cout, m, cin)
    b, t, _ = x.shape
    z = mx.conv1d(mx.pad(x, [(0, 0), (m - 1, m - 1), (0, 0)]), wc)  # (b, t+m-1, u*cout)
    y = z.reshape(b, (t + m - 1) * u, cout)
    n_out = (t - 1) * u - 2 * p + k
    return y[:, p : p + n_out]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args()
    print(f"MLX {mx.__version__} {mx.default_device()} TF32={os.environ.get('MLX_ENABLE_TF32')} dtype={a.dtype}")
    model = random_model()
    model.set_dtype(a.dtype)
    dt = model.dtype
    cfg = model.config
    t = int(a.seconds * 100)
    rng = np.random.default_rng(0)
    feats = mx.array(rng.normal(0, 0.5, (1, t, cfg.feature_dim)).astype(np.float32))
    f0 = np.float32(220) * 2 ** (np.sin(np.arange(t) / 50, dtype=np.float32) / 2)
    pitch = mx.array(
        np.clip(np.rint(1 + 254 * np.log1p(f0 / 700) / np.log1p(1100 / 700)), 1, 255).astype(np.int32)[None]
    )
    f0 = mx.array(f0[None])

    print("== synthesizer total, by decoder stretch ==")
    for ch in (None, 0, 500, 1000):
        ms = timed(lambda: model(feats, pitch, f0, noise_scale=0, chunk_frames=ch))  # noqa: B023 (called at once, in this iteration)
        print(f"  chunk {ch}: {ms:7.2f} ms  peak {mx.get_peak_memory() / 2**30:.2f} GB", flush=True)

    print("== components ==")
    x = feats.astype(dt)
    g = model.emb_g(mx.array([0]))[:, None, :]
    comp = mx.compile if mx.default_device() != mx.cpu else (lambda f: f)
    enc = comp(lambda x, p: model.enc_p(x, p))
    m_p, _ = enc(x, pitch)
    flow = comp(model.flow.reverse)
    z = flow(m_p, g)
    dec = model.dec
    har = dec.m_source(f0, upp=cfg.hop, sr=cfg.sample_rate, key=None)
    mx.eval(z, har)
    print(f"  enc_p  {timed(lambda: enc(x, pitch)):7.2f} ms")
    print(f"  flow   {timed(lambda: flow(m_p, g)):7.2f} ms")
    print(f"  source {timed(lambda: dec.m_source(f0, upp=cfg.hop, sr=cfg.sample_rate, key=None)):7.2f} ms")
    src_c = comp(lambda f: dec.m_source(f, upp=cfg.hop, sr=cfg.sample_rate, key=None))
    print(f"  source compiled {timed(lambda: src_c(f0)):7.2f} ms")
    dcomp = comp(dec._decode)
    print(f"  decode whole, compiled {timed(lambda: dcomp(z, har, g)):7.2f} ms")
    print(f"  decode whole, eager    {timed(lambda: dec._decode(z, har, g)):7.2f} ms", flush=True)

    print("== decoder layers (one call each, whole input) ==")
    h = dec.conv_pre(z)
    total = 0.0
    nk = len(cfg.resblock_kernel_sizes)
    for i, up in enumerate(dec.ups):
        cout, k, cin = up.weight.shape
        xin = mx.random.normal(h.shape).astype(dt)
        ms_up = timed(lambda: mx.conv_transpose1d(xin, up.weight, stride=up.stride, padding=up.padding))  # noqa: B023 (called at once, in this iteration)
        ms_alt = timed(lambda: convT_as_conv(xin, up.weight, up.stride, up.padding))  # noqa: B023 (called at once, in this iteration)
        ref = mx.conv_transpose1d(xin, up.weight, stride=up.stride, padding=up.padding)
        err = mx.abs(convT_as_conv(xin, up.weight, up.stride, up.padding) - ref).max().item()
        h = ref
        tt = h.shape[1]
        fl = 2 * xin.shape[1] * cin * cout * k / 1e9
        print(
            f" stage {i}: T={tt} C={cout}  convT k={k} u={up.stride}: {ms_up:6.2f} ms ({fl / ms_up:5.1f} TF/s)"
            f"  as conv: {ms_alt:6.2f} ms (max|d| {err:.1e})",
            flush=True,
        )
        total += ms_up
        ms_nc = timed(lambda: dec.noise_convs[i](har))  # noqa: B023 (called at once, in this iteration)
        print(f"   noise_conv: {ms_nc:6.2f} ms")
        total += ms_nc
        for j in range(nk):
            rb = dec.resblocks[i * nk + j]
            convs = [*rb.convs1, *rb.convs2] if hasattr(rb, "convs1") else list(rb.convs)
            for c in convs:
                kk, dd = c.weight.shape[1], c.dilation
                ms = timed(lambda: mx.conv1d(h, c.weight, padding=c.padding, dilation=dd))  # noqa: B023 (called at once, in this iteration)
                fl = 2 * tt * cout * cout * kk / 1e9
                line = f"   conv k={kk:2d} d={dd}: {ms:6.2f} ms ({fl / ms:5.1f} TF/s)"
                if dd > 1:
                    ms2 = timed(lambda: dilated_by_fold(h, c.weight, dd))  # noqa: B023 (called at once, in this iteration)
                    e2 = (
                        mx.abs(
                            dilated_by_fold(h, c.weight, dd) - mx.conv1d(h, c.weight, padding=c.padding, dilation=dd)
                        )
                        .max()
                        .item()
                    )
                    line += f"  folded {ms2:6.2f} ms (max|d| {e2:.1e})"
                print(line, flush=True)
                total += ms
        lr = mx.compile(lambda v: nn.leaky_relu(v, 0.1))
        lra = mx.compile(lambda v, w: nn.leaky_relu(v, 0.1) + w)
        ms_e = timed(lambda: lr(h))  # noqa: B023 (called at once, in this iteration)
        ms_e2 = timed(lambda: lra(h, h))  # noqa: B023 (called at once, in this iteration)
        print(f"   leaky_relu {ms_e:6.3f} ms, leaky_relu+add {ms_e2:6.3f} ms ({h.nbytes / ms_e / 1e6:.0f} GB/s)")
        total += ms_e * 6 * nk + ms_e2 * 6 * nk
    print(f"== sum of layer times ~{total:.1f} ms ==")

    if mx.default_device() == mx.cpu:
        return
    print("== ten in a row (one graph), per op ==")
    for c, tt in ((256, 10 * t), (128, 100 * t), (64, 200 * t), (32, 400 * t)):
        h = mx.random.normal((1, tt, c)).astype(dt)
        row = [f"  C={c:3d} T={tt:6d}:"]
        for k, d in ((3, 1), (11, 1), (11, 5)):
            w = (mx.random.normal((c, k, c)) * 0.01).astype(dt)

            def chain(v, w=w, k=k, d=d):
                for _ in range(10):
                    v = mx.conv1d(v, w, padding=d * (k - 1) // 2, dilation=d)
                return v

            ms = timed(chain, h) / 10
            row.append(f"k{k}d{d} {ms:6.3f} ms ({2 * tt * c * c * k / ms / 1e9:5.0f} TF/s)")
        lra = mx.compile(lambda v: nn.leaky_relu(v, 0.1) + v)

        def chain_e(v):
            for _ in range(10):
                v = lra(v)  # noqa: B023 (called at once, in this iteration)
            return v

        ms = timed(chain_e, h) / 10
        row.append(f"leaky_relu+add {ms:6.3f} ms ({3 * h.nbytes / ms / 1e6:4.0f} GB/s)")
        print(" ".join(row), flush=True)
    print("== raw GEMM rates ==")
    for m, kd, n in ((8192, 8192, 8192), (100000, 128 * 11, 128), (400000, 32 * 11, 32), (10000, 256 * 11, 256)):
        A = mx.random.normal((m, kd)).astype(dt)
        B = mx.random.normal((kd, n)).astype(dt)
        ms = timed(lambda: A @ B)  # noqa: B023 (called at once, in this iteration)
        print(f"  ({m}x{kd})@({kd}x{n}): {ms:7.3f} ms  {2 * m * kd * n / ms / 1e9:6.1f} TF/s")


if __name__ == "__main__":
    main()
