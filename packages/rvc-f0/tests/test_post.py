"""postprocess_f0 against the reference goldens (pipeline/f0_post.npz, pipeline/f0_pm.npz)."""

from __future__ import annotations

import numpy as np
import pytest

from rvc_f0 import RVCF0Error, extract_f0, postprocess_f0
from rvc_f0.errors import F0InputError


@pytest.fixture(scope="module")
def post(fixtures_dir):
    return np.load(fixtures_dir / "reference" / "pipeline" / "f0_post.npz")


@pytest.mark.parametrize("case", range(4))
def test_f0_post_cases(post, case):
    key = int(post[f"case{case}_f0_up_key"])
    f0, coarse = postprocess_f0(post["f0_in"], semitones=key)
    want = post[f"case{case}_f0"]
    assert f0.dtype == np.float32 and coarse.dtype == np.int32
    np.testing.assert_array_equal(coarse, post[f"case{case}_coarse"])
    assert np.max(np.abs(f0 - want) / want) <= 1e-5
    assert coarse.min() >= 1 and coarse.max() <= 255


def test_f0_post_clamps_are_exercised(post):
    # frames 90/91 hold 45 Hz and 1500 Hz: below the floor -> 1, above the ceiling -> 255
    _, coarse = postprocess_f0(post["f0_in"], semitones=0)
    assert post["f0_in"][90] == pytest.approx(45) and post["f0_in"][91] == pytest.approx(1500)
    assert coarse[90] == 1 and coarse[91] == 255


def test_all_unvoiced_stays_zero(post):
    f0, coarse = postprocess_f0(np.zeros(int(post["p_len"]), np.float32), semitones=5)
    np.testing.assert_array_equal(f0, post["unvoiced_f0"])
    np.testing.assert_array_equal(coarse, post["unvoiced_coarse"])
    assert not np.isnan(f0).any()


def test_keep_mode_leaves_unvoiced_at_zero(post):
    f0_in = post["f0_in"]
    f0, coarse = postprocess_f0(f0_in, semitones=12, unvoiced="keep")
    unvoiced = f0_in == 0
    assert unvoiced.any() and (~unvoiced).any()
    assert np.all(f0[unvoiced] == 0) and np.all(coarse[unvoiced] == 1)
    # voiced frames are exactly what the interpolating mode gives them
    f0_i, coarse_i = postprocess_f0(f0_in, semitones=12)
    np.testing.assert_array_equal(f0[~unvoiced], f0_i[~unvoiced])
    np.testing.assert_array_equal(coarse[~unvoiced], coarse_i[~unvoiced])


def test_interpolation_is_linear_with_constant_ends():
    f0, _ = postprocess_f0(np.array([0, 0, 100, 0, 200, 0], np.float32))
    np.testing.assert_allclose(f0, [100, 100, 100, 150, 200, 200])


def test_round_half_to_even():
    # float32 f0 values whose mel value is exactly k + 0.5 must round to the even neighbour
    mel_min, mel_max = 1127 * np.log(1 + 50 / 700), 1127 * np.log(1 + 1100 / 700)
    checked = 0
    for k in (35, 40, 41, 55, 56):
        mel = (k + 0.5 - 1) * (mel_max - mel_min) / 254 + mel_min
        hz = np.float32(700 * np.expm1(mel / 1127))
        cand = (hz + np.arange(-3000, 3000, dtype=np.float32) * np.spacing(hz)).astype(np.float32)
        m = 1127 * np.log(1 + cand / 700)
        m = (m - mel_min) * 254 / (mel_max - mel_min) + 1
        exact = cand[m.astype(np.float32) == np.float32(k + 0.5)]
        if exact.size:
            _, coarse = postprocess_f0(exact[:1])
            assert coarse[0] == (k if k % 2 == 0 else k + 1)
            checked += 1
    assert checked >= 3
    _, c = postprocess_f0(np.array([50.0, 1100.0, 1e-3]))
    assert list(c) == [1, 255, 1]


def test_pm_golden_full_path(fixtures_dir):
    g = np.load(fixtures_dir / "reference" / "pipeline" / "f0_pm.npz")
    raw = extract_f0(g["audio_in"], method="pm", p_len=int(g["p_len"]))
    assert raw.shape == (int(g["p_len"]),)
    f0, coarse = postprocess_f0(raw, semitones=int(g["f0_up_key"]))
    np.testing.assert_array_equal(coarse, g["coarse"])
    assert np.max(np.abs(f0 - g["f0"]) / g["f0"]) <= 1e-5


@pytest.mark.parametrize(
    "f0, kwargs",
    [
        (np.zeros((2, 3)), {}),
        (np.array([1.0, np.nan]), {}),
        (np.array([-1.0]), {}),
        (np.array(["a"]), {}),
        (np.zeros(3), {"unvoiced": "zero"}),
        (np.zeros(3), {"semitones": "12"}),
        (np.zeros(3), {"semitones": float("inf")}),
    ],
)
def test_bad_input(f0, kwargs):
    with pytest.raises(F0InputError) as exc:
        postprocess_f0(f0, **kwargs)
    assert isinstance(exc.value, (RVCF0Error, ValueError))
