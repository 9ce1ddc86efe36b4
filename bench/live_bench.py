"""Live conversion with full-size random models: per-block compute and late blocks per block size.
Not a test; for the README's live table.

    python bench/live_bench.py [--blocks 0.25 0.5 1.0] [--extra 1.0] [--seconds 10] [--pace fast|realtime] [--json]
        [--input speech.wav] [--dtype float32|float16|bfloat16] [--tf32]

The models are ``rvc_convert.bench.build_models()``'s: the full-size v2 40 kHz synthesizer
(fixture or random), ContentVec base (12 x 768) and a full-width RMVPE, random weights; the
input is its deterministic voice-like signal at 48 kHz. Each block size gets a fresh stream
and a warm-up (``--warmup`` seconds through the same stream, then ``reset()``). One JSON line
per block size: ``rvc_convert.live.run_file``'s figures plus the settings.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from rvc_audio import load_audio, resample
from rvc_convert.bench import _device_name, build_models, live_converter, signal
from rvc_convert.live import run_file


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--blocks", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    ap.add_argument("--extra", type=float, default=1.0)
    ap.add_argument("--crossfade", type=float, default=0.05)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--pace", choices=("fast", "realtime"), default="fast")
    ap.add_argument("--f0-method", default="rmvpe", choices=("rmvpe", "pm"))
    ap.add_argument("--index-rate", type=float, default=0.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--input", help="real speech (any format), looped to --seconds; default: the bench signal")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    ap.add_argument("--tf32", action="store_true", help="NVIDIA: float32 in TF32")
    ap.add_argument("--rmvpe-backend", default="auto", help="A/B: e.g. 'compiled' (the U-Net without direct kernels)")
    ap.add_argument("--plain-synth", action="store_true", help="A/B: the decoder outside the compiled block graph")
    args = ap.parse_args()

    models = build_models(dtype=args.dtype)
    if args.tf32:
        models["synth"].set_backend(models["synth"].backend, tf32=True)
    rmvpe = models["rmvpe"]
    rmvpe.set_backend(args.rmvpe_backend)
    if args.plain_synth:
        models["synth"].dec.traceable = lambda *_: False
    vc, f0_fn = live_converter(models, index=True)

    sr = 48000
    if args.input:
        speech = load_audio(args.input, sample_rate=sr)
        x = np.resize(speech, int(args.seconds * sr)).astype(np.float32)
    else:
        x = resample(signal(args.seconds), 16000, sr).astype(np.float32)
    warm = resample(signal(args.warmup, seed=1), 16000, sr).astype(np.float32)
    for block in args.blocks:
        st = vc.stream(
            sample_rate=sr,
            block=block,
            crossfade=args.crossfade,
            extra=args.extra,
            seed=0,
            f0_method=args.f0_method,
            index_rate=args.index_rate,
            f0_fn=f0_fn if args.f0_method == "rmvpe" else None,
        )
        run_file(st, warm, pace="fast")
        st.reset()
        _, fig = run_file(st, x, pace=args.pace)  # its stage_pct_ms: each stage's p50 / p99 / max
        fig.update(
            block_s=block,
            extra_s=args.extra,
            crossfade_s=args.crossfade,
            seconds=args.seconds,
            f0_method=args.f0_method,
            index_rate=args.index_rate,
            device=_device_name(models["synth"].backend.device),
            precision=models["synth"].info.precision,
            input=args.input or "bench signal",
            rmvpe_unet=rmvpe.backend.unet,
            plain_synth=args.plain_synth,
        )
        if args.json:
            print(json.dumps(fig), flush=True)
        else:
            c = fig["compute_ms"]
            print(
                f"block {1000 * block:5.0f} ms  latency {fig['algorithmic_latency_ms']:5.0f} ms (+block "
                f"{fig['end_to_end_latency_ms']:5.0f})  compute p50 {c['p50']:7.1f} p95 {c['p95']:7.1f} "
                f"p99 {c['p99']:7.1f} max {c['max']:7.1f} ms  late {fig['late_blocks']}/{fig['blocks']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
