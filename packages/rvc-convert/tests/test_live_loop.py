"""The device loop (``LiveLoop``) and the file driver (``run_file``) with a fake stream: block
pairing, late blocks (silence or dry), dropped blocks, never waiting in the callback."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from rvc_convert.live import LiveLoop, run_file


class FakeStream:
    """Doubles each block; ``gates[k]`` (an Event) holds block ``k`` until set."""

    sample_rate, block_size, latency = 1000, 10, 0.03

    def __init__(self) -> None:
        self.calls = self.entered = 0
        self.gates: dict[int, threading.Event] = {}

    def process(self, x: np.ndarray) -> np.ndarray:
        self.entered += 1
        gate = self.gates.get(self.calls)
        if gate is not None:
            assert gate.wait(30)
        self.calls += 1
        return x * 2


def _wait(cond, what: str) -> None:
    ev = threading.Event()
    for _ in range(3000):
        if cond():
            return
        ev.wait(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("late", ["silence", "dry"])
def test_callback_pairs_blocks_and_never_waits(late):
    st = FakeStream()
    st.gates[1] = threading.Event()
    blocks = [np.full(10, k + 1, np.float32) for k in range(8)]
    out = np.empty(10, np.float32)
    with LiveLoop(st, late=late, slots=4) as loop:
        loop.callback(blocks[0], out)
        assert (out == 0).all() and loop.late == 0  # nothing converted before the first block
        _wait(lambda: st.calls == 1, "block 0")
        loop.callback(blocks[1], out)
        assert (out == 2).all()  # block 0's conversion plays during block 1
        _wait(lambda: st.entered == 2, "the worker to take block 1")
        # block 1 is stuck in the worker: the callback still returns, with silence or the dry block
        loop.callback(blocks[2], out)
        assert loop.late == 1
        assert (out == (blocks[1] if late == "dry" else 0)).all()
        loop.callback(blocks[3], out)  # queue: blocks 2, 3 (bound slots - 2 = 2)
        loop.callback(blocks[4], out)  # full: block 4 is dropped
        assert loop.dropped == 1 and loop.late == 3
        st.gates[1].set()
        _wait(lambda: st.calls == 4, "blocks 1-3")
        loop.callback(blocks[5], out)
        assert (out == 0 if late == "silence" else out == blocks[4]).all()  # block 4 was never converted
        _wait(lambda: st.calls == 5, "block 5")
        loop.callback(blocks[6], out)
        assert (out == 12).all()
    assert loop.blocks == 7 and len(loop.compute) == 6  # every block but the dropped one (stop drains the queue)


def test_run_file_realtime_pace_with_a_simulated_clock():
    st = FakeStream()
    now = [0.0]
    sleeps = [0]

    def sleep(dt: float) -> None:  # the simulated device period: the worker has caught up by then
        k = sleeps[0]
        if k == 5:
            st.gates[3].set()  # block 3 held until after callback 4: late
        if k != 4:
            _wait(lambda: st.calls >= k, f"block {k - 1}")
        sleeps[0] += 1
        now[0] += dt

    st.gates[3] = threading.Event()
    x = np.arange(1, 96, dtype=np.float32)  # 9.5 blocks
    out, fig = run_file(st, x, pace="realtime", sleep=sleep, clock=lambda: now[0], late="dry")
    assert out.shape == x.shape
    want = 2 * x
    want[30:40] = x[30:40]  # the late block plays dry
    assert np.array_equal(out, want)
    assert (fig["blocks"], fig["late_blocks"], fig["dropped_blocks"]) == (10, 1, 0)
    assert fig["algorithmic_latency_ms"] == 30 and fig["end_to_end_latency_ms"] == 40


def test_run_file_fast_counts_blocks_over_budget():
    st = FakeStream()
    ticks = iter(np.arange(0, 100, 0.004))  # each clock read 4 ms later: compute 4 ms per block (budget 10)
    out, fig = run_file(st, np.ones(35, np.float32), pace="fast", clock=lambda: float(next(ticks)))
    assert np.array_equal(out, np.full(35, 2, np.float32))
    assert fig["blocks"] == 4 and fig["late_blocks"] == 0 and fig["compute_ms"]["p50"] == pytest.approx(4)
    with pytest.raises(ValueError, match="pace"):
        run_file(st, out, pace="slow")


class StagedStream(FakeStream):
    """Spends fake stage seconds per block (block ``k``: pitch ``k`` ms, synth 2 ms) on a fake clock."""

    def __init__(self, clock: list[float]) -> None:
        super().__init__()
        self.clock = clock
        self.stage_seconds = {"f0": 0.0, "synth": 0.0}

    def process(self, x: np.ndarray) -> np.ndarray:
        f0, synth = self.calls / 1000, 0.002
        self.stage_seconds["f0"] += f0
        self.stage_seconds["synth"] += synth
        self.clock[0] += f0 + synth + 0.0005  # 0.5 ms outside the stages
        return super().process(x)

    def reset(self) -> None:
        self.stage_seconds = dict.fromkeys(self.stage_seconds, 0.0)


def test_figures_split_each_block_by_stage():
    """``stage_pct_ms``: each stage's p50 / p99 / max per block, ``other`` the rest of the block;
    stage seconds from before the run and a reset in between are not counted."""
    now = [0.0]
    st = StagedStream(now)
    st.process(np.zeros(10, np.float32))  # before the run: f0 0 ms, synth 2 ms
    st.stage_seconds["f0"] += 5.0  # (and time spent elsewhere)
    _, fig = run_file(st, np.zeros(100, np.float32), pace="fast", clock=lambda: now[0])
    pct = fig["stage_pct_ms"]
    f0 = np.arange(1, 11)  # blocks 1..10 of the stream: 1..10 ms of pitch
    assert pct["f0"] == [round(float(np.percentile(f0, 50)), 2), round(float(np.percentile(f0, 99)), 2), 10.0]
    assert pct["synth"] == [2.0, 2.0, 2.0]
    assert pct["other"] == pytest.approx([0.5, 0.5, 0.5], abs=1e-6)
    st.reset()  # a reset between runs: the next run's first block is counted from zero
    _, fig = run_file(st, np.zeros(10, np.float32), pace="fast", clock=lambda: now[0])
    assert fig["stage_pct_ms"]["f0"] == [11.0, 11.0, 11.0]
    loop = LiveLoop(st)  # a reset during a run: that block is counted from zero
    st.process(np.zeros(10, np.float32))  # 12 ms
    loop.record(0, 0.015, 0.015)
    st.reset()
    st.process(np.zeros(10, np.float32))  # 13 ms
    loop.record(1, 0.016, 0.016)
    assert loop.stages["f0"] == pytest.approx([0.012, 0.013])
