"""ContentVec on CPU: rvc-convert's forward pass against mlx-contentvec's own, same random
base-size weights (12 x 768, 512-channel conv stack), seconds of compute per second of audio.

    uv run python packages/rvc-convert/bench/contentvec_speed.py [seconds ...]   # default: 10 40

Best of two runs after a warm-up; wall and process CPU time (all threads). Not a test.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import rvc_convert  # noqa: F401  (OpenBLAS before mlx)


def timed(fn, reps: int = 2) -> tuple[float, float]:
    fn()
    best = (float("inf"), float("inf"))
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - t, time.process_time() - c))
    return best


def main(lengths: list[float]) -> None:
    import rvc_runtime

    print(f"OpenBLAS: {rvc_runtime.configure_cpu().blas}")
    import mlx.core as mx
    from mlx_contentvec import ContentvecModel

    from rvc_features import BASE_KWARGS, ContentVec

    mx.random.seed(0)
    kw = dict(BASE_KWARGS)
    model = ContentvecModel(**kw)
    model.eval()
    mx.eval(model.parameters())
    cv = ContentVec(model, kw, None)
    rng = np.random.default_rng(0)
    for seconds in lengths:
        audio = (rng.standard_normal(int(16000 * seconds)) * 0.1).astype(np.float32)
        for name, fast in (("rvc-convert", True), ("mlx-contentvec", False)):
            wall, cpu = timed(lambda: cv.hidden(audio, fast=fast))  # noqa: B023 (called at once, in this iteration)
            print(
                f"{seconds:5.0f} s  {name:15s} wall {wall / seconds:.3f}  cpu {cpu / seconds:.3f}  s per s of audio",
                flush=True,
            )


if __name__ == "__main__":
    main([float(a) for a in sys.argv[1:]] or [10, 40])
