"""Applio's pitch options (rvc_f0.applio) against the spec's hand-computed numbers
(shared/specs/applio-options.md sections 1-3 and 12)."""

from __future__ import annotations

import numpy as np
import pytest

import rvc_f0
from rvc_f0.applio import (
    AUTOTUNE_NOTES,
    autotune_f0,
    hybrid_median,
    parse_hybrid,
    proposed_pitch_offset,
)
from rvc_f0.errors import F0InputError, UnknownMethodError


def test_note_table():
    assert len(AUTOTUNE_NOTES) == 54
    assert AUTOTUNE_NOTES[0] == 49.0 and AUTOTUNE_NOTES[-1] == 1046.5
    assert 440.0 in AUTOTUNE_NOTES and 466.16 in AUTOTUNE_NOTES and 659.25 in AUTOTUNE_NOTES
    assert 659.26 not in AUTOTUNE_NOTES and (np.diff(AUTOTUNE_NOTES) > 0).all()


def test_autotune_spec_cases():
    f0 = np.array([0, 445, 453.07, 453.09, 1100, 30, 440], np.float32)
    hard = autotune_f0(f0, strength=1.0)
    np.testing.assert_allclose(hard, [0, 440, 440, 466.16, 1046.5, 49, 440], rtol=0, atol=1e-4)
    half = autotune_f0(f0, strength=0.5)
    assert half[1] == pytest.approx(442.5, abs=1e-4)  # 445 + (440 - 445) * 0.5
    assert half[0] == 0  # unvoiced stays unvoiced (Applio: 49 * strength)
    np.testing.assert_array_equal(autotune_f0(f0, strength=0.0), f0)
    assert hard.dtype == np.float32
    # a tie at the arithmetic midpoint of two notes goes to the lower note
    mid = (AUTOTUNE_NOTES[10] + AUTOTUNE_NOTES[11]) / 2
    assert autotune_f0(np.array([mid]), strength=1)[0] == np.float32(AUTOTUNE_NOTES[10])
    with pytest.raises(F0InputError, match="strength"):
        autotune_f0(f0, strength=1.5)


def _curve_with_median(m: float) -> np.ndarray:
    f0 = np.zeros(300)
    f0[50:250] = m
    return f0


@pytest.mark.parametrize(
    ("median", "threshold", "offset"),
    [
        (110, 155, 6),
        (300, 155, -11),
        (50, 155, 12),
        (155, 155, 0),
        (2000, 155, -12),
        (255, 255, 0),
        (110, 255, 12),
    ],
)
def test_proposed_pitch_spec_cases(median, threshold, offset):
    assert proposed_pitch_offset(_curve_with_median(median), threshold=threshold) == offset


def test_proposed_pitch_interpolates_gaps_and_needs_two_voiced_frames():
    assert proposed_pitch_offset(np.zeros(100)) == 0
    one = np.zeros(100)
    one[10] = 100
    assert proposed_pitch_offset(one) == 0
    # two voiced points 100 and 300 Hz at frames 0 and 100: the interpolated median is 200 Hz
    f0 = np.zeros(101)
    f0[0], f0[100] = 100, 300
    assert proposed_pitch_offset(f0, threshold=155) == round(12 * np.log2(155 / 200)) == -4
    # rounding to the nearest semitone: 12 log2(t / 100) = 0.49 -> 0, 0.51 -> 1, -1.49 -> -1
    for semis, want in ((0.49, 0), (0.51, 1), (-1.49, -1), (-1.51, -2)):
        assert proposed_pitch_offset(_curve_with_median(100), threshold=100 * 2 ** (semis / 12)) == want


def test_hybrid_median_over_voiced_methods():
    a = np.array([0, 200, 200, 0, 100, 300], np.float32)
    b = np.array([0, 0, 100, 150, 110, 330], np.float32)
    c = np.array([0, 0, 0, 0, 120, 360], np.float32)
    np.testing.assert_array_equal(hybrid_median([a, b]), [0, 200, 150, 150, 105, 315])  # Applio 3.2: 100, 75
    np.testing.assert_array_equal(hybrid_median([a, b, c]), [0, 200, 150, 150, 110, 330])
    np.testing.assert_array_equal(hybrid_median([a]), a)
    with pytest.raises(F0InputError, match="one length"):
        hybrid_median([a, b[:3]])


def test_parse_hybrid():
    m = rvc_f0.METHODS
    assert parse_hybrid("hybrid[rmvpe+fcpe]", m) == ("rmvpe", "fcpe")
    assert parse_hybrid("hybrid[crepe + rmvpe + fcpe]", m) == ("crepe", "rmvpe", "fcpe")
    assert parse_hybrid("rmvpe", m) is None
    for bad in ("hybrid[rmvpe]", "hybrid[rmvpe+yin]", "hybrid[rmvpe+rmvpe]", "hybrid[]"):
        with pytest.raises(UnknownMethodError, match="hybrid"):
            parse_hybrid(bad, m)


def test_extract_f0_hybrid_is_the_median_of_the_methods():
    t = np.arange(16000 * 2) / 16000
    x = 0.5 * np.sin(2 * np.pi * 180 * t) * (t < 1.5)
    pm = rvc_f0.extract_f0(x, method="pm")
    dio = rvc_f0.extract_f0(x, method="dio")
    harvest = rvc_f0.extract_f0(x, method="harvest")
    both = rvc_f0.extract_f0(x, method="hybrid[pm+dio]")
    np.testing.assert_array_equal(both, hybrid_median([pm, dio]))
    three = rvc_f0.extract_f0(x, method="hybrid[pm+dio+harvest]")
    np.testing.assert_array_equal(three, hybrid_median([pm, dio, harvest]))
    assert 170 < np.median(three[three > 0]) < 190
    with pytest.raises(F0InputError, match="threshold"):
        rvc_f0.extract_f0(x, method="hybrid[pm+dio]", threshold=0.1)
    with pytest.raises(UnknownMethodError):
        rvc_f0.extract_f0(x, method="hybrid[pm+yin]")
