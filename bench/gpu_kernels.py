"""Issue 17: the GPU kernels behind each stage call of a whole-pipeline conversion.

MLX's own CUDA kernels are recorded through CUPTI by ``torch.profiler`` (it traces every kernel
of the process, not only torch's): for each stage call in the pipeline, the wall time (a run
without the profiler), the summed kernel time, the kernel and memcpy counts, the CUDA runtime
calls, and the heaviest kernels. Wall time far above kernel time = launch/host bound; kernel
time close to wall = the kernels themselves. Not a test.

    MLX_ENABLE_TF32=1 python bench/gpu_kernels.py --seconds 10 60 [--dtype float16] [--top 12]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

import rvc_runtime

rvc_runtime.configure_cpu()
rvc_runtime.configure_gpu(compile=True)

import mlx.core as mx  # noqa: E402
from gpu_profile17 import wrap_stages  # noqa: E402  (this folder)

from rvc_convert.bench import build_models, pipeline_call, signal  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, nargs="+", default=[10, 60])
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--top", type=int, default=12)
    a = ap.parse_args()
    try:
        import torch
        from torch.profiler import ProfilerActivity, profile
    except ImportError:  # (a dry run of the wiring where torch is missing)
        torch = None
    models = build_models(dtype=a.dtype)
    mode = {"profile": False}
    calls: list[dict] = []

    def traced(name, fn):
        def run(*args, **kw):
            mx.synchronize()
            prof = None
            if mode["profile"] and torch is not None:
                prof = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
            if prof is not None:
                prof.__enter__()
            t0 = time.perf_counter()
            out = fn(*args, **kw)
            if isinstance(out, mx.array):
                mx.eval(out)
            mx.synchronize()
            wall = 1000 * (time.perf_counter() - t0)
            rec: dict = {"stage": name, "wall_ms": round(wall, 2)}
            if prof is not None:
                prof.__exit__(None, None, None)
                rec.update(summarize(prof, a.top))
            calls.append(rec)
            return out

        return run

    tm = wrap_stages(models, traced)
    call = pipeline_call(tm)
    for sec in a.seconds:
        x = signal(sec)
        call(x)
        call(x)
        calls.clear()
        t: dict[str, float] = {}
        t0 = time.perf_counter()
        call(x, t)
        total = 1000 * (time.perf_counter() - t0)
        walls = [c["wall_ms"] for c in calls]
        calls.clear()
        mode["profile"] = True
        call(x)
        mode["profile"] = False
        for c, w in zip(calls, walls):
            c["wall_ms"] = w
        print(
            json.dumps(
                {
                    "seconds": sec,
                    "dtype": a.dtype,
                    "total_ms": round(total, 1),
                    "stages_ms": {k: round(1000 * v, 1) for k, v in t.items()},
                    "calls": calls,
                }
            ),
            flush=True,
        )
        calls.clear()


def summarize(prof, top: int) -> dict:
    kern: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    api: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    memcpy = [0, 0.0]
    for e in prof.events():
        dev = str(getattr(e, "device_type", "")).endswith("CUDA")
        us = e.device_time_total if dev else e.cpu_time_total
        if dev:
            if e.name.startswith("Memcpy") or e.name.startswith("Memset"):
                memcpy[0] += 1
                memcpy[1] += us
            else:
                kern[e.name][0] += 1
                kern[e.name][1] += us
        elif e.name.startswith("cuda") or e.name.startswith("cu"):
            api[e.name][0] += 1
            api[e.name][1] += us
    ksum = sum(v[1] for v in kern.values())
    heavy = sorted(kern.items(), key=lambda kv: -kv[1][1])[:top]
    return {
        "kernel_ms": round(ksum / 1000, 2),
        "kernels": int(sum(v[0] for v in kern.values())),
        "memcpy": [memcpy[0], round(memcpy[1] / 1000, 2)],
        "api": {k: [v[0], round(v[1] / 1000, 2)] for k, v in sorted(api.items(), key=lambda kv: -kv[1][1])[:6]},
        "top": [[k[:110], v[0], round(v[1] / 1000, 2)] for k, v in heavy],
        "most_launched": [  # where the launches go (a host-bound call pays per launch)
            [k[:110], v[0], round(v[1] / 1000, 2)] for k, v in sorted(kern.items(), key=lambda kv: -kv[1][0])[:top]
        ],
    }


if __name__ == "__main__":
    main()
