"""Every bad input to `rvc convert`: one red line, exit code 1, and no output written."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def setup(cli, ckpts, clips, weights_args, tmp_path):
    """A converter command line for a 2 s clip, and the output folder (empty)."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    src = clips / "arctic_a0007.wav"

    def run(
        *extra, src=src, model=ckpts / "v2_f0_40k.pth", out=out_dir / "out.wav", quiet=True, env=None, weights=True
    ):
        args = ["convert", src, out, "-m", model, "--f0-method", "pm", *extra]
        if weights:
            args += weights_args(model)
        return cli(*args, *(["-q"] if quiet else []), env=env)

    run.out_dir = out_dir
    return run


def assert_failed(result, out_dir: Path, *fragments: str, quiet: bool = True) -> str:
    """Exit 1; one 'error:' line (the only stderr line with --quiet, else the last); nothing written."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    if quiet:
        assert lines == errors, result.stderr
    for f in fragments:
        assert f in errors[0], (f, errors[0])
    assert result.stdout == ""
    assert list(out_dir.iterdir()) == [], list(out_dir.iterdir())  # no output, no temporary file
    return errors[0]


def test_missing_input(setup, tmp_path):
    assert_failed(setup(src=tmp_path / "missing.wav"), setup.out_dir, "input not found", "missing.wav")


def test_corrupt_audio(setup, tmp_path):
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + np.random.default_rng(0).bytes(500))
    assert_failed(setup(src=bad), setup.out_dir, "corrupt.wav")


def test_truncated_audio(setup, clips, tmp_path):
    cut = tmp_path / "cut.wav"
    cut.write_bytes((clips / "arctic_a0007.wav").read_bytes()[:20000])
    assert_failed(setup(src=cut), setup.out_dir, "cut.wav")


def test_empty_file(setup, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert_failed(setup(src=empty), setup.out_dir, "empty.wav", "empty")


def test_directory_as_model(setup, tmp_path):
    folder = tmp_path / "voice_folder"
    folder.mkdir()
    assert_failed(setup(model=folder), setup.out_dir, "voice_folder", "config.json")


@pytest.mark.parametrize("zipped", [False, True], ids=["pickle", "torch-zip"])
def test_malicious_pickle_model(setup, tmp_path, zipped):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    data = pickle.dumps({"weight": {"enc_p.emb_phone.weight": Evil()}, "config": [0] * 18, "version": "v2"}, protocol=2)
    model = tmp_path / "voice.pth"
    if zipped:
        with zipfile.ZipFile(model, "w") as z:
            z.writestr("voice/data.pkl", data)
            z.writestr("voice/version", "3\n")
    else:
        model.write_bytes(data)
    assert_failed(setup(model=model), setup.out_dir, "refused", "system", "Nothing in it was executed")
    assert not marker.exists()


def test_trained_only_index(setup, tmp_path):
    import faiss

    x = np.random.default_rng(0).standard_normal((400, 768)).astype(np.float32)
    raw = faiss.index_factory(768, "IVF4,Flat")
    raw.train(x)  # trained, no vectors added: what RVC writes as trained_*.index
    folder = tmp_path / "logs"
    folder.mkdir()
    trained = folder / "trained_IVF4_Flat_nprobe_1_voice_v2.index"
    faiss.write_index(raw, str(trained))
    assert_failed(setup("--index", trained), setup.out_dir, trained.name, "no vectors", "added_")


def test_mismatched_index(setup, tmp_path):
    from rvc_index import build_index

    v1_index = build_index(np.random.default_rng(0).standard_normal((500, 256)).astype(np.float32))
    path = v1_index.save(tmp_path / "voice_v1.index")
    assert_failed(setup("--index", path), setup.out_dir, "256", "768")


@pytest.fixture
def offline_env(tmp_path, monkeypatch) -> dict[str, str]:
    """HF_HUB_OFFLINE=1, an empty HF_HOME, no RVC_*_WEIGHTS (also patched into huggingface_hub's
    constants, which it reads at import time, for the in-process runner)."""
    import huggingface_hub.constants as hf

    home = tmp_path / "hf_home"
    home.mkdir()
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for k in ("RVC_CONTENTVEC_WEIGHTS", "RVC_RMVPE_WEIGHTS", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(home / "hub"), raising=False)
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True, raising=False)
    return env


def test_missing_weights_offline(setup, offline_env):
    """No --contentvec, nothing cached, offline: the message names the download command and the options."""
    line = assert_failed(setup(weights=False), setup.out_dir, "contentvec weights not found", "rvc models download")
    assert "--contentvec" in line and "RVC_CONTENTVEC_WEIGHTS" in line


def test_missing_weights_offline_real_entry_point(ckpts, clips, offline_env, tmp_path):
    """The same through the installed `rvc` script in a fresh process: exit code 1, one stderr line."""
    rvc = Path(sys.executable).with_name("rvc")
    out = tmp_path / "out.wav"
    env = {k: v for k, v in os.environ.items() if k not in ("RVC_CONTENTVEC_WEIGHTS", "RVC_RMVPE_WEIGHTS", "RVC_DEBUG")}
    env.update(offline_env)
    proc = subprocess.run(
        [str(rvc), "convert", str(clips / "arctic_a0007.wav"), str(out), "-m", str(ckpts / "v2_f0_40k.pth"), "-q"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: contentvec weights not found"), proc.stderr
    assert "rvc models download" in lines[0]
    assert not out.exists()


def test_existing_output_without_force(setup, ckpts, tmp_path):
    out = setup.out_dir / "out.wav"
    out.write_bytes(b"previous take")
    result = setup(out=out)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {out} already exists; pass --force to overwrite it (or --skip-existing)"
    assert out.read_bytes() == b"previous take"
    assert [p.name for p in setup.out_dir.iterdir()] == ["out.wav"]


def test_error_without_quiet_is_still_one_line(setup, tmp_path):
    bad = tmp_path / "noise.mp3"
    bad.write_bytes(b"\xff\xfb" + bytes(300))
    assert_failed(setup(src=bad, quiet=False), setup.out_dir, "noise.mp3", quiet=False)
