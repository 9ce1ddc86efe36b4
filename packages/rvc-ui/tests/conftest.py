"""Fixtures of the rvc-ui tests: a models folder with tiny random-weight voices, tiny extractors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

VOICE = "v1_f0_40k.pth"  # v1: the tiny ContentVec (64-d) + its final_proj give the 256-d features it takes


@pytest.fixture(scope="session")
def clips(fixtures_dir: Path) -> Path:
    return fixtures_dir / "audio"


@pytest.fixture(scope="session")
def rmvpe_random(fixtures_dir: Path) -> Path:
    return fixtures_dir / "extractors" / "rmvpe_random.safetensors"


@pytest.fixture(scope="session")
def models_dir(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder: two v1 voices (pitch and no pitch) at the top, one in a sub-folder."""
    ckpts = fixtures_dir / "reference" / "checkpoints"
    root = tmp_path_factory.mktemp("models")
    shutil.copyfile(ckpts / VOICE, root / VOICE)
    shutil.copyfile(ckpts / "v1_nof0_32k.pth", root / "v1_nof0_32k.pth")
    (root / "singer").mkdir()
    shutil.copyfile(ckpts / "v1_f0_48k.pth", root / "singer" / "singer.pth")
    return root


@pytest.fixture
def settings(models_dir: Path, contentvec_v1: Path, rmvpe_random: Path, tmp_path: Path):
    from rvc_ui import Settings

    return Settings(models_dir=models_dir, contentvec=contentvec_v1, rmvpe=rmvpe_random, output_dir=tmp_path / "out")


@pytest.fixture(scope="session")
def shared_cache(models_dir: Path, contentvec_v1: Path, rmvpe_random: Path, tmp_path_factory: pytest.TempPathFactory):
    """One converter cache for the tests that only convert (models load once per session)."""
    from rvc_ui import ConverterCache, Settings

    out = tmp_path_factory.mktemp("out")
    return ConverterCache(Settings(models_dir=models_dir, contentvec=contentvec_v1, rmvpe=rmvpe_random, output_dir=out))


@pytest.fixture(scope="session")
def clip(clips: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One second of speech (arctic_a0007.wav from 1.0 s), 16 kHz 16-bit WAV: short, so the
    full-size decoder of the tiny voices converts it quickly."""
    import wave

    with wave.open(str(clips / "arctic_a0007.wav"), "rb") as w:
        rate, width = w.getframerate(), w.getsampwidth()
        w.setpos(rate)
        frames = w.readframes(rate)
    out = tmp_path_factory.mktemp("clips") / "arctic_1s.wav"
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)
    return out
