"""RMVPE on the current device: median wall time of the salience for 3, 10 and 60 s of audio,
with the BiGRU as one CUDA launch (default on MLX CUDA) against stepping it in MLX, and the
largest difference between the two. Not a test.

    python bench/gpu_rmvpe.py
"""

from __future__ import annotations

import statistics
import time

import rvc_runtime

rvc_runtime.configure_cpu()  # OpenBLAS/oneDNN for MLX's CPU paths: must run before MLX is first imported
rvc_runtime.configure_gpu(compile=True)  # MLX CUDA: plan cache, kernels on disk, graphs off, memory limit

import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402

from rvc_convert.bench import build_models, signal  # noqa: E402
from rvc_f0 import _gru_cuda  # noqa: E402


def median_ms(fn, runs: int = 5) -> float:
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    rmvpe = build_models()["rmvpe"]
    print("MLX", mx.__version__, mx.default_device())
    for seconds in (3, 10, 60):
        audio = signal(seconds).astype(np.float32)
        row = {}
        outs = {}
        for mode in ("kernel", "mlx steps"):
            _gru_cuda._failed = mode != "kernel"
            row[mode] = median_ms(lambda: rmvpe.salience(audio))  # noqa: B023 (called at once, in this iteration)
            outs[mode] = rmvpe.salience(audio)
        _gru_cuda._failed = False
        diff = float(np.abs(outs["kernel"] - outs["mlx steps"]).max())
        print(
            f"{seconds:>4} s: kernel {row['kernel']:.1f} ms, mlx steps {row['mlx steps']:.1f} ms, "
            f"max |d| salience {diff:.2e}"
        )


def gru_alone() -> None:
    """The recurrence alone, (2, T, 768) -> (2, T, 256): one block per direction against the split
    kernel (several blocks per direction meeting at a barrier each step)."""
    key = mx.random.key(0)
    wh = 0.1 * mx.random.normal((2, 256, 768), key=key)
    bhn = 0.1 * mx.random.normal((2, 256), key=mx.random.key(1))
    for t in (1000, 6000):
        proj = mx.random.normal((2, t, 768), key=mx.random.key(2))
        mx.eval(wh, bhn, proj)
        ref = _gru_cuda._run_one_block(proj, wh, bhn)
        line = f"GRU alone T={t}: one block {median_ms(lambda: _gru_cuda._run_one_block(proj, wh, bhn)):.2f} ms"  # noqa: B023 (called at once, in this iteration)
        for blocks, slices in ((8, 8), (16, 16)):
            try:
                got = _gru_cuda._run_split(proj, wh, bhn, blocks=blocks, slices=slices)
            except Exception as exc:  # noqa: BLE001
                line += f"; split {blocks}x{slices}: {str(exc)[:300]}"
                continue
            if got is None:
                line += f"; split {blocks}x{slices}: aborted"
                continue
            ms = median_ms(lambda: _gru_cuda._run_split(proj, wh, bhn, blocks=blocks, slices=slices))  # noqa: B023 (called at once, in this iteration)
            line += f"; split {blocks}x{slices} {ms:.2f} ms (max |d| {float(mx.abs(got - ref).max()):.1e})"
        print(line)


if __name__ == "__main__":
    gru_alone()
    main()
