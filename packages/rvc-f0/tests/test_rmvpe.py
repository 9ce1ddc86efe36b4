"""RMVPE through mlx-rmvpe against the PyTorch reference goldens (extractors/rmvpe_golden.npz),
the decoder correction, strict loading and weight resolution. Weights: the seeded random narrow
network in mlx-rmvpe's layout (extractors/rmvpe_random.safetensors)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rvc_f0 import extract_f0, load_rmvpe, postprocess_f0
from rvc_f0._rmvpe import ENV_WEIGHTS, _load, decode
from rvc_f0.errors import RVCF0Error, WeightsFormatError, WeightsNotFoundError

INPUTS = ("synth_1s", "vocadito_5s")


@pytest.fixture(scope="module")
def model(weights):
    return load_rmvpe(weights)


def cents_off(f0: np.ndarray, ref: np.ndarray) -> np.ndarray:
    both = (f0 > 0) & (ref > 0)
    return np.abs(1200 * np.log2(f0[both] / ref[both]))


@pytest.mark.parametrize("name", INPUTS)
def test_golden(model, golden, name):
    audio = golden[f"{name}/audio"]
    mel = model.mel(audio)
    assert mel.shape == golden[f"{name}/mel"].shape
    assert np.max(np.abs(mel - golden[f"{name}/mel"])) <= 2e-3
    sal = model.salience(audio)
    assert sal.shape == golden[f"{name}/salience"].shape
    assert np.max(np.abs(sal - golden[f"{name}/salience"])) <= 5e-4
    f0 = decode(sal, threshold=0.03)
    ref = golden[f"{name}/f0"]
    np.testing.assert_array_equal(f0 > 0, ref > 0)
    assert 0.3 < np.mean(ref > 0) < 0.7  # both voiced and unvoiced frames are compared
    assert np.max(cents_off(f0, ref)) <= 1.0
    # the public path: reference frame count N // 160 (the network's extra last frame is cut)
    out = extract_f0(audio, method="rmvpe", weights=model.path)
    assert out.dtype == np.float32 and out.shape == (len(audio) // 160,)
    np.testing.assert_array_equal(out, f0[: len(audio) // 160])


def test_uncorrected_package_fails_the_goldens(weights, golden, model):
    """mlx-rmvpe as published (no output_padding) is far off: the correction is what passes."""
    assert model.corrected
    raw = _load(weights, correct=False)
    assert not raw.corrected
    audio = golden["synth_1s/audio"]
    sal = raw.salience(audio)
    assert np.max(np.abs(sal - golden["synth_1s/salience"])) > 0.05
    f0 = decode(sal, threshold=0.03)
    ref = golden["synth_1s/f0"]
    assert np.mean((f0 > 0) != (ref > 0)) > 0.02 or np.max(cents_off(f0, ref)) > 1.0


def test_correction_stands_aside_when_upstream_is_fixed(weights):
    import mlx.core as mx
    import mlx.nn as nn

    from rvc_f0._mlx_net import correct_decoder

    net = _load(weights, correct=False).net
    for layer in net.unet.decoder.layers:  # what a fixed upstream release would build
        ct = layer.conv_transpose
        fixed = nn.ConvTranspose2d(ct.weight.shape[-1], ct.weight.shape[0], 3, stride=2, padding=1, output_padding=1)
        fixed.weight, fixed.bias = ct.weight, ct.bias
        layer.conv_transpose = fixed
    before = [layer.conv_transpose for layer in net.unet.decoder.layers]
    assert correct_decoder(net) is False
    assert all(a is b.conv_transpose for a, b in zip(before, net.unet.decoder.layers))
    # and the fast replacement the correction installs equals MLX's own output_padding=1 layer
    ours = _load(weights).net.unet.decoder.layers[2].conv_transpose
    x = mx.random.normal((1, 5, 7, ours.weight.shape[-1]), key=mx.random.key(0))
    want = before[2](x)
    assert ours(x).shape == want.shape == (1, 10, 14, ours.weight.shape[0])
    assert mx.abs(ours(x) - want).max().item() < 1e-5


def test_up_sampling_matrices_kept_once(weights):
    """The corrected up-sampling layers' tap matrices are built once at load, not in every
    forward graph (GPUs: 20 copy kernels per layer and call), and follow a new weight."""
    import io
    import re

    import mlx.core as mx

    model = _load(weights)
    layers = [layer.conv_transpose for layer in model.net.unet.decoder.layers]
    x = mx.random.normal((1, 4, 6, layers[0].weight.shape[-1]), key=mx.random.key(1))
    for ct in layers:
        assert ct.matrix() is ct.matrix()  # the kept one
        np.testing.assert_array_equal(np.array(ct.matrix()), np.array(ct._matrix(ct.weight)))
    dot = io.StringIO()
    mx.export_to_dot(dot, layers[0](x))
    assert "Concatenate" in dot.getvalue()  # the input's four shifted views, once
    assert len(re.findall(r'label ="Concatenate', dot.getvalue())) == 1
    ct = layers[0]
    old = np.array(ct(x))
    ct.weight = ct.weight * 2  # replaced weights: the matrix follows them (built per call until kept)
    np.testing.assert_allclose(np.array(ct(x)), 2 * old, rtol=1e-5, atol=1e-6)
    assert ct.matrix() is not ct.matrix()


def test_fused_bigru_matches_upstream(model):
    import mlx.core as mx

    from rvc_f0._mlx_net import _bigru

    x = mx.random.normal((1, 37, 384), key=mx.random.key(1))
    assert mx.abs(_bigru(model.net.bigru, x) - model.net.bigru(x)).max().item() < 1e-5
    # the stacked weights are kept between calls, and made again when a weight is replaced
    gru = model.net.bigru.gru_backward
    was = gru.Wh
    try:
        gru.Wh = was * 0.5
        assert mx.abs(_bigru(model.net.bigru, x) - model.net.bigru(x)).max().item() < 1e-5
    finally:
        gru.Wh = was
    assert mx.abs(_bigru(model.net.bigru, x) - model.net.bigru(x)).max().item() < 1e-5


def _on_cuda() -> bool:
    import mlx.core as mx

    return mx.default_device() == mx.gpu and mx.cuda.is_available()


@pytest.mark.skipif(not _on_cuda(), reason="MLX CUDA backend only")
def test_bigru_cuda_kernels_match_mlx_steps():
    """Both CUDA recurrences (the split one, used by default, and one block per direction, its
    fallback) against the MLX step loop: a full-size BiGRU (384 -> 2 x 256), 1,000 steps (10 s
    of audio), non-trivial activations."""
    import mlx.core as mx
    from mlx_rmvpe.model import BiGRU

    from rvc_f0 import _gru_cuda
    from rvc_f0._mlx_net import _bigru

    mx.random.seed(3)
    gru = BiGRU(384, 256, 1)
    x = 2.0 * mx.random.normal((1, 1000, 384), key=mx.random.key(4))
    want = _bigru(gru, x)
    assert float(mx.abs(want).mean()) > 0.1
    got = _bigru(gru, x, cuda=True)
    assert not _gru_cuda._failed and not _gru_cuda._split_failed
    assert got.shape == (1, 1000, 512)
    assert mx.abs(got - want).max().item() < 1e-5
    assert _gru_cuda.split_ok()  # (the runs before)
    again = _bigru(gru, x, cuda=True)  # met once: queued, its abort flag read afterwards
    assert len(_gru_cuda._pending) == 1
    assert mx.abs(again - want).max().item() < 1e-5 and _gru_cuda.split_ok() and not _gru_cuda._pending
    _gru_cuda._split_failed = True
    try:
        assert mx.abs(_bigru(gru, x, cuda=True) - want).max().item() < 1e-5
    finally:
        _gru_cuda._split_failed = False


def test_bigru_kernel_failure_falls_back(caplog):
    """Where no kernel can be built (here: no CUDA), it says so once and returns None; the
    caller steps the GRU in MLX."""
    import mlx.core as mx

    from rvc_f0 import _gru_cuda

    if _on_cuda():
        pytest.skip("CUDA present: the kernels build")
    saved = _gru_cuda._failed
    try:
        z = mx.zeros((2, 4, 24))
        with caplog.at_level("WARNING", logger="rvc_f0"):
            assert _gru_cuda.gru_sequences(z, mx.zeros((2, 8, 24)), mx.zeros((2, 8))) is None
        assert _gru_cuda._failed and not _gru_cuda.available(z, 8)
        assert "stepping it in MLX" in caplog.text
    finally:
        _gru_cuda._failed = saved


def numpy_conv2d(weight: np.ndarray, bias: np.ndarray, padding: int):
    """A plain NumPy backend for ``RMVPEModel.conv2d`` (im2col + one product, float64)."""
    o, kh, kw, _ = weight.shape
    w = weight.reshape(o, -1).T.astype(np.float64)

    def run(x: np.ndarray, *, relu: bool = False, add: np.ndarray | None = None) -> np.ndarray:
        h, wd = x.shape[1] + 2 * padding - kh + 1, x.shape[2] + 2 * padding - kw + 1
        xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
        cols = np.concatenate([xp[:, a : a + h, d : d + wd] for a in range(kh) for d in range(kw)], axis=-1)
        y = cols @ w + bias
        y = np.maximum(y, 0) if relu else y
        return (y if add is None else y + add).astype(np.float32)

    return run


def test_cpu_unet_backend_meets_goldens(weights, golden):
    """The U-Net walked with a lent conv2d (BatchNorms folded, ReLU and residual fused: how
    rvc-convert runs it on oneDNN) meets the reference goldens and matches MLX's own forward."""
    import mlx.core as mx

    if mx.default_device() != mx.cpu:
        pytest.skip("the lent convolutions are for the CPU")
    m = _load(weights)  # uncached: the cached model stays as published
    audio = golden["vocadito_5s/audio"]
    plain = m.salience(audio)
    shapes = []
    m.conv2d = lambda w, b, p: shapes.append(w.shape) or numpy_conv2d(w, b, p)
    sal = m.salience(audio)
    assert len(shapes) > 20 and (16, 1, 1, 32) in shapes  # every conv block, shortcuts included
    assert sum(s[1:3] == (2, 2) for s in shapes) == 5  # and the decoder's up-sampling (4 parities)
    assert np.max(np.abs(sal - golden["vocadito_5s/salience"])) <= 5e-4
    assert np.max(np.abs(sal - plain)) <= 1e-5
    n = len(shapes)
    m.salience(audio)
    assert len(shapes) == n  # the U-Net is built once per backend


