"""The reference fixtures' deterministic stand-in for HuBERT/ContentVec (no weights needed).

``../shared/fixtures/reference/README.md`` section 5 defines it; the whole-pipeline golden
(``whole/short_6s.npz``) was computed with it. It produces content features with the same frame
count and rate as the real extractor, so it also serves to test and time everything around the
extractor. It carries no speech content: do not use it for real conversions.
"""

from __future__ import annotations

import numpy as np

__all__ = ["StubEmbedder", "stub_matrix"]


def stub_matrix(rows: int, cols: int, *, seed: int, denom: float) -> np.ndarray:
    """``M[i, j] = ((h(i*cols + j) mod 2001) - 1000) / denom`` as float32 (exact), with
    ``h(k)``: ``u = (k*2654435761 + 97531*(seed+1)) mod 2^32; u ^= u >> 15;
    u = (u*2246822519) mod 2^32; u ^= u >> 13``."""
    k = np.arange(rows * cols, dtype=np.uint64)
    m32 = np.uint64(0xFFFFFFFF)
    u = (k * np.uint64(2654435761) + np.uint64(97531 * (seed + 1))) & m32
    u ^= u >> np.uint64(15)
    u = (u * np.uint64(2246822519)) & m32
    u ^= u >> np.uint64(13)
    vals = (u % np.uint64(2001)).astype(np.int64) - 1000
    return (vals.astype(np.float64) / denom).astype(np.float32).reshape(rows, cols)


class StubEmbedder:
    """``audio (N,) float32 16 kHz -> (n, 768)`` (v2) or ``(n, 256)`` (v1) features at 50 Hz:
    ``n = (N - 400) // 320 + 1`` frames ``x[320 j : 320 j + 400]``, ``tanh(frames @ W)``, and for
    v1 ``@ Pm`` (``W = stub_matrix(400, 768, seed, 4096)``, ``Pm = stub_matrix(768, 256, seed+1, 16384)``).
    """

    def __init__(self, *, version: str = "v2", seed: int = 0) -> None:
        if version not in ("v1", "v2"):
            raise ValueError(f"version={version!r}; expected 'v1' (256-d) or 'v2' (768-d)")
        self.version, self.seed = version, seed
        self.w = stub_matrix(400, 768, seed=seed, denom=4096)
        self.pm = stub_matrix(768, 256, seed=seed + 1, denom=16384) if version == "v1" else None

    @property
    def dim(self) -> int:
        return 256 if self.version == "v1" else 768

    def __call__(self, audio_16k: np.ndarray) -> np.ndarray:
        x = np.asarray(audio_16k, dtype=np.float32)
        n = (len(x) - 400) // 320 + 1
        if n <= 0:
            return np.zeros((0, self.dim), np.float32)
        frames = np.lib.stride_tricks.sliding_window_view(x, 400)[::320][:n]
        feats = np.tanh(frames @ self.w)
        if self.pm is not None:
            feats = feats @ self.pm
        return feats.astype(np.float32)
