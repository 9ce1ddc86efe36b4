"""The layering rule, checked on the source (AST): arrows point down only.

    rvc-cli -> rvc-ui -> rvc-convert -> stages (audio, f0, synth, index, features) -> leaves (pth, runtime)

A package may import only packages of a lower layer (and declare them in its pyproject); no stage
imports another stage; nobody imports another package's private (``_x``) module or name.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS: dict[str, int] = {
    "rvc_pth": 0,
    "rvc_runtime": 0,
    "rvc_audio": 1,
    "rvc_f0": 1,
    "rvc_synth": 1,
    "rvc_index": 1,
    "rvc_features": 1,
    "rvc_convert": 2,
    "rvc_ui": 3,
    "rvc_cli": 4,
}


def _imports(tree: ast.AST) -> list[tuple[int, str, str | None]]:
    """(line, module, imported name or None) for every absolute import in ``tree``."""
    found: list[tuple[int, str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
    return found


def violations(own: str, source: str, where: str = "<src>") -> list[str]:
    """Every import in ``source`` (a module of package ``own``) that breaks the layering rule."""
    out = []
    for line, module, name in _imports(ast.parse(source)):
        parts = module.split(".")
        top = parts[0]
        if top == own or top not in LAYERS and not top.startswith("rvc_"):
            continue
        here = f"{where}:{line}: {own} imports {module}{'.' + name if name else ''}"
        if top not in LAYERS:
            out.append(f"{here}: {top} is no known package (add it to LAYERS in this test)")
            continue
        if LAYERS[top] >= LAYERS[own]:
            kind = "another stage" if LAYERS[top] == LAYERS[own] == 1 else "a package of its own or a higher layer"
            out.append(f"{here}: {kind} (arrows point down only)")
        if any(p.startswith("_") and not p.startswith("__") for p in parts[1:]) or (
            name and name.startswith("_") and not name.startswith("__")
        ):
            out.append(f"{here}: a private module or name of another package (export it publicly)")
    return out


def _packages() -> list[tuple[str, Path, Path]]:
    found = []
    for pyproject in sorted(ROOT.glob("packages/*/pyproject.toml")):
        for src in sorted((pyproject.parent / "src").iterdir()):
            if src.is_dir() and (src / "__init__.py").exists():
                found.append((src.name, src, pyproject))
    return found


def test_every_package_has_a_layer() -> None:
    names = {name for name, _, _ in _packages()}
    assert names, "no packages found"
    assert names <= set(LAYERS), f"packages without a layer: {sorted(names - set(LAYERS))}"


def test_imports_point_down_and_stay_public() -> None:
    problems = []
    for name, src, _ in _packages():
        for f in sorted(src.rglob("*.py")):
            problems += violations(name, f.read_text(), str(f.relative_to(ROOT)))
    assert not problems, "\n".join(problems)


def test_imported_packages_are_declared_dependencies() -> None:
    problems = []
    for name, src, pyproject in _packages():
        project = tomllib.loads(pyproject.read_text())["project"]
        declared = {
            dep.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().replace("-", "_")
            for group in [project.get("dependencies", [])] + list(project.get("optional-dependencies", {}).values())
            for dep in group
        }
        for f in sorted(src.rglob("*.py")):
            for line, module, _ in _imports(ast.parse(f.read_text())):
                top = module.split(".")[0]
                if top in LAYERS and top != name and top not in declared:
                    problems.append(
                        f"{f.relative_to(ROOT)}:{line}: imports {top}, not in {pyproject.relative_to(ROOT)}"
                    )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("own", "source", "expected"),
    [
        ("rvc_f0", "import rvc_synth", "another stage"),
        ("rvc_synth", "from rvc_index import FeatureIndex", "another stage"),
        ("rvc_audio", "from rvc_convert import VoiceConverter", "higher layer"),
        ("rvc_pth", "import rvc_synth.model", "higher layer"),
        ("rvc_convert", "from rvc_cli import main", "higher layer"),
        ("rvc_convert", "from rvc_synth._dnnl import Conv", "private"),
        ("rvc_convert", "from rvc_f0 import _rmvpe", "private"),
        ("rvc_cli", "import rvc_convert._backends", "private"),
        ("rvc_convert", "import rvc_newstage", "no known package"),
    ],
)
def test_the_checker_catches(own: str, source: str, expected: str) -> None:
    found = violations(own, source)
    assert found and expected in found[0], found


@pytest.mark.parametrize(
    ("own", "source"),
    [
        ("rvc_convert", "import rvc_synth\nfrom rvc_f0 import extract_f0\nfrom rvc_runtime import configure_cpu"),
        ("rvc_synth", "from rvc_pth import read_pth\nfrom . import _private\nimport numpy._core"),
        ("rvc_cli", "from rvc_ui import launch\nfrom rvc_convert.weights import resolve_weights"),
        ("rvc_f0", "from rvc_f0._rmvpe import x\nfrom rvc_f0.errors import RVCF0Error"),
    ],
)
def test_the_checker_allows(own: str, source: str) -> None:
    assert violations(own, source) == []