def test_float32_eval_and_cached(model, weights):
    import mlx.core as mx
    from mlx.utils import tree_flatten

    assert all(v.dtype == mx.float32 for _, v in tree_flatten(model.net.parameters()))
    assert model.net.training is False
    assert load_rmvpe(weights) is model
    assert load_rmvpe(str(weights)) is model


def test_frame_count_and_silence(model):
    silence = np.zeros(16000, np.float32)
    f0 = extract_f0(silence, method="rmvpe", weights=model.path, p_len=105)
    assert f0.shape == (105,) and np.all(np.isfinite(f0)) and np.all(f0[101:] == 0)
    pitchf, coarse = postprocess_f0(f0)
    assert np.all(np.isfinite(pitchf)) and coarse.min() >= 1


@pytest.fixture(scope="module")
def tensors(weights):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    with safe_open(str(weights), "numpy") as f:
        meta = f.metadata()
    return load_file(str(weights)), meta


def test_strict_loading_missing_tensor(tensors, tmp_path):
    from safetensors.numpy import save_file

    arrays, meta = tensors
    arrays = dict(arrays)
    gone = "model.unet.decoder.layers.4.conv_blocks.3.bn2.running_var"
    del arrays[gone]
    p = tmp_path / "missing.safetensors"
    save_file(arrays, str(p), metadata=meta)
    with pytest.raises(WeightsFormatError, match="missing: " + gone.replace(".", r"\.")) as exc:
        load_rmvpe(p)
    assert isinstance(exc.value, ValueError) and str(p) in str(exc.value)


