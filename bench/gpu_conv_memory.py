"""Where the decoder's GPU memory goes at one long stretch: each convolution's transient memory
(beyond its output: cuDNN workspace and temporaries) and time, in MLX's native form and the
alternatives of :mod:`rvc_synth.layers` (transposed convolutions as forward polyphase ones,
dilated ones folded into the batch), then the whole compiled decoder with each combination.
Not a test; for choosing GPU code paths.

    MLX_ENABLE_TF32=1 python bench/gpu_conv_memory.py [--frames 1200] [--dtype float32]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import rvc_runtime

rvc_runtime.configure_cpu()
rvc_runtime.configure_gpu()

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402
import numpy as np  # noqa: E402

from rvc_synth import Synthesizer  # noqa: E402
from rvc_synth.bench import random_model  # noqa: E402
from rvc_synth.layers import (  # noqa: E402
    ConvTranspose1d,
    Kernels,
    conv1d_folded,
    conv1d_native,
    conv_transpose1d_gemm,
    conv_transpose1d_native,
    conv_transpose1d_poly,
)

MiB = 2**20
TRANSPOSED = {"native": conv_transpose1d_native, "poly": conv_transpose1d_poly, "gemm": conv_transpose1d_gemm}
DILATED = {"native": conv1d_native, "folded": conv1d_folded}


def forms(model: Synthesizer, transposed: str = "native", dilated: str = "native") -> None:
    """Give ``model`` (MLX backend) these convolution forms; its compiled graphs are dropped."""
    k = Kernels(model.backend.conv, model.backend.math)
    k.conv_transpose1d, k.conv1d = TRANSPOSED[transposed], DILATED[dilated]
    for _, m in model.named_modules():
        if "kernels" in dir(type(m)):
            object.__setattr__(m, "kernels", k)
        if isinstance(m, ConvTranspose1d):
            m.keep_poly_weight()
    model._reset_compiled()


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
    whole(model, z, har, g, forms_too=not a.whole)


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
                row = [f"   conv T={h.shape[1]} C={h.shape[2]} k={key[0]} d={key[1]}:"]
                for name, fn in DILATED.items():
                    if name != "native" and key[1] == 1:
                        continue
                    ms, extra = timed(lambda fn=fn, c=c, h=h: fn(c, h))
                    row.append(f"{name} {ms:6.2f} ms {extra:7.0f} MiB")
                print(" | ".join(row), flush=True)
    ms, extra = timed(lambda h=h: dec.conv_post(nn.leaky_relu(h, 0.01)))
    print(f"  conv_post: {ms:6.2f} ms {extra:7.0f} MiB", flush=True)


def whole(model: Synthesizer, z: mx.array, har: mx.array, g: mx.array, *, forms_too: bool = True) -> None:
    dec = model.dec
    print("== whole decoder, compiled, one stretch: ms, transient MiB ==", flush=True)
    combos = (("native", "native"), ("poly", "native"), ("native", "folded"), ("poly", "folded"), ("gemm", "native"))
    for tr, di in combos if forms_too else combos[:1]:
        forms(model, tr, di)
        fn = mx.compile(dec._decode)
        ms, extra = timed(lambda fn=fn: fn(z, har, g))
        print(f"  transposed {tr:6s} dilated {di:6s}: {ms:7.2f} ms {extra:7.0f} MiB", flush=True)
        env = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("MLX_MAX_")) or "default"
        row = {"env": env, "tf32": os.environ.get("MLX_ENABLE_TF32"), "frames": z.shape[1], "dtype": str(z.dtype)}
        print(json.dumps({**row, "forms": f"{tr}/{di}", "ms": round(ms, 2), "transient_mib": round(extra)}), flush=True)


if __name__ == "__main__":
    main()
