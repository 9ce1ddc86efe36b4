"""Standalone rvc-synth on the reference BLAS says so once, with the fix (issue 21)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rvc_synth import _slow_blas

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="MLX's Linux CPU wheel only")

CODE = """
import logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
{first}
import rvc_synth
for _ in range(2):
    rvc_synth.load(sys.argv[1])
from rvc_synth import _slow_blas
print(_slow_blas.blas_library())
"""


def _run(first: str, ckpt: Path) -> subprocess.CompletedProcess:
    code = CODE.format(first=first)
    return subprocess.run([sys.executable, "-c", code, str(ckpt)], capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin", "MLX_DEVICE": "cpu"})  # fmt: skip


def test_reference_blas_is_reported_once_with_the_fix(ref_dir: Path) -> None:
    """MLX imported before any configure_cpu() keeps its wheel's reference BLAS: one warning naming the fix."""
    proc = _run("import mlx.core", ref_dir / "checkpoints" / "v2_nof0_40k.pth")
    warnings = [line for line in proc.stderr.splitlines() if "reference BLAS" in line]
    assert len(warnings) == 1, proc.stderr
    assert warnings[0].startswith("rvc_synth WARNING")
    assert "libopenblas0-pthread" in warnings[0] and "rvc_runtime.configure_cpu()" in warnings[0]
    assert not _slow_blas.is_fast(proc.stdout.strip() if proc.stdout.strip() != "None" else None)


def test_no_warning_with_openblas(ref_dir: Path) -> None:
    if not _slow_blas.is_fast(_slow_blas.blas_library()):
        pytest.skip("no OpenBLAS on this machine")
    proc = _run("import rvc_runtime; rvc_runtime.configure_cpu()", ref_dir / "checkpoints" / "v2_nof0_40k.pth")
    assert "reference BLAS" not in proc.stderr
    assert "openblas" in proc.stdout.lower()


def test_is_fast() -> None:
    assert _slow_blas.is_fast("/lib/x86_64-linux-gnu/libopenblas.so.0")
    assert _slow_blas.is_fast("/opt/intel/lib/libmkl_rt.so.2")
    assert not _slow_blas.is_fast("/site-packages/mlx_cpu.libs/libblas-bd8a282c.so.3.10.0")
    assert not _slow_blas.is_fast(None)
