"""Which runtime-compiled CUDA modules a first conversion builds, and where in our code.

Run with an empty kernel folder (``MLX_PTX_CACHE_DIR``) and ``MLX_DISABLE_COMPILE=1``: every
``mx.take`` / ``mx.take_along_axis`` / array-indexed ``__getitem__`` (with ``--every-op``:
every MLX function) is evaluated where it is made, and the modules that appear in the folder
then are charged to that line; modules that appear elsewhere are charged to the next
``mx.eval`` / ``mx.async_eval`` (its line) or to the call. One JSON line per module:
``{"module", "site", "seconds"}``.

    MLX_PTX_CACHE_DIR=$(mktemp -d) MLX_DISABLE_COMPILE=1 python3 bench/gpu_gathers.py --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

SKIP = {"eval", "async_eval", "compile", "array", "load", "save", "stream", "default_device", "synchronize"}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--precision", default="float16")
    ap.add_argument("--every-op", action="store_true", help="evaluate every MLX function where it is called")
    args = ap.parse_args()
    import rvc_runtime

    rvc_runtime.configure_cpu()
    rvc_runtime.configure_gpu(compile=True)
    import mlx.core as mx

    folder = Path(os.environ["MLX_PTX_CACHE_DIR"])
    seen = {p.name for p in folder.glob("*.ptx")}
    clock = [time.perf_counter()]
    evaluate = mx.eval

    def charge(site: str) -> None:
        new = sorted({p.name for p in folder.glob("*.ptx")} - seen, key=lambda n: (folder / n).stat().st_mtime)
        now = time.perf_counter()
        for name in new:
            print(json.dumps({"module": name[:80], "site": site, "seconds": round(now - clock[0], 2)}), flush=True)
            seen.add(name)
        clock[0] = now

    def where() -> str:  # the innermost line of our packages (or an mlx_* package) calling MLX
        for fr in reversed(traceback.extract_stack()[:-2]):
            if "/packages/" in fr.filename or "mlx_" in fr.filename:
                return f"{fr.filename.split('/src/')[-1]}:{fr.lineno}"
        return "?"

    def wrap(fn: Any, name: str) -> Any:
        def inner(*a: Any, **kw: Any) -> Any:
            charge("(before) " + where())
            out = fn(*a, **kw)
            if isinstance(out, (mx.array, tuple, list)):
                evaluate(out)
            charge(f"{name} {where()} {getattr(a[0], 'dtype', '') if a else ''}")
            return out

        return inner

    getitem = wrap(mx.array.__getitem__, "getitem")
    plain = mx.array.__getitem__

    def gi(self: Any, key: Any) -> Any:
        keys = key if isinstance(key, tuple) else (key,)
        if any(isinstance(k, (mx.array, np.ndarray, list)) for k in keys):
            return getitem(self, key)
        return plain(self, key)

    def ev(*a: Any, **kw: Any) -> None:
        evaluate(*a, **kw)
        charge("eval " + where())

    if args.every_op:
        for mod, prefix in ((mx, "mx."), (mx.fft, "mx.fft."), (mx.random, "mx.random."), (mx.fast, "mx.fast.")):
            for name in dir(mod):
                fn = getattr(mod, name)
                if callable(fn) and not name.startswith("_") and not isinstance(fn, type) and name not in SKIP:
                    setattr(mod, name, wrap(fn, prefix + name))
    else:
        mx.take = wrap(mx.take, "take")
        mx.take_along_axis = wrap(mx.take_along_axis, "take_along_axis")
    mx.eval = ev
    mx.async_eval = ev
    mx.array.__getitem__ = gi
    from rvc_convert import bench

    models = bench.build_models(dtype="float32" if args.precision == "tf32" else args.precision)
    charge("build_models")
    call = bench.pipeline_call(models)
    audio = bench.signal(args.seconds)
    for n in (1, 2):  # the second call is the one that compiles a chunk length's graphs
        timings: dict[str, float] = {}
        t = time.perf_counter()
        call(audio, timings)
        charge(f"call {n} (stages {json.dumps({k: round(v, 2) for k, v in timings.items()})})")
        print(json.dumps({"call": n, "seconds": round(time.perf_counter() - t, 2)}), flush=True)


if __name__ == "__main__":
    main()
