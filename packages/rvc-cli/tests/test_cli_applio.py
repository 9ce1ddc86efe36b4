"""`rvc convert` with Applio's options: flags and defaults agree with the libraries, and an options
matrix on a real clip with the fixture model (every option on at least once, output valid)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rvc_cli._applio import EFFECT_PARAMS, FORMANT_PRESETS, to_options
from rvc_cli.main import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_flag_defaults_are_the_libraries():
    pytest.importorskip("rvc_convert")
    import inspect

    from rvc_audio import effects as fx
    from rvc_cli._convert import convert
    from rvc_convert import ConvertOptions

    assert FORMANT_PRESETS == fx.FORMANT_PRESETS
    assert list(EFFECT_PARAMS) == [c.NAME for c in fx.EFFECTS]
    for cls in fx.EFFECTS:
        assert {k: v[0] for k, v in EFFECT_PARAMS[cls.NAME][1].items()} == dataclasses.asdict(cls()), cls.NAME
    defaults = {k: p.default for k, p in inspect.signature(convert).parameters.items()}
    opts = ConvertOptions()
    for name in (
        "f0_autotune",
        "f0_autotune_strength",
        "proposed_pitch",
        "proposed_pitch_threshold",
        "formant_shifting",
        "formant_quefrency",
        "formant_timbre",
        "split_audio",
        "clean_audio",
        "clean_strength",
    ):
        assert defaults[name] == getattr(opts, name), name
    assert to_options({k: v for k, v in defaults.items() if k.startswith("fx_")}) == {"effects": {}}


def test_flags_to_options():
    values = {
        "fx_reverb": False,
        "fx_reverb__room_size": 0.8,
        "fx_gain": True,
        "fx_gain__gain_db": None,
        "formant_preset": "f2m",
        "formant_quefrency": 1.0,
        "formant_timbre": 1.0,
        "formant_shifting": False,
    }
    assert to_options(values) == {
        "formant_shifting": True,
        "formant_quefrency": 1.0,
        "formant_timbre": 0.8,
        "effects": {"reverb": {"room_size": 0.8}, "gain": {}},
    }


def test_help_groups_and_examples():
    text = run("convert", "--help").stdout
    for panel in ("Pitch", "Formant shifting", "Clean and split", "Effects"):
        assert panel in text, panel
    for flag in (
        "--autotune",
        "--proposed-pitch-threshold",
        "--formant-preset",
        "--split-audio",
        "--clean-strength",
        "--reverb-room-size",
        "--pitch-shift-semitones",
        "--limiter-release-ms",
        "--gain-db",
        "--distortion-drive-db",
        "--chorus-mix",
        "--bitcrush-bit-depth",
        "--clipping-threshold-db",
        "--compressor-ratio",
        "--delay-seconds",
        "hybrid[rmvpe+fcpe]",
    ):
        assert flag in text, flag


def test_bad_hybrid_is_a_usage_error():
    r = run("convert", "a.wav", "b.wav", "-m", "x.pth", "--f0-method", "hybrid[rmvpe+yin]")
    assert r.exit_code == 2 and "hybrid" in r.output


@pytest.fixture(scope="module")
def setup(fixtures_dir: Path, tmp_path_factory):
    pytest.importorskip("rvc_convert")
    import soundfile as sf
    from safetensors.numpy import load_file, save_file

    ex = fixtures_dir / "extractors"
    tensors = load_file(str(ex / "contentvec_tiny.safetensors"))
    fp = np.load(ex / "final_proj_tiny.npz")
    tensors["final_proj.weight"] = fp["weight"].astype(np.float32)
    tensors["final_proj.bias"] = fp["bias"].astype(np.float32)
    kwargs = json.loads((ex / "contentvec_tiny.json").read_text())
    d = tmp_path_factory.mktemp("applio")
    cv = d / "cv.safetensors"
    save_file(tensors, str(cv), metadata={"format": "mlx-contentvec", "contentvec_kwargs": json.dumps(kwargs)})
    x, sr = sf.read(fixtures_dir / "audio" / "arctic_a0007.wav", dtype="float32")
    x = x[4000 : 4000 + 24000].copy()  # 1.5 s of speech at 16 kHz, with a digital-silence gap
    x[8000:18000] = 0
    clip = d / "clip.wav"
    sf.write(clip, x, sr)
    base = [
        "-m",
        fixtures_dir / "reference" / "checkpoints" / "v1_f0_32k.pth",
        "--contentvec",
        cv,
        "--rmvpe",
        ex / "rmvpe_random.safetensors",
        "--seed",
        "0",
        "-q",
    ]
    return clip, base, d


MATRIX = {
    "pitch": [
        "--f0-method",
        "hybrid[rmvpe+pm]",
        "--autotune",
        "--autotune-strength",
        "0.7",
        "--proposed-pitch",
        "--proposed-pitch-threshold",
        "200",
        "--pitch",
        "2",
    ],
    "formant": [
        "--f0-method",
        "hybrid[pm+harvest+dio]",
        "--formant-shifting",
        "--formant-quefrency",
        "2",
        "--formant-timbre",
        "0.9",
        "--filter-radius",
        "3",
    ],
    "preset": ["--f0-method", "pm", "--formant-preset", "m2f", "--split-audio"],
    "effects": [
        "--f0-method",
        "pm",
        "--clean-audio",
        "--clean-strength",
        "0.6",
        "--reverb",
        "--reverb-room-size",
        "0.7",
        "--pitch-shift-semitones",
        "2",
        "--limiter",
        "--gain-db",
        "-3",
        "--distortion",
        "--chorus-mix",
        "0.3",
        "--bitcrush-bit-depth",
        "12",
        "--clipping",
        "--compressor-threshold-db",
        "-20",
        "--compressor-ratio",
        "4",
        "--delay-seconds",
        "0.1",
        "--delay-mix",
        "0.2",
    ],
}


@pytest.mark.parametrize("case", list(MATRIX))
def test_options_matrix_on_a_real_clip(setup, case):
    import soundfile as sf

    clip, base, d = setup
    out = d / f"{case}.wav"
    r = run("convert", clip, out, *base, *MATRIX[case])
    assert r.exit_code == 0, r.output
    y, sr = sf.read(out, dtype="float32")
    assert sr == 32000 and y.ndim == 1 and np.isfinite(y).all()
    assert abs(len(y) / sr - 1.5) < 0.03
    assert 0.01 < np.abs(y).max() <= 0.99 + 1 / 32768
    if case == "preset":  # split: the silent gap (more than 250 ms of zeros) comes out as digital zeros
        assert (y[(12000 * 2) : (14000 * 2)] == 0).all()


def test_bad_effect_value_is_one_line(setup):
    clip, base, d = setup
    r = run("convert", clip, d / "bad.wav", *base, "--reverb-room-size", "3")
    assert r.exit_code == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "reverb room_size=3" in lines[0] and not (d / "bad.wav").exists()


def test_info_shows_the_embedder_applio_stored(fixtures_dir, tmp_path):
    model = fixtures_dir / "reference" / "checkpoints" / "v2_f0_40k.pth"
    out = tmp_path / "voice"
    assert run("export", model, out, "-q").exit_code == 0
    assert not any(line.startswith("embedder") for line in run("info", out).stdout.splitlines())
    assert json.loads(run("info", out, "--json").stdout)["embedder"] is None
    cfg = out / "config.json"
    doc = json.loads(cfg.read_text())
    doc.setdefault("metadata", {})["embedder_model"] = "spin"
    cfg.write_text(json.dumps(doc))
    text = run("info", out).stdout
    assert any(line.startswith("embedder") and "spin" in line for line in text.splitlines()), text
    assert json.loads(run("info", out, "--json").stdout)["embedder"] == "spin"


def test_bench_options_rows():
    pytest.importorskip("rvc_convert")
    r = run("bench", "--options", "--seconds", "1", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    names = [row["option"] for row in rows]
    assert names[:6] == [
        "autotune",
        "proposed pitch",
        "hybrid median (2 curves)",
        "formant shifting",
        "split audio (silence search)",
        "clean audio",
    ]
    assert names[6:] == [f"effect: {n}" for n in EFFECT_PARAMS] + ["effects: all ten"]
    assert all(row["seconds"] >= 0 and row["rtf"] == pytest.approx(row["seconds"], abs=1e-4) for row in rows)
