"""`rvc ui` in a real browser: Chromium (Debian's ``chromium`` package) driven by Playwright.

Starts the command on a free port with the tiny fixture voice and extractors, uploads a fixture
clip, converts, downloads the result and checks it against the library's conversion length;
then uploads a corrupt file and checks the page shows the library's one-line message.
Screenshot of the Convert tab: in the test's temp dir, and in ``$RVC_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import wave
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium") if p and Path(p).is_file()), None)
CLIP = "arctic_a0007.wav"  # 4 s of speech, the shortest fixture clip
VOICE = "v1_f0_40k.pth"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(proc: subprocess.Popen, url: str, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"rvc ui exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"rvc ui did not answer on {url} within {timeout:.0f} s: {log.read_text()[-2000:]}")


@pytest.fixture
def server(models_dir: Path, contentvec_v1: Path, rmvpe_random: Path, tmp_path: Path):
    """``rvc ui`` in a subprocess (extractor weights through the environment, voices by option)."""
    port = _free_port()
    env = {
        **os.environ,
        "RVC_CONTENTVEC_WEIGHTS": str(contentvec_v1),
        "RVC_RMVPE_WEIGHTS": str(rmvpe_random),
        "HF_HUB_OFFLINE": "1",
        "GRADIO_TEMP_DIR": str(tmp_path / "gradio"),
        "NO_PROXY": "127.0.0.1,localhost",
    }
    log = tmp_path / "server.log"
    cmd = [
        sys.executable,
        "-c",
        "from rvc_cli.main import app; app()",
        "ui",
        "--port",
        str(port),
        "--models-dir",
        str(models_dir),
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_ready(proc, url, log)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def page():
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); the browser test needs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 960}, accept_downloads=True)
        finally:
            browser.close()


def test_convert_in_the_browser(page, server, clips, models_dir, contentvec_v1, rmvpe_random, tmp_path):
    url, log = server
    page.set_default_timeout(120_000)
    page.goto(url)
    page.wait_for_selector("#convert-button")
    assert page.locator("#convert-model input").input_value() == "singer/singer.pth"  # the folder's first voice
    page.locator("#convert-model input").click()
    page.get_by_role("option", name=VOICE).click()
    assert page.locator("#convert-model input").input_value() == VOICE
    pitch = page.locator("#convert-pitch input[type=number]")
    pitch.fill("12")
    pitch.press("Enter")
    page.locator("#convert-f0-method input").click()
    page.get_by_role("option", name="pm", exact=True).click()  # a real estimator (the RMVPE fixture is random)

    page.locator("#input-audio input[type=file]").set_input_files(str(clips / CLIP))
    page.wait_for_selector("#input-audio audio", state="attached")
    page.click("#convert-button")
    page.wait_for_selector("#download-button", state="visible")
    page.wait_for_selector("#output-audio audio", state="attached")
    page.wait_for_selector("#conversion-plot img[src^='data:image/']")  # the matplotlib figure
    summary = page.locator("#convert-summary").inner_text()
    assert "arctic_a0007_v1_f0_40k.wav: " in summary and "40000 Hz with v1_f0_40k.pth (+12 semitones, pm)" in summary

    shot = tmp_path / "convert-tab.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("RVC_SCREENSHOTS"):
        dest = Path(os.environ["RVC_SCREENSHOTS"])
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, dest / "convert.png")

    with page.expect_download() as info:
        page.click("#download-button")
    got = tmp_path / "downloaded.wav"
    info.value.save_as(got)
    assert info.value.suggested_filename == "arctic_a0007_v1_f0_40k.wav"
    with wave.open(str(got), "rb") as w:  # valid 16-bit mono WAV at the voice's rate
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 40000)
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")

    from rvc_audio import load_audio  # the library's conversion of the same clip gives the length
    from rvc_convert import VoiceConverter

    x = load_audio(clips / CLIP, sample_rate=16000)
    vc = VoiceConverter(models_dir / VOICE, contentvec=contentvec_v1, rmvpe=rmvpe_random)
    expected, rate = vc.convert(x, sample_rate=16000, f0_method="pm")
    assert rate == 40000 and len(samples) == len(expected)
    assert abs(len(samples) / rate - len(x) / 16000) < 0.03
    assert np.abs(samples.astype(np.float64)).max() > 3000  # sound, not silence

    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + np.random.default_rng(0).bytes(4000))
    page.locator("#input-audio button[aria-label='Clear']").first.click()
    page.locator("#input-audio input[type=file]").set_input_files(str(corrupt))
    page.click("#convert-button")
    error = page.get_by_text("is not a readable media file").first
    error.wait_for()
    text = error.inner_text()
    assert "corrupt.wav" in text and "Traceback" not in page.content(), text
    assert "Traceback" not in log.read_text()

    page.get_by_role("tab", name="Models").click()  # the folder as `rvc info` sees it
    table = page.locator("#models-table")
    table.get_by_text("singer/singer.pth").filter(visible=True).first.wait_for()
    cells = table.inner_text()
    assert all(s in cells for s in ("v1_f0_40k.pth", "v1_nof0_32k.pth", "48000", "40000", "32000")), cells

    page.get_by_role("tab", name="Live").click()  # renders with or without a sound card
    page.locator("#live-figures").get_by_text("Not running.").wait_for()
    assert page.locator("#live-model input").input_value() == "singer/singer.pth"
    devices = page.locator("#live-devices-status").inner_text()
    assert ("PortAudio" in devices) == page.locator("#live-start").is_disabled(), devices
    page.screenshot(path=str(tmp_path / "live-tab.png"), full_page=True)
