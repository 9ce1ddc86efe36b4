"""VoiceConverter: options, loading checks, conversion of real clips with random-weight
extractors, files, chunking, errors."""

from __future__ import annotations

import dataclasses
import json

import huggingface_hub.constants
import numpy as np
import pytest

import rvc_synth
from rvc_audio import load_audio
from rvc_convert import ConvertOptions, RVCConvertError, VoiceConverter
from rvc_convert.errors import (
    ConvertInputError,
    ModelMismatchError,
    OutputExistsError,
    WeightsNotFoundError,
)
from rvc_convert.options import F0_METHODS, PRESETS
from rvc_convert.stub import StubEmbedder
from rvc_features.errors import WeightsFormatError as FeaturesWeightsFormatError


@pytest.fixture(scope="module")
def ckpt(ref_dir):
    return lambda name: ref_dir / "checkpoints" / f"{name}.pth"


@pytest.fixture(scope="module")
def rmvpe(extractors_dir):
    return extractors_dir / "rmvpe_random.safetensors"


@pytest.fixture(scope="module")
def v1(ckpt, tiny_contentvec_v1, rmvpe):
    return VoiceConverter(ckpt("v1_f0_32k"), contentvec=tiny_contentvec_v1, rmvpe=rmvpe)


@pytest.fixture(scope="module")
def clip(fixtures_dir):
    return load_audio(fixtures_dir / "audio" / "arctic_a0007.wav", sample_rate=16000)


def test_defaults_are_rvc_webui_single_conversion():
    import rvc_f0

    assert dataclasses.asdict(ConvertOptions()) == {
        "pitch": 0.0,
        "f0_method": "rmvpe",
        "f0_curve": None,
        "index_rate": 0.75,
        "filter_radius": 3,
        "rms_mix_rate": 0.25,
        "protect": 0.33,
        "resample_sr": 0,
        "speaker": 0,
        "seed": None,
        "preset": "cpu",
        # Applio's options, all off (tests in test_applio_options.py)
        "f0_autotune": False,
        "f0_autotune_strength": 1.0,
        "proposed_pitch": False,
        "proposed_pitch_threshold": 155.0,
        "formant_shifting": False,
        "formant_quefrency": 1.0,
        "formant_timbre": 1.0,
        "split_audio": False,
        "clean_audio": False,
        "clean_strength": 0.5,
        "effects": (),
    }
    assert F0_METHODS == rvc_f0.METHODS
    assert PRESETS == {"cpu": (1, 6, 38, 41), "lowmem": (1, 5, 30, 32), "fp16": (3, 10, 60, 65)}


@pytest.mark.parametrize(
    "bad",
    [
        {"pitch": float("nan")},
        {"f0_method": "yin"},
        {"index_rate": 1.5},
        {"rms_mix_rate": -0.1},
        {"protect": 2},
        {"filter_radius": -1},
        {"resample_sr": 8000},
        {"speaker": -1},
        {"seed": 1.5},
        {"preset": "gpu"},
        {"speaker": True},
        {"pitch": 1000},
        {"pitch": -48.5},
        {"pitch": float("inf")},
        {"pitch": float("-inf")},
        {"index_rate": float("nan")},
        {"protect": float("nan")},
        {"rms_mix_rate": float("inf")},
    ],
)
def test_option_validation(bad):
    with pytest.raises(ConvertInputError, match=next(iter(bad))):
        ConvertOptions(**bad)
    with pytest.raises(ConvertInputError, match="unknown option"):
        ConvertOptions().replace(pitchh=2)


def test_pitch_range_is_four_octaves_both_ways():
    """+-48 semitones is accepted (F0 x16 or /16) and the post-processing stays finite and warning-free."""
    import warnings

    from rvc_convert.options import PITCH_RANGE
    from rvc_f0 import postprocess_f0

    assert PITCH_RANGE == 48
    f0 = np.array([0.0, 50.0, 220.0, 1100.0], np.float32)
    for p in (-48, -48.0, 48, 47.5):
        assert ConvertOptions(pitch=p).pitch == p
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            pitchf, coarse = postprocess_f0(f0, semitones=p, unvoiced="keep")
        np.testing.assert_allclose(pitchf, f0 * 2 ** (p / 12), rtol=1e-6)
        assert coarse.min() >= 1 and coarse.max() <= 255
    with pytest.raises(ConvertInputError, match=r"pitch=1000.0 semitones; expected -48..48"):
        ConvertOptions(pitch=1000)


