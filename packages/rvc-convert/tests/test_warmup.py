"""rvc_convert.warmup: the conversions it runs are the chunks the pipeline cuts (a spy on the
synthesizer calls; no timing)."""

from __future__ import annotations

import pytest

from rvc_convert import ConvertOptions, VoiceConverter
from rvc_convert.stub import StubEmbedder
from rvc_convert.warmup import WarmupStep, warmup, warmup_plan


class SpySynth:
    """The synthesizer, recording the frame count of every call."""

    def __init__(self, synth):
        self._synth, self.frames = synth, []

    def __getattr__(self, name):
        return getattr(self._synth, name)

    def __call__(self, feats, *args, **kwargs):
        self.frames.append(int(feats.shape[1]))
        return self._synth(feats, *args, **kwargs)


def test_plan_follows_the_presets():
    short, cut = warmup_plan(seconds=[2.0, 42.0])
    assert short == WarmupStep(
        2.0, (2 * 16000 + 2 * 16000,), (398,)
    )  # 2 x 199 content frames  # one chunk, 1 s reflect pad each side
    assert len(cut.chunks) == 2  # 42 s > x_max 41 s: cut near 38 s
    assert sum(cut.chunks) - 2 * 160 == 42 * 16000 + 2 * 2 * 16000 - 160  # the two chunks overlap by 2 t_pad + 160
    assert [s.seconds for s in warmup_plan()] == [10.0, 40.5]  # default: 10 s and just under x_max
    assert warmup_plan(seconds=[2.0], preset="fp16")[0].chunks == (2 * 16000 + 2 * 3 * 16000,)
    with pytest.raises(ValueError, match="positive"):
        warmup_plan(seconds=[0.0])


def test_warmup_runs_the_planned_shapes(fixtures_dir):
    vc = VoiceConverter(
        fixtures_dir / "reference" / "checkpoints" / "v2_nof0_32k.pth",
        embedder=StubEmbedder(),
        options=ConvertOptions(preset="lowmem"),
    )  # cut above 32 s
    spy = SpySynth(vc.synth)
    vc.synth = spy
    seen = []
    steps = warmup(vc, seconds=[1.0, 33.0], progress=lambda done, total, step: seen.append((done, total, step)))
    assert steps == warmup_plan(seconds=[1.0, 33.0], preset="lowmem")
    assert [(d, t) for d, t, _ in seen] == [(1, 2), (2, 2)] and [s for *_, s in seen] == steps
    planned = [f for s in steps for f in s.frames]
    assert len(spy.frames) == len(planned) == 3
    assert spy.frames == planned  # the synthesizer ran exactly the planned shapes


def test_warmup_converts_twice_on_gpus(fixtures_dir, monkeypatch, tmp_path):
    """On a GPU plan each length is converted twice: the pipeline compiles a chunk length's
    graphs when it repeats, so the second conversion builds those kernels too; then the kernel
    folder is marked (``rvc_runtime.mark_kernels_built``: later processes compile)."""
    from dataclasses import replace

    import mlx.core as mx

    monkeypatch.setenv("MLX_PTX_CACHE_DIR", str(tmp_path))

    vc = VoiceConverter(fixtures_dir / "reference" / "checkpoints" / "v2_nof0_32k.pth", embedder=StubEmbedder())
    calls = []
    monkeypatch.setattr(vc, "convert", lambda audio, sample_rate: calls.append(len(audio)))
    warmup(vc, seconds=[1.0, 2.0])
    assert calls == [16000, 32000] and not list(tmp_path.iterdir())  # the CPU: nothing marked
    calls.clear()
    vc.backends = replace(vc.backends, device="gpu")
    warmup(vc, seconds=[1.0, 2.0])
    assert calls == [16000, 16000, 32000, 32000]
    assert [p.name for p in tmp_path.iterdir()] == [f"compiled-by-rvc-warmup-mlx-{mx.__version__}"]


def test_warmup_warms_live_streams(fixtures_dir, monkeypatch):
    """``live_blocks``: after the conversions, a stream per block size is made with the
    converter's defaults and warmed (``Stream.warmup``: its blocks run, then it is reset)."""
    from rvc_convert.stream import Stream

    vc = VoiceConverter(fixtures_dir / "reference" / "checkpoints" / "v2_nof0_32k.pth", embedder=StubEmbedder())
    warmed = []
    real = Stream.warmup

    def spy(self, blocks=2):
        real(self, blocks)
        warmed.append((self.block_size, self.sample_rate, self.blocks))

    monkeypatch.setattr(Stream, "warmup", spy)
    steps = warmup(vc, seconds=[1.0], live_blocks=[0.2, 0.1])
    assert len(steps) == 1 and warmed == [(9600, 48000, 0), (4800, 48000, 0)]


def test_warmup_without_a_model_warms_live_streams_on_the_bench_models(monkeypatch):
    """``converter=None``: the random full-size models, and the live stream over them estimates
    pitch with the random RMVPE (no weights file needed)."""
    from rvc_convert.stream import Stream

    seen = []
    monkeypatch.setattr(Stream, "warmup", lambda self, blocks=2: seen.append((self.block_size, self.f0_fn)))
    warmup(None, seconds=[0.5], live_blocks=[0.25])
    assert len(seen) == 1 and seen[0][0] == 12000 and seen[0][1] is not None
