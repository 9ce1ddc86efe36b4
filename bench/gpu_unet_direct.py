"""RMVPE's U-Net on direct-convolution CUDA kernels (``rvc_f0._cuda_unet``) against the compiled
MLX (cuDNN) U-Net, on the full-width random RMVPE: each fusion mode of the kernel against MLX's
``conv2d`` (exact float32), the whole U-Net's difference, and the time per input length (median
of warm calls), eager and ``mx.compile``d; then RMVPE on a live block's input with the "compiled"
and the "auto" (direct) backends. Not a test.

    MLX_ENABLE_TF32=0 python bench/gpu_unet_direct.py [--frames 32 64 128 256 512] [--reps 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import rvc_runtime

rvc_runtime.configure_cpu()
rvc_runtime.configure_gpu(compile=True)

import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402

from rvc_convert.bench import build_models  # noqa: E402
from rvc_f0._cuda_unet import CHECK_SHAPES, DeviceUnet, conv_cuda, conv_mlx  # noqa: E402


def med(fn, reps: int) -> float:
    for _ in range(3):
        mx.eval(fn())
    ts = []
    for _ in range(reps):
        mx.synchronize()
        t0 = time.perf_counter()
        mx.eval(fn())
        ts.append(time.perf_counter() - t0)
    return round(1000 * statistics.median(ts), 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, nargs="+", default=[32, 64, 128, 256, 512])
    ap.add_argument("--reps", type=int, default=30)
    a = ap.parse_args()
    rng = np.random.default_rng(0)

    def arr(*shape: int) -> mx.array:
        return mx.array(rng.standard_normal(shape).astype(np.float32))

    checks = []
    for n, h, w, cin, cout, k, pad in CHECK_SHAPES:
        x, wt, b = arr(n, h, w, cin), arr(k * k * cin, cout), arr(cout)
        for kw in ({}, {"res": arr(n, h, w, cout)}, {"short": (x, arr(cin, cout), arr(cout))}):
            want = np.array(conv_mlx(x, wt, b, k=k, pad=pad, relu=True, **kw))
            err: float | str
            try:
                got = np.array(conv_cuda(x, wt, b, k=k, pad=pad, relu=True, **kw))
                err = float(np.abs(got - want).max() / max(1.0, np.abs(want).max()))
            except Exception as exc:  # noqa: BLE001
                err = f"{type(exc).__name__}: {str(exc)[:800]}"
            checks.append([n, h, w, cin, cout, k, "res" if "res" in kw else "short" if "short" in kw else "", err])
    print(json.dumps({"conv_checks": checks}), flush=True)
    if any(isinstance(c[-1], str) for c in checks):
        return
    rmvpe = build_models(dtype="float32")["rmvpe"]
    net = rmvpe.net
    cudnn = mx.compile(lambda x: net.cnn(net.unet(x)))
    du = DeviceUnet(net, conv_cuda)
    duc = mx.compile(du.__call__)
    for t in a.frames:
        x = arr(1, t, 128, 1)
        want = np.array(cudnn(x))
        rec: dict = {"frames": t, "maxdiff_rel": float(np.abs(np.array(du(x)) - want).max() / np.abs(want).max())}
        rec["cudnn_compiled_ms"] = med(lambda x=x: cudnn(x), a.reps)
        rec["direct_ms"] = med(lambda x=x: du(x), a.reps)
        try:
            rec["direct_compiled_diff"] = float(np.abs(np.array(duc(x)) - want).max() / np.abs(want).max())
            rec["direct_compiled_ms"] = med(lambda x=x: duc(x), a.reps)
        except Exception as exc:  # noqa: BLE001
            rec["direct_compiled"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        print(json.dumps(rec), flush=True)
    audio = (0.1 * rng.standard_normal(4960)).astype(np.float32)  # a 0.25 s block's RMVPE input
    out = {}
    for backend in ("compiled", "auto"):
        rmvpe.set_backend(backend)
        out[backend] = rmvpe(audio)
        out[f"{backend}_ms"] = med(lambda: mx.array(rmvpe(audio)), a.reps)
    print(
        json.dumps(
            {
                "rmvpe_block_ms": {k: v for k, v in out.items() if k.endswith("_ms")},
                "unet": rmvpe.backend.unet,
                "f0_maxdiff_hz": float(np.abs(out["compiled"] - out["auto"]).max()),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
