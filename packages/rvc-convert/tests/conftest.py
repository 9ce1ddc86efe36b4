"""Shared fixtures of the rvc-convert tests (tiny models, random-weight extractors)."""

from __future__ import annotations

import numpy as np
import pytest

import rvc_runtime

# These tests run with the CPU libraries rvc-convert and the `rvc` command set up (OpenBLAS for
# MLX's CPU matmuls, oneDNN), loaded before anything imports MLX; importing the packages loads nothing.
rvc_runtime.configure_cpu()


def synth_signal_int16(seconds: float, seed: int, gaps: tuple[tuple[float, float], ...]) -> np.ndarray:
    """The reference fixtures' test signal (README section 4.5), integer arithmetic."""
    n = int(round(16000 * seconds))
    s = (seed * 2654435761 + 12345) % 2**32
    noise = np.empty(n, np.int64)
    for i in range(n):  # LCG, sequential by definition
        s = (1664525 * s + 1013904223) % 2**32
        noise[i] = (s >> 16) - 32768
    i = np.arange(n, dtype=np.int64)
    p_period = 80 + 4 * (seed % 7)
    p = i % p_period
    tri = np.where(p < p_period / 2, p, p_period - p) * (32000 // p_period) - 8000
    env = 3 + (7 * (i // 4000) + seed) % 10
    for g0, g1 in gaps:
        env[int(np.floor(g0 * n)) : int(np.floor(g1 * n))] = 0
    x = ((noise // 4 + tri) * env) // 16 + noise // 256
    return np.clip(x, -32768, 32767).astype(np.int16)


@pytest.fixture(scope="session")
def make_signal():
    """``make_signal(seconds, seed, gaps)``: the reference's int16 test signal."""
    return synth_signal_int16
