"""Simulate a GPU cluster's scheduling on one machine: a local Ray declaring 4 CPUs and 2 GPUs.

    uv run python packages/rvc-convert/bench/ray_simulation.py [n_files]   # default 12

What is real: Ray's scheduler, Ray Data's actor pool, rvc_convert.distributed end to end (tiny
random-weight fixture models, ``pm`` pitch, 1 s cuts of the fixture clips). What is simulated:
the GPUs. ``ray.init(num_gpus=2)`` declares two GPUs that do not exist; Ray hands them out
(``CUDA_VISIBLE_DEVICES`` / ``ray.get_gpu_ids()``) and MLX, finding no CUDA, runs on the CPU.
The 4 "CPUs" share this machine's real cores, so the timings say nothing about speed; the
scenarios check who gets which resource: how many actors the pool holds, which GPU id each
one gets, how the files spread. Not a test.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import wave
from collections import Counter
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[3].parent / "shared" / "fixtures"
SCENARIOS = [  # (label, convert_folder resources)
    ("1 GPU per worker, pool sized by Ray", {"gpus_per_worker": 1.0, "cpus_per_worker": 1.0}),
    ("half a GPU per worker (two per GPU)", {"gpus_per_worker": 0.5, "cpus_per_worker": 1.0}),
    ("CPU workers only, 1 CPU each", {"gpus_per_worker": 0.0, "cpus_per_worker": 1.0}),
    ("3 workers asked, 1 GPU each (only 2 fit)", {"gpus_per_worker": 1.0, "cpus_per_worker": 1.0, "workers": 3}),
]


def make_inputs(folder: Path, n: int) -> None:
    clips = sorted((FIXTURES / "audio").glob("*.wav"))
    for i in range(n):
        with wave.open(str(clips[i % len(clips)]), "rb") as w:
            rate = w.getframerate()
            w.setpos(int((0.5 + 0.7 * (i // len(clips))) * rate))
            frames = w.readframes(rate)
        with wave.open(str(folder / f"f{i:03d}.wav"), "wb") as o:
            o.setnchannels(1), o.setsampwidth(2), o.setframerate(rate)
            o.writeframes(frames)


def contentvec_v1(path: Path) -> Path:
    import numpy as np
    from safetensors.numpy import load_file, save_file

    ex = FIXTURES / "extractors"
    t = load_file(str(ex / "contentvec_tiny.safetensors"))
    fp = np.load(ex / "final_proj_tiny.npz")
    t["final_proj.weight"], t["final_proj.bias"] = fp["weight"].astype("f4"), fp["bias"].astype("f4")
    kwargs = (ex / "contentvec_tiny.json").read_text()
    save_file(t, str(path), metadata={"format": "mlx-contentvec", "contentvec_kwargs": kwargs})
    return path


def main() -> None:
    import ray

    from rvc_convert import ConvertOptions
    from rvc_convert.distributed import convert_folder

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    tmp = Path(tempfile.mkdtemp(prefix="rvc-ray-sim-"))
    (tmp / "in").mkdir()
    make_inputs(tmp / "in", n)
    weights = {
        "model": FIXTURES / "reference" / "checkpoints" / "v1_f0_32k.pth",
        "contentvec": contentvec_v1(tmp / "cv.safetensors"),
        "rmvpe": FIXTURES / "extractors" / "rmvpe_random.safetensors",
    }
    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, log_to_driver=False)
    print(f"cluster: {ray.cluster_resources()}  ({n} files of 1 s)")
    for k, (label, res) in enumerate(SCENARIOS):
        start = time.perf_counter()
        s = convert_folder(
            tmp / "in",
            tmp / f"out{k}",
            options=ConvertOptions(seed=0, f0_method="pm"),
            progress=False,
            **weights,
            **res,
        )
        rows = [json.loads(line) for line in s.manifest.read_text().splitlines()[:-1]]
        per = Counter((r["worker"]["pid"], ",".join(r["worker"]["gpus"]) or "-") for r in rows)
        spread = ", ".join(f"pid {pid} gpu {g}: {c} files" for (pid, g), c in sorted(per.items()))
        print(f"\n{label} {res}\n  {s.workers} actors; {spread}")
        print(f"  converted {len(s.converted)}, failed {len(s.failed)}, wall {time.perf_counter() - start:.1f} s")
    ray.shutdown()


if __name__ == "__main__":
    main()
