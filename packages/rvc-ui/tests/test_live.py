"""The Live tab's session (rvc_ui.live.LiveSession) with a fake sounddevice and the tiny fixture voice:
what it plays is the library's ``Stream`` output, block for block; figures, stop, one session at a
time, no PortAudio; and "Live from a file" against ``rvc_convert.live.run_file``."""

from __future__ import annotations

import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest

from rvc_ui import Settings
from rvc_ui.live import PORTAUDIO_HINT, LiveBusyError, LiveSession, audio_devices, figures_markdown

SR, BLOCK = 16000, 0.1
N = 1600  # samples per block at 16 kHz
LIVE = {"block": BLOCK, "crossfade": 0.05, "extra": 0.2, "f0_method": "pm", "pitch": 3, "seed": 0}
DEVICES = [
    {"name": "mic", "index": 0, "max_input_channels": 1, "max_output_channels": 0},
    {"name": "speakers", "index": 1, "max_input_channels": 0, "max_output_channels": 2},
]


def _speech(clip: Path) -> np.ndarray:
    from rvc_audio import load_audio

    return load_audio(clip, sample_rate=SR)


def _fake_sounddevice(signal: np.ndarray, converted, devices=DEVICES) -> types.ModuleType:
    """A device that calls back block after block (``signal`` cyclically) and, always in time, waits
    for the previous block's conversion (``converted()`` blocks done) before the next callback."""
    sd = types.ModuleType("sounddevice")
    sd.fed, sd.played, sd.closed = [], [], threading.Event()
    sd.query_devices = lambda device=None, kind=None: devices if kind is None else dict(devices[1])

    class Stream:
        latency = (0.01, 0.02)

        def __init__(self, *, samplerate, blocksize, device, channels, dtype, latency, callback) -> None:
            self.n, self.channels, self.callback = blocksize, channels, callback
            sd.opened = {"samplerate": samplerate, "blocksize": blocksize, "device": device, "channels": channels}

        def _run(self) -> None:
            k = 0
            while not sd.closed.is_set():
                i = (k * self.n) % (len(signal) - self.n)
                x = signal[i : i + self.n].astype(np.float32)
                out = np.full((self.n, self.channels[1]), np.nan, np.float32)
                self.callback(x[:, None], out, self.n, None, None)
                sd.fed.append(x)
                sd.played.append(out.copy())
                k += 1
                while converted() < k and not sd.closed.wait(0.005):
                    pass

        def __enter__(self):
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()
            return self

        def __exit__(self, *exc) -> None:
            sd.closed.set()
            self.thread.join()

    sd.Stream = Stream
    return sd


def _wait(cond, seconds: float = 120) -> None:
    done = threading.Event()
    for _ in range(int(seconds / 0.02)):
        if cond():
            return
        done.wait(0.02)
    pytest.fail("condition not reached")


@pytest.fixture
def live(settings: Settings):
    session = LiveSession(settings)
    yield session
    session.stop()


def _converted(session: LiveSession):
    return lambda: len(session._loop.compute) if session._loop is not None else 0


def test_device_session_plays_the_streams_conversion(monkeypatch, live, models_dir, clip, contentvec_v1, rmvpe_random):
    from rvc_convert import ConvertOptions, VoiceConverter

    model = models_dir / "v1_f0_40k.pth"
    speech = _speech(clip)
    sd = _fake_sounddevice(speech, _converted(live))
    monkeypatch.setitem(sys.modules, "sounddevice", sd)

    fig = live.start(model, input_device=0, output_device=1, sample_rate=SR, **LIVE)
    assert live.running and fig["state"] == "running" and fig["source"] == "devices"
    assert sd.opened == {"samplerate": SR, "blocksize": N, "device": (0, 1), "channels": (1, 2)}
    _wait(lambda: live.figures()["blocks"] >= 6)
    fig = live.figures()
    # the figures: block + crossfade + 10 ms of SOLA search; no block late (the fake device waits)
    assert (fig["block_ms"], fig["algorithmic_latency_ms"], fig["end_to_end_latency_ms"]) == (100, 160, 260)
    assert fig["device_latency_ms"] == 30 and fig["late_blocks"] == 0 and fig["dropped_blocks"] == 0
    assert len(fig["compute_recent_ms"]) >= 5 and fig["compute_ms"]["p50"] > 0
    # the summary rounds to 0.01 ms, the recent bars (read after it: maybe one block more) to 0.001 ms
    assert fig["compute_ms"]["p50"] <= fig["compute_ms"]["p99"] <= fig["compute_ms"]["max"]
    assert fig["compute_ms"]["max"] <= max(fig["compute_recent_ms"]) + 0.005
    text = figures_markdown(fig)
    assert "160 ms algorithmic" in text and "late: 0, dropped: 0" in text

    final = live.stop()
    assert not live.running and final["state"] == "stopped" and sd.closed.is_set()
    assert final["blocks"] == len(sd.fed)

    # what was played: block k's conversion during callback k + 1, as Stream.process gives it
    vc = VoiceConverter(model, contentvec=contentvec_v1, rmvpe=rmvpe_random, options=ConvertOptions(f0_method="pm"))
    ref = vc.stream(sample_rate=SR, **LIVE)
    played = np.stack(sd.played)
    np.testing.assert_array_equal(played[0], 0)  # nothing converted yet: silence
    np.testing.assert_array_equal(played[:, :, 0], played[:, :, 1])  # mono on both channels
    checked = 0
    for k, x in enumerate(sd.fed[: final["blocks"] - 1]):
        expected = ref.process(x).copy()
        if k + 1 < len(played):
            np.testing.assert_allclose(played[k + 1, :, 0], expected, rtol=0, atol=1e-6)
            checked += 1
    assert checked >= 5 and np.abs(played[1:]).max() > 1e-3


