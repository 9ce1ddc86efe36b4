"""oneDNN's bidirectional GRU against the GRU equations stepped in float64."""

from __future__ import annotations

import numpy as np
import pytest

from rvc_runtime import onednn

pytestmark = pytest.mark.skipif(not onednn.available(), reason="oneDNN not installed")


def _gru(x: np.ndarray, wx: np.ndarray, wh: np.ndarray, b: np.ndarray, bhn: np.ndarray) -> np.ndarray:
    """MLX's / PyTorch's GRU (gates r, z, n; ``b`` with the hidden r and z biases folded in)."""
    hs = wh.shape[1]
    h, out = np.zeros(hs), []
    for xt in x:
        px, ph = wx @ xt + b, wh @ h
        r = 1 / (1 + np.exp(-(px[:hs] + ph[:hs])))
        z = 1 / (1 + np.exp(-(px[hs : 2 * hs] + ph[hs : 2 * hs])))
        n = np.tanh(px[2 * hs :] + r * (ph[2 * hs :] + bhn))
        h = (1 - z) * n + z * h
        out.append(h)
    return np.array(out)


@pytest.mark.parametrize(("t", "i", "h"), [(1, 4, 3), (50, 16, 8), (300, 384, 256)])
def test_bigru_equals_the_equations(t: int, i: int, h: int) -> None:
    from rvc_runtime.onednn_rnn import BiGRU

    rng = np.random.default_rng(t)
    shapes = [(3 * h, i), (3 * h, h), (3 * h,), (h,)]
    fwd, bwd = (tuple((rng.standard_normal(s) / np.sqrt(s[-1])).astype(np.float32) for s in shapes) for _ in "fb")
    x = rng.standard_normal((t, i)).astype(np.float32)
    gru = BiGRU(fwd, bwd)
    got = gru(x)
    want = np.concatenate([_gru(x.astype(np.float64), *fwd), _gru(x[::-1].astype(np.float64), *bwd)[::-1]], axis=1)
    assert got.shape == (t, 2 * h) and got.dtype == np.float32
    assert np.abs(got - want).max() <= 1e-5
    np.testing.assert_array_equal(gru(x[: max(1, t // 2)]), gru(x[: max(1, t // 2)]))  # a second length, cached
    np.testing.assert_array_equal(gru(x), got)


def test_bigru_says_what_it_expected() -> None:
    from rvc_runtime.onednn_rnn import BiGRU

    w = (np.zeros((6, 4), np.float32), np.zeros((6, 2), np.float32), np.zeros(6, np.float32), np.zeros(2, np.float32))
    with pytest.raises(ValueError, match=r"backward GRU weights of shapes .*; expected"):
        BiGRU(w, (w[0], w[1], w[2], np.zeros(3, np.float32)))
    with pytest.raises(ValueError, match=r"input of shape \(5, 3\) for a GRU of 4 inputs"):
        BiGRU(w, w)(np.zeros((5, 3), np.float32))
