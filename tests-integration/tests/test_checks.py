"""Lint, format and type checks of the whole tree, run by the README's test command (and so by CI)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("packages/*/src"))


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    found = str(exe) if exe.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run `uv sync` (it is in the dev group)")
    return found


def _run(*args: str) -> None:
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(args[:3])} ... failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"


def test_ruff_lint() -> None:
    _run(_tool("ruff"), "check", "packages", "tests-integration", "bench", "conftest.py")


def test_ruff_format() -> None:
    _run(_tool("ruff"), "format", "--check", "packages", "tests-integration", "bench", "conftest.py")


def test_mypy_on_the_sources() -> None:
    _run(_tool("mypy"), *SOURCES)