def test_one_session_at_a_time(monkeypatch, live, models_dir, clip):
    model = models_dir / "v1_f0_40k.pth"
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sounddevice(_speech(clip), _converted(live)))
    live.start(model, sample_rate=SR, **LIVE)
    with pytest.raises(LiveBusyError, match=r"a live session is already running \(devices\); press Stop first"):
        live.start(model, sample_rate=SR, **LIVE)
    with pytest.raises(LiveBusyError, match="already running"):
        live.run_file(clip, model, sample_rate=SR, **LIVE)
    assert live.running
    live.stop()
    assert not live.running
    live.start(model, sample_rate=SR, **LIVE)  # stopped: a new session starts
    assert live.figures()["state"] == "running"


def test_no_portaudio_is_one_readable_line(monkeypatch, live, models_dir, settings):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # `import sounddevice` raises ImportError
    ins, outs, problem = audio_devices()
    assert (ins, outs) == ([], []) and problem.endswith(PORTAUDIO_HINT) and "\n" not in problem
    assert "apt-get install libportaudio2" in problem and "Live from a file" in problem
    from rvc_ui.actions import UIInputError

    with pytest.raises(UIInputError, match="install PortAudio"):
        live.start(models_dir / "v1_f0_40k.pth")
    assert not live.running and live.figures()["state"] == "idle"

    import gradio as gr

    from rvc_ui import build_app

    demo = build_app(settings, live=live)  # the page builds; the Live tab says why and disables Start
    tabs = [b.label for b in demo.blocks.values() if isinstance(b, gr.Tab)]
    assert tabs == ["Convert", "Batch", "Models", "Live"]
    blocks = {getattr(b, "elem_id", None): b for b in demo.blocks.values()}
    assert blocks["live-devices-status"].value.startswith("**No audio devices**: ")
    assert PORTAUDIO_HINT in blocks["live-devices-status"].value
    assert blocks["live-start"].interactive is False
    assert [c[0] for c in blocks["live-model"].choices] == ["singer/singer.pth", "v1_f0_40k.pth", "v1_nof0_32k.pth"]


def test_devices_listed_and_no_device(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sounddevice(np.zeros(4), lambda: 0))
    assert audio_devices() == ([("0: mic", 0)], [("1: speakers", 1)], None)
    monkeypatch.setitem(sys.modules, "sounddevice", _fake_sounddevice(np.zeros(4), lambda: 0, devices=DEVICES[1:]))
    ins, outs, problem = audio_devices()
    assert (ins, outs) == ([], []) and problem.startswith("no audio input (microphone) device found by PortAudio")


def test_live_from_a_file_is_run_file(live, models_dir, clip, contentvec_v1, rmvpe_random):
    from rvc_audio import load_audio
    from rvc_convert import ConvertOptions, VoiceConverter
    from rvc_convert.live import run_file

    model = models_dir / "v1_f0_40k.pth"
    path, fig = live.run_file(clip, model, sample_rate=SR, **LIVE)
    x = _speech(clip)
    out = load_audio(path, sample_rate=SR)
    assert path.name == "arctic_1s_v1_f0_40k_live.wav" and path.parent == live.settings.output_dir
    assert len(out) == len(x) == 16000  # same length as the clip
    assert fig["state"] == "stopped" and fig["source"] == "a file" and not live.running
    assert fig["blocks"] == 10 and len(fig["compute_recent_ms"]) == 10 and fig["algorithmic_latency_ms"] == 160

    vc = VoiceConverter(model, contentvec=contentvec_v1, rmvpe=rmvpe_random, options=ConvertOptions(f0_method="pm"))
    expected, _ = run_file(vc.stream(sample_rate=SR, **LIVE), x, pace="fast")
    np.testing.assert_allclose(out, expected, rtol=0, atol=1 / 32768 + 1e-6)  # the written file is 16-bit
    assert np.abs(expected).max() > 1e-3

    with pytest.raises(Exception, match="no input audio"):
        live.run_file("", model)


def test_a_device_error_fails_start_readably(monkeypatch, live, models_dir, clip):
    sd = _fake_sounddevice(_speech(clip), _converted(live))

    class BadStream:
        def __init__(self, **kw) -> None:
            raise RuntimeError("Error opening Stream: Invalid number of channels [PaErrorCode -9998]")

    sd.Stream = BadStream
    monkeypatch.setitem(sys.modules, "sounddevice", sd)
    with pytest.raises(RuntimeError, match="Invalid number of channels"):
        live.start(models_dir / "v1_f0_40k.pth", sample_rate=SR, **LIVE)
    fig = live.figures()
    assert not live.running and fig["state"] == "failed" and "Invalid number of channels" in fig["error"]
    assert figures_markdown(fig).startswith("**Failed**: Error opening Stream")
    with pytest.raises(Exception, match="unknown live setting"):
        live.run_file(clip, models_dir / "v1_f0_40k.pth", sample_rate=SR, protect=0.3)
