"""Interleaved A/B of pipeline settings in one process (alternating rounds in a rotating order,
so host and clock drift hit every variant alike): ``rvc bench``'s models and signal, per-stage
medians in ms and each variant's peak device memory. Not a test; for choosing GPU defaults.

    MLX_ENABLE_TF32=1 python bench/gpu_flags_ab.py compile float32 10 60     # tf32
    python bench/gpu_flags_ab.py compile float16 10 60

Sets (the first variant of each is this build's default):

- ``compile``: this build (ContentVec and the synthesizer compiled per repeated chunk length,
  TF32 and half-precision decoder stretches queued two at a time) / every stretch waited for /
  nothing compiled per length;
- ``stretch``: the decoder stretches: this build's (at most TF32 / half 1500 and exact 1200
  frames, a 10 s chunk in one stretch; a decode that needs several in equal ones) / every
  stretch of the full length, the last pulled inside (the eleventh session's) / exact float32
  stretches queued two at a time as TF32 ones (memory!) / exact float32 stretches of at most
  2400 or 4000 frames (`rvc bench`'s 60 s chunks in two stretches each, or one: less halo and
  rounding work; is the peak bounded by MLX's memory limit rather than the stretch?);
- ``f0``: the f0 queued behind the device's work (``RMVPEModel.start``) / waited for first;
- ``memory``: MLX's memory limit 3 / 3.5 / 3.7 GiB (above it, evaluations wait and cached
  buffers are freed: ``cudaFree``, which waits for the device);
- ``cache``: MLX's buffer cache kept (this build) / emptied after each conversion (timed with
  it: the next one allocates afresh) / kept with a 3.5 GiB limit. MLX 0.32's CUDA allocator
  frees host-visible (managed) buffers, the uploads and read-backs, with ``cudaFree``, which
  waits for the device; it frees cached buffers when the limit is reached;
- ``cv``: ContentVec as ``VoiceConverter`` runs it (half precision with a half synthesizer on
  GPUs) / in float32 (TF32);
- ``cvattn``: ContentVec's attention on CUDA as matmul-softmax-matmul (this build) / through
  ``mx.fast.scaled_dot_product_attention``, which MLX 0.32.4's CUDA backend hands to cuDNN's
  fused attention for float16 / bfloat16 (its library has ``MLX_CUDA_USE_CUDNN_SDPA``; float32
  takes MLX's generic fallback, as this build's comment says). Each variant keeps its own
  compiled graphs.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable

import rvc_runtime

rvc_runtime.configure_cpu()
rvc_runtime.configure_gpu(compile=True)

import mlx.core as mx  # noqa: E402

from rvc_convert import pipeline  # noqa: E402
from rvc_convert.bench import STAGES, build_models, pipeline_call, signal  # noqa: E402
from rvc_synth import backends, generator  # noqa: E402

GiB = 2**30
_START = pipeline.RMVPEF0.start


def _set(
    overlap: tuple[str, ...] = generator.OVERLAP,
    compiled: bool = True,
    step: int = generator.STRETCH_STEP,
    tf32_frames: int = backends.GPU_TF32_CHUNK_FRAMES,
    exact_frames: int = backends.GPU_EXACT_CHUNK_FRAMES,
    queued: bool = True,
    limit: float = 3.0,
) -> Callable[[], None]:
    def apply() -> None:
        generator.OVERLAP, generator.STRETCH_STEP, pipeline.COMPILE_CHUNKS = overlap, step, compiled
        backends.GPU_TF32_CHUNK_FRAMES, backends.GPU_EXACT_CHUNK_FRAMES = tf32_frames, exact_frames
        if queued:
            pipeline.RMVPEF0.start = _START  # type: ignore[method-assign]
        elif "start" in pipeline.RMVPEF0.__dict__:
            del pipeline.RMVPEF0.start
        mx.set_memory_limit(int(limit * GiB))

    return apply


_CALLS: dict[str, Callable] = {}  # variants with their own pipeline call (made in main)
_CV: list = []  # the FastContentvec of build_models' ContentVec (set in main)
_CV_GRAPHS: dict[bool, dict] = {False: {}, True: {}}


def _cv_attention(fused: bool) -> Callable[[], None]:
    def apply() -> None:
        _set()()
        fast = _CV[0]
        fast.fused_attention, fast._graphs = fused, _CV_GRAPHS[fused]

    return apply


def _call(name: str) -> Callable[[], Callable | None]:
    def apply() -> Callable | None:
        _set()()
        return _CALLS.get(name)

    return apply


SETS: dict[str, dict[str, Callable[[], Callable | None]]] = {
    "compile": {
        "this_build": _set(),
        "stretches_one_by_one": _set(overlap=()),
        "not_compiled": _set(compiled=False),
    },
    "stretch": {
        "this_build": _set(),
        "full_length": _set(step=1 << 30),
        "exact_queued": _set(overlap=(*generator.OVERLAP, "float32")),
        "exact_2400": _set(exact_frames=2400),
        "exact_4000": _set(exact_frames=4000),
    },
    "f0": {"queued": _set(), "waited": _set(queued=False)},
    "memory": {"3": _set(), "3.5": _set(limit=3.5), "3.7": _set(limit=3.7)},
    "cv": {"this_build": _set(), "float32": _call("cv_float32")},
    "cvattn": {"this_build": _cv_attention(False), "fused_sdpa": _cv_attention(True)},
    "cache": {"this_build": _set(), "clear_after": _call("clear_after"), "limit_3.5": _set(limit=3.5)},
}


def main(name: str, dtype: str, seconds: list[float], rounds: int = 7) -> None:
    variants = SETS[name]
    models = build_models(dtype=dtype)
    default = pipeline_call(models)
    _CALLS["cv_float32"] = pipeline_call(models, content="float32")
    _CALLS["clear_after"] = lambda audio, t=None: (default(audio, t), mx.clear_cache())
    _CV.append(models["contentvec"]._fast)
    _CV_GRAPHS[_CV[0].fused_attention] = _CV[0]._graphs
    for s in seconds:
        audio = signal(s)
        for apply in variants.values():  # every variant's first calls (kernels, traces: compiled on a repeat)
            call = apply() or default
            call(audio)
            call(audio)
        runs: dict[str, list[dict[str, float]]] = {k: [] for k in variants}
        peaks = dict.fromkeys(variants, 0.0)
        names = list(variants)
        for r in range(rounds):
            for v in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order
                call = variants[v]() or default
                mx.reset_peak_memory()
                t: dict[str, float] = {}
                t0 = time.perf_counter()
                call(audio, t)
                t["total"] = time.perf_counter() - t0
                runs[v].append(t)
                peaks[v] = max(peaks[v], mx.get_peak_memory() / GiB)
        for v, rs in runs.items():
            row = {k: round(1e3 * statistics.median(x.get(k, 0.0) for x in rs), 1) for k in (*STAGES, "total")}
            out = {"set": name, "variant": v, "dtype": dtype, "seconds": s, "rounds": rounds, **row}
            print(json.dumps({**out, "peak_gb": round(peaks[v], 2)}), flush=True)
        variants[names[0]]()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], [float(a) for a in sys.argv[3:]])
