"""Live conversion (``Stream``): windowing exactness against the synthesizer run offline on the same
features, SOLA, lengths, settings between blocks, the silence gate, and the default settings
against offline conversion of the same file."""

from __future__ import annotations

import numpy as np
import pytest

import rvc_synth
from rvc_audio import load_audio, resample
from rvc_convert import ConvertOptions, VoiceConverter
from rvc_convert.errors import ConvertInputError
from rvc_convert.live import run_file
from rvc_convert.stub import StubEmbedder
from rvc_f0 import postprocess_f0


@pytest.fixture(scope="module")
def ckpt(ref_dir):
    return lambda name: ref_dir / "checkpoints" / f"{name}.pth"


@pytest.fixture(scope="module")
def vc_stub(ckpt, extractors_dir):
    """A pitch model (v2, 40 kHz: hop 400) with the deterministic stub extractor."""
    return VoiceConverter(
        ckpt("v2_f0_40k"), embedder=StubEmbedder(version="v2"), rmvpe=extractors_dir / "rmvpe_random.safetensors"
    )


@pytest.fixture(scope="module")
def speech(fixtures_dir):
    return load_audio(fixtures_dir / "audio" / "arctic_a0007.wav", sample_rate=16000)


def local_f0(audio: np.ndarray, n: int) -> np.ndarray:
    """A deterministic 'pitch' from the audio around each frame (frame t: samples 160 t +- 80),
    so the whole-buffer estimate and the stream's per-block estimates agree frame by frame."""
    x = np.pad(np.asarray(audio, np.float64), (80, 80 + 160 * n))
    win = np.lib.stride_tricks.sliding_window_view(x, 160)[::160][:n]
    rms = np.sqrt((win * win).mean(axis=1))
    return np.where(rms > 1e-3, np.minimum(80 + 3000 * rms, 1000), 0).astype(np.float32)


