"""rvc-f0 tests: OpenBLAS for MLX's CPU matmuls (explicit, as `import rvc_f0` no longer loads it) and the
RMVPE fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rvc_runtime

# These tests run with the CPU libraries rvc-convert and the `rvc` command set up (OpenBLAS for
# MLX's CPU matmuls, oneDNN), loaded before anything imports MLX; importing the packages loads nothing.
rvc_runtime.configure_cpu()


@pytest.fixture(scope="module")
def weights(fixtures_dir) -> Path:
    """The random-weight RMVPE fixture."""
    return fixtures_dir / "extractors" / "rmvpe_random.safetensors"


@pytest.fixture(scope="module")
def golden(fixtures_dir) -> dict[str, np.ndarray]:
    """The reference RMVPE's outputs on the fixture clips (mel, salience, f0)."""
    g = np.load(fixtures_dir / "extractors" / "rmvpe_golden.npz")
    return {k: g[k] for k in g.files}
