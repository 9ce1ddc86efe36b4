"""Unit tests of the `rvc` command: help, version, info, export, error lines and exit codes."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rvc_cli.main import app

runner = CliRunner()


def run(*args: str, env: dict | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def assert_one_error_line(result, *fragments: str) -> None:
    """Exit code 1, exactly one non-empty stderr line, starting 'error:' and holding every fragment."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    assert result.stdout == ""


@pytest.fixture(scope="module")
def ckpts(fixtures_dir: Path) -> Path:
    return fixtures_dir / "reference" / "checkpoints"


def _evil_pickle(path: Path, marker: Path, *, zipped: bool) -> Path:
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    data = pickle.dumps({"weight": {"enc_p.emb_phone.weight": Evil()}, "config": [1] * 18}, protocol=2)
    if zipped:  # the torch.save zip layout: <stem>/data.pkl
        with zipfile.ZipFile(path, "w") as z:
            z.writestr(f"{path.stem}/data.pkl", data)
            z.writestr(f"{path.stem}/version", "3\n")
    else:
        path.write_bytes(data)
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# -- conventions ---------------------------------------------------------------------------------


def test_import_loads_no_mlx_or_faiss():
    code = (
        "import sys\n"
        "import rvc_cli.main\n"
        "from typer.testing import CliRunner\n"
        "for args in (['--help'], ['convert', '--help'], ['--version'], ['models', '--help']):\n"
        "    r = CliRunner().invoke(rvc_cli.main.app, args)\n"
        "    assert r.exit_code == 0, (args, r.output)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('mlx', 'faiss', 'rvc_synth', 'rvc_convert', 'rvc_f0', 'rvc_index', 'mlx_contentvec', 'mlx_rmvpe', 'scipy'))\n"
        "print(heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("rvc 0.1.0 (rvc-convert 0.1.0")


def test_help_lists_commands_and_examples():
    result = run("--help")
    assert result.exit_code == 0
    for cmd in ("convert", "info", "export", "models", "index", "bench"):
        assert cmd in result.stdout
    for cmd in (
        ["convert"],
        ["info"],
        ["export"],
        ["bench"],
        ["models", "download"],
        ["models", "list"],
        ["models", "import-hubert"],
        ["index", "build"],
    ):
        r = run(*cmd, "--help")
        assert r.exit_code == 0, cmd
        assert "Example" in r.stdout, cmd
    text = run("convert", "--help").stdout
    for opt in (
        "--model",
        "--index",
        "--pitch",
        "--f0-method",
        "--f0-curve",
        "--index-rate",
        "--filter-radius",
        "--rms-mix-rate",
        "--protect",
        "--resample-sr",
        "--speaker",
        "--seed",
        "--preset",
        "--format",
        "--force",
        "--contentvec",
        "--rmvpe",
        "--quiet",
    ):
        assert opt in text, opt


def test_no_args_shows_help():
    result = run()
    assert "Usage" in result.output


def test_bad_option_value_is_a_usage_error():
    result = run("convert", "a.wav", "b.wav", "-m", "x.pth", "--f0-method", "crepe-xl")
    assert result.exit_code == 2
    assert "crepe-xl" in result.output


def test_f0_choices_match_the_converter():
    """--f0-method offers exactly what rvc_convert accepts (hard-coded: the CLI must not import it)."""
    import typing

    pytest.importorskip("rvc_convert")
    from rvc_cli._convert import F0Method
    from rvc_convert.options import F0_METHODS

    assert set(typing.get_args(F0Method)) == set(F0_METHODS)


def test_convert_defaults_match_convert_options():
    rvc_convert = pytest.importorskip("rvc_convert")
    import inspect

    from rvc_cli._convert import convert

    defaults = {k: p.default for k, p in inspect.signature(convert).parameters.items()}
    opts = rvc_convert.ConvertOptions()
    for name in (
        "pitch",
        "f0_method",
        "index_rate",
        "filter_radius",
        "rms_mix_rate",
        "protect",
        "resample_sr",
        "speaker",
        "seed",
        "preset",
    ):
        assert defaults[name] == getattr(opts, name), name
    assert opts.f0_curve is None and defaults["f0_curve"] is None


# -- info ----------------------------------------------------------------------------------------


def test_info_text(ckpts):
    result = run("info", ckpts / "v2_f0_40k.pth")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "v2 (768-d content features)" in out
    assert "40000 Hz" in out and "hop 400" in out
    assert "pitch (F0)       yes" in out
    assert "speakers         4" in out
    assert "129,794" in out
    assert "random init seed=0 variant=v2_f0_40k" in out
    assert "stored dtype     float16 (runs in float32" in out  # as RVC's own .pth files


def test_info_json(ckpts):
    result = run("info", ckpts / "v1_nof0_48k.pth", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["version"] == "v1" and doc["feature_dim"] == 256
    assert doc["sample_rate"] == 48000 and doc["hop"] == 480
    assert doc["f0"] is False and doc["speakers"] == 4
    assert doc["metadata"]["sr"] == "48k" and doc["metadata"]["f0"] == 0
    assert doc["parameters"] > 100_000


def test_info_training_format(ckpts):
    doc = json.loads(run("info", ckpts / "train_format_v2_f0_48k_G.pth", "--json").stdout)
    assert (doc["version"], doc["sample_rate"], doc["f0"]) == ("v2", 48000, True)
    assert doc["metadata"]["iteration"] == 2333


# -- export --------------------------------------------------------------------------------------


def test_export_then_info(ckpts, tmp_path):
    out = tmp_path / "voice"
    result = run("export", ckpts / "v1_f0_32k.pth", out, "--dtype", "float16")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    a = json.loads(run("info", ckpts / "v1_f0_32k.pth", "--json").stdout)
    b = json.loads(run("info", out, "--json").stdout)
    for key in ("version", "sample_rate", "f0", "speakers", "parameters", "metadata"):
        assert a[key] == b[key], key
    assert b["stored_dtype"] == "float16"  # issue 21: the stored dtype is shown (it runs in float32)
    assert "stored dtype     float16" in run("info", out).stdout
    full = tmp_path / "voice32"
    assert run("export", ckpts / "v1_f0_32k.pth", full).exit_code == 0
    assert json.loads(run("info", full, "--json").stdout)["stored_dtype"] == "float32"

    # existing output: refused, untouched; --force replaces it
    before = (out / "config.json").read_text()
    (out / "marker").write_text("x")
    assert_one_error_line(run("export", ckpts / "v1_f0_32k.pth", out), str(out), "--force")
    assert (out / "marker").exists() and (out / "config.json").read_text() == before
    assert run("export", ckpts / "v1_f0_32k.pth", out, "--force").exit_code == 0
    assert not (out / "marker").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["voice", "voice32"]  # no temporary folder left


def test_export_bad_model_writes_nothing(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint at all")
    assert_one_error_line(run("export", bad, tmp_path / "out"), "bad.pth")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pth"]


# -- error lines ---------------------------------------------------------------------------------


@pytest.mark.parametrize("zipped", [False, True])
def test_malicious_pickle_refused_and_not_executed(tmp_path, zipped):
    marker = tmp_path / "pwned"
    evil = _evil_pickle(tmp_path / "evil.pth", marker, zipped=zipped)
    assert_one_error_line(run("info", evil), "refused", "system", "Nothing in it was executed")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        (lambda d: d / "missing.pth", ("model not found", "missing.pth")),
        (lambda d: d, ("folder without config.json",)),
        (lambda d: _write(d / "empty.pth", b""), ("empty", "0 bytes")),
        (lambda d: _write(d / "song.wav", b"RIFF....WAVE"), ("not a PyTorch checkpoint",)),
    ],
    ids=["missing", "directory", "empty", "not-a-checkpoint"],
)
def test_info_bad_models(tmp_path, make, fragments):
    assert_one_error_line(run("info", make(tmp_path)), *fragments)


def test_debug_shows_traceback(tmp_path):
    result = run("info", tmp_path / "missing.pth", env={"RVC_DEBUG": "1"})
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: model not found")


def test_unexpected_errors_are_not_swallowed(ckpts, monkeypatch):
    import rvc_synth

    def boom(path):
        raise KeyError("bug")

    monkeypatch.setattr(rvc_synth, "load", boom)
    result = run("info", ckpts / "v2_f0_40k.pth")
    assert isinstance(result.exception, KeyError)


def test_convert_checks_before_loading(ckpts, tmp_path):
    """Argument problems are reported before any model is loaded (rvc_convert is not needed)."""
    model = ckpts / "v2_f0_40k.pth"
    src = tmp_path / "in.wav"
    src.write_bytes(b"RIFF")
    assert_one_error_line(
        run("convert", tmp_path / "nope.wav", tmp_path / "o.wav", "-m", model), "input not found", "nope.wav"
    )
    assert_one_error_line(run("convert", src, tmp_path / "o.wav", "-m", tmp_path / "v.pth"), "model not found", "v.pth")
    assert_one_error_line(
        run("convert", src, tmp_path / "o.wav", "-m", model, "--index", tmp_path / "x.index"), "index not found"
    )
    assert_one_error_line(
        run("convert", src, tmp_path / "o.xyz", "-m", model), "cannot tell the output format", "--format"
    )
    assert_one_error_line(run("convert", src, tmp_path / "no" / "o.wav", "-m", model), "does not exist")
    (tmp_path / "o.wav").write_bytes(b"old")
    assert_one_error_line(run("convert", src, tmp_path / "o.wav", "-m", model), "already exists", "--force")
    assert (tmp_path / "o.wav").read_bytes() == b"old"
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    assert_one_error_line(run("convert", empty, tmp_path / "outdir", "-m", model), "no audio files")
    assert not (tmp_path / "outdir").exists()


# -- quiet, models, bench (rvc_convert's functions patched or fast) ----------------------------------


def test_quiet_hides_messages_not_results(ckpts, tmp_path):
    loud = run("export", ckpts / "v2_nof0_40k.pth", tmp_path / "a")
    assert loud.exit_code == 0 and "exported" in loud.stderr
    for args in (
        ["-q", "export", ckpts / "v2_nof0_40k.pth", tmp_path / "b"],
        ["export", ckpts / "v2_nof0_40k.pth", tmp_path / "c", "--quiet"],
    ):
        quiet = run(*args)
        assert quiet.exit_code == 0 and quiet.stderr == ""
        assert quiet.stdout.strip() == str(args[-1] if args[0] == "-q" else args[-2])
    assert "exported" in run("export", ckpts / "v2_nof0_40k.pth", tmp_path / "d").stderr  # quiet does not stick


@pytest.fixture
def no_hub(tmp_path, monkeypatch):
    """An empty, offline Hugging Face cache and no RVC_*_WEIGHTS."""
    import huggingface_hub.constants as hf

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hub"), raising=False)
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True, raising=False)
    for k in ("RVC_CONTENTVEC_WEIGHTS", "RVC_RMVPE_WEIGHTS"):
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


def test_models_list(no_hub, fixtures_dir):
    cv = fixtures_dir / "extractors" / "contentvec_tiny.safetensors"
    no_hub.setenv("RVC_CONTENTVEC_WEIGHTS", str(cv))
    result = run("models", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["contentvec"]["source"] == "env" and rows["contentvec"]["path"] == str(cv)
    assert rows["rmvpe"]["path"] is None and rows["rmvpe"]["cached"] is False
    text = run("models", "list").stdout
    assert "contentvec" in text and "ok" in text and "RVC_CONTENTVEC_WEIGHTS" in text
    assert "missing" in text and "rvc models download" in text


def test_models_download_offline_is_one_line(no_hub):
    result = run("models", "download", "rmvpe", "-q")
    assert_one_error_line(result, "could not download", "lexandstuff/mlx-rmvpe")


def test_models_import_hubert_errors(tmp_path):
    out = tmp_path / "cv.safetensors"
    assert_one_error_line(run("models", "import-hubert", tmp_path / "hubert_base.pt", out), "hubert_base.pt")
    marker = tmp_path / "pwned"
    evil = _evil_pickle(tmp_path / "evil.pt", marker, zipped=True)
    assert_one_error_line(run("models", "import-hubert", evil, out), "evil.pt")
    assert not marker.exists() and not out.exists()
    out.write_bytes(b"old")
    assert_one_error_line(run("models", "import-hubert", evil, out), "--force")
    assert out.read_bytes() == b"old"


def test_index_build_argument_errors(tmp_path):
    assert_one_error_line(run("index", "build", tmp_path / "nope", "-o", tmp_path / "v.index"), "not a folder")
    (tmp_path / "v.index").write_bytes(b"old")
    assert_one_error_line(run("index", "build", tmp_path, "-o", tmp_path / "v.index"), "already exists", "--force")


ROWS = [
    {
        "seconds": 10.0,
        "contentvec": 0.7,
        "f0": 0.3,
        "index": 0.05,
        "synth": 3.0,
        "other": 0.05,
        "total": 4.1,
        "rtf": 0.41,
        "cpu_seconds": 7.5,
        "peak_rss_mb": 812.4,
        "rss_before_mb": 700.0,
        "peak_device_mb": 3361.0,
        "first_call_s": 1.234,
        "device": "gpu (NVIDIA H100)",
        "precision": "float16",
    },
    {
        "seconds": 60.0,
        "contentvec": 4.8,
        "f0": 1.8,
        "index": 0.3,
        "synth": 25.2,
        "other": 0.3,
        "total": 32.4,
        "rtf": 0.54,
        "cpu_seconds": 60.1,
        "peak_rss_mb": 1500.0,
        "rss_before_mb": 700.0,
        "peak_device_mb": 3402.0,
        "device": "gpu (NVIDIA H100)",
        "precision": "float16",
    },
]


def test_bench_table_and_json(monkeypatch):
    bench = pytest.importorskip("rvc_convert.bench")
    calls = []
    monkeypatch.setattr(
        bench, "run", lambda seconds, precision, repeats: calls.append((seconds, precision, repeats)) or ROWS
    )
    result = run("bench", "--seconds", "10", "--seconds", "60", "--precision", "float16", "--repeats", "3")
    assert result.exit_code == 0, result.output
    assert calls == [((10.0, 60.0), "float16", 3)]
    lines = result.stdout.splitlines()
    ten = next(line for line in lines if "10 s" in line)
    for cell in ("0.070", "0.030", "0.005", "0.300", "0.410", "812", "3361", "1.23"):  # per-stage s / audio s
        assert cell in ten, (cell, ten)
    sixty = next(line for line in lines if "60 s" in line)
    for cell in ("0.080", "0.420", "0.540", "1500", "3402"):
        assert cell in sixty, (cell, sixty)
    assert "gpu (NVIDIA H100) float16" in " ".join(result.stdout.split())
    assert json.loads(run("bench", "-s", "10", "--json").stdout) == ROWS


def test_bench_failure_is_one_line(monkeypatch):
    bench = pytest.importorskip("rvc_convert.bench")

    def fail(seconds, precision, repeats):
        raise RuntimeError("benchmark of 10 s failed: MemoryError")

    monkeypatch.setattr(bench, "run", fail)
    assert_one_error_line(run("bench", "-q"), "benchmark of 10 s failed")


def test_abort_inside_a_command_is_typers_abort_not_an_error_line() -> None:
    """typer ships its own click copy: guard() must let typer.Abort through (it once caught only click's)."""
    import typer

    from rvc_cli import _ui

    demo = typer.Typer()

    @demo.command()
    def ask() -> None:
        with _ui.guard():
            raise typer.Abort()

    result = CliRunner().invoke(demo, [])
    assert result.exit_code == 1
    assert "Aborted" in result.output
    assert "error:" not in result.output and "Traceback" not in result.output


def test_the_cli_does_not_import_click_itself() -> None:
    code = "import sys, rvc_cli.main; print('click' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# -- issue 21: checks before loading, CLI wording, completion, resuming a batch ------------------


@pytest.fixture
def no_load(monkeypatch):
    """Fail the test if a model would be loaded."""
    from rvc_cli import _jobs

    def refuse(*a, **k):
        raise AssertionError("a model was loaded before the argument/input checks")

    monkeypatch.setattr(_jobs, "load_converter", refuse)


@pytest.mark.parametrize(
    "option, value",
    [
        ("--pitch", "1000"),
        ("--pitch", "-48.5"),
        ("--pitch", "2000"),
        ("--pitch", "nan"),
        ("--pitch", "inf"),
        ("--index-rate", "nan"),
        ("--protect", "nan"),
        ("--rms-mix-rate", "inf"),
        ("--resample-sr", "8000"),
        ("--seed", "-1"),
        ("--speaker", "-1"),
        ("--filter-radius", "-1"),
    ],
)
def test_numeric_options_are_usage_errors_before_loading(ckpts, tmp_path, no_load, option, value):
    src = tmp_path / "in.wav"
    src.write_bytes(b"RIFF")
    result = run("convert", src, tmp_path / "o.wav", "-m", ckpts / "v2_f0_40k.pth", option, value)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert option in result.output
    assert "Warning" not in result.output and not list(tmp_path.glob("o.*"))


def test_pitch_range_matches_the_converter():
    pytest.importorskip("rvc_convert")
    from rvc_cli._convert import PITCH_RANGE
    from rvc_convert.options import PITCH_RANGE as LIBRARY

    assert PITCH_RANGE == LIBRARY == 48


def test_bench_seconds_are_checked():
    for bad in ("0", "-3", "nan"):
        result = run("bench", "-s", bad)
        assert result.exit_code == 2 and "--seconds" in result.output, (bad, result.output)


def test_unreadable_input_is_refused_before_loading(ckpts, tmp_path, no_load):
    model = ckpts / "v2_f0_40k.pth"
    bad = _write(tmp_path / "corrupt.wav", b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 2)
    assert_one_error_line(run("convert", bad, tmp_path / "o.wav", "-m", model), "corrupt.wav")
    notes = _write(tmp_path / "notes.mp3", b"lyrics, not audio\n" * 40)
    assert_one_error_line(run("convert", notes, tmp_path / "o.wav", "-m", model), "notes.mp3", "not a readable")
    assert not (tmp_path / "o.wav").exists()


def test_folder_input_with_a_file_output_is_refused(ckpts, fixtures_dir, tmp_path, no_load):
    takes = tmp_path / "takes"
    takes.mkdir()
    (takes / "a.wav").write_bytes((fixtures_dir / "audio" / "arctic_a0007.wav").read_bytes())
    assert_one_error_line(
        run("convert", takes, tmp_path / "out.wav", "-m", ckpts / "v2_f0_40k.pth"), "out.wav", "looks like a file"
    )
    assert not (tmp_path / "out.wav").exists()


def test_format_that_contradicts_the_suffix_is_refused(ckpts, fixtures_dir, tmp_path, no_load):
    src = fixtures_dir / "audio" / "arctic_a0007.wav"
    result = run("convert", src, tmp_path / "out.wav", "-m", ckpts / "v2_f0_40k.pth", "--format", "mp3")
    assert_one_error_line(result, "out.wav", "mp3", "out.mp3")
    help_text = " ".join(run("convert", "--help").output.split())
    assert "out.wav --format mp3" in help_text


def test_force_and_skip_existing_contradict(ckpts, fixtures_dir, tmp_path, no_load):
    src = fixtures_dir / "audio" / "arctic_a0007.wav"
    result = run("convert", src, tmp_path / "o.wav", "-m", ckpts / "v2_f0_40k.pth", "--force", "--skip-existing")
    assert_one_error_line(result, "--force", "--skip-existing")


def test_skip_existing_file_loads_nothing(ckpts, fixtures_dir, tmp_path, no_load):
    (tmp_path / "o.wav").write_bytes(b"old")
    src = fixtures_dir / "audio" / "arctic_a0007.wav"
    result = run("convert", src, tmp_path / "o.wav", "-m", ckpts / "v2_f0_40k.pth", "--skip-existing")
    assert result.exit_code == 0 and "skipped" in result.stderr and result.stdout == ""
    assert (tmp_path / "o.wav").read_bytes() == b"old"


def test_index_build_checks_the_output_folder_first(tmp_path, monkeypatch):
    rvc_convert = pytest.importorskip("rvc_convert.weights")
    monkeypatch.setattr(rvc_convert, "build_voice_index", lambda *a, **k: pytest.fail("features computed"))
    (tmp_path / "rec").mkdir()
    assert_one_error_line(
        run("index", "build", tmp_path / "rec", "-o", tmp_path / "missing" / "x.index"), "missing", "does not exist"
    )
    assert_one_error_line(run("index", "build", tmp_path / "rec", "-o", tmp_path / "rec"), "is a folder")


def test_shell_completion_is_offered():
    result = run("--help")
    assert "--install-completion" in result.output and "--show-completion" in result.output


@pytest.mark.parametrize(
    "library, cli",
    [
        ("out.wav exists; pass overwrite=True (--force) to replace it", "out.wav exists; pass --force to overwrite it"),
        ("voice already exists; pass overwrite=True (CLI: --force) to replace it",
         "voice already exists; pass --force to overwrite it"),
        ("'o.wav' already exists; pass overwrite=True to replace it or pick a new name",
         "'o.wav' already exists; pass --force to overwrite it or pick a new name"),
        ("contentvec weights not found: no contentvec= path, $RVC_CONTENTVEC_WEIGHTS is not set, and x is not in "
         "the Hugging Face cache (offline). Run `rvc models download` (rvc_convert.weights.download_weights) while "
         "online", "contentvec weights not found: no --contentvec path, $RVC_CONTENTVEC_WEIGHTS is not set, and x is "
         "not in the Hugging Face cache (offline). Run `rvc models download` while online"),
        ("rmvpe weights /x (from rmvpe=) does not exist", "rmvpe weights /x (from --rmvpe) does not exist"),
    ],
)  # fmt: skip
def test_library_messages_speak_cli(library, cli):
    from rvc_cli import _ui

    assert _ui.message(ValueError(library)) == cli


def test_progress_names_the_whole_file_pitch_phase():
    """The bar says what runs before the first chunk (the whole-file F0 pass), then the file's name."""
    from rvc_cli import _ui

    bar = _ui.progress()
    task = bar.add_task("song.wav", total=None)
    update = _ui.chunk_callback(bar, task, first="estimating pitch (rmvpe) on the whole file…")
    assert bar.tasks[0].description == "song.wav: estimating pitch (rmvpe) on the whole file…"
    update(0, 3)
    assert bar.tasks[0].description == "song.wav" and bar.tasks[0].total == 3
    update(2, 3)
    assert bar.tasks[0].completed == 2 and bar.tasks[0].description == "song.wav"


def test_pitch_phase_text():
    from types import SimpleNamespace

    from rvc_cli._jobs import _pitch_phase

    f0 = SimpleNamespace(info=SimpleNamespace(has_f0=True))
    assert (
        _pitch_phase(f0, {"f0_method": "harvest", "f0_curve": None}) == "estimating pitch (harvest) on the whole file…"
    )
    assert (
        _pitch_phase(f0, {"f0_method": "rmvpe", "f0_curve": "c.csv"})
        == "estimating pitch (the F0 curve) on the whole file…"
    )
    assert _pitch_phase(SimpleNamespace(info=SimpleNamespace(has_f0=False)), {"f0_method": "rmvpe"}) is None


# -- offline: random full-size extractor weights (issue 21) -----------------------------------------


def test_create_random_then_convert_v2_and_v1(ckpts, fixtures_dir, tmp_path, no_hub):
    """The README's offline path with nothing downloaded: `rvc models create-random`, then real
    conversions of a v2 model (--contentvec/--rmvpe) and a v1 model (the env vars; final_proj)."""
    from rvc_audio import load_audio, save_audio

    folder = tmp_path / "weights"
    made = run("models", "create-random", folder)
    assert made.exit_code == 0, made.output
    cv, rm = folder / "contentvec_random.safetensors", folder / "rmvpe_random.safetensors"
    assert [line.split() for line in made.stdout.splitlines()] == [["contentvec", str(cv)], ["rmvpe", str(rm)]]
    assert "random weights, output is noise" in made.stderr and f"--contentvec {cv}" in made.stderr
    assert "RVC_RMVPE_WEIGHTS=" in made.stderr
    assert_one_error_line(run("models", "create-random", folder), "--force")
    assert "output is noise" in run("models", "create-random", "--help").stdout

    clip = tmp_path / "clip.wav"
    save_audio(clip, load_audio(fixtures_dir / "audio" / "arctic_a0007.wav")[:16000], 16000)
    out2, out1 = tmp_path / "v2.wav", tmp_path / "v1.wav"
    r2 = run("convert", clip, out2, "-m", ckpts / "v2_f0_40k.pth", "--contentvec", cv, "--rmvpe", rm, "--seed", "0")
    assert r2.exit_code == 0, r2.output
    assert "output is noise" in r2.stderr
    no_hub.setenv("RVC_CONTENTVEC_WEIGHTS", str(cv))
    no_hub.setenv("RVC_RMVPE_WEIGHTS", str(rm))
    r1 = run("convert", clip, out1, "-m", ckpts / "v1_f0_32k.pth", "--seed", "0")
    assert r1.exit_code == 0, r1.output
    a2, a1 = load_audio(out2, sample_rate=40000), load_audio(out1, sample_rate=32000)
    frames = 2 * ((16000 - 400) // 320 + 1)  # ContentVec's 49 frames at 50 Hz, doubled as RVC does
    assert (len(a2), len(a1)) == (frames * 400, frames * 320)  # each model's hop
    assert np.sqrt(np.mean(a2**2)) > 1e-3 and np.sqrt(np.mean(a1**2)) > 1e-3  # sound (noise), not silence

    listed = run("models", "list", "--json")
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["contentvec"]["random"] is True and rows["rmvpe"]["random"] is True
    assert rows["contentvec"]["path"] == str(cv)
    text = run("models", "list").stdout
    assert text.count("random") >= 2 and "output is noise" in text.replace("\n", " ").replace("│", " ")
