"""RMVPE speed on this machine: seconds of compute per second of 16 kHz audio (lower is better).

    uv run python packages/rvc-f0/bench/rmvpe_speed.py [narrow] [full] [upstream]

narrow: the narrow random test weights (../shared/fixtures/extractors/rmvpe_random.safetensors);
full: a full-width random network (RMVPE's real 90 M-parameter size, nothing saved);
upstream: mlx-rmvpe 0.1.0's own ``infer_from_audio`` on the same full-width network (as shipped,
so without the decoder correction). Best of two runs after a warm-up. Not a test.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

import rvc_runtime

_BLAS = rvc_runtime.configure_cpu().blas  # a script: OpenBLAS before mlx is imported
import rvc_f0  # noqa: E402

FIXTURES = Path(os.environ.get("RVC_FIXTURES", Path(__file__).resolve().parents[4] / "shared" / "fixtures"))


def per_second(fn, seconds: int, reps: int = 2) -> float:
    audio = (np.random.default_rng(0).standard_normal(16000 * seconds) * 0.1).astype(np.float32)
    fn(audio)  # warm-up: first call per shape, lazy imports
    best = min(_timed(fn, audio) for _ in range(reps))
    return best / seconds


def _timed(fn, audio) -> float:
    t = time.perf_counter()
    fn(audio)
    return time.perf_counter() - t


def main(which: list[str]) -> None:
    import mlx.core as mx
    from mlx_rmvpe import E2E, RMVPE

    from rvc_f0._mlx_net import correct_decoder
    from rvc_f0._rmvpe import RMVPEModel

    print(f"BLAS preloaded: {_BLAS}; cores: {os.cpu_count()}")
    for kind in which:
        if kind == "narrow":
            fn = rvc_f0.load_rmvpe(FIXTURES / "extractors" / "rmvpe_random.safetensors")
        else:
            mx.random.seed(0)
            net = E2E(4, 1, (2, 2))
            net.eval()
            if kind == "full":
                fn = RMVPEModel(net, Path("-"), correct_decoder(net))
            else:
                up = RMVPE()
                up.model = net
                up.eval()
                fn = lambda a, up=up: up.infer_from_audio(a, threshold=0.03)  # noqa: E731
        for seconds in (1, 5, 20):
            print(f"{kind:8s} {seconds:2d} s clip: {per_second(fn, seconds):.3f} s per s of audio", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["narrow", "full", "upstream"])
