"""Every ```python block of the README runs as written (issue 21: four of five raised NameError).

Each block runs alone, in a fresh namespace, in a folder holding the files the README says it
needs (``voice.pth``, ``voice.index``, ``speech.wav``, ``song.m4a``), built from the fixtures, with
random-weight ContentVec/RMVPE through the environment variables (no Hub). Nothing is defined
for a block: a name it uses without defining is a NameError here, as in a user's shell.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
READMES = [ROOT / "README.md"]


def _blocks() -> list[tuple[str, str]]:
    found = []
    for readme in READMES:
        text = readme.read_text()
        for i, m in enumerate(re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M)):
            first = m.group(1).splitlines()[0].lstrip("# ").split(":")[0]
            found.append((f"{readme.relative_to(ROOT)}#{i}:{first}", m.group(1)))
    return found


BLOCKS = _blocks()


def test_the_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 5


@pytest.fixture
def readme_folder(tmp_path, monkeypatch, ckpts, clips, contentvec_v2, rmvpe_random) -> Path:
    import rvc_audio
    from rvc_index import build_index

    (tmp_path / "voice.pth").symlink_to(ckpts / "v2_f0_40k.pth")
    rng = np.random.default_rng(1)  # not the snippet's seed: its frames are not in this index
    build_index(rng.standard_normal((2000, 768)).astype(np.float32)).save(tmp_path / "voice.index")
    shutil.copy(clips / "arctic_a0007.wav", tmp_path / "speech.wav")
    speech = rvc_audio.load_audio(tmp_path / "speech.wav", sample_rate=44100)
    rvc_audio.save_audio(tmp_path / "song.m4a", speech, 44100)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RVC_CONTENTVEC_WEIGHTS", str(contentvec_v2))
    monkeypatch.setenv("RVC_RMVPE_WEIGHTS", str(rmvpe_random))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


@pytest.mark.parametrize("name, code", BLOCKS, ids=[b[0] for b in BLOCKS])
def test_readme_block_runs(readme_folder: Path, name: str, code: str, capsys) -> None:
    ns: dict = {"__name__": "__readme__"}
    exec(compile(code, name, "exec"), ns)  # noqa: S102  (the README's own code)
    _check(ns, readme_folder)


def _check(ns: dict, folder: Path) -> None:
    """What the known blocks produce: real numbers, not only "it ran"."""
    import rvc_audio

    seconds = len(rvc_audio.load_audio(folder / "speech.wav")) / 16000
    if "audio_int16" in ns:  # rvc-convert
        assert ns["sr"] == 40000 and ns["audio_int16"].dtype == np.int16
        assert abs(len(ns["audio_int16"]) / ns["sr"] - seconds) < 0.05
        assert np.abs(ns["audio_int16"]).max() > 100  # not silence
        written = rvc_audio.load_audio(folder / "out.flac", sample_rate=40000)
        assert abs(len(written) / 40000 - seconds) < 0.05
    if "synth" in ns:  # rvc-synth
        t, hop = ns["t"], ns["synth"].info.hop
        assert ns["audio"].shape == (1, t * hop)
        assert 0 < float(np.abs(np.array(ns["audio"])).max()) <= 1
    if "pitchf" in ns:  # rvc-f0
        assert ns["f0"].shape == (len(ns["audio_16k"]) // 160,)
        voiced = ns["f0"] > 0
        np.testing.assert_allclose(ns["pitchf"][voiced], ns["f0"][voiced] * np.float32(2.0), rtol=1e-6)
    if "x" in ns and (folder / "copy.flac").exists():  # rvc-audio
        copy = rvc_audio.load_audio(folder / "copy.flac", sample_rate=16000)
        np.testing.assert_allclose(copy, ns["x"], atol=1 / 32768 + 1e-7)  # 16-bit FLAC: exact to one LSB
    if "blended" in ns:  # rvc-index
        f, b = ns["features"], ns["blended"]
        assert b.shape == f.shape and ns["index"].dim == 768
        assert 0 < float(np.abs(b - f).max())  # rate 0.75 moved the frames toward the index
        assert (folder / "mine.index").stat().st_size > 500 * 768 * 4
