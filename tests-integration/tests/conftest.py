"""Fixtures of the end-to-end tests: tiny random-weight models and extractors, a CLI runner."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import rvc_runtime

# These tests run with the CPU libraries rvc-convert and the `rvc` command set up (OpenBLAS for
# MLX's CPU matmuls, oneDNN), loaded before anything imports MLX; importing the packages loads nothing.
rvc_runtime.configure_cpu()


@pytest.fixture(scope="session")
def ckpts(fixtures_dir: Path) -> Path:
    """The reference's tiny random-weight RVC checkpoints."""
    return fixtures_dir / "reference" / "checkpoints"


@pytest.fixture(scope="session")
def clips(fixtures_dir: Path) -> Path:
    return fixtures_dir / "audio"


@pytest.fixture(scope="session")
def contentvec_v2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-initialised ContentVec whose last layer is 768-d, as v2 models need (the tiny
    fixture is 64-d): the fixture's narrow conv stack, 2 transformer layers, seeded (6.7 M parameters)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_contentvec import ContentvecModel

    kwargs = {
        "conv_feature_layers": "[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2",
        "encoder_embed_dim": 768,
        "encoder_ffn_embed_dim": 256,
        "encoder_attention_heads": 4,
        "encoder_layers": 2,
        "encoder_layers_1": 0,
        "conv_pos": 16,
        "conv_pos_groups": 16,
    }
    mx.random.seed(0)
    params = dict(tree_flatten(ContentvecModel(**kwargs).parameters()))
    out = tmp_path_factory.mktemp("weights") / "contentvec_random_768.safetensors"
    mx.save_safetensors(
        str(out), params, metadata={"format": "mlx-contentvec", "contentvec_kwargs": json.dumps(kwargs)}
    )
    return out


@pytest.fixture(scope="session")
def rmvpe_random(fixtures_dir: Path) -> Path:
    return fixtures_dir / "extractors" / "rmvpe_random.safetensors"


@pytest.fixture(scope="session")
def weights_args(contentvec_v1: Path, contentvec_v2: Path, rmvpe_random: Path):
    """``weights_args(model) -> CLI options`` pointing at random-weight extractors (no Hub access):
    the 256-d (final_proj) ContentVec for v1 models, the 768-d one for v2 models."""

    def args(model: Path | str) -> list[str]:
        cv = contentvec_v1 if Path(model).name.startswith("v1") else contentvec_v2
        return ["--contentvec", str(cv), "--rmvpe", str(rmvpe_random)]

    return args


@pytest.fixture
def cli():
    """``cli(*args, env=None) -> click Result`` running the ``rvc`` app in-process."""
    from rvc_cli.main import app

    runner = CliRunner()

    def invoke(*args: object, env: dict | None = None):
        return runner.invoke(app, [str(a) for a in args], env=env)

    return invoke


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    """16-bit mono WAV -> (int16 samples, rate), with the stdlib (independent of rvc-audio)."""
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()


def _write_wav(path: Path, audio: np.ndarray, rate: int) -> Path:
    """float [-1, 1] or int16 mono -> 16-bit WAV (stdlib)."""
    if audio.dtype != np.int16:
        audio = np.clip(np.rint(audio * 32767), -32768, 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(audio.astype("<i2").tobytes())
    return path


def _voice_like(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A deterministic voiced-ish test signal: a gliding harmonic tone with syllable-like
    amplitude modulation, short pauses and a little noise (float32, peak ~0.5)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 150 + 60 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    tone = sum(np.sin(k * phase) / k for k in range(1, 6))
    env = np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None) ** 0.5
    env[(t % 7.0) > 6.2] = 0.0  # pauses: quiet places to cut chunks
    x = 0.25 * tone * env + 0.003 * rng.standard_normal(t.size)
    return x.astype(np.float32)


@pytest.fixture(scope="session")
def wav():
    """Helpers: ``wav.read(path) -> (int16, rate)``, ``wav.write(path, audio, rate)``,
    ``wav.voice_like(seconds, rate=16000, seed=0)``."""

    class _Wav:
        read = staticmethod(_read_wav)
        write = staticmethod(_write_wav)
        voice_like = staticmethod(_voice_like)

    return _Wav
