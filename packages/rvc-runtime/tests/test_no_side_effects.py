"""Importing any rvc package changes nothing in the process (no environment write, no OpenBLAS or
oneDNN loaded); rvc_runtime.configure_cpu() is the one explicit call that loads them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PACKAGES = [
    "rvc_pth",
    "rvc_runtime",
    "rvc_audio",
    "rvc_f0",
    "rvc_synth",
    "rvc_index",
    "rvc_features",
    "rvc_convert",
    "rvc_cli.main",
]

# Runs in a fresh interpreter: NumPy first (it loads its own bundled BLAS), then the package.
_PROBE = r"""
import json, os, sys
import numpy

def libs():
    with open("/proc/self/maps") as f:
        return {line.split()[-1] for line in f if ".so" in line.split()[-1]}

dlopen = []
sys.addaudithook(lambda event, args: dlopen.append(str(args[0])) if event == "ctypes.dlopen" else None)
env, before = dict(os.environ), libs()
import importlib
importlib.import_module(sys.argv[1])
after = libs()
changed = sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k))
print(json.dumps({"env": changed, "new": sorted(after - before), "dlopen": dlopen}))
"""

_FAST = ("blas", "dnnl", "gomp", "gfortran", "quadmath")  # what configure_cpu loads (an OpenBLAS chain, oneDNN)


def _probe(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/maps")
@pytest.mark.parametrize("module", PACKAGES)
def test_import_changes_nothing(module: str) -> None:
    """The environment is unchanged, nothing is loaded through ctypes (how OpenBLAS and oneDNN are
    loaded), and no oneDNN appears. (Third-party extension modules imported on the way, e.g.
    SciPy's or FAISS's, may map their own bundled OpenBLAS as a plain link dependency.)"""
    got = _probe(_PROBE, module)
    assert got["env"] == [], got["env"]
    assert [lib for lib in got["dlopen"] if any(name in lib for name in _FAST)] == [], got["dlopen"]
    assert [lib for lib in got["new"] if "dnnl" in lib.rsplit("/", 1)[-1]] == []


_CONFIGURE = r"""
import json, os, sys
import rvc_runtime
from rvc_runtime import _blas, onednn

dlopen = []
sys.addaudithook(lambda event, args: dlopen.append(str(args[0])) if event == "ctypes.dlopen" else None)
candidates = [lib for chain in _blas._candidates() for lib in chain]
env = dict(os.environ)
got = rvc_runtime.configure_cpu()
again = rvc_runtime.configure_cpu()
with open("/proc/self/maps") as f:
    maps = sorted({line.split()[-1] for line in f if ".so" in line.split()[-1]})
import mlx.core  # noqa: F401
print(json.dumps({"blas": got.blas, "onednn": got.onednn, "again": list(again), "candidates": candidates,
                  "dnnl_candidates": onednn._candidates(), "maps": maps, "dlopen": dlopen,
                  "env": env == dict(os.environ)}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/maps")
def test_configure_cpu_loads_openblas_and_onednn() -> None:
    """With an OpenBLAS installed (here: faiss-cpu's) and oneDNN (onednn-cpu-gomp), both are loaded
    through ctypes and mapped; a second call returns the same answer; the environment is unchanged."""
    got = _probe(_CONFIGURE)
    assert got["env"] and got["again"] == [got["blas"], got["onednn"]]
    names = [m.rsplit("/", 1)[-1] for m in got["maps"]]
    if got["candidates"]:
        assert got["blas"] in got["candidates"] and got["blas"] in got["dlopen"]
        assert any("openblas" in n for n in names), names
    else:
        assert got["blas"] is None
    assert got["onednn"] == bool(got["dnnl_candidates"])
    assert any(n.startswith("libdnnl") for n in names) == got["onednn"]


def test_configure_cpu_after_mlx_is_a_no_op() -> None:
    code = (
        "import json, mlx.core, rvc_runtime\nprint(json.dumps({'blas': rvc_runtime.configure_cpu(dnnl=False).blas}))\n"
    )
    assert _probe(code) == {"blas": None}
