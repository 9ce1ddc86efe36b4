"""`rvc convert --embedder/--f0-weights` and `rvc models download|list` for every f0 network and
embedder; the missing-weights advice names commands and options that exist (issue 21 item 6)."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rvc_cli.main import app

runner = CliRunner()


def run(*args: object, env: dict | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def one_error_line(result) -> str:
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error")]  # besides "loading ..."
    assert len(lines) == 1 and lines[0].startswith("error: ") and result.stdout == "", result.output
    return lines[0]


@pytest.fixture
def no_hub(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hub"), raising=False)
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True, raising=False)
    for k in (
        "RVC_CONTENTVEC_WEIGHTS",
        "RVC_RMVPE_WEIGHTS",
        "RVC_CREPE_WEIGHTS",
        "RVC_CREPE_TINY_WEIGHTS",
        "RVC_FCPE_WEIGHTS",
    ):
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


@pytest.fixture
def load_spy(monkeypatch):
    import rvc_features
    import rvc_synth

    loaded = []

    def spy(what):
        def load(*args, **kwargs):
            loaded.append(what)
            raise AssertionError(f"{what} was loaded")

        return load

    monkeypatch.setattr(rvc_synth, "load", spy("synthesizer"))
    monkeypatch.setattr(rvc_features, "load_contentvec", spy("contentvec"))
    monkeypatch.setattr(rvc_features, "load_embedder", spy("embedder"))
    return loaded


def test_names_agree_with_the_libraries():
    from rvc_cli._applio import EMBEDDER_NAMES, F0_NETWORKS
    from rvc_cli.main import EMBEDDER_NAMES as MAIN_EMBEDDERS
    from rvc_cli.main import models_download
    from rvc_convert import weights
    from rvc_f0.weights import WEIGHTS
    from rvc_features import EMBEDDERS

    assert EMBEDDER_NAMES == MAIN_EMBEDDERS == tuple(EMBEDDERS)
    assert F0_NETWORKS == tuple(WEIGHTS)
    hint = typing.get_type_hints(models_download, include_extras=True)["name"]
    literal = next(a for a in typing.get_args(typing.get_args(hint)[0]) if typing.get_origin(a) is typing.Literal)
    assert set(typing.get_args(literal)) == {"all", *weights.names()}


def _advice_is_real(line: str) -> None:
    """Every `rvc models download ...` and --option named in ``line`` exists."""
    commands = re.findall(r"`rvc models download ([^`]*)`", line)
    assert commands, line
    for args in commands:
        assert run("models", "download", *args.split(), "--help").exit_code == 0, args
    convert_help = run("convert", "--help").stdout
    for option in set(re.findall(r"(--[a-z][a-z0-9-]+)", line)):
        assert option in convert_help, option


@pytest.mark.parametrize(
    ("method", "net"), [("fcpe", "fcpe"), ("crepe", "crepe"), ("hybrid[crepe-tiny+rmvpe]", "crepe-tiny")]
)
def test_missing_f0_weights_advice_is_real_and_early(ckpts, fixtures_dir, tmp_path, no_hub, load_spy, method, net):
    import importlib.util

    from rvc_f0.weights import WEIGHTS

    spec = WEIGHTS[net]
    if importlib.util.find_spec(spec.package) is not None:
        pytest.skip(f"an installed {spec.package} ships the weights")
    wav = fixtures_dir / "audio" / "arctic_a0007.wav"
    line = one_error_line(run("convert", wav, tmp_path / "o.wav", "-m", ckpts / "v2_f0_40k.pth", "--f0-method", method))
    assert f"`rvc models download {net}`" in line and "pass --f0-weights /path/to/" in line
    assert "weights=" not in line and spec.env in line
    _advice_is_real(line)
    assert load_spy == []
    # the option it names works: a missing file given there fails the same way, before any load
    line = one_error_line(
        run(
            "convert",
            wav,
            tmp_path / "o.wav",
            "-m",
            ckpts / "v2_f0_40k.pth",
            "--f0-method",
            method,
            "--f0-weights",
            tmp_path / "nope.pth",
        )
    )
    assert "not found" in line and "nope.pth" in line
    given = tmp_path / "given.pth"
    given.write_bytes(b"not a checkpoint")
    result = run(
        "convert", wav, tmp_path / "o.wav", "-m", ckpts / "v2_f0_40k.pth", "--f0-method", method, "--f0-weights", given
    )
    assert isinstance(result.exception, AssertionError) and load_spy == ["synthesizer"]  # got past the f0 weights


def test_f0_weights_needs_one_network(ckpts, fixtures_dir, tmp_path, load_spy):
    wav = fixtures_dir / "audio" / "arctic_a0007.wav"
    given = tmp_path / "w.pth"
    given.write_bytes(b"x")
    for method, said in (("rmvpe", "takes no such file"), ("hybrid[crepe+fcpe]", "uses crepe and fcpe")):
        line = one_error_line(
            run(
                "convert",
                wav,
                tmp_path / "o.wav",
                "-m",
                ckpts / "v2_f0_40k.pth",
                "--f0-method",
                method,
                "--f0-weights",
                given,
            )
        )
        assert said in line and "RVC_FCPE_WEIGHTS" in line
    assert load_spy == []


def test_embedder_option(ckpts, fixtures_dir, tmp_path, no_hub):
    wav = fixtures_dir / "audio" / "arctic_a0007.wav"
    model = ckpts / "v2_f0_40k.pth"
    line = one_error_line(run("convert", wav, tmp_path / "o.wav", "-m", model, "--embedder", "hubert-large"))
    assert "neither an embedder name" in line and "spin-v2" in line
    line = one_error_line(
        run(
            "convert",
            wav,
            tmp_path / "o.wav",
            "-m",
            model,
            "--embedder",
            "spin",
            "--rmvpe",
            fixtures_dir / "extractors" / "rmvpe_random.safetensors",
        )
    )
    assert "`rvc models download --embedder spin`" in line
    _advice_is_real(line)
    emb = fixtures_dir / "embedders" / "bin"
    line = one_error_line(
        run(
            "convert",
            wav,
            tmp_path / "o.wav",
            "-m",
            model,
            "--embedder",
            emb,
            "--rmvpe",
            fixtures_dir / "extractors" / "rmvpe_random.safetensors",
        )
    )
    assert "gives 96-d features for v2 models, but this model takes 768-d ones" in line
    assert "Embedder" in run("convert", "--help").stdout


def test_models_list_and_download_cover_everything(no_hub):
    result = run("models", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {(r["name"], r["kind"]) for r in rows} >= {
        ("crepe", "f0"),
        ("crepe-tiny", "f0"),
        ("fcpe", "f0"),
        ("spin-v2", "embedder"),
        ("korean-hubert-base", "embedder"),
    }
    fetch = {r["name"]: r["fetch"] for r in rows if r["kind"] != "extractor"}
    assert fetch["fcpe"] == "fcpe" and fetch["spin-v2"] == "--embedder spin-v2"
    for args in fetch.values():  # what the table tells to run exists
        assert run("models", "download", *args.split(), "--help").exit_code == 0, args
    text = run("models", "list").stdout
    assert "crepe-tiny" in text and "korean-hubert-base" in text and "embedder" in text
    line = one_error_line(run("models", "download", "--embedder", "spin", "-q"))
    assert "IAHispano/Applio/Resources/embedders/spin/config.json" in line and "HF_HUB_OFFLINE" in line
    assert "unknown" in one_error_line(run("models", "download", "--embedder", "spin-v9"))
    assert "not both" in one_error_line(run("models", "download", "rmvpe", "--embedder", "spin"))


@pytest.fixture(scope="module")
def ckpts(fixtures_dir: Path) -> Path:
    return fixtures_dir / "reference" / "checkpoints"