def test_strict_loading_extra_and_misshaped(tensors, tmp_path):
    from safetensors.numpy import save_file

    arrays, meta = tensors
    arrays = dict(arrays)
    arrays["model.unet.extra"] = np.zeros(3, np.float16)
    arrays["model.linear.bias"] = np.zeros(359, np.float16)
    p = tmp_path / "extra.safetensors"
    save_file(arrays, str(p), metadata=meta)
    with pytest.raises(WeightsFormatError) as exc:
        load_rmvpe(p)
    assert "unexpected: model.unet.extra" in str(exc.value)
    assert "model.linear.bias (359,) (expected (360,))" in str(exc.value)


def test_not_safetensors(tmp_path):
    p = tmp_path / "rmvpe.pt"
    p.write_bytes(b"PK\x03\x04 not a safetensors file")
    with pytest.raises(WeightsFormatError, match="not a readable safetensors file"):
        load_rmvpe(p)


def test_bad_metadata(tensors, tmp_path):
    from safetensors.numpy import save_file

    arrays, _ = tensors
    p = tmp_path / "meta.safetensors"
    save_file(dict(arrays), str(p), metadata={"e2e_kwargs": json.dumps({"n_blocks": 4, "widths": 3})})
    with pytest.raises(WeightsFormatError, match="e2e_kwargs"):
        load_rmvpe(p)


