"""ContentVec on the GPU, variants side by side: time and peak memory per input length. Not a test.

    python bench/gpu_cv_ab.py [--seconds 10 37 60] [--reps 5] [--variants strided concat block1024 block4096 half]

``strided``: the current build (im2col as one strided view per GEMM); ``concat``: the taps joined
(the fourth session's build); ``blockN``: the feature extractor in passes of N frames;
``half``: the whole forward in float16 (weights and activations; the output's deviation from
float32 is reported). One JSON line per variant and length: median ms of warm calls, peak device
MB (weights included), max |diff| against ``strided``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import rvc_runtime

rvc_runtime.configure_cpu()
rvc_runtime.configure_gpu()

import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402

import rvc_features._cv_fast as cvf  # noqa: E402
from rvc_convert.bench import build_models, signal  # noqa: E402

STRIDED_GEMM, STRIDED_POS, GRAPH = cvf._conv_gemm, cvf.FastContentvec.pos_conv, cvf.FastContentvec._features_graph


def concat_gemm(x, w2, k, s, bias):
    t_out = (x.shape[0] - k) // s + 1
    if k == s:
        cols = x[: t_out * s].reshape(t_out, k * x.shape[1])
    else:
        cols = mx.concatenate([x[j : j + s * (t_out - 1) + 1 : s] for j in range(k)], axis=1)
    y = cols @ w2
    return y if bias is None else y + bias


def concat_pos(self, x, block=8):
    t, c = x.shape
    g, k = self.pos_groups, self.pos_k
    ig = c // g
    xp = mx.pad(x, ((k // 2, k // 2), (0, 0))).reshape(-1, g, ig).transpose(1, 0, 2)

    def taps(k0):
        nb = min(block, k - k0)
        cols = mx.concatenate([xp[:, k0 + j : k0 + j + t] for j in range(nb)], axis=-1)
        return cols @ self.pos_w[:, k0 : k0 + nb].reshape(g, nb * ig, -1)

    y = taps(0)
    for k0 in range(block, k, block):
        y = y + taps(k0)
    y = y.transpose(1, 0, 2).reshape(t, -1) + self.pos_b
    return cvf.gelu(y)


def variant(name: str, fast) -> None:
    cvf._conv_gemm = concat_gemm if name == "concat" else STRIDED_GEMM
    cvf.FastContentvec.pos_conv = concat_pos if name == "concat" else STRIDED_POS
    cvf.FastContentvec._features_graph = (
        (lambda self, x, w0, b0, n, block=1024: GRAPH(self, x, w0, b0, n, block)) if name == "block1024" else GRAPH
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, nargs="+", default=[10.0, 37.0, 60.0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--variants", nargs="+", default=["strided", "concat", "block1024", "block4096", "half"])
    a = ap.parse_args()
    cv = build_models(dtype="float32")["contentvec"]
    fast = cv._fast
    fast.cpu = False  # (a CPU smoke run of this script takes the GPU path too)
    ref: dict[float, np.ndarray] = {}
    for name in a.variants:
        variant(name, fast)
        run = fast.lazy
        if name == "half":
            import copy

            half = copy.copy(fast)
            h16 = lambda v: v.astype(mx.float16) if isinstance(v, mx.array) else v  # noqa: E731
            half.convs = [tuple(h16(v) for v in c) for c in fast.convs]
            half.pos_w, half.pos_b = h16(fast.pos_w), h16(fast.pos_b)
            half.layers = [tuple(h16(v) for v in lay) for lay in fast.layers]
            half.model = fast.model  # its LayerNorms/projection: cast below
            half.model.set_dtype(mx.float16)
            mx.eval(half.convs, half.pos_w, half.layers, half.model.parameters())
            orig = cvf.FastContentvec._graph

            def graph16(x, w0, b0, n, n_layers, final, half=half, orig=orig):
                return orig(half, x.astype(mx.float16), w0.astype(mx.float16), b0, n, n_layers, final).astype(
                    mx.float32
                )

            half._graph = graph16
            run = half.lazy
        for sec in a.seconds:
            x = signal(sec)
            mx.synchronize()
            mx.clear_cache()
            mx.reset_peak_memory()
            out = run(x)
            mx.eval(out)
            ts = []
            for _ in range(a.reps):
                t0 = time.perf_counter()
                out = run(x)
                mx.eval(out)
                ts.append(time.perf_counter() - t0)
            y = np.array(out, np.float32)
            if name == "strided":
                ref[sec] = y
            diff = float(np.abs(y - ref[sec]).max()) if sec in ref else None
            rel = float(np.abs(y - ref[sec]).max() / np.abs(ref[sec]).max()) if sec in ref else None
            print(
                json.dumps(
                    {
                        "variant": name,
                        "seconds": sec,
                        "ms": round(1000 * statistics.median(ts), 2),
                        "min_ms": round(1000 * min(ts), 2),
                        "peak_mb": round(mx.get_peak_memory() / 2**20, 1),
                        "max_abs_diff": diff,
                        "max_rel_diff": rel,
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
