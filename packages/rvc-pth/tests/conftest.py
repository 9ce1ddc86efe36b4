from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).parent))  # torchpickle (a torch-free .pth writer)


@pytest.fixture(scope="session")
def ref_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "reference"
