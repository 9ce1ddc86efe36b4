"""`rvc live`: the device path with a fake sounddevice, the file path, PortAudio missing, errors.

The converter is replaced by a fake whose stream doubles each block (the real ``Stream`` is
tested in rvc-convert); what is tested here is the command's plumbing."""

from __future__ import annotations

import _thread
import json
import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import rvc_convert
from rvc_audio import load_audio, save_audio
from rvc_cli.main import app

runner = CliRunner()


class FakeStream:
    latency = 0.31

    def __init__(self, sample_rate: int, block: float) -> None:
        self.sample_rate, self.block_size = sample_rate, round(block * 100) * sample_rate // 100
        self.warmed = 0

    def process(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float32) * 0.5

    def warmup(self) -> None:
        self.warmed += 1


class FakeConverter:
    made: list[dict] = []  # noqa: RUF012
    streams: list[FakeStream] = []  # noqa: RUF012

    def __init__(self, model, **kwargs) -> None:
        self.model = model

    def stream(self, **kw) -> FakeStream:
        FakeConverter.made.append(kw)
        FakeConverter.streams.append(FakeStream(kw["sample_rate"], kw["block"]))
        return FakeConverter.streams[-1]


@pytest.fixture
def fake_vc(monkeypatch):
    FakeConverter.made.clear()
    FakeConverter.streams.clear()
    monkeypatch.setattr(rvc_convert, "VoiceConverter", FakeConverter)
    return FakeConverter


@pytest.fixture
def model(tmp_path) -> Path:
    p = tmp_path / "voice.pth"
    p.write_bytes(b"not read by the fake converter")
    return p


def _fake_sounddevice(blocks: int, played: list) -> types.ModuleType:
    sd = types.ModuleType("sounddevice")
    sd.query_devices = lambda device=None, kind=None: (
        {"name": "fake", "max_output_channels": 2} if kind else "0 fake in/out, 2 channels"
    )

    class Stream:
        latency = (0.01, 0.02)

        def __init__(self, *, samplerate, blocksize, device, channels, dtype, latency, callback) -> None:
            self.n, self.channels, self.callback = blocksize, channels, callback
            sd.opened = {"samplerate": samplerate, "blocksize": blocksize, "device": device, "channels": channels}

        def _run(self) -> None:
            for k in range(blocks):  # a microphone giving block k = (k + 1) / 16 everywhere
                out = np.full((self.n, self.channels[1]), np.nan, np.float32)
                self.callback(np.full((self.n, 1), (k + 1) / 16, np.float32), out, self.n, None, None)
                played.append(out.copy())
                threading.Event().wait(0.01)
            _thread.interrupt_main()  # Ctrl-C

        def __enter__(self):
            self.thread = threading.Thread(target=self._run)
            self.thread.start()
            return self

        def __exit__(self, *exc) -> None:
            self.thread.join()

    sd.Stream = Stream
    return sd


def test_device_loop_with_fake_sounddevice(monkeypatch, fake_vc, model, tmp_path):
    played: list = []
    sd = _fake_sounddevice(12, played)
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    rec = tmp_path / "rec.wav"
    r = runner.invoke(
        app,
        [
            "live",
            "-m",
            str(model),
            "--input-device",
            "0",
            "--output-device",
            "speakers",
            "--sample-rate",
            "16000",
            "--block",
            "0.05",
            "--pitch",
            "3",
            "--record",
            str(rec),
        ],
    )
    assert r.exit_code == 0, (r.output, r.exception)
    assert sd.opened == {"samplerate": 16000, "blocksize": 800, "device": (0, "speakers"), "channels": (1, 2)}
    assert fake_vc.made[0]["pitch"] == 3 and fake_vc.made[0]["block"] == 0.05
    assert fake_vc.streams[0].warmed == 1  # kernels built before the device starts
    assert len(played) == 12 and not np.isnan(np.concatenate(played)).any()
    # each callback plays the previous block's conversion (0.5 x), or silence when it was not ready
    for k in range(1, 12):
        assert np.all(played[k] == 0.5 * k / 16) or np.all(played[k] == 0), k
    assert "late" in r.stderr and "blocks" in r.stderr
    assert r.stdout.strip().endswith(str(rec))
    got = load_audio(rec, sample_rate=16000)
    assert len(got) == 12 * 800 and np.allclose(got, np.concatenate(played)[:, 0], atol=1e-4)


def test_file_path_fast_json(fake_vc, model, tmp_path):
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    x = (0.3 * np.sin(np.arange(16000 * 1.23) * 0.05)).astype(np.float32)
    save_audio(src, x, 16000)
    args = [
        "live",
        "-m",
        str(model),
        "--input",
        str(src),
        "--output",
        str(dst),
        "--sample-rate",
        "16000",
        "--block",
        "0.1",
        "--pace",
        "fast",
        "--json",
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, (r.output, r.exception)
    fig = json.loads(r.stdout)
    assert fig["blocks"] == 13 and fig["late_blocks"] == 0 and fig["algorithmic_latency_ms"] == 310
    assert set(fig["compute_ms"]) == {"p50", "p95", "p99", "max"} and fig["output"] == str(dst)
    got = load_audio(dst, sample_rate=16000)
    assert len(got) == len(x) and np.abs(got - 0.5 * load_audio(src, sample_rate=16000)).max() < 1e-4
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "--force" in again.stderr
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0


def test_missing_portaudio_is_one_line(monkeypatch, model, tmp_path):
    (tmp_path / "sounddevice.py").write_text("raise OSError('PortAudio library not found')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    r = runner.invoke(app, ["live", "-m", str(model)])
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.exit_code == 1 and len(lines) == 1 and "apt-get install libportaudio2" in lines[0]
    r = runner.invoke(app, ["live", "--list-devices"])
    assert r.exit_code == 1 and "PortAudio" in r.stderr


def test_argument_errors(model, tmp_path):
    r = runner.invoke(app, ["live", "-m", str(model), "--input", str(tmp_path / "x.wav")])
    assert r.exit_code == 1 and "--input and --output go together" in r.stderr
    r = runner.invoke(app, ["live"])
    assert r.exit_code == 1 and "--model" in r.stderr
    r = runner.invoke(app, ["live", "-m", str(model), "--block", "3"])
    assert r.exit_code == 2
    assert "Example" in runner.invoke(app, ["live", "--help"]).stdout
