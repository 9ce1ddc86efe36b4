"""Per-stage timing of the synthesizer on the current MLX device (full-size v2 40k, random weights).

python bench/synth_profile.py [--seconds 10] [--dtype float32]
"""

from __future__ import annotations

import argparse
import time

import rvc_runtime

rvc_runtime.configure_cpu()  # OpenBLAS/oneDNN for MLX's CPU paths: must run before MLX is first imported

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402
import numpy as np  # noqa: E402

from rvc_synth.bench import random_model  # noqa: E402


def timed(fn, repeats=5):
    mx.eval(fn())
    mx.synchronize()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        mx.eval(fn())
        mx.synchronize()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2] * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args()
    m = random_model().set_dtype(a.dtype)
    dt = m.dtype
    t = int(a.seconds * 100)
    rng = np.random.default_rng(0)
    x = mx.array(rng.normal(0, 0.5, (1, t, 768)).astype(np.float32)).astype(dt)
    f0 = mx.array(np.full((1, t), 200.0, np.float32))
    p = mx.array(np.full((1, t), 100, np.int32))
    g = m.emb_g(mx.array([0]))[:, None]
    print(f"device {mx.default_device()} dtype {a.dtype} seconds {a.seconds}")
    print(f"full call          {timed(lambda: m(x, p, f0, noise_scale=0)):8.2f} ms")
    for c in (0, 500, 1000, 2000):
        print(f"full, chunk {c:5d}  {timed(lambda: m(x, p, f0, noise_scale=0, chunk_frames=c)):8.2f} ms")  # noqa: B023 (called at once, in this iteration)
    m_p, _ = m.enc_p(x, p)
    print(f"enc_p              {timed(lambda: m.enc_p(x, p)):8.2f} ms")
    z = m.flow.reverse(m_p, g)
    print(f"flow               {timed(lambda: m.flow.reverse(m_p, g)):8.2f} ms")
    print(f"nsf source         {timed(lambda: m.dec.m_source(f0, upp=400, sr=40000, key=None)):8.2f} ms")
    har = m.dec.m_source(f0, upp=400, sr=40000, key=None)
    print(f"decoder compiled   {timed(lambda: m.dec._compiled()(z, har, g)):8.2f} ms")
    print(f"decoder eager      {timed(lambda: m.dec._decode(z, har, g)):8.2f} ms")
    h = m.dec.conv_pre(z) + m.dec.cond(g)
    mx.eval(h)
    for i, up in enumerate(m.dec.ups):
        hin = h
        print(f" stage {i} up        {timed(lambda: up(nn.leaky_relu(hin, 0.1))):8.2f} ms  shape {tuple(hin.shape)}")  # noqa: B023 (called at once, in this iteration)
        h = up(nn.leaky_relu(h, 0.1)) + m.dec.noise_convs[i](har)
        mx.eval(h)
        print(f" stage {i} noiseconv {timed(lambda: m.dec.noise_convs[i](har)):8.2f} ms")  # noqa: B023 (called at once, in this iteration)
        for j in range(3):
            rb = m.dec.resblocks[3 * i + j]
            hh = h
            c1 = rb.convs1[0]
            print(
                f" stage {i} rb{j} k={c1.weight.shape[1]:2d} {timed(lambda: rb(hh)):8.2f} ms   "  # noqa: B023 (called at once, in this iteration)
                f"one conv {timed(lambda: c1(hh)):7.3f} ms  ({2 * hh.shape[1] * c1.weight.size / 1e9:.2f} GFLOP)"  # noqa: B023 (called at once, in this iteration)
            )
        h = sum(m.dec.resblocks[3 * i + j](h) for j in range(3)) / 3
        mx.eval(h)


if __name__ == "__main__":
    main()
