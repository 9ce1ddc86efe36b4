"""Where a live block's time goes on a GPU: each stage of ``Stream._infer`` timed alone (median of
warm calls), the host-side graph-building time, MLX's per-operation and per-sync overheads, and
variants (one lazy graph per stage, ``mx.compile``d per block shape). Not a test.

    python bench/gpu_live_profile.py [--block 0.25] [--extra 2.5] [--tf32] [--dtype float16] [--reps 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace

import mlx.core as mx
import numpy as np


def med(fn, reps: int) -> float:
    for _ in range(min(3, reps)):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return round(1000 * statistics.median(ts), 2)


def gemm_unet(net):
    """RMVPE's ``net.cnn(net.unet(.))`` with BatchNorms folded and every 3x3 convolution one GEMM
    over 9 shifted copies (im2col), in MLX: fewer, larger kernels than cuDNN's on small inputs."""
    import mlx.nn as nn

    from rvc_f0._cpu_unet import _fold

    def conv(w, b, pad):
        w = mx.array(w)  # (O, kh, kw, I)
        o, kh, kw, i = w.shape
        w2 = w.transpose(1, 2, 3, 0).reshape(kh * kw * i, o)

        def run(x, relu=False, add=None):
            b_, h, wd, c = x.shape
            xp = mx.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0))) if pad else x
            cols = [xp[:, a : a + h, e : e + wd] for a in range(kh) for e in range(kw)]
            cols = cols[0] if len(cols) == 1 else mx.concatenate(cols, axis=-1)
            y = (cols.reshape(-1, kh * kw * c) @ w2).reshape(b_, h, wd, o) + mx.array(b)
            if relu:
                y = mx.maximum(y, 0)
            return y if add is None else y + add

        return run

    def block(bl):
        c1 = conv(*_fold(bl.conv1, bl.bn1), 1)
        c2 = conv(*_fold(bl.conv2, bl.bn2), 1)
        sc = bl.shortcut
        cs = conv(np.array(sc.weight), np.array(sc.bias), 0) if sc else None
        return lambda x: c2(c1(x, relu=True), relu=True, add=cs(x) if cs is not None else x)

    u = net.unet
    enc = [([block(b) for b in layer.conv_blocks], tuple(layer.kernel_size)) for layer in u.encoder.layers]
    inter = [block(b) for layer in u.intermediate.layers for b in layer.conv_blocks]
    dec = [(layer, [block(b) for b in layer.conv_blocks]) for layer in u.decoder.layers]
    cnn = conv(np.array(net.cnn.weight), np.array(net.cnn.bias), 1)

    def fwd(x):
        h = u.encoder.bn(x)
        skips = []
        for blocks, k in enc:
            for r in blocks:
                h = r(h)
            skips.append(h)
            b_, hh, ww, c = h.shape
            h = h[:, : hh // k[0] * k[0], : ww // k[1] * k[1]]
            h = h.reshape(b_, hh // k[0], k[0], ww // k[1], k[1], c).mean(axis=(2, 4))
        for r in inter:
            h = r(h)
        for (layer, blocks), skip in zip(dec, reversed(skips)):
            h = mx.concatenate([nn.relu(layer.bn(layer.conv_transpose(h))), skip], axis=-1)
            for r in blocks:
                h = r(h)
        return cnn(h)

    return mx.compile(fwd)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--block", type=float, default=0.25)
    ap.add_argument("--extra", type=float, default=2.5)
    ap.add_argument("--crossfade", type=float, default=0.05)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--tf32", action="store_true")
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()

    from rvc_convert.bench import build_models, live_converter

    models = build_models(dtype=args.dtype)
    synth = models["synth"]
    if args.tf32:
        synth.set_backend(synth.backend, tf32=True)
    cv, rmvpe, version = models["contentvec"], models["rmvpe"], synth.info.version
    vc, f0_fn = live_converter(models)
    rmvpe.set_backend("compiled")

    st = vc.stream(sample_rate=48000, block=args.block, crossfade=args.crossfade, extra=args.extra, seed=0, f0_fn=f0_fn)
    rng = np.random.default_rng(0)
    buf = (0.1 * rng.standard_normal(len(st.input_wav_res))).astype(np.float32)
    res: dict = {"block": args.block, "extra": args.extra, "precision": synth.info.precision, "n16": len(buf)}

    # MLX overheads
    a = mx.array(np.ones(1024, np.float32))
    mx.eval(a)
    res["sync_ms"] = med(lambda: mx.eval(a + 1), 200)

    def chain(n: int) -> None:
        y = a
        for _ in range(n):
            y = y * 1.0001 + 0.5
        mx.eval(y)

    res["500_ops_ms"] = med(lambda: chain(250), 20)

    def build_only(n: int) -> None:
        y = a
        for _ in range(n):
            y = y * 1.0001 + 0.5

    res["500_ops_build_ms"] = med(lambda: build_only(250), 20)

    # content features
    fast = cv._fast
    res["cv_now_ms"] = med(lambda: cv(buf, version=version), args.reps)

    def cv_graph(x: mx.array) -> mx.array:
        from rvc_features._cv_fast import _conv_gemm, gelu

        y = x[:, None]
        for i, (k, s, w2, bias, norm) in enumerate(fast.convs):
            y = _conv_gemm(y, w2, k, s, bias)
            if i == 0 and norm is not None:
                mean = y.mean(axis=0)
                var = ((y - mean) ** 2).mean(axis=0)
                y = (y - mean) * mx.rsqrt(var + norm.eps) * norm.weight + norm.bias
            y = gelu(y)
        m = fast.model
        y = mx.fast.layer_norm(y, m.layer_norm.weight, m.layer_norm.bias, m.layer_norm.eps)
        if m.post_extract_proj is not None:
            y = m.post_extract_proj(y)
        y = y + fast.pos_conv(y)
        enc = m.encoder
        y = mx.fast.layer_norm(y, enc.layer_norm.weight, enc.layer_norm.bias, enc.layer_norm.eps)
        for params in fast.layers:
            y = fast._layer(y, params)
        return y

    xb = mx.array(buf)
    ref = cv(buf, version=version)
    got = np.array(cv_graph(xb))
    res["cv_graph_maxdiff"] = float(np.abs(got - ref).max())
    res["cv_graph_ms"] = med(lambda: mx.eval(cv_graph(xb)), args.reps)
    res["cv_graph_build_ms"] = med(lambda: cv_graph(xb), args.reps)
    if fast.cpu:  # the CPU's attention runs in NumPy: nothing to compile
        cvc = cv_graph
    else:
        cvc = mx.compile(cv_graph)
    res["cv_compiled_maxdiff"] = float(np.abs(np.array(cvc(xb)) - ref).max())
    res["cv_compiled_ms"] = med(lambda: mx.eval(cvc(xb)), args.reps)
    res["cv_compiled_np_ms"] = med(lambda: np.array(cvc(mx.array(buf))), args.reps)

    # pitch (the stream's RMVPE input: the newest block + 50 ms, rounded as the reference)
    from rvc_f0._mlx_net import salience
    from rvc_f0._rmvpe import decode, log_mel

    fe = st.block16 + 800
    fe = 5120 * ((fe - 1) // 5120 + 1) - 160
    pa = buf[-fe:]
    res["f0_samples"] = fe
    res["rmvpe_now_ms"] = med(lambda: rmvpe(pa), args.reps)
    res["mel_np_ms"] = med(lambda: log_mel(pa), args.reps)
    mel = log_mel(pa)
    unet = rmvpe._unet()
    res["salience_ms"] = med(lambda: salience(rmvpe.net, mel, unet=unet, cuda_gru=True), args.reps)
    sal = salience(rmvpe.net, mel, unet=unet, cuda_gru=True)
    res["decode_ms"] = med(lambda: decode(sal, threshold=0.03), args.reps)
    tp = 32 * ((mel.shape[1] - 1) // 32 + 1)
    xm = mx.array(np.ascontiguousarray(np.pad(mel, ((0, 0), (0, tp - mel.shape[1]))).T[None, :, :, None]))
    res["unet_compiled_ms"] = med(lambda: mx.eval(unet(xm)), args.reps)
    gu = gemm_unet(rmvpe.net)
    res["unet_gemm_maxdiff"] = float(np.abs(np.array(gu(xm)) - np.array(unet(xm))).max())
    res["unet_gemm_ms"] = med(lambda: mx.eval(gu(xm)), args.reps)

    # synthesizer, the stream's call
    p_len = st.frames
    feats = np.repeat(np.concatenate([ref, ref[-1:]]), 2, axis=0)[:p_len][None]
    f0 = np.full((1, p_len), 150.0, np.float32)
    from rvc_f0 import postprocess_f0

    pf, pc = postprocess_f0(f0[0], semitones=0.0, unvoiced="keep")
    kw = dict(skip_head=st.skip_head, return_length=st.return_length, seed=0)
    res["synth_now_ms"] = med(lambda: np.array(synth(feats, pc[None], pf[None], **kw)), args.reps)
    fx, pcx, pfx = mx.array(feats), mx.array(pc[None]), mx.array(pf[None])
    res["synth_build_ms"] = med(lambda: synth(fx, pcx, pfx, **kw), args.reps)
    base = synth.backend
    if base.device == "gpu":  # (the CPU's NumPy math cannot be compiled)
        synth.set_backend(replace(base, compile="all"))
        out_all = np.array(synth(feats, pc[None], pf[None], **kw))
        synth.set_backend(base)
        res["synth_all_maxdiff"] = float(np.abs(out_all - np.array(synth(feats, pc[None], pf[None], **kw))).max())
        synth.set_backend(replace(base, compile="all"))
        res["synth_compile_all_ms"] = med(lambda: np.array(synth(feats, pc[None], pf[None], **kw)), args.reps)
        synth.set_backend(replace(base, compile="all", conv="gemm"))
        out_g = np.array(synth(feats, pc[None], pf[None], **kw))
        res["synth_gemm_maxdiff"] = float(np.abs(out_all - out_g).max())
        res["synth_gemm_ms"] = med(lambda: np.array(synth(feats, pc[None], pf[None], **kw)), args.reps)
        synth.set_backend(base)

    # the whole block as the stream runs it
    x48 = (0.1 * rng.standard_normal(st.block_size)).astype(np.float32)
    st.reset()
    res["stream_block_ms"] = med(lambda: st.process(x48), args.reps)
    keep = st._cv_stream
    for name, cvs in (("stream_one_stream_ms", mx.default_stream(mx.default_device())), ("stream_plain_ms", None)):
        st._cv_stream = cvs  # features compiled but queued on the default stream / not compiled, not queued
        st.reset()
        res[name] = med(lambda: st.process(x48), args.reps)
    st._cv_stream = keep
    st.reset()
    for _ in range(20):
        st.process(x48)
    res["stream_stage_ms"] = {k: round(1000 * v / 20, 2) for k, v in st.stage_seconds.items()}
    res["peak_gb"] = round(mx.get_peak_memory() / 1e9, 2)
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
