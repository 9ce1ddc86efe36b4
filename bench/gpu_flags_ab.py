"""Interleaved A/B of pipeline switches in one process (alternating rounds, so host and clock
drift hit every variant alike): ``rvc bench``'s models and signal, per-stage medians in ms.
Not a test; for choosing GPU defaults.

    MLX_ENABLE_TF32=1 python bench/gpu_flags_ab.py float32 10 60     # tf32
    python bench/gpu_flags_ab.py float16 10 60
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import rvc_runtime

rvc_runtime.configure_cpu()
rvc_runtime.configure_gpu()

from rvc_convert import pipeline  # noqa: E402
from rvc_convert.bench import STAGES, build_models, pipeline_call, signal  # noqa: E402
from rvc_synth import generator  # noqa: E402

VARIANTS = {  # name: (all decoder stretches overlapped, ContentVec and synthesizer compiled per chunk length)
    "new": (True, True),
    "sync_stretches": (False, True),
    "not_compiled": (True, False),
}


def _set(name: str) -> None:
    overlap, compiled = VARIANTS[name]
    generator.OVERLAP_FRAMES = 10**9 if overlap else 0
    pipeline.COMPILE_CHUNKS = compiled


def main(dtype: str, seconds: list[float], rounds: int = 7) -> None:
    models = build_models(dtype=dtype)
    call = pipeline_call(models)
    for s in seconds:
        audio = signal(s)
        for name in VARIANTS:  # every variant's first calls (kernels, traces: compiled on a repeat)
            _set(name)
            call(audio)
            call(audio)
        runs: dict[str, list[dict[str, float]]] = {k: [] for k in VARIANTS}
        names = list(VARIANTS)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order
                _set(name)
                t: dict[str, float] = {}
                t0 = time.perf_counter()
                call(audio, t)
                t["total"] = time.perf_counter() - t0
                runs[name].append(t)
        for name, rs in runs.items():
            row = {k: round(1e3 * statistics.median(x.get(k, 0.0) for x in rs), 1) for k in (*STAGES, "total")}
            print(json.dumps({"variant": name, "dtype": dtype, "seconds": s, "rounds": rounds, **row}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], [float(a) for a in sys.argv[2:]])
