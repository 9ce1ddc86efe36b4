"""rvc_convert.distributed on a local Ray (2 CPU actors, tiny fixture models): byte-identical to one
machine, a corrupt file as a failed row, resume after deleted outputs and a truncated temp file, a
worker killed mid-file. One Ray session for the module."""

from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

MODEL = "v1_f0_32k.pth"
F0 = "pm"  # not RMVPE: its random full-size network would dominate these tests' time
# (clip, start s, length s): 8 short cuts of the three real recordings (three input rates).
CUTS = [
    ("arctic_a0007.wav", 0.3, 1.2),
    ("arctic_a0007.wav", 1.6, 1.0),
    ("arctic_a0007.wav", 2.6, 1.3),
    ("speechbrain_LJ050-0131.wav", 0.5, 1.1),
    ("speechbrain_LJ050-0131.wav", 3.0, 0.9),
    ("speechbrain_LJ050-0131.wav", 5.5, 1.4),
    ("vocadito_10.wav", 1.0, 1.0),
    ("vocadito_10.wav", 4.0, 1.2),
]


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def clips_dir(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 real clips (wav at 16/22.05/44.1 kHz) and ``broken.wav`` (not audio)."""
    folder = tmp_path_factory.mktemp("clips")
    for i, (name, start, length) in enumerate(CUTS):
        with wave.open(str(fixtures_dir / "audio" / name), "rb") as w:
            rate = w.getframerate()
            w.setpos(int(start * rate))
            frames = w.readframes(int(length * rate))
        with wave.open(str(folder / f"clip{i}_{name.split('_')[0]}.wav"), "wb") as o:
            o.setnchannels(1), o.setsampwidth(2), o.setframerate(rate)
            o.writeframes(frames)
    (folder / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage, not audio" * 3)
    return folder


@pytest.fixture(scope="module")
def weights(fixtures_dir: Path, tiny_contentvec_v1: Path) -> dict:
    return {
        "model": fixtures_dir / "reference" / "checkpoints" / MODEL,
        "contentvec": tiny_contentvec_v1,
        "rmvpe": fixtures_dir / "extractors" / "rmvpe_random.safetensors",
    }


@pytest.fixture(scope="module")
def expected(clips_dir: Path, weights: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The one-machine conversion (VoiceConverter.convert_file, as `rvc convert`, seed 0) of every
    good clip, with one BLAS/OpenMP thread as the 1-CPU actors have (Ray sets OMP_NUM_THREADS=1;
    another thread count changes the float sums' order, hence a few LSBs)."""
    from threadpoolctl import threadpool_limits

    from rvc_convert import ConvertOptions, VoiceConverter

    vc = VoiceConverter(
        weights["model"],
        contentvec=weights["contentvec"],
        rmvpe=weights["rmvpe"],
        options=ConvertOptions(seed=0, f0_method=F0),
    )
    out = tmp_path_factory.mktemp("local")
    with threadpool_limits(limits=1):
        return {
            f"{src.stem}.wav": vc.convert_file(src, out / f"{src.stem}.wav").read_bytes()
            for src in sorted(clips_dir.glob("clip*.wav"))
        }


def _manifest(folder: Path) -> tuple[dict[str, dict], dict]:
    lines = [json.loads(line) for line in (folder / "rvc-manifest.jsonl").read_text().splitlines()]
    assert "summary" in lines[-1] and all("summary" not in r for r in lines[:-1])
    return {Path(r["input"]).name: r for r in lines[:-1]}, lines[-1]["summary"]


def _convert(clips_dir, out, weights, **kw):
    from rvc_convert import ConvertOptions
    from rvc_convert.distributed import convert_folder

    opts = ConvertOptions(seed=0, f0_method=F0)
    return convert_folder(clips_dir, out, options=opts, workers=2, progress=False, **weights, **kw)


@pytest.fixture(scope="module")
def cli_run(ray_session, clips_dir, weights, tmp_path_factory):
    """``rvc convert CLIPS OUT --engine ray --workers 2`` once: (click result, OUT)."""
    from typer.testing import CliRunner

    from rvc_cli.main import app

    out = tmp_path_factory.mktemp("ray") / "out"
    args = ["convert", clips_dir, out, "-m", weights["model"], "--contentvec", weights["contentvec"]]
    args += ["--rmvpe", weights["rmvpe"], "--f0-method", F0, "--seed", "0", "--engine", "ray", "--workers", "2", "-q"]
    return CliRunner().invoke(app, [str(a) for a in args]), out


def test_cli_ray_engine_matches_one_machine_and_lists_the_corrupt_file(cli_run, expected):
    result, out = cli_run
    assert result.exit_code == 1, result.output  # some failed
    assert sorted(Path(p).name for p in result.stdout.split()) == sorted(expected)
    assert "broken.wav" in result.stderr and "converted 8, skipped 0 (done before), failed 1" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted([*expected, "rvc-manifest.jsonl"])  # no temp files
    for name, data in expected.items():
        assert (out / name).read_bytes() == data, name  # byte-identical to one machine, same seed
    rows, summary = _manifest(out)
    assert sorted(rows) == sorted([*expected, "broken.wav"])
    bad = rows["broken.wav"]
    assert bad["status"] == "failed" and bad["error_type"] and "broken.wav" in bad["error"], bad
    assert bad["audio_seconds"] is None and not (out / "broken.wav").exists()
    for name, r in rows.items():
        if name == "broken.wav":
            continue
        assert r["status"] == "converted" and r["error"] is None
        assert r["audio_seconds"] == pytest.approx(CUTS[int(name[4])][2], abs=1e-3)  # decoded length at 16 kHz
        assert r["compute_seconds"] > 0 and r["worker"]["pid"] > 0 and r["worker"]["actor"]
    assert len({r["worker"]["pid"] for r in rows.values()}) == 2  # two actors shared the files
    assert summary["files"] == 9 and summary["converted"] == 8 and summary["failed"] == 1
    assert summary["skipped"] == 0 and summary["workers"] == 2
    assert summary["audio_seconds"] == pytest.approx(sum(c[2] for c in CUTS), abs=0.01)


def test_resume_converts_only_missing_outputs(cli_run, clips_dir, weights, expected, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(cli_run[1], out)  # the CLI's finished run
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("clip*.wav")}
    gone = ["clip2_arctic.wav", "clip6_vocadito.wav"]
    for name in gone:
        (out / name).unlink()
        del kept[name]
    (out / ".clip6_vocadito.wav.1a2b3c4d.part").write_bytes(expected["clip6_vocadito.wav"][:1000])  # truncated

    again = _convert(clips_dir, out, weights)
    assert sorted(p.name for p in again.converted) == gone
    assert len(again.skipped) == 6 and [p.name for p in again.failed] == ["broken.wav"]  # a failed file is retried
    rows, summary = _manifest(out)
    assert {n for n, r in rows.items() if r["status"] == "skipped"} == set(kept)
    assert {n for n, r in rows.items() if r["status"] == "converted"} == set(gone)
    assert summary["skipped"] == 6 and summary["converted"] == 2 and summary["failed"] == 1
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("clip*.wav") if p.name not in gone} == kept  # untouched
    assert sorted(p.name for p in out.iterdir()) == sorted([*expected, "rvc-manifest.jsonl"])  # temp file removed
    for name, data in expected.items():
        assert (out / name).read_bytes() == data, name


def test_worker_killed_mid_file_is_retried(ray_session, clips_dir, weights, expected, tmp_path, monkeypatch):
    marker = tmp_path / "crashed"
    monkeypatch.setenv("RVC_RAY_TEST_CRASH_ONCE", str(marker))
    src = tmp_path / "in"  # 4 of the clips
    src.mkdir()
    for p in sorted(clips_dir.glob("clip*.wav"))[::2]:
        shutil.copy(p, src)
    out = tmp_path / "out"
    s = _convert(src, out, weights)
    assert marker.exists()  # a worker did die (os._exit mid-file, a truncated temp file left behind)
    pid, victim = marker.read_text().split()
    names = sorted(p.name for p in src.iterdir())
    assert sorted(p.name for p in s.converted) == names and not s.failed and not s.skipped
    rows, summary = _manifest(out)
    assert sorted(rows) == names and summary["converted"] == 4  # each file once
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, "rvc-manifest.jsonl"])  # no temp, no dups
    for name in names:
        assert (out / name).read_bytes() == expected[name], name
    assert rows[Path(victim).name]["worker"]["pid"] != int(pid)  # converted by the restarted process
