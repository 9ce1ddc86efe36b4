"""GPU vs CPU parity of the full-size synthesizer (random weights): writes or checks a reference.

python bench/gpu_parity.py write ref.npz [FRAMES]    # on the CPU (default 200 frames)
python bench/gpu_parity.py check ref.npz [FRAMES]    # on the GPU: prints max |d| and SNR per dtype

With 1500 frames the GPU decodes in two stretches in exact float32 (1200 frames each) and in one
in TF32 / half precision. ``MLX_ENABLE_TF32=1`` makes the float32 row TF32's.
"""

from __future__ import annotations

import sys

import rvc_runtime

rvc_runtime.configure_cpu()  # OpenBLAS/oneDNN for MLX's CPU paths: must run before MLX is first imported
rvc_runtime.configure_gpu(compile=True)  # MLX CUDA settings; compiled graphs unless MLX_DISABLE_COMPILE=1

import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402

from rvc_synth.bench import random_model  # noqa: E402


def inputs(t: int = 200):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.5, (1, t, 768)).astype(np.float32)
    f0 = (150 + 100 * np.sin(np.arange(t) / 9)).astype(np.float32)[None]
    f0[:, :10] = 0
    p = np.clip(np.rint(1 + 254 * np.log1p(f0 / 700) / np.log1p(1100 / 700)), 1, 255).astype(np.int32)
    return x, p, f0


def main() -> None:
    mode, path = sys.argv[1], sys.argv[2]
    x, p, f0 = inputs(int(sys.argv[3]) if len(sys.argv) > 3 else 200)
    m = random_model()
    if mode == "write":
        np.savez(path, audio=np.array(m(x, p, f0, noise_scale=0)))
        return
    ref = np.load(path)["audio"]
    for dt in ("float32", "float16", "bfloat16"):
        out = np.array(m.set_dtype(dt)(x, p, f0, noise_scale=0))
        err = np.abs(out - ref).max()
        snr = 10 * np.log10((ref.astype(np.float64) ** 2).sum() / ((out - ref) ** 2).sum())
        print(f"{mx.default_device()} {dt:9s} vs CPU float32: max |d| {err:.2e}  SNR {snr:.1f} dB")


if __name__ == "__main__":
    main()
