"""Shared pytest fixtures for every package's tests (repo root conftest)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
FIXTURES = Path(os.environ.get("RVC_FIXTURES", ROOT.parent / "shared" / "fixtures"))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """`../shared/fixtures` beside the checkout (or $RVC_FIXTURES)."""
    if not FIXTURES.is_dir():
        pytest.fail(f"fixtures not found at {FIXTURES}: clone the repo beside ../shared or set RVC_FIXTURES")
    return FIXTURES
