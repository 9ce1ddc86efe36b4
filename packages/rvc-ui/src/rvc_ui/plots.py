"""The pictures: after a conversion, input and output waveforms and the F0 curves; while live,
the compute time of each block against the block period."""

from __future__ import annotations

from typing import Any

import numpy as np

from .actions import SR, Conversion

__all__ = ["conversion_figure", "envelope", "live_figure"]

MAX_POINTS = 2000  # per waveform: min/max pairs, so long files plot fast and look the same


def envelope(audio: np.ndarray, rate: int, *, points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(times_s, low, high)``: the min and max of ``audio`` (int16 or float, scaled to [-1, 1])
    over ``points`` equal spans, what a waveform view draws."""
    x = np.asarray(audio)
    x = x.astype(np.float32) / 32768 if x.dtype.kind == "i" else x.astype(np.float32)
    if len(x) == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    n = min(points, len(x))
    edges = np.linspace(0, len(x), n + 1).astype(int)
    low = np.minimum.reduceat(x, edges[:-1])
    high = np.maximum.reduceat(x, edges[:-1])
    return edges[:-1] / rate, low, high


def conversion_figure(conv: Conversion, *, title: str = "") -> Any:
    """A matplotlib ``Figure`` (no pyplot, no global state): input waveform, output waveform and,
    for pitch models, the input F0 and the shifted target F0 in Hz over time."""
    from matplotlib.figure import Figure

    rows = 3 if conv.f0_input is not None else 2
    fig = Figure(figsize=(9, 1.9 * rows), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True)
    for ax, (audio, rate, label, color) in zip(
        axes, [(conv.input_16k, SR, "input", "#6b7280"), (conv.output, conv.sample_rate, "output", "#ea580c")]
    ):
        t, low, high = envelope(audio, rate)
        ax.fill_between(t, low, high, color=color, linewidth=0)
        ax.set_ylim(-1, 1)
        ax.set_ylabel(label)
        ax.set_yticks([-1, 0, 1])
    if conv.f0_input is not None and conv.f0_target is not None:
        ax = axes[2]
        t = np.arange(len(conv.f0_input)) / 100.0  # 10 ms frames
        voiced = np.where(conv.f0_input > 0, conv.f0_input, np.nan)
        ax.plot(t, conv.f0_target, color="#ea580c", linewidth=1.2, label="target (shifted)")
        ax.plot(t, voiced, color="#374151", linewidth=1.0, label="input")
        ax.set_ylabel("F0 (Hz)")
        ax.legend(loc="upper right", fontsize=8, frameon=False)
    axes[-1].set_xlabel("time (s)")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def live_figure(fig: dict[str, Any]) -> Any:
    """A matplotlib ``Figure`` of :meth:`rvc_ui.live.LiveSession.figures`: compute ms of the last
    blocks (``compute_recent_ms``) as bars, red where over the block period (drawn as a line:
    a block computed above it is late); None before the first block."""
    from matplotlib.figure import Figure

    comp = np.asarray(fig.get("compute_recent_ms") or [], np.float64)
    if not comp.size:
        return None
    period = float(fig["block_ms"])
    out = Figure(figsize=(9, 2.4), layout="constrained")
    ax = out.subplots()
    k = (
        np.arange(fig["blocks"] - comp.size, fig["blocks"])
        if fig.get("blocks", 0) >= comp.size
        else np.arange(comp.size)
    )
    ax.bar(k, comp, width=1.0, color=np.where(comp > period, "#dc2626", "#ea580c"), linewidth=0)
    ax.axhline(period, color="#374151", linewidth=1.0, linestyle="--", label=f"block period {period:.0f} ms")
    ax.set_ylim(0, max(period, float(comp.max())) * 1.15)
    ax.set_xlabel("block")
    ax.set_ylabel("compute (ms)")
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    return out
