"""Pitch-estimator speed on this machine: seconds of compute per second of 16 kHz audio (lower is better).

    uv run python packages/rvc-f0/bench/pitch_speed.py [--seconds 10] [--repeats 1] [method ...]

Methods: rmvpe, crepe-tiny, crepe, fcpe (default: all). Every network runs with seeded random
weights of its real shapes (full-width RMVPE, CREPE capacity 4 and 32, FCPE), so no weights
are needed; see ``rvc_f0.bench.pitch_speed``, which the CLI's bench calls. Not a test.
"""

from __future__ import annotations

import argparse
import os

import rvc_runtime
from rvc_f0.bench import BENCH_METHODS, pitch_speed

_BLAS = rvc_runtime.configure_cpu().blas  # a script: OpenBLAS before mlx is imported


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("methods", nargs="*", default=list(BENCH_METHODS), help=", ".join(BENCH_METHODS))
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    print(f"BLAS preloaded: {_BLAS}; cores: {os.cpu_count()}; {args.seconds:g} s of audio")
    pitch_speed(
        args.seconds,
        methods=args.methods,
        repeats=args.repeats,
        progress=lambda m, s: print(f"{m:10s} {s:.3f} s per s of audio", flush=True),
    )


if __name__ == "__main__":
    main()
