"""RMVPE backend selection: chosen once at load_rmvpe(backend=) (or when a convolution is lent)."""

from __future__ import annotations

import os
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from rvc_f0 import load_rmvpe
from rvc_f0._rmvpe import BACKENDS, ENV_BACKEND, RMVPEBackend, choose_backend
from rvc_f0.errors import RVCF0Error, UnknownBackendError

CUDA = mx.default_device() == mx.gpu and mx.cuda.is_available()


def test_auto_picks_the_same_kernels_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA: the BiGRU kernel and the direct-convolution U-Net for short inputs; other GPUs: the
    compiled U-Net; CPU: the lent U-Net convolution when one is lent, the BiGRU on oneDNN when
    it is installed, else in NumPy."""
    from rvc_runtime import onednn

    monkeypatch.delenv(ENV_BACKEND, raising=False)
    lent = object()
    gpu = mx.default_device() == mx.gpu
    frames = (8000, 4096) if CUDA else (3200, 2048)  # CUDA: fewer windows, fewer convolution plans
    gpu_unet = "direct" if CUDA else "compiled"
    want = RMVPEBackend(
        "auto",
        gpu_unet if gpu else "mlx",
        "cuda" if CUDA else "mlx" if gpu else "onednn" if onednn.available() else "numpy",
        "mlx" if gpu else "numpy",
        *frames,
        (64 if os.environ.get("MLX_ENABLE_TF32") != "0" else 256) if CUDA else 0,
    )
    assert choose_backend() == want
    assert choose_backend(conv2d=lent).unet == (gpu_unet if gpu else "conv2d")
    assert choose_backend("mlx", conv2d=lent) == RMVPEBackend("mlx", "mlx", "mlx", "numpy", *frames)


def test_the_backend_sets_the_one_pass_limit(weights: Path) -> None:
    """The model's ``max_frames`` / ``window`` come from its backend (and may be changed after)."""
    from rvc_f0._rmvpe import _load

    m = _load(weights)
    assert (m.max_frames, m.window) == (m.backend.max_frames, m.backend.window)
    m.max_frames = 100
    m.set_backend("mlx")
    assert m.max_frames == m.backend.max_frames


def test_mlx_backend_meets_the_goldens_and_is_cached_apart(weights: Path, golden: dict) -> None:
    auto = load_rmvpe(weights)
    plain = load_rmvpe(weights, backend="mlx")
    assert plain is not auto and load_rmvpe(weights, backend="mlx") is plain
    assert (plain.backend.name, plain.backend.unet, plain.backend.gru) == ("mlx", "mlx", "mlx")
    audio = golden["vocadito_5s/audio"]
    sal = plain.salience(audio)
    assert np.max(np.abs(sal - golden["vocadito_5s/salience"])) <= 5e-4
    assert np.max(np.abs(sal - auto.salience(audio))) <= 1e-5


def test_lending_a_convolution_chooses_again(weights: Path) -> None:
    from rvc_f0._rmvpe import _load

    m = _load(weights)
    gpu = mx.default_device() == mx.gpu
    gpu_unet = "direct" if CUDA else "compiled"
    assert m.backend.unet == (gpu_unet if gpu else "mlx") and (m._unet() is None) != gpu
    m.conv2d = lambda w, b, p: None  # a (never called) factory
    assert m.backend.unet == (gpu_unet if gpu else "conv2d")
    m.set_backend("mlx")
    assert m.backend.unet == "mlx" and m._unet() is None and m.conv2d is not None


def test_invalid_backend_and_environment_override(weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_BACKEND, raising=False)
    with pytest.raises(UnknownBackendError, match="backend='onednn' .*expected one of auto, mlx, cuda, compiled"):
        load_rmvpe(weights, backend="onednn")
    assert issubclass(UnknownBackendError, RVCF0Error) and BACKENDS == ("auto", "mlx", "cuda", "compiled")
    if not CUDA:
        with pytest.raises(UnknownBackendError, match="CUDA"):
            choose_backend("cuda")
    monkeypatch.setenv(ENV_BACKEND, "mlx")
    assert choose_backend().name == "mlx"
    assert choose_backend("auto", conv2d=object()).unet == "mlx"  # read when choosing
    monkeypatch.setenv(ENV_BACKEND, "fast")
    with pytest.raises(UnknownBackendError, match=r"\$RVC_RMVPE_BACKEND='fast'"):
        choose_backend()


