"""Live block variants compared in one process, blocks interleaved (so that clock and host drift
hit every variant alike): per-block compute p50/p90/p99 of ``Stream.process`` per variant.
Not a test.

    python bench/gpu_live_ab.py [--block 0.25] [--extra 2.5] [--crossfade 0.05] [--tf32|--dtype float16]
        [--seconds 20] [--input speech.wav]

Variants: ``queued`` (the default on GPUs: ContentVec compiled for the block length and queued on
its own stream while the pitch is estimated; encoder and flow compiled), ``compiled`` (the same
compiled ContentVec, evaluated at once on the default stream), ``lazy`` (ContentVec as one lazy
graph, not compiled), ``lazy-dynamic`` (also the synthesizer without ``static_shape``).
"""

from __future__ import annotations

import argparse
import json
import time

import mlx.core as mx
import numpy as np

from rvc_audio import load_audio, resample
from rvc_convert import VoiceConverter
from rvc_convert.bench import build_models, live_converter, signal


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--block", type=float, default=0.25)
    ap.add_argument("--extra", type=float, default=2.5)
    ap.add_argument("--crossfade", type=float, default=0.05)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--tf32", action="store_true")
    ap.add_argument("--input")
    args = ap.parse_args()

    models = build_models(dtype=args.dtype)
    synth = models["synth"]
    if args.tf32:
        synth.set_backend(synth.backend, tf32=True)
    vc, f0_fn = live_converter(models)

    sr = 48000
    if args.input:
        x = np.resize(load_audio(args.input, sample_rate=sr), int(args.seconds * sr)).astype(np.float32)
    else:
        x = resample(signal(args.seconds), 16000, sr).astype(np.float32)
    streams = {}
    for name in ("queued", "compiled", "lazy", "lazy-dynamic"):
        st = vc.stream(
            sample_rate=sr, block=args.block, crossfade=args.crossfade, extra=args.extra, seed=0, f0_fn=f0_fn
        )
        if name == "compiled":  # compiled features, evaluated at once on the default stream
            lazy = vc.embedder.lazy
            st._cv_stream = None
            st.vc = _View(vc, lambda a, lazy=lazy: np.array(lazy(a, static_shape=True)))
        elif name.startswith("lazy"):
            st._cv_stream = None
            if name == "lazy-dynamic":
                st._gpu = False
        streams[name] = st
    bs = next(iter(streams.values())).block_size
    times: dict[str, list[float]] = {k: [] for k in streams}
    blocks = [x[i : i + bs] for i in range(0, len(x) - bs + 1, bs)]
    for warm in blocks[:8]:
        for st in streams.values():
            st.process(warm)
    for b in blocks[8:]:
        for name, st in streams.items():
            t0 = time.perf_counter()
            st.process(b)
            times[name].append(1000 * (time.perf_counter() - t0))
    out = {
        "block": args.block,
        "extra": args.extra,
        "precision": synth.info.precision,
        "blocks": len(blocks) - 8,
        "peak_gb": round(mx.get_peak_memory() / 1e9, 2),
    }
    for name, ts in times.items():
        out[name] = [round(float(np.percentile(ts, q)), 1) for q in (50, 90, 99)]
    print(json.dumps(out), flush=True)


class _View:
    """The converter with another embedder (everything else shared)."""

    def __init__(self, vc: VoiceConverter, embedder) -> None:
        self._vc, self.embedder = vc, embedder

    def __getattr__(self, name: str):
        return getattr(self._vc, name)


if __name__ == "__main__":
    main()
