"""`rvc index build` then `rvc convert --index` with the index it built (v1 and v2)."""

from __future__ import annotations

import numpy as np
import pytest


def _training_frames(path) -> int:
    """ContentVec frames RVC's index training gets from one file: 16 kHz audio cut as its
    preprocess does (3.7 s pieces starting every 3.4 s, the last piece taking the rest when less
    than 4.0 s remain), ``(len - 400) // 320 + 1`` frames per piece."""
    from rvc_audio import load_audio

    n, step, piece, tail = len(load_audio(path)), 54400, 59200, 4800
    lengths, start = [], 0
    while n - start > piece + tail:
        lengths.append(piece)
        start += step
    lengths.append(n - start)
    return sum((m - 400) // 320 + 1 for m in lengths if m >= 400)


@pytest.mark.parametrize(("version", "model"), [("v2", "v2_f0_40k.pth"), ("v1", "v1_f0_32k.pth")])
def test_build_index_then_convert_with_it(cli, clips, ckpts, weights_args, wav, tmp_path, version, model):
    from rvc_index import FeatureIndex

    voice = tmp_path / "voice"
    voice.mkdir()
    for name in ("arctic_a0007.wav", "speechbrain_LJ050-0131.wav"):
        (voice / name).write_bytes((clips / name).read_bytes())
    (voice / "readme.txt").write_text("ignored")
    cv_args = weights_args(model)
    index = tmp_path / f"voice_{version}.index"
    result = cli("index", "build", voice, "-o", index, "--version", version, cv_args[0], cv_args[1])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(index)
    built = FeatureIndex.load(index)
    dim = 768 if version == "v2" else 256
    assert built.dim == dim
    assert built.ntotal == sum(_training_frames(voice / n) for n in ("arctic_a0007.wav", "speechbrain_LJ050-0131.wav"))
    assert np.isfinite(built.vectors).all() and built.vectors.std() > 0.01

    again = cli("index", "build", voice, "-o", index, "--version", version, cv_args[0], cv_args[1], "-q")
    assert again.exit_code == 1 and "already exists" in again.stderr

    curve = tmp_path / "curve.csv"
    curve.write_text("time_seconds,hz\n0.0,180\n2.0,240\n4.0,0\n")
    out = tmp_path / "out.wav"
    result = cli(
        "convert",
        clips / "arctic_a0007.wav",
        out,
        "-m",
        ckpts / model,
        "--index",
        index,
        "--index-rate",
        0.9,
        "--f0-curve",
        curve,
        "--seed",
        1,
        *cv_args,
    )
    assert result.exit_code == 0, result.output
    x, rate = wav.read(out)
    sr = int(model.split("_")[2][:2]) * 1000
    assert rate == sr and abs(len(x) - 4.0 * sr) <= 3 * sr // 100
    assert np.sqrt(np.mean((x / 32768.0) ** 2)) > 0.01