def test_weights_path_and_env(weights, model, monkeypatch, tmp_path):
    with pytest.raises(WeightsNotFoundError, match="weights=") as exc:
        load_rmvpe(tmp_path / "nope.safetensors")
    assert isinstance(exc.value, FileNotFoundError)
    monkeypatch.setenv(ENV_WEIGHTS, str(weights))
    assert load_rmvpe() is model
    monkeypatch.setenv(ENV_WEIGHTS, str(tmp_path / "gone.safetensors"))
    with pytest.raises(WeightsNotFoundError, match=ENV_WEIGHTS):
        extract_f0(np.zeros(1600, np.float32), method="rmvpe")


def test_offline_without_cache_names_both_ways_out(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != ENV_WEIGHTS and not k.startswith("HF_")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    code = (
        "import rvc_f0\n"
        "from rvc_f0.errors import WeightsNotFoundError\n"
        "try:\n    rvc_f0.load_rmvpe()\n"
        "except WeightsNotFoundError as e:\n    print(isinstance(e, FileNotFoundError)); print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    first, message = out.stdout.split("\n", 1)
    assert first == "True"
    for needle in ("rvc models download", "weights=", ENV_WEIGHTS, "lexandstuff/mlx-rmvpe", "rmvpe.safetensors"):
        assert needle in message


def test_hub_names_are_mlx_rmvpes_own():
    import mlx_rmvpe

    from rvc_f0._rmvpe import HF_FILENAME, HF_REPO_ID

    assert (HF_REPO_ID, HF_FILENAME) == (mlx_rmvpe.HF_REPO_ID, mlx_rmvpe.HF_WEIGHTS_FILE)


def test_blockwise_mel_equals_one_pass(model):
    """The long-input mel (computed block by block, reflect padding by index) is bit-identical."""
    from rvc_f0._rmvpe import HOP, N_FFT, _mel_basis, _window, log_mel

    rng = np.random.default_rng(3)
    for n in (1, 2, 300, 512, 513, 4000, 50000):
        audio = rng.standard_normal(n).astype(np.float32)
        x = np.pad(audio.astype(np.float64), N_FFT // 2, mode="reflect")
        frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]
        mag = np.abs(np.fft.rfft(frames * _window(), axis=1))
        ref = np.log(np.maximum(_mel_basis().astype(np.float64) @ mag.T, 1e-5)).astype(np.float32)
        np.testing.assert_array_equal(log_mel(audio, block=37), ref)
        if n > 4000:
            np.testing.assert_array_equal(log_mel(audio, frames=(7, 90)), ref[:, 7:90])


def test_long_input_windows(weights, golden):
    """Inputs above max_frames run in windows with context; on the 5 s golden clip cut into
    128-frame windows with 64 frames of context the result stays at the one-pass goldens."""
    m = _load(weights)
    m.max_frames, m.window, m.context = 200, 128, 64
    audio = golden["vocadito_5s/audio"]
    sal = m.salience(audio)
    ref = golden["vocadito_5s/salience"]
    assert sal.shape == ref.shape
    err = np.abs(sal - ref).max()
    f0, f0_ref = decode(sal, threshold=0.03), golden["vocadito_5s/f0"]
    np.testing.assert_array_equal(f0 > 0, f0_ref > 0)
    assert np.max(cents_off(f0, f0_ref)) <= 1.0
    assert err <= 5e-4, err
    m.window = 100
    with pytest.raises(RVCF0Error, match="multiples of 32"):
        m.salience(audio)
