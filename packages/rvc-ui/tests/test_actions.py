"""The page's functions (rvc_ui.actions) against the library they call: same samples, same errors."""

from __future__ import annotations

import pickle
import wave
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rvc_ui import ConverterCache, actions

OPTS = {"f0_method": "pm", "pitch": 3, "seed": 0}  # pm: cheap and deterministic


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()


def test_convert_clip_is_the_library_conversion(shared_cache, clip, models_dir, contentvec_v1, rmvpe_random):
    from rvc_audio import load_audio
    from rvc_convert import VoiceConverter
    from rvc_f0 import extract_f0

    model = models_dir / "v1_f0_40k.pth"
    conv = actions.convert_clip(shared_cache, clip, model=model, **OPTS)

    x = load_audio(clip, sample_rate=16000)
    expected, rate = VoiceConverter(model, contentvec=contentvec_v1, rmvpe=rmvpe_random).convert(
        x, sample_rate=16000, **OPTS
    )
    assert conv.sample_rate == rate == 40000
    np.testing.assert_array_equal(conv.output, expected)
    np.testing.assert_array_equal(conv.input_16k, x)
    written, wrate = _read_wav(conv.path)  # PCM16 wav: the int16 samples verbatim
    assert wrate == 40000 and conv.path.name == "arctic_1s_v1_f0_40k.wav"
    np.testing.assert_array_equal(written, expected)
    # the picture's curves: the input's pm estimate, and the target 3 semitones up (unvoiced interpolated)
    f0 = extract_f0(x, method="pm")
    np.testing.assert_array_equal(conv.f0_input, f0)
    voiced = f0 > 0
    assert voiced.sum() > 20
    np.testing.assert_allclose(conv.f0_target[voiced], f0[voiced] * 2 ** (3 / 12), rtol=1e-6)
    assert conv.f0_target.min() > 50  # gaps filled


def test_outputs_are_numbered_never_overwritten_and_voice_loads_once(shared_cache, clip, models_dir):
    model = models_dir / "v1_nof0_32k.pth"
    before = shared_cache.loads
    a = actions.convert_clip(shared_cache, clip, model=model, output_format="flac", seed=1)
    b = actions.convert_clip(shared_cache, clip, model=model, output_format="flac", seed=1)
    assert (a.path.name, b.path.name) == ("arctic_1s_v1_nof0_32k.flac", "arctic_1s_v1_nof0_32k-2.flac")
    assert shared_cache.loads == before + 1  # the second conversion reused the loaded voice
    assert shared_cache.get(model) is shared_cache.get(str(model))
    assert a.f0_input is None and a.f0_target is None  # no pitch in this model: no F0 picture
    from rvc_audio import load_audio

    np.testing.assert_array_equal(load_audio(a.path, sample_rate=32000), load_audio(b.path, sample_rate=32000))
    assert len(a.output) == len(b.output) and abs(len(a.output) / 32000 - len(a.input_16k) / 16000) < 0.03


def test_cache_keeps_at_most_max_loaded(settings, models_dir):
    cache = ConverterCache(settings.__class__(**{**settings.__dict__, "max_loaded": 1}))
    first = cache.get(models_dir / "v1_nof0_32k.pth")
    cache.get(models_dir / "singer" / "singer.pth")
    assert cache.get(models_dir / "v1_nof0_32k.pth") is not first  # dropped, loaded again
    assert cache.loads == 3


def test_errors_are_one_readable_line(shared_cache, clip, models_dir, tmp_path):
    from rvc_audio import RVCAudioError
    from rvc_convert import RVCConvertError

    model = models_dir / "v1_f0_40k.pth"
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
    with pytest.raises(RVCAudioError) as err:
        actions.convert_clip(shared_cache, bad, model=model)
    msg = actions.error_message(err.value)
    assert "corrupt.wav" in msg and "\n" not in msg and "Traceback" not in msg
    with pytest.raises(RVCConvertError, match="f0_method='nope'"):
        actions.convert_clip(shared_cache, clip, model=model, f0_method="nope")
    with pytest.raises(actions.UIInputError, match="no input audio"):
        actions.convert_clip(shared_cache, None, model=model)
    with pytest.raises(actions.UIInputError, match="no voice model"):
        actions.convert_clip(shared_cache, clip, model=None)
    assert actions.error_message(ValueError("first line\nsecond")) == "first line"
    assert actions.error_message(KeyError()) == "KeyError"


def test_models_folder_listing(models_dir):
    import rvc_synth

    found = actions.find_models(models_dir)
    assert [p.relative_to(models_dir).as_posix() for p in found] == [
        "singer/singer.pth",
        "v1_f0_40k.pth",
        "v1_nof0_32k.pth",
    ]
    rows = actions.model_rows(models_dir)
    for row, path in zip(rows, found):
        info = rvc_synth.load(path).info
        assert row[:5] == [
            path.relative_to(models_dir).as_posix(),
            "v1",
            info.sample_rate,
            "yes" if info.has_f0 else "no",
            info.n_speakers,
        ]
        assert row[5] == f"{path.stat().st_size / 1e6:.1f} MB"
    assert [r[2] for r in rows] == [48000, 40000, 32000]
    idx = [models_dir / "singer" / "singer.index", models_dir / "added_IVF12_Flat_v1_f0_40k_v1.index"]
    assert actions.matching_index(found[0], idx) == idx[0]
    assert actions.matching_index(found[1], idx) == idx[1]
    assert actions.matching_index(found[2], idx) is None
    assert actions.find_models(models_dir / "absent") == []