def test_compiled_unet_backend_matches_mlx() -> None:
    """backend="compiled": the MLX U-Net as one mx.compile'd graph per input shape (live blocks):
    the same salience as MLX's eager U-Net, on any device."""
    from rvc_f0._rmvpe import choose_backend
    from rvc_f0.bench import random_model

    m = random_model("rmvpe")
    audio = (0.1 * np.random.default_rng(4).standard_normal(4960)).astype(np.float32)
    eager = m.set_backend("mlx").salience(audio)
    assert choose_backend("compiled").unet == "compiled"
    compiled = m.set_backend("compiled")
    assert compiled.backend.unet == "compiled"
    np.testing.assert_allclose(compiled.salience(audio), eager, rtol=0, atol=1e-5)  # float32 fusion rounding
    np.testing.assert_allclose(compiled.salience(audio), eager, rtol=0, atol=1e-5)  # cached graph, same shape


def test_direct_unet_walk_matches_mlx(weights: Path) -> None:
    """The "direct" U-Net (CUDA, short inputs): BatchNorms folded, ReLU, residual adds and 1x1
    shortcuts fused into the second convolution of each block, the decoder's up-sampling as a 2x2
    convolution to four parities. Walked here with MLX's conv2d in the kernel's place (the same
    fused arguments): MLX's U-Net's output to float32 rounding, every block covered."""
    from rvc_f0._cuda_unet import DeviceUnet, conv_mlx
    from rvc_f0._rmvpe import _load

    net = _load(weights).net
    calls: list[tuple] = []

    def spy(x: mx.array, w: mx.array, b: mx.array, **kw) -> mx.array:
        calls.append((kw["k"], "res" if kw.get("res") is not None else "short" if kw.get("short") is not None else ""))
        return conv_mlx(x, w, b, **kw)

    unet = DeviceUnet(net, spy)
    x = mx.array(np.random.default_rng(5).standard_normal((1, 64, 128, 1)).astype(np.float32))
    want = np.array(net.cnn(net.unet(x)))
    got = np.array(unet(x))
    assert np.abs(got - want).max() <= 2e-6 * np.abs(want).max()
    n_blocks = sum(
        len(layer.conv_blocks)
        for part in (net.unet.encoder, net.unet.intermediate, net.unet.decoder)
        for layer in part.layers
    )
    assert calls.count((3, "res")) + calls.count((3, "short")) == n_blocks and calls.count((3, "short")) >= 10
    assert calls.count((2, "")) == 5 and len(calls) == 2 * n_blocks + 5 + 1  # up-samplings, the output conv


def test_short_inputs_fall_back_for_good_when_the_kernels_fail(caplog: pytest.LogCaptureFixture) -> None:
    """The "direct" U-Net serves inputs up to its frame limit; longer ones, and every one after
    the kernels failed to build or run (one warning), go to the compiled MLX U-Net."""
    from rvc_f0._cuda_unet import ShortInputs

    seen = []
    ok = ShortInputs(lambda: lambda x: seen.append("direct") or x + 1, lambda x: seen.append("mlx") or x - 1, 64)
    assert np.array(ok(mx.zeros((1, 32, 4, 1)))).max() == 1 and np.array(ok(mx.zeros((1, 96, 4, 1)))).max() == -1
    assert seen == ["direct", "mlx"] and not ok.failed

    def broken() -> mx.array:
        raise RuntimeError("nvrtc: error")

    bad = ShortInputs(lambda: lambda x: broken(), lambda x: x - 1, 64)
    with caplog.at_level("WARNING", logger="rvc_f0"):
        assert np.array(bad(mx.zeros((1, 32, 4, 1)))).max() == -1
        assert np.array(bad(mx.zeros((1, 32, 4, 1)))).max() == -1
    assert bad.failed and sum("direct-convolution kernels unavailable" in r.message for r in caplog.records) == 1


