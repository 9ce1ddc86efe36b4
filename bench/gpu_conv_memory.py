"""Where the decoder's GPU memory goes at one long stretch: each convolution's transient memory
(beyond its output: cuDNN workspace and temporaries) and time (also in the GEMM forms of
:mod:`rvc_synth.layers`: polyphase transposed ones, one GEMM per tap), then the whole compiled
decoder (``--conv gemm``: on those GEMM forms). Not a test;
for choosing GPU code paths and settings.

    MLX_ENABLE_TF32=1 python bench/gpu_conv_memory.py [--frames 1200] [--dtype float32] [--whole]
    MLX_MAX_OPS_PER_BUFFER=1000 python bench/gpu_conv_memory.py --whole   # another command-buffer size

H200, 1200 frames (the tenth session's question: why a long stretch took GBs): no single
convolution needs more than 0.12 GB beyond its output, in TF32 or exact float32; the whole
compiled decoder took 3.4 GB (TF32) and 6.6 GB (exact) with MLX's command buffers, 2.9 and
3.2 GB with ``MLX_MAX_OPS_PER_BUFFER=8`` (now ``configure_gpu``'s), at the same speed. Forward
polyphase transposed convolutions and dilated ones folded into the batch were tried too: the
same speed, more memory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import replace

import rvc_runtime

rvc_runtime.configure_cpu()
rvc_runtime.configure_gpu(compile=True)

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402
import numpy as np  # noqa: E402

from rvc_synth import Synthesizer  # noqa: E402
from rvc_synth.bench import random_model  # noqa: E402
from rvc_synth.layers import conv1d_gemm, conv_transpose1d_gemm, conv_transpose1d_native  # noqa: E402

MiB = 2**20
TRANSPOSED = {"native": conv_transpose1d_native, "gemm": conv_transpose1d_gemm}


def timed(fn, n: int = 5) -> tuple[float, float]:
    """Median ms of ``fn()`` and its peak memory beyond what was live before and its output (MiB)."""
    mx.eval(fn())
    mx.synchronize()
    base = mx.get_active_memory()
    mx.reset_peak_memory()
    y = fn()
    mx.eval(y)
    mx.synchronize()
    extra = (mx.get_peak_memory() - base - y.nbytes) / MiB
    del y
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        mx.eval(fn())
        mx.synchronize()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1000, extra


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=1200)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--whole", action="store_true", help="only the whole decoder")
    ap.add_argument("--conv", default="native", help="the whole decoder's convolutions: native (cuDNN) or gemm")
    a = ap.parse_args()
    tf32 = os.environ.get("MLX_ENABLE_TF32")
    print(f"MLX {mx.__version__} {mx.default_device()} TF32={tf32} dtype={a.dtype} frames={a.frames}", flush=True)
    model = random_model()
    model.set_dtype(a.dtype)
    dt, cfg, dec = model.dtype, model.config, model.dec
    t = a.frames
    rng = np.random.default_rng(0)
    z = mx.array(rng.normal(0, 0.5, (1, t, cfg.inter_channels)).astype(np.float32)).astype(dt)
    f0 = mx.array((200 + 50 * np.sin(np.arange(t) / 40)).astype(np.float32)[None])
    har = dec.m_source(f0, upp=cfg.hop, sr=cfg.sample_rate, key=None)
    g = model.emb_g(mx.array([0]))[:, None, :]
    mx.eval(z, har, g)

    env = {k: v for k, v in os.environ.items() if k.startswith("MLX_MAX_")}
    print(f"weights {mx.get_active_memory() / MiB:.0f} MiB live {env}", flush=True)
    if not a.whole:
        layers(model, z, har)
    if a.conv != model.backend.conv:
        model.set_backend(replace(model.backend, conv=a.conv))
    whole(model, z, har, g)


def layers(model: Synthesizer, z: mx.array, har: mx.array) -> None:
    dec, nk = model.dec, len(model.config.resblock_kernel_sizes)
    print("== layers: ms, transient MiB (beyond input and output) ==", flush=True)
    h = dec.conv_pre(z)
    for i, up in enumerate(dec.ups):
        xin = nn.leaky_relu(h, 0.1)
        mx.eval(xin)
        row = [f"up{i} {tuple(xin.shape)} k={up.weight.shape[1]} u={up.stride}:"]
        for name, fn in TRANSPOSED.items():
            ms, extra = timed(lambda fn=fn, up=up, xin=xin: fn(up, xin))
            row.append(f"{name} {ms:6.2f} ms {extra:7.0f} MiB")
        print("  " + " | ".join(row), flush=True)
        h = conv_transpose1d_native(up, xin)
        ms, extra = timed(lambda i=i: dec.noise_convs[i](har))
        print(f"   noise_conv: {ms:6.2f} ms {extra:7.0f} MiB", flush=True)
        mx.eval(h)
        seen = set()
        for j in range(nk):
            rb = dec.resblocks[i * nk + j]
            convs = [*rb.convs1, *rb.convs2] if hasattr(rb, "convs1") else list(rb.convs)
            for c in convs:
                key = (c.weight.shape[1], c.dilation)
                if key in seen:
                    continue
                seen.add(key)
                ms, extra = timed(lambda c=c, h=h: c(h))
                gms, gextra = timed(lambda c=c, h=h: conv1d_gemm(c, h))  # one GEMM per tap
                print(
                    f"   conv T={h.shape[1]} C={h.shape[2]} k={key[0]} d={key[1]}: {ms:6.2f} ms {extra:7.0f} MiB"
                    f" | gemm {gms:6.2f} ms {gextra:7.0f} MiB"
                )
    ms, extra = timed(lambda h=h: dec.conv_post(nn.leaky_relu(h, 0.01)))
    print(f"  conv_post: {ms:6.2f} ms {extra:7.0f} MiB", flush=True)


def whole(model: Synthesizer, z: mx.array, har: mx.array, g: mx.array) -> None:
    fn = mx.compile(model.dec._decode)
    ms, extra = timed(lambda: fn(z, har, g))
    print(f"== whole decoder, compiled, one stretch: {ms:7.2f} ms, {extra:7.0f} MiB beyond its output ==", flush=True)
    env = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("MLX_MAX_")) or "default"
    row = {"env": env, "tf32": os.environ.get("MLX_ENABLE_TF32"), "frames": z.shape[1], "dtype": str(z.dtype)}
    row["conv"] = model.backend.conv
    print(json.dumps({**row, "ms": round(ms, 2), "transient_mib": round(extra)}), flush=True)


if __name__ == "__main__":
    main()