def test_import_model_safe_reader(models_dir, tmp_path):
    import rvc_synth
    from rvc_synth import UnsafeCheckpointError

    dst, row = actions.import_model(models_dir / "v1_f0_40k.pth", tmp_path / "mine", name="myvoice")
    assert dst == tmp_path / "mine" / "myvoice.pth"
    assert dst.read_bytes() == (models_dir / "v1_f0_40k.pth").read_bytes()
    assert row[:4] == ["myvoice.pth", "v1", 40000, "yes"] and row[4] == rvc_synth.load(dst).info.n_speakers
    with pytest.raises(FileExistsError, match="already exists"):
        actions.import_model(models_dir / "v1_f0_40k.pth", tmp_path / "mine", name="myvoice")

    class Evil:
        def __reduce__(self):
            import builtins

            return (builtins.eval, ("__import__('os').system('true')",))

    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"weight": Evil()}, protocol=2))
    with pytest.raises(UnsafeCheckpointError) as err:
        actions.import_model(evil, tmp_path / "mine")
    assert "eval" in actions.error_message(err.value)
    assert not (tmp_path / "mine" / "evil.pth").exists()


def test_batch_zip_and_folder(shared_cache, clip, models_dir, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio at all")
    inputs = [clip, bad, clip]
    model = models_dir / "v1_nof0_32k.pth"
    seen = []
    rows, archive = actions.convert_batch(
        shared_cache, inputs, model=model, seed=0, progress=lambda d, t: seen.append((d, t))
    )
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert [r[0] for r in rows] == ["arctic_1s.wav", "broken.wav", "arctic_1s.wav"]
    assert [r[2] for r in rows] == ["arctic_1s_v1_nof0_32k.wav", "", "arctic_1s_v1_nof0_32k-2.wav"]
    assert [r[1] for r in rows][::2] == ["ok", "ok"] and rows[1][1].startswith("error: ") and "broken.wav" in rows[1][1]
    assert archive.suffix == ".zip"
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == sorted([rows[0][2], rows[2][2]])
        data = z.read(rows[0][2])
    # the zipped file is the library's conversion of that clip
    from rvc_audio import load_audio

    expected, _ = shared_cache.get(model).convert(load_audio(clip, sample_rate=16000), sample_rate=16000, seed=0)
    (tmp_path / "a.wav").write_bytes(data)
    np.testing.assert_array_equal(_read_wav(tmp_path / "a.wav")[0], expected)
    assert rows[0][3] == round(len(expected) / 32000, 2)

    folder = tmp_path / "takes"
    folder.mkdir()
    (folder / "one.wav").write_bytes((clip).read_bytes())
    (folder / "notes.txt").write_text("not audio")
    found = actions.batch_inputs(None, str(folder))
    assert found == [folder / "one.wav"]
    rows, where = actions.convert_batch(
        shared_cache, found, model=model, output_dir=str(tmp_path / "conv"), output_format="mp3"
    )
    assert where == tmp_path / "conv" and rows[0][:3] == ["one.wav", "ok", "one_v1_nof0_32k.mp3"]
    assert (where / "one_v1_nof0_32k.mp3").stat().st_size > 1000
    with pytest.raises(actions.UIInputError, match="not a folder"):
        actions.batch_inputs([], str(tmp_path / "nowhere"))


def test_build_index_from_uploads_then_convert_with_it(settings, clip, clips, tmp_path):
    from rvc_index import FeatureIndex

    seen = []
    dst = actions.build_index(
        settings,
        [clip, clips / "vocadito_10.wav"],
        name="myvoice",
        version="v1",
        progress=lambda d, t: seen.append((d, t)),
    )
    assert dst == settings.models_dir / "myvoice.index" and seen == [(1, 2), (2, 2)]
    try:
        idx = FeatureIndex.load(dst)
        assert idx.dim == 256 and idx.ntotal > 100
        assert actions.find_indexes(settings.models_dir) == [dst]
        with pytest.raises(FileExistsError):
            actions.build_index(settings, [clip], name="myvoice", version="v1")
        cache = ConverterCache(settings)
        model = settings.models_dir / "v1_nof0_32k.pth"
        plain = actions.convert_clip(cache, clip, model=model, seed=0, index_rate=1.0)
        indexed = actions.convert_clip(cache, clip, model=model, index=dst, seed=0, index_rate=1.0)
        assert cache.loads == 2 and len(plain.output) == len(indexed.output)
        assert not np.array_equal(plain.output, indexed.output)  # the index changed the features
    finally:
        dst.unlink()


def test_weights_rows_and_local_host(settings):
    rows = {r[0]: r for r in actions.weights_rows(settings)}
    assert rows["contentvec"] == ["contentvec", "ok (--contentvec)", str(settings.contentvec)]
    assert rows["rmvpe"] == ["rmvpe", "ok (--rmvpe)", str(settings.rmvpe)]
    from rvc_ui import is_local_host

    assert [is_local_host(h) for h in ("127.0.0.1", "localhost", "::1", "127.0.1.1")] == [True] * 4
    assert [is_local_host(h) for h in ("0.0.0.0", "192.168.1.5", "myhost", "::")] == [False] * 4
