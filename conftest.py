"""Shared pytest fixtures for every package's tests (repo root conftest)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent
FIXTURES = Path(os.environ.get("RVC_FIXTURES", ROOT.parent / "shared" / "fixtures"))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """`../shared/fixtures` beside the checkout (or $RVC_FIXTURES)."""
    if not FIXTURES.is_dir():
        pytest.fail(f"fixtures not found at {FIXTURES}: clone the repo beside ../shared or set RVC_FIXTURES")
    return FIXTURES


@pytest.fixture(scope="session")
def ref_dir(fixtures_dir: Path) -> Path:
    """The reference goldens and checkpoints (`fixtures/reference`)."""
    return fixtures_dir / "reference"


@pytest.fixture(scope="session")
def extractors_dir(fixtures_dir: Path) -> Path:
    """ContentVec/RMVPE fixture weights (`fixtures/extractors`)."""
    return fixtures_dir / "extractors"


@pytest.fixture(scope="session")
def tiny_contentvec_v1(extractors_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixtures' tiny random ContentVec (64-d, 10 layers) with its v1 ``final_proj`` (64 -> 256)
    and constructor kwargs in one file, the layout ``rvc models import-hubert`` writes."""
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(extractors_dir / "contentvec_tiny.safetensors"))
    fp = np.load(extractors_dir / "final_proj_tiny.npz")
    tensors["final_proj.weight"] = fp["weight"].astype(np.float32)
    tensors["final_proj.bias"] = fp["bias"].astype(np.float32)
    kwargs = json.loads((extractors_dir / "contentvec_tiny.json").read_text())
    out = tmp_path_factory.mktemp("cv") / "contentvec_tiny_v1.safetensors"
    save_file(tensors, str(out), metadata={"format": "mlx-contentvec", "contentvec_kwargs": json.dumps(kwargs)})
    return out


@pytest.fixture(scope="session")
def contentvec_v1(tiny_contentvec_v1: Path) -> Path:
    """The same file under the name the CLI/UI tests use."""
    return tiny_contentvec_v1