def test_windowing_equals_offline_synthesis(vc_stub, speech):
    """Extra context covering the whole input: each block's synthesizer output equals the
    synthesizer run on the features and pitch computed offline over the same samples (the
    input left-padded with zeros to the buffer), with the same skip_head/return_length."""
    x = speech[: int(0.9 * 16000)]
    st = vc_stub.stream(
        sample_rate=16000,
        block=0.1,
        crossfade=0.04,
        extra=1.0,
        threshold_db=-60,
        rms_mix_rate=1,
        noise_scale=0,
        f0_fn=local_f0,
    )
    n, total = st.block_size, len(st.input_wav)
    assert (st.skip_head, st.return_length, st.frames) == (100, 10 + 4 + 1, 100 + 4 + 1 + 10)
    padded = np.concatenate([np.zeros(total, np.float32), x])
    worst = 0.0
    for k in range(len(x) // n):
        st.process(x[k * n : (k + 1) * n])
        buf = padded[(k + 1) * n : (k + 1) * n + total]  # what the buffer holds after block k
        assert np.array_equal(st.input_wav_res, buf)
        feats = StubEmbedder(version="v2")(buf)
        feats = np.repeat(np.concatenate([feats, feats[-1:]]), 2, axis=0)[: st.frames]
        pitchf, pitch = postprocess_f0(local_f0(buf, st.frames), unvoiced="keep")
        want = np.array(
            vc_stub.synth(
                feats[None],
                pitch[None],
                pitchf[None],
                noise_scale=0,
                skip_head=st.skip_head,
                return_length=st.return_length,
            )[0]
        )
        assert st.raw.shape == want.shape == (st.return_length * 400,)
        assert np.abs(want).max() > 0.01
        worst = max(worst, float(np.abs(st.raw - want).max()))
    assert worst <= 1e-6  # measured: 0 (the same float32 computation)


def test_incremental_resampling_matches_whole_buffer(vc_stub, speech):
    x = resample(speech[:16000], 16000, 48000).astype(np.float32)
    st = vc_stub.stream(sample_rate=48000, block=0.1, extra=0.5, noise_scale=0, f0_fn=local_f0)
    n = st.block_size
    for k in range(len(x) // n):
        st.process(x[k * n : (k + 1) * n])
    whole = resample(st.input_wav, 48000, 16000)
    inner = slice(800, len(whole) - 800)
    err = np.abs(st.input_wav_res[inner] - whole[inner]).max()
    assert err < 1e-6  # measured 1.5e-7 (peak 0.65): each block's edge is re-done with 20 ms of context


def _tone(n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    f = 140 + 60 * t  # a slow glide: the correlation peak is unique within the 10 ms search
    return (0.5 * np.sin(2 * np.pi * np.cumsum(f) / sr) * (1 + 0.3 * np.sin(2 * np.pi * 1.3 * t))).astype(np.float32)


def test_sola_recovers_a_known_shift_and_leaves_no_seam(vc_stub):
    st = vc_stub.stream(sample_rate=48000, block=0.1, crossfade=0.05)
    sb, ss, n = st.sola_buffer_frame, st.sola_search_frame, st.block_size
    assert (sb, ss) == (1920, 480)
    tone = _tone(48000 * 4, 48000)
    length = n + sb + ss
    for shift in (0, 37, 250, 480):
        st.reset()
        st.sola_buffer[:] = tone[10000 : 10000 + sb]
        st._sola(tone[10000 - shift : 10000 - shift + length].copy())
        assert st.sola_offset == shift
    # a run of blocks whose synthesized starts wander by up to sola_search: the output is seamless
    st.reset()
    rng = np.random.default_rng(0)
    out, pos = [], 20000
    for _ in range(20):
        jitter = int(rng.integers(0, ss + 1))
        st._sola(tone[pos - jitter : pos - jitter + length].copy())
        out.append(st.out.copy())
        pos += n
    y = np.concatenate(out[1:])  # the first block fades in from silence
    jumps = np.abs(np.diff(y))
    seams = np.arange(n, len(y), n) - 1
    inner = np.delete(jumps, seams)
    print(
        f"SOLA: largest seam jump {jumps[seams].max():.4g}, in-block 99.9th percentile {np.percentile(inner, 99.9):.4g}"
    )
    assert jumps[seams].max() <= np.percentile(inner, 99.9)


def test_one_block_per_block_and_settings_between_blocks(vc_stub, speech):
    kw = {"sample_rate": 16000, "block": 0.1, "crossfade": 0.03, "extra": 0.4, "noise_scale": 0, "f0_fn": local_f0}
    a, b, c = vc_stub.stream(**kw), vc_stub.stream(**kw), vc_stub.stream(**kw, pitch=7, formant=2)
    n = a.block_size
    outs = {s: [] for s in "abc"}
    for k in range(8):
        if k == 5:
            b.update(pitch=7, formant=2)
        blk = speech[k * n : (k + 1) * n]
        for name, s in zip("abc", (a, b, c)):
            outs[name].append((s.process(blk).copy(), s.raw.copy()))
    for k in range(5):
        assert np.array_equal(outs["a"][k][0], outs["b"][k][0])
    # from block 5 on, b converts as c (which had pitch 7 and formant 2 from the start)
    assert not np.allclose(outs["a"][5][1], outs["b"][5][1], atol=1e-3)
    for k in (5, 6, 7):
        assert np.abs(outs["b"][k][1] - outs["c"][k][1]).max() <= 1e-6
    with pytest.raises(ConvertInputError, match="unknown setting"):
        a.update(pich=1)
    with pytest.raises(ConvertInputError, match="block has shape"):
        a.process(np.zeros(n + 1, np.float32))
    # file driver: output length equals input length, block by block
    x = speech[: int(16000 * 0.93)]
    a.reset()
    out, fig = run_file(a, x, pace="fast")
    assert out.shape == x.shape and fig["blocks"] == -(-len(x) // n) == 10
    assert fig["algorithmic_latency_ms"] == pytest.approx(1000 * (0.1 + 0.03 + 0.01))


def test_warmup_leaves_a_fresh_stream(vc_stub, speech):
    """``warmup()`` (rvc live and the web page run it before the device starts) converts quiet
    noise, then resets: the blocks that follow are a fresh stream's, sample for sample."""
    kw = {"sample_rate": 16000, "block": 0.1, "crossfade": 0.03, "extra": 0.4, "seed": 3, "f0_fn": local_f0}
    fresh, warmed = vc_stub.stream(**kw), vc_stub.stream(**kw)
    warmed.warmup()
    assert warmed.blocks == 0 and not any(warmed.stage_seconds.values()) and warmed.raw is None
    n = fresh.block_size
    for k in range(4):
        blk = speech[k * n : (k + 1) * n]
        assert np.array_equal(fresh.process(blk), warmed.process(blk))


def test_silence_below_threshold_stays_silent(vc_stub, speech):
    rng = np.random.default_rng(1)
    quiet = (10 ** (-75 / 20) * rng.standard_normal(16000)).astype(np.float32)  # -75 dB noise
    st = vc_stub.stream(sample_rate=16000, block=0.1, extra=0.5, threshold_db=-50, f0_fn=local_f0)
    out, _ = run_file(st, quiet, pace="fast")
    assert np.abs(out).max() == 0  # gated input, its (zero) envelope imposed (rms_mix_rate 0)
    st = vc_stub.stream(sample_rate=16000, block=0.1, extra=0.5, threshold_db=-50, f0_fn=local_f0)
    loud, _ = run_file(st, speech[:16000], pace="fast")
    assert np.abs(loud[4000:]).max() > 0.05
    gate_off = vc_stub.stream(sample_rate=16000, block=0.1, extra=0.5, threshold_db=-60, rms_mix_rate=1, f0_fn=local_f0)
    out, _ = run_file(gate_off, quiet, pace="fast")
    assert np.abs(out).max() > 1e-3  # -60 is off: the model speaks from the noise


# -- default settings against offline conversion ------------------------------------------------


def _log_mel(x: np.ndarray, sr: int = 16000, n_fft: int = 1024, hop: int = 160, n_mels: int = 80) -> np.ndarray:
    win = np.hanning(n_fft + 1)[:-1]
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, n_fft // 2), n_fft)[::hop] * win
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    edges = 700 * (10 ** (np.linspace(0, 2595 * np.log10(1 + sr / 2 / 700), n_mels + 2) / 2595) - 1)
    bins = np.fft.rfftfreq(n_fft, 1 / sr)
    fb = np.maximum(
        0,
        np.minimum(
            (bins - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None]),
            (edges[2:, None] - bins) / (edges[2:, None] - edges[1:-1, None]),
        ),
    )
    return 10 * np.log10(power @ fb.T + 1e-8)


def test_default_stream_against_offline_conversion(ckpt, tiny_contentvec_v1, extractors_dir, fixtures_dir):
    from rvc_f0 import extract_f0

    vc = VoiceConverter(
        ckpt("v1_f0_32k"), contentvec=tiny_contentvec_v1, rmvpe=extractors_dir / "rmvpe_random.safetensors"
    )
    x = load_audio(fixtures_dir / "audio" / "arctic_a0007.wav", sample_rate=48000)[: 48000 * 3]
    off16, sr = vc.convert(x, sample_rate=48000, seed=0)
    off16 = resample(off16.astype(np.float32) / 32768, sr, 16000)
    st = vc.stream(seed=0)  # RVC WebUI realtime defaults: 48 kHz, block 0.25, crossfade 0.05, extra 2.5, rmvpe
    live, fig = run_file(st, x, pace="fast")
    assert fig["blocks"] == 12 and live.shape == x.shape
    live16 = resample(live, 48000, 16000)
    delay = int(16000 * (0.05 + 0.005))  # crossfade + half the SOLA search: where block k's audio sits
    live16, off16 = live16[delay:], off16[: len(live16) - delay]
    m = min(len(live16), len(off16))
    mel_live, mel_off = _log_mel(live16[:m]), _log_mel(off16[:m])
    loud = mel_off.max(axis=1) > mel_off.max() - 50  # frames with signal
    dist = float(np.abs(mel_live - mel_off)[loud].mean())
    f_live = extract_f0(live16[:m], method="harvest")  # pm finds no voicing in the tiny model's output
    f_off = extract_f0(off16[:m], method="harvest")
    both = (f_live > 0) & (f_off > 0)
    cents = float(np.median(np.abs(1200 * np.log2(f_live[both] / f_off[both]))))
    print(
        f"stream vs offline: log-mel {dist:.2f} dB, median |F0| difference {cents:.1f} cents over {both.sum()} frames"
    )
    assert both.sum() >= 15  # measured 24 frames voiced in both
    assert dist < 11.0  # measured 9.1 dB (tiny random-weight models, other noise draws, RMS mix 0 vs 0.25)
    assert cents < 80  # measured 34 cents


def test_decode_frames_is_the_references_return_length2(vc_stub):
    """rvc_synth's ``decode_frames`` (used for the formant shift): the decoder stretches its frames."""
    from rvc_synth.errors import InputShapeError

    rng = np.random.default_rng(0)
    feats = rng.standard_normal((1, 60, 768)).astype(np.float32)
    f0 = np.full((1, 60), 150, np.float32)
    pitch = postprocess_f0(f0[0])[1][None]
    kw = {"noise_scale": 0, "skip_head": 20, "return_length": 30}
    a = np.array(vc_stub.synth(feats, pitch, f0, **kw))
    assert np.array_equal(a, np.array(vc_stub.synth(feats, pitch, f0, **kw, decode_frames=30)))
    b = np.array(vc_stub.synth(feats, pitch, f0, **kw, decode_frames=36))
    assert b.shape == (1, 36 * 400) and not np.allclose(b[:, : a.shape[1]], a, atol=1e-3)
    with pytest.raises(InputShapeError, match="decode_frames"):
        vc_stub.synth(feats, pitch, f0, noise_scale=0, decode_frames=36)


@pytest.mark.parametrize("index_rate", [0.0, 0.5])
def test_gpu_wiring_gives_the_same_blocks(ckpt, tiny_contentvec_v1, extractors_dir, fixtures_dir, index_rate):
    """GPUs queue the content features on a stream of their own (``embedder.lazy``, compiled for
    the block's length), estimate the pitch meanwhile, leave the features on the device for the
    synthesizer (no index blending; with it they come to the host) and compile the
    synthesizer's whole call (``static_shape``). The same wiring, forced here on the CPU, gives
    the same blocks."""
    import mlx.core as mx

    vc = VoiceConverter(  # v1: final_proj on the lazy path
        ckpt("v1_f0_32k"),
        contentvec=tiny_contentvec_v1,
        rmvpe=extractors_dir / "rmvpe_random.safetensors",
        index=fixtures_dir / "reference" / "pipeline" / "index_v1_IVF.index",
    )
    x = load_audio(fixtures_dir / "audio" / "arctic_a0007.wav", sample_rate=48000)[: 48000 * 2]
    outs = []
    for gpu in (False, True):
        st = vc.stream(seed=0, block=0.2, extra=0.5, f0_fn=local_f0, index_rate=index_rate)
        if gpu:
            st._gpu, st._lazy, st._cv_stream = True, vc.embedder.lazy, mx.new_stream(mx.cpu)
        live, fig = run_file(st, x, pace="fast")
        assert fig["blocks"] == 10
        outs.append(live)
    peak = np.abs(outs[0]).max()
    err = np.abs(outs[0] - outs[1]).max()
    print(f"GPU wiring vs plain, index rate {index_rate}: max |d| {err:.2e} of peak {peak:.3f}")
    # float32 rounding only: v1's final_proj is an MLX GEMM there and a NumPy one here
    assert peak > 0.01 and err <= 1e-5 * peak


@pytest.mark.parametrize("n", [10, 27, 28, 40])
def test_device_features_at_100_hz_match_the_host_ones(vc_stub, n):
    """The GPU wiring's 50 -> 100 Hz step on the device (last frame once more, each frame twice,
    edge frames up to the synthesizer's length) equals the host one, short inputs included."""
    import mlx.core as mx

    st = vc_stub.stream(block=0.2, extra=0.3)  # 55 frames of 10 ms
    feats = np.random.default_rng(n).standard_normal((n, vc_stub.info.feature_dim)).astype(np.float32)
    host = st._frames100(feats.copy(), st.settings)
    dev = np.array(st._frames100_mx(mx.array(feats)))
    assert host.shape == dev.shape == (st.frames, vc_stub.info.feature_dim)
    np.testing.assert_array_equal(dev, host)


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("v1_nof0_32k", {}),
        ("v1_f0_32k", {"resample_sr": 44100}),
        ("v1_f0_32k", {"float_output": True}),
        ("v1_f0_32k", {"rms_mix_rate": 1.0, "index_rate": 0.0}),
    ],
)
def test_gpu_pipeline_device_path_variants(ckpt, tiny_contentvec_v1, extractors_dir, fixtures_dir, model, extra):
    """The device path with a model without pitch, output resampling, float output (Applio's
    post-processing) and no RMS mix or index: the host path's samples."""
    from dataclasses import replace

    from rvc_convert.pipeline import run_pipeline

    vc = VoiceConverter(ckpt(model), contentvec=tiny_contentvec_v1, rmvpe=extractors_dir / "rmvpe_random.safetensors")
    x = load_audio(fixtures_dir / "audio" / "arctic_a0007.wav", sample_rate=16000)[: 16000 * 2]
    float_output = extra.pop("float_output", False)
    opts = ConvertOptions(seed=0, **extra)
    outs = []
    for device in ("cpu", "gpu"):
        out, sr = run_pipeline(
            x,
            synth=vc.synth,
            embedder=vc.embedder,
            f0_fn=local_f0,
            options=opts,
            noise_scale=0,
            float_output=float_output,
            backends=replace(vc.backends, device=device, one_blas_thread=False),
        )
        outs.append((np.asarray(out, np.float64), sr, out.dtype))
    (a, sr_a, dt_a), (b, sr_b, dt_b) = outs
    assert (sr_a, dt_a, a.shape) == (sr_b, dt_b, b.shape)
    assert dt_a == (np.float32 if float_output else np.int16)
    peak = np.abs(a).max()
    tol = 2e-5 * peak if float_output else 2  # float32 rounding (int16: a step or two)
    assert peak > 0 and np.abs(a - b).max() <= tol


def test_gpu_pipeline_keeps_features_on_the_device(ckpt, tiny_contentvec_v1, extractors_dir, fixtures_dir, monkeypatch):
    """A GPU plan runs the file pipeline with the features as MLX arrays from ContentVec to the
    synthesizer (``embedder.lazy``; blend, x2 and protect on the device), both compiled per
    chunk length (``static_shape``) once the length repeats. Forced here on the CPU (the plan's
    device; the synthesizer told to compile, as on GPUs), with an index, it gives the host
    path's samples, compiled or not."""
    import collections
    from dataclasses import replace

    import mlx.core as mx

    from rvc_convert import pipeline
    from rvc_convert.pipeline import run_pipeline

    vc = VoiceConverter(
        ckpt("v1_f0_32k"),
        contentvec=tiny_contentvec_v1,
        rmvpe=extractors_dir / "rmvpe_random.safetensors",
        index=fixtures_dir / "reference" / "pipeline" / "index_v1_IVF.index",
    )
    x = load_audio(fixtures_dir / "audio" / "arctic_a0007.wav", sample_rate=16000)[: 16000 * 2]
    calls = []

    class Lazy:  # the embedder, recording which entry the pipeline used
        def __call__(self, a):
            calls.append("host")
            return vc.embedder(a)

        def lazy(self, a, *, static_shape=False):
            calls.append(f"device, compiled: {static_shape}")
            return vc.embedder.lazy(a, static_shape=static_shape)

    class Queued:  # an f0_fn with start (RMVPEF0's interface): queued first on a GPU plan
        def __call__(self, a, n):
            calls.append("f0")
            return local_f0(a, n)

        def start(self, a, n, *, on_device=None):  # on_device: the padded input's one device copy
            if on_device is None:  # (an input over SHARED_UPLOAD samples: copied per stage)
                calls.append("f0 queued, no shared copy")
            else:
                assert isinstance(on_device, mx.array) and on_device.dtype == mx.float32
                np.testing.assert_array_equal(np.array(on_device), a.astype(np.float32))
                calls.append("f0 queued")
            return lambda: local_f0(a, n)

    synth_calls = []
    synth = vc.synth

    def spy(*args, **kw):
        synth_calls.append(kw.get("static_shape", False))
        return synth(*args, **kw)

    spy.info = synth.info
    monkeypatch.setattr(pipeline, "_SEEN", collections.OrderedDict())  # no chunk length met yet
    outs = []
    for device, shared in (("cpu", True), ("gpu", True), ("gpu", True), ("gpu", False)):
        if device == "gpu":
            synth.set_backend(replace(rvc_synth.backends.choose("mlx"), compile="decoder", streams=0))  # as GPUs
        monkeypatch.setattr(pipeline, "SHARED_UPLOAD", 1 << 24 if shared else 16000)  # long inputs: per stage
        out, sr = run_pipeline(
            x,
            synth=spy,
            embedder=Lazy(),
            f0_fn=Queued(),
            index=vc.index,
            options=ConvertOptions(seed=0, index_rate=0.75, protect=0.33),
            noise_scale=0,
            backends=replace(vc.backends, device=device, one_blas_thread=False),
        )
        outs.append(out.astype(np.int32))
    # a chunk length's graphs are compiled once it repeats (the host path never compiles)
    assert synth_calls == [False, False, True, True]
    assert {name for name, _ in synth.__dict__["_graphs"]} == {"whole"}  # one chunk: one stretch, one graph
    assert calls == [
        "f0",
        "host",
        "f0 queued",
        "device, compiled: False",
        "f0 queued",
        "device, compiled: True",
        "f0 queued, no shared copy",
        "device, compiled: True",
    ]  # the first chunk's features queued before the f0 is waited for
    peak = np.abs(outs[0]).max()
    for out in outs[1:]:
        print(f"device features vs host: max |d| {np.abs(outs[0] - out).max()} of peak {peak}")
        assert peak > 300 and np.abs(outs[0] - out).max() <= 2  # int16 steps: float32 rounding only


def test_converter_rmvpe_f0_can_be_queued(ckpt, tiny_contentvec_v1, extractors_dir, fixtures_dir):
    """The converter's RMVPE ``f0_fn`` (:class:`RMVPEF0`) has ``start``: the same f0 as its call
    and as ``extract_f0``, cut or zero-padded to ``p_len`` alike (on the CPU it is computed at once)."""
    from rvc_convert.pipeline import RMVPEF0
    from rvc_f0 import extract_f0

    vc = VoiceConverter(
        ckpt("v1_f0_32k"), contentvec=tiny_contentvec_v1, rmvpe=extractors_dir / "rmvpe_random.safetensors"
    )
    x = load_audio(fixtures_dir / "audio" / "arctic_a0007.wav", sample_rate=16000)[: 16000 * 2].astype(np.float64)
    fn = vc._f0_fn(ConvertOptions())
    assert isinstance(fn, RMVPEF0)
    for n in (len(x) // 160, len(x) // 160 + 5):
        want = fn(x, n)
        assert want.shape == (n,) and (want > 0).any()
        np.testing.assert_array_equal(fn.start(x, n)(), want)
        np.testing.assert_array_equal(extract_f0(x, method="rmvpe", p_len=n, weights=fn.model.path), want)
    assert not isinstance(vc._f0_fn(ConvertOptions(f0_method="pm")), RMVPEF0)