def test_convert_real_clip_v1(v1, fixtures_dir):
    info = v1.info
    assert (info.version, info.has_f0, info.sample_rate) == ("v1", True, 32000)
    native = load_audio(fixtures_dir / "audio" / "arctic_a0007.wav", sample_rate=44100)[: 44100 * 2]
    steps = []
    out, sr = v1.convert(native, sample_rate=44100, seed=3, progress=lambda d, t: steps.append((d, t)))
    assert sr == 32000 and out.dtype == np.int16 and steps == [(0, 1), (1, 1)]
    assert abs(len(out) / sr - len(native) / 44100) < 0.03
    assert 0.3 * 32768 < np.abs(out.astype(np.int32)).max() <= 0.99 * 32768 + 1
    again, _ = v1.convert(native, sample_rate=44100, seed=3)
    other, _ = v1.convert(native, sample_rate=44100, seed=4)
    assert (again == out).all() and not (other == out).all()
    res, sr2 = v1.convert(native, sample_rate=44100, seed=3, pitch=12, f0_method="pm", resample_sr=48000)
    assert sr2 == 48000 and abs(len(res) / 48000 - len(native) / 44100) < 0.03


def test_index_blending_and_dimension_check(ckpt, ref_dir, tiny_contentvec_v1, rmvpe, clip):
    index = ref_dir / "pipeline" / "index_v1_IVF.index"  # 256-d (v1)
    vc = VoiceConverter(
        ckpt("v1_f0_32k"),
        index=index,
        contentvec=tiny_contentvec_v1,
        rmvpe=rmvpe,
        options=ConvertOptions(f0_method="pm", seed=0),
    )
    with_index, _ = vc.convert(clip, sample_rate=16000)
    without, _ = vc.convert(clip, sample_rate=16000, index_rate=0.0)
    assert not (with_index == without).all()
    with pytest.raises(ModelMismatchError, match=r"256-d features \(v1\).*v2 with 768-d"):
        VoiceConverter(ckpt("v2_f0_32k"), index=index, embedder=StubEmbedder())


def test_contentvec_must_fit_the_model(ckpt, extractors_dir, tiny_contentvec_v1, tmp_path):
    from safetensors.numpy import load_file, save_file

    with pytest.raises(ModelMismatchError, match="64-d features for v2 models, but this model takes 768-d"):
        VoiceConverter(ckpt("v2_nof0_32k"), contentvec=tiny_contentvec_v1)
    nofp = {k: v for k, v in load_file(str(tiny_contentvec_v1)).items() if not k.startswith("final_proj")}
    save_file(
        nofp,
        str(tmp_path / "nofp.safetensors"),
        metadata={"contentvec_kwargs": (extractors_dir / "contentvec_tiny.json").read_text()},
    )
    with pytest.raises(FeaturesWeightsFormatError, match="rvc models import-hubert"):  # rvc-features' own
        VoiceConverter(ckpt("v1_nof0_32k"), contentvec=tmp_path / "nofp.safetensors")


def test_missing_weights_offline(ckpt, tiny_contentvec_v1, tmp_path, monkeypatch):
    from rvc_convert import weights
    from rvc_convert.errors import WeightsDownloadError

    def offline(spec):
        raise WeightsDownloadError(f"could not download {spec.repo}: huggingface.co is unreachable")

    monkeypatch.setattr(weights, "_download", offline)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.delenv("RVC_RMVPE_WEIGHTS", raising=False)
    monkeypatch.delenv("RVC_CONTENTVEC_WEIGHTS", raising=False)
    with pytest.raises(WeightsNotFoundError, match="rvc models download") as exc:
        VoiceConverter(ckpt("v1_f0_32k"), contentvec=tiny_contentvec_v1)
    assert "RVC_RMVPE_WEIGHTS" in str(exc.value) and isinstance(exc.value, FileNotFoundError)
    with pytest.raises(WeightsNotFoundError, match="RVC_CONTENTVEC_WEIGHTS"):
        VoiceConverter(ckpt("v1_nof0_32k"))
    # no RMVPE needed: another f0 method, or a model without pitch
    vc = VoiceConverter(ckpt("v1_f0_32k"), contentvec=tiny_contentvec_v1, options=ConvertOptions(f0_method="pm"))
    with pytest.raises(WeightsNotFoundError, match="rmvpe"):
        vc.convert(np.zeros(16000, np.float32), sample_rate=16000, f0_method="rmvpe")


