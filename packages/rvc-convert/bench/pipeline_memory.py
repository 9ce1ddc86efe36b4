"""Peak memory of whole-pipeline conversions of 1, 5 and 30 minutes (full-size random models).

    uv run python packages/rvc-convert/bench/pipeline_memory.py [minutes ...]   # default: 1 5 30

Each length runs in a fresh process (``python -m rvc_convert.bench --one SECONDS``): a v2 40 kHz
synthesizer of the real size, ContentVec base (12 x 768), full-width RMVPE, a 20,000-row index,
all with random weights; the cpu chunking preset. Reported: peak RSS, RSS after loading the
models and a 2 s warm-up, the difference, and the size of the whole-file arrays the pipeline
must hold (16 kHz float32 input + its float64 high-passed/padded copy + 40 kHz float32 output
+ int16 output). The 30-minute run takes about as long as the audio on this 2-core machine, or
longer; ``--synth ../shared/fixtures/reference/checkpoints/v2_f0_40k.pth`` swaps in the tiny
40 kHz synthesizer (same output arrays, far less compute) for a quicker check. Not a test.
"""

from __future__ import annotations

import json
import subprocess
import sys


def main(minutes: list[float], synth: str | None = None) -> None:
    print(f"{'input':>8} {'peak RSS':>10} {'after load':>11} {'growth':>9} {'file arrays':>12} {'wall':>9} {'rtf':>6}")
    for m in minutes:
        seconds = 60 * m
        cmd = [sys.executable, "-m", "rvc_convert.bench", "--one", str(seconds)] + (["--synth", synth] if synth else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode:
            print(f"{m:g} min failed: {proc.stderr.strip().splitlines()[-1:]}", flush=True)
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        arrays = seconds * (16000 * (4 + 8) + 40000 * (4 + 2)) / 2**20
        print(
            f"{m:6g} m {r['peak_rss_mb']:8.0f}MB {r['rss_before_mb']:9.0f}MB "
            f"{r['peak_rss_mb'] - r['rss_before_mb']:7.0f}MB "
            f"{arrays:10.0f}MB {r['total']:8.0f}s {r['rtf']:6.2f}",
            flush=True,
        )
        print("   ", json.dumps(r), flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    model = None
    if "--synth" in args:  # another synthesizer .pth (e.g. a tiny 40 kHz one: same output size, less compute)
        i = args.index("--synth")
        model, args = args[i + 1], args[:i] + args[i + 2 :]
    main([float(a) for a in args] or [1, 5, 30], model)