@pytest.mark.skipif(not CUDA, reason="the direct-convolution kernel needs MLX's CUDA backend")
def test_direct_convolution_kernel_matches_mlx(weights: Path) -> None:
    """The CUDA kernel against MLX's conv2d: every fusion mode, odd sizes, and the whole U-Net."""
    from rvc_f0._cuda_unet import CHECK_SHAPES, DeviceUnet, conv_cuda, conv_mlx
    from rvc_f0._rmvpe import _load

    rng = np.random.default_rng(6)
    arr = lambda *s: mx.array(rng.standard_normal(s).astype(np.float32))  # noqa: E731
    for n, h, w, cin, cout, k, pad in CHECK_SHAPES:
        x, wt, b = arr(n, h, w, cin), arr(k * k * cin, cout), arr(cout)
        for kw in ({}, {"res": arr(n, h, w, cout)}, {"short": (x, arr(cin, cout), arr(cout))}):
            for relu in (False, True):
                want = np.array(conv_mlx(x, wt, b, k=k, pad=pad, relu=relu, **kw))
                got = np.array(conv_cuda(x, wt, b, k=k, pad=pad, relu=relu, **kw))
                assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max()), (n, h, w, cin, cout, kw.keys())
    net = _load(weights).net
    x = arr(1, 32, 128, 1)
    want = np.array(net.cnn(net.unet(x)))
    assert np.abs(np.array(DeviceUnet(net, conv_cuda)(x)) - want).max() <= 1e-4 * np.abs(want).max()


def test_device_mel_front_end_meets_the_goldens(weights: Path, golden: dict, fixtures_dir: Path) -> None:
    """GPUs compute the log-mel on the device in float32 (mel="mlx"; the reference's torch.stft is
    float32 too): within 2e-4 of the float64 host front end (5e-5 where the mel is above 1e-3),
    and the salience still meets the golden."""
    from dataclasses import replace

    from rvc_audio import load_audio
    from rvc_f0._mlx_net import log_mel_mx
    from rvc_f0._rmvpe import _load, log_mel

    x = load_audio(fixtures_dir / "audio" / "vocadito_10.wav", sample_rate=16000)
    for frames in (None, (100, 700)):
        host, dev = log_mel(x, frames=frames), np.array(log_mel_mx(x, frames=frames))
        assert dev.shape == host.shape
        d = np.abs(dev - host)
        assert d.max() <= 2e-4 and d[host > np.log(1e-3)].max() <= 5e-5  # measured 1.6e-4, 2.6e-5
    for n in (len(x), 1025, 16000 * 3 + 7, 16000 * 3 + 159):  # the end's reflection: 353..512 samples
        # a pipeline's one upload: the centred frames cut on the device, the same float32 samples
        a = np.asarray(x[:n], np.float32)
        np.testing.assert_array_equal(np.array(log_mel_mx(a, on_device=mx.array(a))), np.array(log_mel_mx(a)))
    m = _load(weights)
    m.backend = replace(m.backend, mel="mlx")
    audio = golden["vocadito_5s/audio"]
    sal = m.salience(audio)
    assert np.max(np.abs(sal - golden["vocadito_5s/salience"])) <= 5e-4
    np.testing.assert_allclose(sal, m.set_backend("mlx").salience(audio), rtol=0, atol=1e-4)


def test_random_model_weights_are_drawn_at_once() -> None:
    """The bench's random RMVPE has its weights drawn when made: a compiled U-Net captures the
    arrays as they are and would draw lazy ones again at every call (timings of nothing)."""
    import io

    from mlx.utils import tree_flatten

    from rvc_f0.bench import random_model

    for name, w in tree_flatten(random_model("rmvpe").net.parameters()):
        dot = io.StringIO()
        mx.export_to_dot(dot, w)
        assert "Random" not in dot.getvalue() and "Full" not in dot.getvalue(), name