def test_bad_audio_and_speaker(v1):
    for audio, match in (
        (np.zeros((100, 2), np.float32), "shape"),
        (np.zeros(100, np.int16), "dtype"),
        (np.full(16000, np.nan, np.float32), "NaN"),
        (np.zeros(100, np.float32), "at least"),
    ):
        with pytest.raises(ConvertInputError, match=match):
            v1.convert(audio, sample_rate=16000)
    with pytest.raises(ConvertInputError, match="sample_rate"):
        v1.convert(np.zeros(16000, np.float32), sample_rate=0)
    with pytest.raises(ModelMismatchError, match="speaker=7, but this model has 4"):
        v1.convert(np.zeros(16000, np.float32), sample_rate=16000, speaker=7)
    assert issubclass(ModelMismatchError, RVCConvertError)


def test_convert_file_atomic_and_no_clobber(v1, clip, tmp_path):
    from rvc_audio import save_audio

    src = save_audio(tmp_path / "in.wav", clip[:32000], 16000)
    dst = tmp_path / "out.flac"
    got = v1.convert_file(src, dst, seed=1)
    assert got == dst and dst.stat().st_size > 1000
    audio = load_audio(dst, sample_rate=32000)
    assert abs(len(audio) / 32000 - 2) < 0.03
    before = dst.read_bytes()
    with pytest.raises(OutputExistsError, match="overwrite"):
        v1.convert_file(src, dst, seed=2)
    assert dst.read_bytes() == before
    v1.convert_file(src, dst, seed=2, overwrite=True, format="wav", f0_method="pm")
    assert dst.read_bytes()[:4] == b"RIFF"
    with pytest.raises(ConvertInputError):
        v1.convert_file(src, tmp_path / "x.wav", pitch="high")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.flac"]


def test_long_input_is_chunked_like_the_pipeline(ckpt):
    """33 s with the lowmem preset: two chunks, progress per chunk, seamless length."""
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 33) / 16000
    audio = (
        0.3 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 0.5 * t) > -0.5) + 0.01 * rng.standard_normal(len(t))
    ).astype(np.float32)
    synth = rvc_synth.load(ckpt("v2_f0_32k"))
    vc = VoiceConverter(synth, embedder=StubEmbedder(), options=ConvertOptions(f0_method="pm", preset="lowmem", seed=5))
    steps = []
    out, sr = vc.convert(audio, sample_rate=16000, progress=lambda d, n: steps.append((d, n)))
    assert steps == [(0, 2), (1, 2), (2, 2)]
    assert abs(len(out) / sr - 33) < 0.03


def test_f0_curve_goes_after_the_padding(ckpt, tmp_path):
    curve = tmp_path / "curve.csv"
    curve.write_text("time_seconds,hz\n0,220\n2,220\n")
    vc = VoiceConverter(ckpt("v2_f0_32k"), embedder=StubEmbedder(), options=ConvertOptions(f0_method="pm"))
    opts = vc.options.replace(f0_curve=str(curve))
    f0 = vc._f0_fn(opts)(np.zeros(16000 * 4, np.float64), 400)
    assert f0.shape == (400,) and (f0[:100] == 0).all() and (f0[100:301] == 220).all() and (f0[301:] == 0).all()
    x = (np.random.default_rng(2).standard_normal(16000 * 2) * 0.1).astype(np.float32)
    a, _ = vc.convert(x, sample_rate=16000, f0_curve=str(curve), seed=0)
    b, _ = vc.convert(x, sample_rate=16000, f0_curve=str(curve), seed=0, pitch=12)
    assert a.shape == b.shape and not (a == b).all()


