"""rvc_audio.effects: each wrapper gives exactly what a direct call of its library gives on the same
signal (our wiring adds nothing), plus the spec's numbers (shared/specs/applio-options.md 4-7)."""

from __future__ import annotations

import numpy as np
import pytest

from rvc_audio import effects as E
from rvc_audio.errors import AudioValueError


@pytest.fixture(scope="module")
def voice() -> np.ndarray:
    """1 s of a 16 kHz harmonic 'voice' (150 Hz, 10 harmonics) with a little noise."""
    t = np.arange(16000) / 16000
    x = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 11)) * 0.2
    return (x + 0.01 * np.random.default_rng(0).standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize("preset", ["m2f", "f2m", "random"])
def test_formant_shift_is_stftpitchshift(voice, preset):
    from stftpitchshift import StftPitchShift

    q, t = E.FORMANT_PRESETS[preset]
    want = StftPitchShift(1024, 32, 16000).shiftpitch(voice, 1, q * 1e-3, t, False)
    got = E.shift_formants(voice, quefrency=q, timbre=t)
    np.testing.assert_array_equal(got, want.astype(np.float32))
    assert not np.allclose(got, voice, atol=1e-2)


def test_formant_shift_identity_and_presets(voice):
    assert E.FORMANT_PRESETS == {"m2f": (1.0, 1.2), "f2m": (1.0, 0.8), "random": (32.0, 9.8)}
    y = E.shift_formants(voice)  # (1.0, 1.0): near-identical away from the first/last 32 ms
    inner = slice(1024, len(voice) - 1024)
    err = np.sqrt(np.mean((y[inner] - voice[inner]) ** 2) / np.mean(voice[inner] ** 2))
    assert err < 0.02, err
    with pytest.raises(AudioValueError, match="1024"):
        E.shift_formants(voice[:1000])
    with pytest.raises(AudioValueError, match="timbre"):
        E.shift_formants(voice, timbre=0)


@pytest.mark.parametrize("strength", [0.0, 0.5, 1.0])
def test_clean_is_noisereduce(voice, strength):
    import noisereduce

    want = noisereduce.reduce_noise(y=voice, sr=40000, prop_decrease=strength)
    np.testing.assert_array_equal(E.reduce_noise(voice, 40000, strength=strength), want)
    with pytest.raises(AudioValueError, match="clean strength"):
        E.reduce_noise(voice, 40000, strength=1.5)


def _board(*plugins):
    import pedalboard

    return pedalboard.Pedalboard(list(plugins))


def test_each_effect_is_its_pedalboard_class(voice):
    import pedalboard

    x = np.tile(voice, 2)
    for cls in E.EFFECTS:
        e = cls()
        direct = getattr(pedalboard, cls.__name__)(**{f: getattr(e, f) for f in e.RANGES})
        want = _board(direct)(x, 32000.0).reshape(-1)
        np.testing.assert_array_equal(E.apply_effects(x, 32000, [e]), want, err_msg=cls.__name__)


def test_chain_order_is_fixed(voice):
    import pedalboard

    x = np.tile(voice, 2)
    mine = [E.Delay(delay_seconds=0.1, mix=0.3), E.Gain(gain_db=12), E.Distortion(drive_db=10), E.Reverb()]
    want = _board(
        pedalboard.Reverb(),
        pedalboard.Gain(gain_db=12),
        pedalboard.Distortion(drive_db=10),
        pedalboard.Delay(delay_seconds=0.1, mix=0.3),
    )(x, 48000.0).reshape(-1)
    got = E.apply_effects(x, 48000, mine)
    np.testing.assert_array_equal(got, want)
    assert got.shape == x.shape and got.dtype == np.float32
    assert [e.NAME for e in E.chain(mine)] == ["reverb", "gain", "distortion", "delay"]
    assert [c.NAME for c in E.EFFECTS] == [
        "reverb",
        "pitch_shift",
        "limiter",
        "gain",
        "distortion",
        "chorus",
        "bitcrush",
        "clipping",
        "compressor",
        "delay",
    ]


def test_effect_formulas(voice):
    """The closed forms of the spec (section 7) for the memoryless effects."""
    x = voice.astype(np.float32)
    np.testing.assert_allclose(E.apply_effects(x, 16000, [E.Gain(gain_db=6)]), x * 10 ** (6 / 20), rtol=1e-5)
    np.testing.assert_allclose(
        E.apply_effects(x, 16000, [E.Distortion(drive_db=10)]), np.tanh(x * 10 ** (10 / 20)), atol=1e-5
    )
    np.testing.assert_allclose(
        E.apply_effects(x, 16000, [E.Clipping(threshold_db=-12)]),
        np.clip(x, -(10 ** (-12 / 20)), 10 ** (-12 / 20)),
        atol=1e-6,
    )
    np.testing.assert_allclose(E.apply_effects(x, 16000, [E.Bitcrush(bit_depth=4)]), np.round(x * 16) / 16, atol=1e-6)
    np.testing.assert_array_equal(E.apply_effects(x, 16000, []), x)


def test_effect_validation():
    with pytest.raises(AudioValueError, match=r"reverb room_size=2; expected a number in \[0, 1\]"):
        E.Reverb(room_size=2)
    with pytest.raises(AudioValueError, match="unknown effect 'flanger'"):
        E.effect("flanger")
    with pytest.raises(AudioValueError, match="no parameter 'room'"):
        E.effect("reverb", room=0.3)
    with pytest.raises(AudioValueError, match="given twice"):
        E.chain([E.Gain(), E.Gain(gain_db=3)])
    assert E.effect("gain", gain_db=3) == E.Gain(gain_db=3.0)


def test_split_on_silence_and_join_lengths():
    rng = np.random.default_rng(1)
    x = np.concatenate(
        [
            np.zeros(5000),
            rng.standard_normal(20000) * 0.3,
            np.zeros(20000),
            rng.standard_normal(15000) * 0.3,
            np.zeros(9000),
        ]
    ).astype(np.float32)
    spans = E.split_on_silence(x)
    assert all(a % 2000 == 0 and (b % 2000 == 0 or b == len(x)) for a, b in spans)
    assert spans == [(4000, 28000), (44000, 62000)]  # frames centred every 2000, 4000 wide
    # each converted segment shorter by 10 ms (as the pipeline's frame bookkeeping), at 40 kHz
    pieces = [np.ones(int((b - a) * 2.5) - 400, np.float32) for a, b in spans]
    y = E.join_segments(pieces, spans, n_samples=len(x), sample_rate_in=16000, sample_rate_out=40000)
    assert len(y) == round(len(x) * 2.5)
    nz = np.flatnonzero(y)
    # first piece at int(4000 * 2.5), second at its end + lost 10 ms + the gap int(44000 * 2.5) - int(28000 * 2.5)
    assert nz[0] == 10000 and y[10000 : 10000 + len(pieces[0])].all()
    second = 10000 + len(pieces[0]) + 400 + (110000 - 70000)
    assert y[second - 1] == 0 and y[second : second + len(pieces[1])].all() and nz[-1] == second + len(pieces[1]) - 1
    assert E.split_on_silence(np.zeros(100, np.float32)) == [(0, 100)]


def test_split_is_librosa():
    """Our split is librosa.effects.split written out (its first call JIT-compiles for ~15 s)."""
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(3)
    env = np.repeat(rng.choice([0.0, 1e-4, 0.01, 0.5], size=40), 1000)
    x = (rng.standard_normal(len(env)) * env).astype(np.float32)
    want = librosa.effects.split(x, top_db=60, frame_length=4000, hop_length=2000)
    assert E.split_on_silence(x) == [tuple(map(int, r)) for r in want]
    assert len(want) > 1
