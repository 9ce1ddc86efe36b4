"""The pictures: the waveform envelope's numbers and the figure's panels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rvc_ui.actions import Conversion
from rvc_ui.plots import conversion_figure, envelope


def test_envelope_min_max_per_span():
    x = np.array([0, 3, -2, 5, 1, -4, 2, 2], np.int16) * 4096  # int16: scaled by 1/32768
    t, low, high = envelope(x, 4, points=4)
    np.testing.assert_array_equal(t, [0, 0.5, 1.0, 1.5])
    np.testing.assert_array_equal(low, np.array([0, -2, -4, 2]) / 8)
    np.testing.assert_array_equal(high, np.array([3, 5, 1, 2]) / 8)
    t, low, high = envelope(np.linspace(-1, 1, 10, dtype=np.float32), 10, points=100)  # fewer samples than points
    assert len(t) == 10 and np.array_equal(low, high)


def test_figure_panels_and_curves():
    x = np.sin(np.arange(16000) / 10).astype(np.float32)
    f0 = np.where(np.arange(100) % 10 < 5, 200.0, 0.0).astype(np.float32)
    conv = Conversion(Path("x.wav"), 40000, x, (x[:4000] * 1000).astype(np.int16), f0, np.full(100, 400, np.float32))
    fig = conversion_figure(conv)
    axes = fig.get_axes()
    assert [a.get_ylabel() for a in axes] == ["input", "output", "F0 (Hz)"]
    target, voiced = axes[2].get_lines()
    np.testing.assert_array_equal(target.get_ydata(), conv.f0_target)
    np.testing.assert_array_equal(voiced.get_xdata(), np.arange(100) / 100)
    assert np.isnan(voiced.get_ydata()[5:10]).all() and (voiced.get_ydata()[:5] == 200).all()  # unvoiced: gaps
    no_pitch = conversion_figure(Conversion(Path("x.wav"), 40000, x, x[:10], None, None))
    assert [a.get_ylabel() for a in no_pitch.get_axes()] == ["input", "output"]
