"""rvc warmup: arguments reach rvc_convert.warmup (spied; nothing converted), JSON steps, errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

import rvc_convert.warmup as warmup_mod
from rvc_cli.main import app
from rvc_convert.warmup import WarmupStep


def test_warmup_command_passes_options_and_prints_steps(monkeypatch):
    calls = []

    def spy(converter, *, precision, seconds, live_blocks, progress):
        calls.append((converter, precision, seconds, list(live_blocks)))
        step = WarmupStep(3.0, (80000,), (498,))
        progress(1, 1, step)
        return [step]

    monkeypatch.setattr(warmup_mod, "warmup", spy)
    args = ["warmup", "--precision", "float16", "-s", "3", "--live-block", "0.25", "--json", "-q"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert calls == [(None, "float16", [3.0], [0.25])]
    assert json.loads(res.stdout) == {
        "precision": "float16",
        "steps": [{"seconds": 3.0, "chunks": [80000], "frames": [498]}],
        "live_blocks": [0.25],
    }
    res = CliRunner().invoke(app, ["warmup", "--live-block", "3"])
    assert res.exit_code != 0 and calls == [(None, "float16", [3.0], [0.25])]  # out of range, nothing run


def test_warmup_index_needs_model():
    res = CliRunner().invoke(app, ["warmup", "--index", "voice.index"])
    assert res.exit_code == 1 and "need --model" in res.output