def test_no_f0_model_and_custom_embedder(ckpt):
    calls = []

    def embed(x):
        calls.append(len(x))
        return StubEmbedder()(x)

    vc = VoiceConverter(ckpt("v2_nof0_40k"), embedder=embed)
    assert not vc.info.has_f0
    out, sr = vc.convert(
        np.random.default_rng(1).standard_normal(24000).astype(np.float32) * 0.1, sample_rate=16000, seed=0
    )
    assert sr == 40000 and calls == [24000 + 32000] and abs(len(out) / sr - 1.5) < 0.03
    from rvc_features.errors import WeightsNotFoundError as FeaturesNotFound

    with pytest.raises(FeaturesNotFound, match="'hubert' is neither a known name"):  # a name or a folder
        VoiceConverter(ckpt("v2_nof0_40k"), embedder="hubert")
    with pytest.raises(ModelMismatchError, match=r"shape \(\d+, 768\).*256"):
        VoiceConverter(ckpt("v1_nof0_40k"), embedder=embed).convert(np.zeros(16000, np.float32), sample_rate=16000)


def test_contentvec_json_kwargs_are_what_the_fixture_says(extractors_dir):
    kw = json.loads((extractors_dir / "contentvec_tiny.json").read_text())
    assert kw["encoder_layers_1"] == 0


def test_half_precision_synthesizer(ckpt):
    """``dtype=`` loads the synthesizer in half precision; its conversion stays close to float32
    (the synthesizer's own half-precision parity, against the goldens, is rvc-synth's test)."""
    x = (np.sin(2 * np.pi * 180 * np.arange(16000) / 16000) * 0.3).astype(np.float32)
    ref, _ = VoiceConverter(ckpt("v2_nof0_40k"), embedder=StubEmbedder()).convert(x, sample_rate=16000, seed=0)
    vc = VoiceConverter(ckpt("v2_nof0_40k"), embedder=StubEmbedder(), dtype="bfloat16")
    assert str(vc.synth.dtype) == "mlx.core.bfloat16"
    out, _ = vc.convert(x, sample_rate=16000, seed=0)
    err = out.astype(np.float64) - ref
    snr = 10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum(err**2))
    assert out.shape == ref.shape and snr > 30, snr  # 37 dB measured; rvc-synth's bfloat16 bound is 30
    with pytest.raises(ConvertInputError, match="dtype='half'; expected one of float32, float16, bfloat16"):
        VoiceConverter(ckpt("v2_nof0_40k"), embedder=StubEmbedder(), dtype="half")


# --- f0 network weights and embedders: resolved before anything loads ----------------------------


@pytest.fixture
def load_spy(monkeypatch):
    """Records every model load (synthesizer, ContentVec, embedder, RMVPE) instead of doing it."""
    import rvc_f0
    import rvc_features

    loaded = []

    def spy(what):
        def load(*args, **kwargs):
            loaded.append(what)
            raise AssertionError(f"{what} was loaded")

        return load

    monkeypatch.setattr(rvc_synth, "load", spy("synthesizer"))
    monkeypatch.setattr(rvc_features, "load_contentvec", spy("contentvec"))
    monkeypatch.setattr(rvc_features, "load_embedder", spy("embedder"))
    monkeypatch.setattr(rvc_f0, "load_rmvpe", spy("rmvpe"))
    return loaded


@pytest.mark.parametrize("method", ["crepe", "crepe-tiny", "fcpe", "hybrid[rmvpe+fcpe]", "hybrid[crepe+rmvpe]"])
def test_missing_f0_weights_fail_before_any_load(ckpt, tmp_path, monkeypatch, load_spy, method):
    """Issue 21 item 6: the advice names real commands/options, and nothing loads first."""
    from rvc_f0.errors import WeightsNotFoundError as F0WeightsNotFoundError
    from rvc_f0.weights import WEIGHTS

    net = next(m for m in WEIGHTS if m in method.replace("hybrid[", "").replace("]", "").split("+"))
    spec = WEIGHTS[net]
    monkeypatch.setenv(spec.env, str(tmp_path / "nope.pth"))
    with pytest.raises(F0WeightsNotFoundError) as exc:
        VoiceConverter(ckpt("v2_f0_40k"), options=ConvertOptions(f0_method=method))
    msg = str(exc.value)
    assert f"(from ${spec.env}) does not exist" in msg and f"`rvc models download {net}`" in msg
    monkeypatch.delenv(spec.env)
    with pytest.raises(F0WeightsNotFoundError, match=r"nope2\.pth \(from weights=\) does not exist") as exc:
        VoiceConverter(
            ckpt("v2_f0_40k"), options=ConvertOptions(f0_method=method), f0_weights={net: tmp_path / "nope2.pth"}
        )
    assert load_spy == []