def test_start_queues_the_network_and_finishes_with_the_same_f0(weights: Path, golden: dict) -> None:
    """``start`` (a pipeline overlapping its stages): on a device backend (mel, U-Net, BiGRU in
    MLX, forced here on the CPU) the salience is queued unevaluated and the returned function
    decodes it: the same f0 as ``__call__``, bit for bit; on the CPU backend (host steps) the
    estimate is made at once."""
    from dataclasses import replace

    from rvc_f0._rmvpe import _load

    audio = golden["vocadito_5s/audio"]
    m = _load(weights)
    m.backend = replace(m.set_backend("compiled").backend, mel="mlx")  # every part in MLX
    queued: list = []
    real_async = mx.async_eval
    try:
        mx.async_eval = lambda *a: queued.append(a)  # type: ignore[assignment]
        finish = m.start(audio)
    finally:
        mx.async_eval = real_async
    assert len(queued) == 1 and isinstance(queued[0][0], mx.array)  # handed to the device, not copied
    f0 = finish()
    np.testing.assert_array_equal(f0, m(audio))
    shared = mx.array(np.asarray(audio, np.float32))  # a pipeline's upload, shared by its stages
    np.testing.assert_array_equal(m.start(audio, on_device=shared)(), f0)
    assert f0.dtype == np.float32 and f0.shape == (len(audio) // 160 + 1,) and (f0 > 0).any()
    cpu = _load(weights).set_backend("auto")  # the CPU: oneDNN's (or NumPy's) BiGRU, host mel
    assert cpu.backend.gru in ("onednn", "numpy")
    np.testing.assert_array_equal(cpu.start(audio, threshold=0.05)(), cpu(audio, threshold=0.05))
    with pytest.raises(RVCF0Error, match="threshold=2"):
        cpu.start(audio, threshold=2)


@pytest.mark.skipif(mx.default_device() == mx.gpu, reason="the CPU's BiGRU kernels")
def test_cpu_bigru_kernels_agree_and_meet_the_goldens(weights: Path, golden: dict) -> None:
    """oneDNN's BiGRU (one primitive, the CPU's choice when installed) and the NumPy steps give
    the same salience to float32 rounding, and both meet the reference's."""
    from dataclasses import replace

    from rvc_f0._rmvpe import _load
    from rvc_runtime import onednn

    if not onednn.available():
        pytest.skip("oneDNN not installed")
    m = _load(weights).set_backend("auto")
    assert m.backend.gru == "onednn"
    audio = golden["vocadito_5s/audio"]
    fast = m.salience(audio)
    m.backend = replace(m.backend, gru="numpy")
    steps = m.salience(audio)
    assert np.max(np.abs(fast - steps)) <= 1e-5
    for sal in (fast, steps):
        assert np.max(np.abs(sal - golden["vocadito_5s/salience"])) <= 5e-4


def test_a_bigru_kernel_run_that_gave_up_is_computed_again(weights: Path, golden: dict, monkeypatch) -> None:
    """GPUs: after its first run the split BiGRU kernel is no longer waited for; its abort flags
    are read by ``split_ok`` after the salience's read-back. One that gave up (its blocks could
    not meet) makes the model compute again, with one block per direction from then on."""
    from dataclasses import replace

    from rvc_f0 import _gru_cuda
    from rvc_f0._rmvpe import _load

    monkeypatch.setattr(_gru_cuda, "_split_failed", False)
    monkeypatch.setattr(_gru_cuda, "_failed", _gru_cuda._failed)
    monkeypatch.setattr(_gru_cuda, "_pending", [mx.array([0], dtype=mx.int32)])
    assert _gru_cuda.split_ok() and _gru_cuda._pending == [] and not _gru_cuda._split_failed
    _gru_cuda._pending.extend([mx.array([0], dtype=mx.int32), mx.array([1], dtype=mx.int32)])
    assert not _gru_cuda.split_ok() and _gru_cuda._pending == [] and _gru_cuda._split_failed

    audio = golden["vocadito_5s/audio"][:16000]
    m = _load(weights)
    m.backend = replace(m.set_backend("compiled").backend, mel="mlx")  # every part in MLX
    want, want_f0 = m.salience(audio), m(audio)
    m.backend = replace(m.backend, gru="cuda")  # (no CUDA here: MLX steps the GRU)
    answers = [False, True]  # the first run "gave up", the second met
    checks = []

    def split_ok() -> bool:
        checks.append(1)
        return answers[len(checks) - 1]

    monkeypatch.setattr(_gru_cuda, "split_ok", split_ok)
    np.testing.assert_array_equal(m.salience(audio), want)
    assert len(checks) == 2
    answers[:] = [False, True, True]
    checks.clear()
    f0 = m.start(audio, on_device=mx.array(np.asarray(audio, np.float32)))()
    assert len(checks) == 2  # start's check, then salience's
    np.testing.assert_array_equal(f0, want_f0)
