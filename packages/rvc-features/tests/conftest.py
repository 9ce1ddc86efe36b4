"""Fixtures of the rvc-features tests: the reference folder and the tiny ContentVec."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import rvc_runtime

# These tests run with the CPU libraries rvc-convert and the `rvc` command set up (OpenBLAS for
# MLX's CPU matmuls, oneDNN), loaded before anything imports MLX; importing the packages loads nothing.
rvc_runtime.configure_cpu()


@pytest.fixture(scope="session")
def ref_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "reference"


@pytest.fixture(scope="session")
def extractors_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "extractors"


@pytest.fixture(scope="session")
def tiny_contentvec_v1(extractors_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny ContentVec fixture + its final_proj + constructor kwargs, in one safetensors file."""
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(extractors_dir / "contentvec_tiny.safetensors"))
    fp = np.load(extractors_dir / "final_proj_tiny.npz")
    tensors["final_proj.weight"] = fp["weight"].astype(np.float32)
    tensors["final_proj.bias"] = fp["bias"].astype(np.float32)
    kwargs = json.loads((extractors_dir / "contentvec_tiny.json").read_text())
    out = tmp_path_factory.mktemp("cv") / "contentvec_tiny_fp.safetensors"
    save_file(tensors, str(out), metadata={"format": "mlx-contentvec", "contentvec_kwargs": json.dumps(kwargs)})
    return out
