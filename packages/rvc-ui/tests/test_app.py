"""The `rvc ui` command and the page's construction (no browser, no server)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner


def test_importing_rvc_ui_loads_neither_gradio_nor_mlx():
    code = (
        "import sys, rvc_ui, rvc_ui.actions, rvc_ui.app; "
        "print(sorted(m for m in ('gradio', 'mlx', 'mlx.core', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("host", "warned"), [("127.0.0.1", False), ("0.0.0.0", True)])
def test_rvc_ui_command(monkeypatch, tmp_path: Path, host: str, warned: bool):
    import rvc_ui
    from rvc_cli.main import app

    calls = []

    def fake_launch(settings, *, host, port, ready):
        calls.append((settings, host, port))
        ready(f"http://{host}:{port}/")

    monkeypatch.setattr(rvc_ui, "launch", fake_launch, raising=False)
    result = CliRunner().invoke(
        app,
        [
            "ui",
            "--host",
            host,
            "--port",
            "8123",
            "--models-dir",
            str(tmp_path),
            "--rmvpe",
            str(tmp_path / "r.safetensors"),
        ],
    )
    assert result.exit_code == 0, result.output
    ((settings, got_host, port),) = calls
    assert (got_host, port) == (host, 8123)
    assert settings.models_dir == tmp_path and settings.rmvpe == tmp_path / "r.safetensors"
    assert settings.contentvec is None
    assert f"rvc ui: http://{host}:8123/" in result.stdout
    assert ("anyone on the network" in result.stderr) is warned


def test_models_dir_default_and_env(monkeypatch, tmp_path: Path):
    from rvc_ui import Settings

    monkeypatch.delenv("RVC_MODELS_DIR", raising=False)
    assert Settings().models_dir == Path("models")
    monkeypatch.setenv("RVC_MODELS_DIR", str(tmp_path))
    assert Settings().models_dir == tmp_path
    assert Settings(models_dir="~/v").models_dir == Path("~/v").expanduser()


def test_build_app_has_the_three_tabs(settings):
    import gradio as gr

    from rvc_ui import build_app

    demo = build_app(settings)
    assert isinstance(demo, gr.Blocks)
    tabs = [b.label for b in demo.blocks.values() if isinstance(b, gr.Tab)]
    assert tabs == ["Convert", "Batch", "Models"]
    models = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "convert-model")
    assert [c[0] for c in models.choices] == ["singer/singer.pth", "v1_f0_40k.pth", "v1_nof0_32k.pth"]
