"""Synthesizer benchmark: ``python -m rvc_synth.bench [--seconds 10 60] [--model PATH]``.

Prints, for the full-size v2 40k configuration (random weights unless ``--model`` is given),
the wall time, real-time factor (seconds of compute per second of audio; < 1 is faster than
real time), peak RSS and, on a GPU, peak device memory, on the current MLX device.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from typing import Any

import rvc_runtime

_CPU = rvc_runtime.configure_cpu()  # a script (python -m): the faster BLAS before MLX loads

import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402
from mlx.utils import tree_flatten, tree_unflatten  # noqa: E402

from .config import KNOWN_CONFIGS, SynthConfig  # noqa: E402
from .model import Synthesizer, load  # noqa: E402


def random_model(name: str = "v2_40k", *, has_f0: bool = True, seed: int = 0) -> Synthesizer:
    """A full-size synthesizer of a known RVC config with random (but sane) weights."""
    cfg = SynthConfig.from_list(KNOWN_CONFIGS[name], version=name[:2], has_f0=has_f0)
    model = Synthesizer(cfg)
    rng = np.random.default_rng(seed)
    params = []
    for k, v in tree_flatten(model.parameters()):
        fan_in = int(np.prod(v.shape[1:])) if v.ndim > 1 else 1
        scale = 0.05 if v.ndim == 1 else 1 / np.sqrt(max(fan_in, 1))
        params.append((k, mx.array(rng.normal(0, scale, v.shape).astype(np.float32))))
    model.update(tree_unflatten(params))
    model.eval()
    return model


def _peak_rss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 / (1024 if sys.platform == "darwin" else 1)


def run(
    seconds: tuple[float, ...] = (10, 60),
    *,
    model: Synthesizer | None = None,
    repeats: int = 3,
    chunk_frames: int | None = None,
) -> list[dict[str, Any]]:
    """Time the synthesizer (zero noise) on ``seconds`` of input; one dict per length."""
    model = model or random_model()
    info = model.info
    rng = np.random.default_rng(0)
    rows = []
    for sec in seconds:
        t = int(sec * 100)
        feats = mx.array(rng.normal(0, 0.5, (1, t, info.feature_dim)).astype(np.float32))
        f0 = np.float32(220) * 2 ** (np.sin(np.arange(t) / 50, dtype=np.float32) / 2)
        f0[(np.arange(t) % 150) < 20] = 0
        pitch = np.clip(np.rint(1 + 254 * np.log1p(f0 / 700) / np.log1p(1100 / 700)), 1, 255).astype(np.int32)
        args = (feats, mx.array(pitch[None]), mx.array(f0[None])) if info.has_f0 else (feats,)
        mx.eval(model(*args, noise_scale=0, chunk_frames=chunk_frames))  # warm-up (compiles)
        mx.reset_peak_memory()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            mx.eval(model(*args, noise_scale=0, chunk_frames=chunk_frames))
            times.append(time.perf_counter() - start)
        wall = statistics.median(times)
        rows.append(
            {
                "seconds": sec,
                "wall_s": wall,
                "rtf": wall / sec,
                "peak_rss_mb": _peak_rss_mb(),
                "peak_device_mb": mx.get_peak_memory() / 2**20,
                "device": model.backend.device,
                "dtype": str(model.dtype).split(".")[-1],
                "backend": model.backend.name,
                "precision": model.backend.precision,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, nargs="+", default=[10, 60])
    ap.add_argument("--model", help="an RVC .pth or converted folder (default: random full-size v2 40k)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--chunk-frames", type=int, default=None, help="decoder stretch (0 = whole input)")
    a = ap.parse_args(argv)
    model = load(a.model) if a.model else random_model()
    model.set_dtype(a.dtype)
    print(f"backend {model.backend}  blas {_CPU.blas or 'bundled'}  model {a.model or 'random v2 40k (full size)'}")
    print(f"{'input s':>8} {'dtype':>9} {'wall s':>8} {'RTF':>7} {'peak RSS MB':>12} {'peak dev MB':>12}")
    for r in run(tuple(a.seconds), model=model, repeats=a.repeats, chunk_frames=a.chunk_frames):
        print(
            f"{r['seconds']:8.0f} {r['dtype']:>9} {r['wall_s']:8.3f} {r['rtf']:7.3f} "
            f"{r['peak_rss_mb']:12.0f} {r['peak_device_mb']:12.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
