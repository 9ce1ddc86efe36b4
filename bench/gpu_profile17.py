# ruff: noqa: B023  (each lambda is timed at once, in the iteration that made it)
"""Issue 17: where a whole-pipeline conversion's time goes on a GPU, stage by stage and inside
each stage (median of warm calls, ``mx.synchronize`` around each), with peak device memory,
and the host's hot spots (cProfile of one warm conversion). Not a test.

    python bench/gpu_profile17.py [--seconds 10 60] [--dtype float16] [--tf32] [--reps 3] [--json]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import time

import rvc_runtime

rvc_runtime.configure_cpu()
rvc_runtime.configure_gpu(compile=True)  # MLX CUDA: plan cache, kernels on disk, graphs off, memory limit

import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402

from rvc_audio import highpass, mix_rms  # noqa: E402
from rvc_convert.bench import build_models, f0_function, pipeline_call, signal  # noqa: E402
from rvc_convert.options import PRESETS, ConvertOptions  # noqa: E402
from rvc_convert.pipeline import SR, chunk_plan, prepare_features, split_points, to_int16  # noqa: E402


def med(fn, reps: int) -> tuple[float, float]:
    """(median ms, peak device MB of the last call)."""
    fn()
    ts = []
    for _ in range(reps):
        mx.synchronize()
        mx.reset_peak_memory()
        t0 = time.perf_counter()
        fn()
        mx.synchronize()
        ts.append(time.perf_counter() - t0)
    return round(1000 * statistics.median(ts), 2), round(mx.get_peak_memory() / 2**20, 1)


def wrap_stages(models: dict, traced) -> dict:
    """:func:`build_models`'s models with every stage call inside the pipeline going through
    ``traced(name, fn)`` (names ``contentvec``, ``index``, ``synth``, ``f0``); ContentVec keeps
    its ``lazy`` form, so GPU pipelines take their device path."""

    class Cv:
        def __init__(self, e):
            self.e = e

        def embedder(self, v, **kw):
            emb = self.e.embedder(v, **kw)

            class E:
                def __init__(self):
                    self.lazy = traced("contentvec", emb.lazy)

                def __call__(self, x):
                    return traced("contentvec", emb)(x)

            return E()

    class Ix:
        def __init__(self, i):
            self.i = i

        def blend(self, f, **kw):
            return traced("index", self.i.blend)(f, **kw)

    class Sy:
        def __init__(self, s):
            self.s, self.info, self.backend, self.dtype = s, s.info, s.backend, s.dtype

        def __call__(self, *args, **kw):
            return traced("synth", self.s)(*args, **kw)

    class Rm:
        def __init__(self, r):
            self.r = r

        def __call__(self, *args, **kw):
            return traced("f0", self.r)(*args, **kw)

        def start(self, *args, **kw):  # the pipeline's overlapped form: launch, later finish
            return traced("f0", traced("f0", self.r.start)(*args, **kw))

    return dict(
        models,
        contentvec=Cv(models["contentvec"]),
        index=Ix(models["index"]),
        synth=Sy(models["synth"]),
        rmvpe=Rm(models["rmvpe"]),
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, nargs="+", default=[10, 60])
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--tf32", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--profile", action="store_true", help="cProfile one warm conversion per length")
    ap.add_argument("--pipeline-only", action="store_true", help="only the pipeline, with each stage call traced")
    ap.add_argument("--max-frames", type=int, default=0, help="RMVPE's one-pass limit (0: its default)")
    ap.add_argument("--cv-block", type=int, default=0, help="ContentVec feature-extractor block (0: default)")
    ap.add_argument("--groups", type=int, default=0, help="MLX index search's query groups (0: default)")
    a = ap.parse_args()
    if a.tf32 and os.environ.get("MLX_ENABLE_TF32") != "1":
        raise SystemExit("--tf32 needs MLX_ENABLE_TF32=1 in the environment (read when MLX loads)")
    models = build_models(dtype=a.dtype)
    synth, cv, rmvpe, index = models["synth"], models["contentvec"], models["rmvpe"], models["index"]
    if a.cv_block:
        from rvc_features._cv_fast import FastContentvec

        fg = FastContentvec._features_graph

        def graph(self, x, w0, b0, n, block=0, **kw):  # the feature extractor in passes of --cv-block frames
            return fg(self, x, w0, b0, n, a.cv_block, **kw)

        FastContentvec._features_graph = graph  # type: ignore[method-assign]
    if a.max_frames:
        rmvpe.max_frames = a.max_frames
    if a.groups:
        import rvc_index._mlx_search as ms

        ms._GROUPS = a.groups
    trace: list = []
    if a.pipeline_only:  # every stage call synchronised and timed inside the pipeline, with its peak memory

        def traced(name, fn):
            def run(*args, **kw):
                mx.synchronize()
                mx.reset_peak_memory()
                t0 = time.perf_counter()
                out = fn(*args, **kw)
                if isinstance(out, mx.array):
                    mx.eval(out)
                mx.synchronize()
                trace.append((name, round(1000 * (time.perf_counter() - t0), 1), round(mx.get_peak_memory() / 2**20)))
                return out

            return run

        tm = wrap_stages(models, traced)
        call = pipeline_call(tm)
    else:
        call = pipeline_call(models)
    embed = cv.embedder(synth.info.version)
    f0_fn = f0_function(rmvpe)
    preset = PRESETS["cpu"]
    rows = []
    for sec in a.seconds:
        x = signal(sec)
        r: dict = {"seconds": sec, "dtype": a.dtype, "tf32": a.tf32, "rmvpe": str(rmvpe.backend)}
        call(x)  # warm
        tims = []
        for _ in range(a.reps):
            t: dict[str, float] = {}
            mx.reset_peak_memory()
            t0 = time.perf_counter()
            call(x, t)
            t["total"] = time.perf_counter() - t0
            tims.append(t)
        r["pipeline_ms"] = {k: round(1000 * statistics.median(d[k] for d in tims), 1) for k in tims[0]}
        r["pipeline_peak_mb"] = round(mx.get_peak_memory() / 2**20, 1)
        if a.pipeline_only:
            n = len(trace) // (a.reps + 1)
            r["trace_last"] = trace[-n:]
            trace.clear()
            rows.append(r)
            print(json.dumps(r) if a.json else r, flush=True)
            continue
        if a.profile:
            pr = cProfile.Profile()
            pr.enable()
            call(x)
            pr.disable()
            s = io.StringIO()
            pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(18)
            r["cprofile"] = s.getvalue()[-4000:]
        # host steps ("other")
        r["highpass_ms"] = med(lambda: highpass(x, sample_rate=SR), a.reps)[0]
        hp = highpass(x, sample_rate=SR)
        r["split_points_ms"] = med(lambda: split_points(hp, preset), a.reps)[0]
        opt_ts = split_points(hp, preset)
        t_pad = SR * preset.x_pad
        audio_pad = np.pad(hp, (t_pad, t_pad), mode="reflect")
        p_len = len(audio_pad) // 160
        # f0: as the pipeline calls it (windows past max_frames), then one pass, then its parts
        r["f0_ms"] = med(lambda: f0_fn(audio_pad, p_len), a.reps)
        mf = rmvpe.max_frames
        rmvpe.max_frames = 10**6
        r["f0_onepass_ms"] = med(lambda: f0_fn(audio_pad, p_len), a.reps)
        rmvpe.max_frames = mf
        from rvc_f0._mlx_net import _bigru, log_mel_mx

        aud = audio_pad.astype(np.float32)
        r["f0_mel_ms"] = med(lambda: mx.eval(log_mel_mx(aud)), a.reps)[0]
        mel = log_mel_mx(aud)
        mx.eval(mel)
        nf = mel.shape[1]
        tp = 32 * ((nf - 1) // 32 + 1)
        xin = mx.pad(mel, ((0, 0), (0, tp - nf))).T[None, :, :, None]
        unet = rmvpe._unet() or (lambda v: rmvpe.net.cnn(rmvpe.net.unet(v)))
        r["f0_unet_ms"] = med(lambda: mx.eval(unet(xin)), a.reps)
        hid = unet(xin).transpose(0, 1, 3, 2).reshape(1, tp, -1)
        mx.eval(hid)
        r["f0_gru_ms"] = med(lambda: mx.eval(_bigru(rmvpe.net.bigru, hid, cuda=rmvpe.backend.gru == "cuda")), a.reps)[0]
        sal = rmvpe.salience(aud)
        from rvc_f0._rmvpe import decode

        r["f0_decode_ms"] = med(lambda: decode(sal, threshold=0.03), a.reps)[0]
        # per chunk: features, index, synth (encoder + flow, decoder)
        raw = f0_fn(audio_pad, p_len)
        from rvc_convert._applio import adjust_f0

        pitchf, pitch = adjust_f0(raw, ConvertOptions(seed=0))
        chunks = chunk_plan(len(hp), opt_ts, preset)
        r["chunks"] = []
        pad = synth.info.sample_rate * preset.x_pad // synth.info.hop
        for c in chunks:
            seg = audio_pad[c.start : c.end].astype(np.float32)
            cr: dict = {"seconds": round(len(seg) / SR, 2)}
            cr["contentvec_ms"] = med(lambda: np.asarray(embed(seg)), a.reps)
            feats = np.asarray(embed(seg))
            cp, cf = pitch[c.f0_start : c.f0_end], pitchf[c.f0_start : c.f0_end]
            prep = lambda: prepare_features(  # noqa: E731
                feats, index=index, index_rate=0.75, pitchf=cf, protect=0.33, p_len=len(seg) // 160
            )
            cr["index_ms"] = med(prep, a.reps)[0]
            cr["index_search_ms"] = med(lambda: index.search(feats, 8), a.reps)[0]
            f100, n = prep()
            n = min(n, len(cp))
            f100, cp2, cf2 = f100[:n], cp[:n], cf[:n]
            keep = (pad, n - pad)
            cr["synth_ms"] = med(
                lambda: np.array(synth(f100[None], cp2[None], cf2[None], seed=0, out_frames=keep)[0]), a.reps
            )
            g = synth.emb_g(mx.array([0]))[:, None, :]
            xf, pp = mx.array(f100[None]).astype(synth.dtype), mx.array(cp2[None]).astype(mx.int32)

            def encflow():
                m_p, logs_p = synth.enc_p(xf, pp)
                return synth.flow.reverse(m_p, g)

            cr["synth_encflow_ms"] = med(lambda: mx.eval(encflow()), a.reps)
            z = encflow()
            mx.eval(z)
            f0d = mx.array(cf2[None]).astype(mx.float32)
            cr["synth_dec_ms"] = med(lambda: mx.eval(synth.dec(z, f0d, g, key=None, out_frames=keep)), a.reps)
            out = np.array(synth(f100[None], cp2[None], cf2[None], seed=0, out_frames=keep)[0])
            cr["to_host_ms"] = med(lambda: np.array(mx.array(out)), a.reps)[0]
            r["chunks"].append(cr)
        y = np.concatenate([np.zeros(int(sec * synth.info.sample_rate), np.float32)]) + 0.1
        r["mix_rms_ms"] = med(lambda: mix_rms(hp, SR, y, synth.info.sample_rate, 0.25), a.reps)[0]
        r["to_int16_ms"] = med(lambda: to_int16(y), a.reps)[0]
        rows.append(r)
        print(json.dumps(r) if a.json else r, flush=True)


if __name__ == "__main__":
    main()