def test_f0_weights_not_found_anywhere_names_the_ways_out(ckpt, tmp_path, monkeypatch, load_spy):
    import importlib.util

    from rvc_f0.errors import WeightsNotFoundError as F0WeightsNotFoundError

    if importlib.util.find_spec("torchfcpe") is not None:
        pytest.skip("an installed torchfcpe ships the FCPE weights")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("RVC_FCPE_WEIGHTS", raising=False)
    with pytest.raises(F0WeightsNotFoundError) as exc:
        VoiceConverter(ckpt("v2_f0_40k"), options=ConvertOptions(f0_method="fcpe"))
    msg = str(exc.value)
    for part in ("`rvc models download fcpe`", "(--f0-weights)", "RVC_FCPE_WEIGHTS=/path/to/fcpe_c_v001.pt"):
        assert part in msg, (part, msg)
    assert "\n" not in msg and load_spy == []


def test_f0_curve_needs_no_f0_weights(ckpt, tmp_path, monkeypatch, load_spy):
    monkeypatch.setenv("RVC_CREPE_WEIGHTS", str(tmp_path / "nope.pth"))
    curve = tmp_path / "f0.csv"
    curve.write_text("0,100\n")
    with pytest.raises(AssertionError, match="synthesizer was loaded"):  # got past the f0 weights
        VoiceConverter(ckpt("v2_f0_40k"), options=ConvertOptions(f0_method="crepe", f0_curve=str(curve)))


def test_embedder_by_path_and_name(ckpt, fixtures_dir, tmp_path, monkeypatch, rmvpe):
    from rvc_features.errors import WeightsNotFoundError as FeaturesNotFound

    emb = fixtures_dir / "embedders" / "bin_legacy"
    if not emb.is_dir():
        pytest.skip("embedder fixtures missing")
    # the fixture embedder is 96-d (final_proj 32-d): a 768-d v2 / 256-d v1 model refuses it, naming both widths
    with pytest.raises(
        ModelMismatchError,
        match=r"embedder .*bin_legacy gives 96-d features for v2 models, but "
        r"this model takes 768-d ones",
    ):
        VoiceConverter(ckpt("v2_f0_40k"), embedder=emb, rmvpe=rmvpe)
    with pytest.raises(ModelMismatchError, match=r"gives 32-d features for v1 models, but this model takes 256-d"):
        VoiceConverter(ckpt("v1_f0_32k"), embedder=str(emb), rmvpe=rmvpe)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FeaturesNotFound, match=r"`rvc models download --embedder korean-hubert-base`"):
        VoiceConverter(ckpt("v2_f0_40k"), embedder="korean-hubert-base", rmvpe=rmvpe)
    with pytest.raises(ConvertInputError, match="embedder must be a name"):
        VoiceConverter(ckpt("v2_f0_40k"), embedder=3, rmvpe=rmvpe)


def test_embedder_features_reach_the_pipeline(ckpt, fixtures_dir, rmvpe, clip, monkeypatch):
    """A HuBERT folder's features are what the synthesizer gets (v2: its last layer)."""
    import rvc_features

    emb_dir = fixtures_dir / "embedders" / "safetensors"
    if not emb_dir.is_dir():
        pytest.skip("embedder fixtures missing")
    emb = rvc_features.load_embedder(emb_dir)
    seen = []

    class Wide:  # the fixture is 96-d; widen it to the model's 768 by repetition to run the pipeline
        def __init__(self, inner):
            self.inner, self.dim, self.final_proj = inner, 768, None

        def embedder(self, version):
            def run(audio):
                f = self.inner(audio, version="v2")
                # the expected features in the pipeline's BLAS setting (one thread on GPUs and
                # with oneDNN): a BLAS's thread count changes its float32 rounding
                seen.append((f, emb.hidden(audio)))
                return np.tile(f, (1, 8))

            return run

    monkeypatch.setattr(rvc_features, "load_embedder", lambda name_or_path, **kw: Wide(emb))
    vc = VoiceConverter(ckpt("v2_f0_40k"), embedder="spin", rmvpe=rmvpe)
    out, sr = vc.convert(clip[:32000], sample_rate=16000, seed=0)
    assert sr == 40000 and len(out) > 0 and seen
    feats, hidden = seen[0]
    assert np.array_equal(feats, hidden)
