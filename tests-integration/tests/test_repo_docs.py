"""The repository's own documents: a LICENSE per package and at the root (the metadata says MIT),
and a README set-up section that says how to get uv and which system packages CI installs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = sorted(p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").is_file())


@pytest.mark.parametrize("folder", [ROOT, *PACKAGES], ids=lambda p: p.name)
def test_license_file_matches_the_metadata(folder: Path) -> None:
    text = (folder / "LICENSE").read_text()
    assert text.startswith("MIT License"), folder
    assert "Copyright (c) 2026 the rvc authors" in text
    if folder != ROOT:
        meta = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
        assert meta["license"] == "MIT", folder


def test_readme_setup_says_how_to_get_uv_and_the_ci_apt_packages() -> None:
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Convert a voice", 1)[1].split("\n## ", 1)[0]
    assert "astral.sh/uv" in setup or "pip install uv" in setup
    ci = (ROOT / ".ci" / "run").read_text()
    apt = re.search(r"apt-get install ([^|\n]+)", ci)
    assert apt is not None
    packages = [w for w in apt.group(1).split() if not w.startswith("-")]
    assert packages == ["libopenblas0-pthread", "libgomp1"]
    for name in packages:
        assert name in setup, f"README set-up does not name {name} (installed by .ci/run)"
    # after uv: two commands, sync and convert
    first_block = setup.split("```\n", 2)[1]
    assert [line.split()[:2] for line in first_block.strip().splitlines()] == [["uv", "sync"], ["uv", "run"]]
