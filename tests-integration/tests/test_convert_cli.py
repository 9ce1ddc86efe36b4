"""`rvc convert` end to end: real clips, a chunked 45 s input, folder mode (tiny random models)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

# (clip, model, output suffix): every real clip, v1/v2, f0/no-f0, three sample rates, wav and flac.
CASES = [
    ("vocadito_10.wav", "v2_f0_32k.pth", ".wav"),
    ("arctic_a0007.wav", "v1_f0_48k.pth", ".wav"),
    ("speechbrain_LJ050-0131.wav", "v2_nof0_40k.pth", ".flac"),
]


def _decoded(path: Path) -> tuple[np.ndarray, int]:
    """Any output file -> (float32 samples at the file's own rate, rate), through PyAV."""
    import av

    with av.open(str(path)) as f:
        rate = f.streams.audio[0].rate
    from rvc_audio import load_audio

    return load_audio(path, sample_rate=rate), rate


def _check_output(x: np.ndarray, rate: int, *, seconds: float, expected_rate: int, hop: int, chunks: int = 1) -> None:
    """Rate, length (= input duration x rate, short by at most 3 frames per chunk, the reference's
    frame bookkeeping), finite, not silent."""
    assert rate == expected_rate
    expected = seconds * rate
    assert expected - 3 * hop * chunks - 1 <= len(x) <= expected + hop, (len(x), expected, hop)
    x = x.astype(np.float64)
    if x.dtype.kind == "i":
        x = x / 32768
    assert np.isfinite(x).all()
    rms = np.sqrt(np.mean(x**2))
    assert rms > 0.01 and np.abs(x).max() > 0.1, rms


@pytest.mark.parametrize(("clip", "model", "suffix"), CASES, ids=[c[0].split(".")[0] for c in CASES])
def test_convert_real_clip(cli, clips, ckpts, weights_args, wav, tmp_path, clip, model, suffix):
    src = clips / clip
    _, in_rate = wav.read(src)
    seconds = len(wav.read(src)[0]) / in_rate
    out = tmp_path / f"out{suffix}"
    result = cli("convert", src, out, "-m", ckpts / model, "--seed", 0, *weights_args(model))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # nothing else written
    sr = {"32k": 32000, "40k": 40000, "48k": 48000}[model.split("_")[2][:3]]
    if suffix == ".wav":
        x, rate = wav.read(out)
    else:
        x, rate = _decoded(out)
    _check_output(x, rate, seconds=seconds, expected_rate=sr, hop=sr // 100)


def test_seed_gives_identical_output_exported_model_and_resample(cli, clips, ckpts, weights_args, wav, tmp_path):
    arctic, _ = wav.read(clips / "arctic_a0007.wav")
    src, model = wav.write(tmp_path / "in.wav", arctic[16000:48000], 16000), ckpts / "v2_f0_32k.pth"
    a, b, c = tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "c.wav"
    common = ["-m", model, "--f0-method", "pm", "--seed", 7, *weights_args(model)]
    assert cli("convert", src, a, *common).exit_code == 0
    assert cli("convert", src, b, *common).exit_code == 0
    assert a.read_bytes() == b.read_bytes()
    folder = tmp_path / "voice"  # the same model exported to safetensors + config.json
    assert cli("export", model, folder, "-q").exit_code == 0
    common[1] = folder
    assert cli("convert", src, c, *common, "--resample-sr", 44100, "--pitch", -5).exit_code == 0
    x, rate = wav.read(c)
    _check_output(x, rate, seconds=2.0, expected_rate=44100, hop=441)


def test_precision(cli, clips, ckpts, weights_args, wav, tmp_path):
    """--precision bfloat16 runs the synthesizer in half precision (close to float32, not equal);
    tf32 only concerns NVIDIA GPUs: on the CPU the output is float32's, byte for byte."""
    arctic, _ = wav.read(clips / "arctic_a0007.wav")
    src, model = wav.write(tmp_path / "in.wav", arctic[16000:48000], 16000), ckpts / "v2_f0_32k.pth"
    common = ["-m", model, "--f0-method", "pm", "--seed", 7, *weights_args(model)]
    outs = {}
    for precision in ("float32", "bfloat16", "tf32"):
        outs[precision] = tmp_path / f"{precision}.wav"
        result = cli("convert", src, outs[precision], *common, "--precision", precision)
        assert result.exit_code == 0, result.output
    ref, half = (wav.read(outs[p])[0].astype(np.float64) for p in ("float32", "bfloat16"))
    snr = 10 * np.log10(np.sum(ref**2) / np.sum((half - ref) ** 2))
    assert ref.shape == half.shape and 30 < snr < 120, snr
    import mlx.core as mx

    if mx.default_device() == mx.cpu:
        assert outs["tf32"].read_bytes() == outs["float32"].read_bytes()


def test_long_input_is_chunked(cli, ckpts, weights_args, wav, tmp_path, monkeypatch):
    """45 s with the cpu preset (inputs over 41 s are cut near every 38 s): 2 chunks, per-chunk progress."""
    import rvc_cli._ui as ui

    seen: list[tuple[int, int]] = []
    real = ui.chunk_callback

    def spy(bar, task, **kw):
        cb = real(bar, task, **kw)

        def update(done, total):
            seen.append((done, total))
            cb(done, total)

        return update

    monkeypatch.setattr(ui, "chunk_callback", spy)
    src = wav.write(tmp_path / "long.wav", wav.voice_like(45.0), 16000)
    out = tmp_path / "long_out.wav"
    result = cli(
        "convert", src, out, "-m", ckpts / "v2_f0_32k.pth", "--f0-method", "pm", "--seed", 0, *weights_args("v2")
    )
    assert result.exit_code == 0, result.output
    assert seen and seen[-1] == (2, 2), seen
    x, rate = wav.read(out)
    _check_output(x, rate, seconds=45.0, expected_rate=32000, hop=320, chunks=2)


def test_folder_with_one_corrupt_file(cli, clips, ckpts, weights_args, wav, tmp_path, monkeypatch):
    import rvc_audio
    import rvc_convert

    src = tmp_path / "in"
    src.mkdir()
    arctic, _ = wav.read(clips / "arctic_a0007.wav")
    wav.write(src / "a.wav", arctic[: 2 * 16000], 16000)
    rvc_audio.save_audio(src / "b.flac", arctic[16000 : 3 * 16000], 16000)
    (src / "bad.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(range(200)))
    (src / "notes.txt").write_text("not audio: ignored")

    loads = []
    real = rvc_convert.VoiceConverter

    def counting(*args, **kwargs):
        loads.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(rvc_convert, "VoiceConverter", counting)
    out = tmp_path / "out"
    result = cli("convert", src, out, "-m", ckpts / "v2_f0_40k.pth", "--f0-method", "pm", *weights_args("v2"))
    assert result.exit_code == 1, result.output
    assert len(loads) == 1  # one model load for the whole folder
    assert sorted(p.name for p in out.iterdir()) == ["a.wav", "b.wav"]
    assert result.stdout.splitlines() == [str(out / "a.wav"), str(out / "b.wav")]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, result.stderr
    assert errors[0].startswith("error: bad.wav: ")
    assert "converted 2 of 3 files" in errors[1] and "1 failed: bad.wav" in errors[1]
    for name in ("a.wav", "b.wav"):
        x, rate = wav.read(out / name)
        _check_output(x, rate, seconds=2.0, expected_rate=40000, hop=400)

    # Again: the outputs exist now, so nothing is done without --force.
    again = cli("convert", src, out, "-m", ckpts / "v2_f0_40k.pth", *weights_args("v2"))
    assert again.exit_code == 1 and "already exist" in again.stderr and "--force" in again.stderr
    assert len(loads) == 1

    # Resume: with the bad file replaced, --skip-existing converts only what is missing.
    before = {name: (out / name).read_bytes() for name in ("a.wav", "b.wav")}
    wav.write(src / "bad.wav", arctic[: 2 * 16000], 16000)
    resumed = cli(
        "convert", src, out, "-m", ckpts / "v2_f0_40k.pth", "--f0-method", "pm", "--skip-existing", *weights_args("v2")
    )
    assert resumed.exit_code == 0, resumed.output
    assert resumed.stdout.splitlines() == [str(out / "bad.wav")]
    assert "skipping 2 file(s)" in resumed.stderr and "converted 1 of 1 files" in resumed.stderr
    assert {name: (out / name).read_bytes() for name in ("a.wav", "b.wav")} == before
    x, rate = wav.read(out / "bad.wav")
    _check_output(x, rate, seconds=2.0, expected_rate=40000, hop=400)
    # Everything there: nothing is loaded.
    done = cli("convert", src, out, "-m", ckpts / "v2_f0_40k.pth", "--skip-existing", *weights_args("v2"))
    assert done.exit_code == 0 and "nothing to do" in done.stderr and done.stdout == ""
    assert len(loads) == 2


@pytest.mark.parametrize(
    ("method", "env_var", "weights"),
    [
        ("crepe-tiny", "RVC_CREPE_TINY_WEIGHTS", "crepe_tiny.pth"),
        ("fcpe", "RVC_FCPE_WEIGHTS", "fcpe_c_v001.pt"),
    ],
)
def test_convert_with_crepe_and_fcpe(
    cli, clips, ckpts, fixtures_dir, weights_args, wav, tmp_path, method, env_var, weights
):
    """`rvc convert --f0-method crepe-tiny|fcpe` end to end, on the real trained pitch weights."""
    src = clips / "arctic_a0007.wav"
    seconds = len(wav.read(src)[0]) / wav.read(src)[1]
    out = tmp_path / "out.wav"
    env = {env_var: str(fixtures_dir / "pitch" / weights)}
    model = "v2_f0_40k.pth"
    result = cli(
        "convert", src, out, "-m", ckpts / model, "--f0-method", method, "--seed", 0, *weights_args(model), env=env
    )
    assert result.exit_code == 0, result.output
    x, rate = wav.read(out)
    _check_output(x, rate, seconds=seconds, expected_rate=40000, hop=400)
