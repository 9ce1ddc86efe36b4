"""Shared pytest fixtures for every package's tests (repo root conftest)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import rvc_runtime

# The tests run with the CPU libraries rvc-convert and the `rvc` command set up (OpenBLAS for MLX's
# CPU matmuls, oneDNN), loaded before anything imports MLX. Importing the packages loads nothing.
rvc_runtime.configure_cpu()

ROOT = Path(__file__).resolve().parent
FIXTURES = Path(os.environ.get("RVC_FIXTURES", ROOT.parent / "shared" / "fixtures"))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """`../shared/fixtures` beside the checkout (or $RVC_FIXTURES)."""
    if not FIXTURES.is_dir():
        pytest.fail(f"fixtures not found at {FIXTURES}: clone the repo beside ../shared or set RVC_FIXTURES")
    return FIXTURES
