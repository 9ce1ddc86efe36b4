"""Applio's options through VoiceConverter: validation, the f0 adjustments against hand-computed
numbers, and formant / clean / effects / split compared with direct calls of their libraries on
the same signal (our wiring adds nothing). All off: the reference path, unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from rvc_audio import effects as fx
from rvc_audio import load_audio
from rvc_convert import ConvertOptions, VoiceConverter
from rvc_convert._applio import _guard, adjust_f0
from rvc_convert.errors import ConvertInputError
from rvc_convert.pipeline import DEFAULT_NOISE_SCALE, run_pipeline, to_int16
from rvc_convert.stub import StubEmbedder
from rvc_f0 import postprocess_f0


@pytest.fixture(scope="module")
def vc(ref_dir):
    return VoiceConverter(
        ref_dir / "checkpoints" / "v2_f0_32k.pth",
        embedder=StubEmbedder(),
        options=ConvertOptions(f0_method="pm", seed=1),
    )


@pytest.fixture(scope="module")
def clip(fixtures_dir):
    """2 s of read speech with 0.5 s of digital silence in the middle (16 kHz)."""
    x = load_audio(fixtures_dir / "audio" / "arctic_a0007.wav", sample_rate=16000)[8000:40000].copy()
    x[14000:22000] = 0
    return x


def _float_out(vc, x, opts):
    y, sr = run_pipeline(
        x,
        synth=vc.synth,
        embedder=vc.embedder,
        f0_fn=vc._f0_fn(opts),
        index=None,
        options=opts,
        noise_scale=DEFAULT_NOISE_SCALE,
        float_output=True,
    )
    return _guard(y), sr


# -- options -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"f0_method": "hybrid[rmvpe+yin]"}, "'yin' is not an f0 method"),
        ({"f0_method": "hybrid[rmvpe]"}, "fewer than two"),
        ({"f0_autotune": 1}, "f0_autotune=1; expected True or False"),
        ({"f0_autotune_strength": 1.5}, r"f0_autotune_strength=1.5; expected a number in \[0, 1\]"),
        ({"proposed_pitch_threshold": 20}, "proposed_pitch_threshold"),
        ({"formant_timbre": 0}, r"formant_timbre=0.0; expected a number in \(0, 16\]"),
        ({"formant_quefrency": 40}, "formant_quefrency"),
        ({"clean_strength": -0.1}, "clean_strength"),
        ({"effects": {"reverb": {"room_size": 3}}}, r"effects: reverb room_size=3; expected a number in \[0, 1\]"),
        ({"effects": {"flanger": {}}}, "unknown effect 'flanger'"),
        ({"effects": (fx.Gain(), fx.Gain(gain_db=2))}, "given twice"),
        ({"effects": fx.Gain()}, "expected a tuple"),
    ],
)
def test_option_validation(bad, match):
    with pytest.raises(ConvertInputError, match=match):
        ConvertOptions(**bad)


def test_options_defaults_off_and_effects_forms():
    o = ConvertOptions()
    assert not o.applio and o.effects == ()
    assert (
        o.f0_autotune_strength,
        o.proposed_pitch_threshold,
        o.formant_quefrency,
        o.formant_timbre,
        o.clean_strength,
    ) == (1.0, 155.0, 1.0, 1.0, 0.5)
    a = ConvertOptions(effects={"delay": {"mix": 0.2}, "reverb": True, "gain": None})
    assert a.effects == (fx.Reverb(), fx.Delay(mix=0.2)) and a.applio
    assert ConvertOptions(effects=[fx.Delay(mix=0.2), fx.Reverb()]).effects == a.effects
    assert ConvertOptions(f0_method="hybrid[rmvpe+crepe]").f0_method == "hybrid[rmvpe+crepe]"
    hash(a)  # still a frozen, hashable value


# -- f0 adjustments (hand-computed) ----------------------------------------------------------------


def test_adjust_f0_off_is_the_reference():
    raw = np.array([0, 0, 100, 0, 200, 0], np.float32)
    for pitch in (0, 3.5, -12):
        want = postprocess_f0(raw, semitones=pitch)
        got = adjust_f0(raw, ConvertOptions(pitch=pitch))
        assert all((g == w).all() for g, w in zip(got, want))


def test_autotune_after_the_transposition_unvoiced_stay_unvoiced():
    raw = np.array([0, 222.5, 0, 0, 226.6, 0], np.float32)  # +12 semitones -> 445 and 453.2 Hz
    pitchf, _ = adjust_f0(raw, ConvertOptions(pitch=12, f0_autotune=True))
    # 445 -> A4 440, 453.2 -> A#4 466.16 (midpoint 453.08); the unvoiced frames are not pulled to 49 Hz
    # but interpolated between the snapped notes, as the reference interpolates unvoiced frames
    step = (466.16 - 440) / 3
    np.testing.assert_allclose(pitchf, [440, 440, 440 + step, 440 + 2 * step, 466.16, 466.16], rtol=1e-6)
    half, _ = adjust_f0(raw, ConvertOptions(pitch=12, f0_autotune=True, f0_autotune_strength=0.5))
    assert half[1] == pytest.approx(442.5, abs=1e-3)  # 445 + (440 - 445) / 2


def test_proposed_pitch_adds_to_the_transposition():
    raw = np.zeros(400, np.float32)
    raw[100:300] = 110.0  # median (interpolated, edges held) 110 Hz -> +6 to reach 155
    pitchf, _ = adjust_f0(raw, ConvertOptions(proposed_pitch=True))
    np.testing.assert_allclose(pitchf, 110 * 2 ** (6 / 12), rtol=1e-6)
    pitchf, _ = adjust_f0(raw, ConvertOptions(proposed_pitch=True, pitch=-2, proposed_pitch_threshold=255))
    np.testing.assert_allclose(pitchf, 110 * 2 ** ((12 - 2) / 12), rtol=1e-6)  # 12 log2(255/110) = 14.6 -> +12
    both, _ = adjust_f0(raw, ConvertOptions(proposed_pitch=True, f0_autotune=True))
    np.testing.assert_allclose(both, 155.56, rtol=1e-6)  # 155.56 Hz = D#3, the nearest note to 110 * 2^0.5


# -- audio options: the libraries' own output -------------------------------------------------------


def test_formant_shift_is_stftpitchshift_on_the_input(vc, clip):
    a, sr = vc.convert(clip, sample_rate=16000, formant_shifting=True, formant_timbre=1.2)
    b, _ = vc.convert(fx.shift_formants(clip, quefrency=1.0, timbre=1.2), sample_rate=16000)
    assert sr == 32000 and (a == b).all()
    assert not (a == vc.convert(clip, sample_rate=16000)[0]).all()


def test_clean_and_effects_are_the_libraries_on_the_output(vc, clip):
    opts = vc.options
    y, sr = _float_out(vc, clip, opts)
    chain = (fx.Chorus(), fx.Reverb(room_size=0.8), fx.Compressor(threshold_db=-20, ratio=4))
    got, sr2 = vc.convert(clip, sample_rate=16000, clean_audio=True, clean_strength=0.7, effects=chain)
    want = to_int16(fx.apply_effects(fx.reduce_noise(y, sr, strength=0.7), sr, chain))
    assert sr2 == sr and (got == want).all()
    import noisereduce
    import pedalboard

    direct = pedalboard.Pedalboard(
        [pedalboard.Reverb(room_size=0.8), pedalboard.Chorus(), pedalboard.Compressor(threshold_db=-20, ratio=4)]
    )
    lib = direct(noisereduce.reduce_noise(y=y, sr=sr, prop_decrease=0.7).astype(np.float32), sr).reshape(-1)
    assert (got == to_int16(lib)).all()


def test_split_audio_joins_on_the_input_timeline(vc, clip):
    spans = fx.split_on_silence(clip)
    assert len(spans) == 2 and spans[0][0] == 0 and spans[1][1] == len(clip)
    steps = []
    out, sr = vc.convert(clip, sample_rate=16000, split_audio=True, progress=lambda d, n: steps.append((d, n)))
    assert steps == [(0, 2), (1, 2), (2, 2)]
    assert len(out) == len(clip) * 2  # the input's duration (Applio drops trailing silence; we do not)
    whole, _ = vc.convert(clip, sample_rate=16000)
    assert len(whole) < len(out)
    (a0, b0), (a1, b1) = spans
    seg0, _ = vc.convert(clip[a0:b0], sample_rate=16000)  # each segment is converted on its own
    seg1, _ = vc.convert(clip[a1:b1], sample_rate=16000)
    assert (out[: len(seg0)] == seg0).all()
    start1 = len(seg0) + int(abs(len(seg0) / sr - (b0 - a0) / 16000) * sr) + int(a1 * 2) - int(b0 * 2)
    assert (out[len(seg0) : start1] == 0).all() and (out[start1 : start1 + len(seg1)] == seg1).all()
    assert (out[start1 + len(seg1) :] == 0).all()


def test_hybrid_through_the_converter(vc, clip):
    h, _ = vc.convert(clip, sample_rate=16000, f0_method="hybrid[pm+harvest]")
    p, _ = vc.convert(clip, sample_rate=16000, f0_method="pm")
    assert h.shape == p.shape and not (h == p).all()


def test_autotune_and_proposed_pitch_change_the_output(vc, clip):
    base, _ = vc.convert(clip, sample_rate=16000)
    for kw in ({"f0_autotune": True}, {"proposed_pitch": True, "proposed_pitch_threshold": 400}):
        out, _ = vc.convert(clip, sample_rate=16000, **kw)
        assert out.shape == base.shape and not (out == base).all(), kw
