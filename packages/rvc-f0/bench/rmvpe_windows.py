"""How much RMVPE's windowed processing of long inputs deviates from one pass over the whole clip.

    uv run python packages/rvc-f0/bench/rmvpe_windows.py [narrow] [full] [--seconds 60]

The test signal is the fixture recordings (speech and singing, ../shared/fixtures/audio) at
16 kHz, concatenated and repeated to ``--seconds``. One pass (``max_frames`` raised above the
clip) is compared with the default windows (2048 frames + 256 frames of context per side).
narrow: the narrow random fixture network; full: a full-width random network (seed 0).
Random networks give arbitrary pitch, so this measures plumbing, not pitch quality. Not a test.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

import rvc_runtime

rvc_runtime.configure_cpu()  # a script: OpenBLAS/oneDNN before mlx is first imported
import rvc_f0  # noqa: E402

FIXTURES = Path(os.environ.get("RVC_FIXTURES", Path(__file__).resolve().parents[4] / "shared" / "fixtures"))


def signal(seconds: int) -> np.ndarray:
    from rvc_audio import load_audio

    clips = [load_audio(p, sample_rate=16000) for p in sorted((FIXTURES / "audio").glob("*.wav"))]
    x = np.concatenate(clips)
    return np.tile(x, int(np.ceil(16000 * seconds / len(x))))[: 16000 * seconds]


def compare(model, audio: np.ndarray) -> dict:
    from rvc_f0._rmvpe import decode

    windowed = model.salience(audio)
    keep = model.max_frames
    model.max_frames = 10**9
    try:
        whole = model.salience(audio)
    finally:
        model.max_frames = keep
    f_w, f_1 = decode(windowed, threshold=0.03), decode(whole, threshold=0.03)
    both = (f_w > 0) & (f_1 > 0)
    cents = np.abs(1200 * np.log2(f_w[both] / f_1[both]))
    seams = np.arange(model.window, len(audio) // 160 + 1, model.window)
    near = np.zeros(len(f_w), bool)
    for s in seams:
        near[max(0, s - 50) : s + 50] = True
    return {
        "frames": len(f_w),
        "salience_max_abs": float(np.abs(windowed - whole).max()),
        "salience_max_abs_away_from_seams": float(np.abs(windowed - whole)[~near].max()),
        "voicing_agreement": float(np.mean((f_w > 0) == (f_1 > 0))),
        "frames_off_gt_1_cent": float(np.mean(cents > 1)) if cents.size else 0.0,
        "max_cents": float(cents.max()) if cents.size else 0.0,
    }


def main(argv: list[str]) -> None:
    seconds = int(argv[argv.index("--seconds") + 1]) if "--seconds" in argv else 60
    which = [a for a in argv if a in ("narrow", "full")] or ["narrow"]
    audio = signal(seconds)
    for kind in which:
        if kind == "narrow":
            model = rvc_f0.load_rmvpe(FIXTURES / "extractors" / "rmvpe_random.safetensors")
        else:
            import mlx.core as mx
            from mlx_rmvpe import E2E

            from rvc_f0._mlx_net import correct_decoder
            from rvc_f0._rmvpe import RMVPEModel

            mx.random.seed(0)
            net = E2E(4, 1, (2, 2))
            net.eval()
            model = RMVPEModel(net, Path("-"), correct_decoder(net))
        print(kind, seconds, "s:", compare(model, audio), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
