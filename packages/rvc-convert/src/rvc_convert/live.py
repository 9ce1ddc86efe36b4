"""Driving a :class:`~rvc_convert.stream.Stream` from an audio device or a file.

:class:`LiveLoop` is what an audio callback calls: it hands each input block to a worker thread
(a bounded queue of preallocated slots) and fills the output with the worker's result for the
previous block, or with silence (``late="silence"``) or the dry input (``late="dry"``) when that
result is not ready: the callback never waits. :func:`run_file` drives the same loop from an
array by a simulated callback, at real-time pace or as fast as possible, and measures it.

Latency of the device loop: the stream's algorithmic latency (``Stream.latency``) plus one block
(block ``k``'s conversion is played by callback ``k + 1``) plus the device's own buffers.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["LiveLoop", "run_file", "summarize"]

LATE_MODES = ("silence", "dry")


class LiveLoop:
    """The audio-callback side of live conversion.

    Args:
        stream: anything with ``process(block) -> block`` and ``block_size`` (a ``Stream``).
        late: what a late block plays: ``"silence"`` or ``"dry"`` (the input block).
        slots: preallocated blocks in flight (input queue bound + 2).
        on_block: called by the worker after each block with ``(index, compute_s, arrival_to_output_s)``.
        clock: seconds (``time.perf_counter``).

    Counters: ``blocks`` (callbacks), ``late`` (callbacks whose block was not ready),
    ``dropped`` (input blocks not converted because the worker was ``slots - 2`` blocks behind),
    ``compute`` / ``arrival_to_output`` (seconds per converted block), ``stages`` (a stream with
    ``stage_seconds``: each converted block's seconds per stage, and ``other`` for the rest).
    """

    def __init__(
        self,
        stream: Any,
        *,
        late: str = "silence",
        slots: int = 4,
        on_block: Callable[[int, float, float], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if late not in LATE_MODES:
            raise ValueError(f"late={late!r}; expected one of {', '.join(LATE_MODES)}")
        self.stream, self.late_mode, self.clock, self.on_block = (
            stream,
            late,
            clock,
            on_block,
        )
        n = int(stream.block_size)
        self.block_size = n
        self._in = np.zeros((slots, n), np.float32)
        self._out = np.zeros((slots, n), np.float32)
        self._arrival = np.zeros(slots)
        self._done = np.full(slots, -1, np.int64)  # which block each output slot holds
        self._q: queue.Queue[int | None] = queue.Queue(maxsize=slots - 2)
        self.blocks = self.late = self.dropped = 0
        self.compute: list[float] = []
        self.arrival_to_output: list[float] = []
        self.stages: dict[str, list[float]] = {}
        stages = getattr(stream, "stage_seconds", None)
        self._last_stages = dict(stages) if stages is not None else {}
        self.error: BaseException | None = None
        self._worker: threading.Thread | None = None

    def start(self) -> LiveLoop:
        self._worker = threading.Thread(target=self._run, name="rvc-live-worker", daemon=True)
        self._worker.start()
        return self

    def stop(self) -> None:
        """Let the worker finish the blocks already queued, then end it."""
        if self._worker is not None:
            self._q.put(None)
            self._worker.join()
            self._worker = None

    def __enter__(self) -> LiveLoop:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while (k := self._q.get()) is not None:
            self._process(k)

    def serve(self, *, tick: Callable[[], None] | None = None, interval: float = 0.5) -> None:
        """Convert queued blocks in the calling thread until :meth:`finish` (the device side runs
        :meth:`callback` in its own thread). MLX's models then run on the thread that loaded
        them: on CUDA, MLX work left on another thread aborted the process at exit. ``tick`` is
        called about every ``interval`` seconds (a status line); exceptions, Ctrl-C included,
        propagate."""
        while True:
            try:
                k = self._q.get(timeout=interval)
            except queue.Empty:
                if tick is not None:
                    tick()
                continue
            if k is None:
                return
            self._process(k)

    def finish(self) -> None:
        """End :meth:`serve` once the blocks already queued are converted (any thread)."""
        self._q.put(None)

    def _process(self, k: int) -> None:
        slots = len(self._in)
        i = k % slots
        t0 = self.clock()
        try:
            y = self.stream.process(self._in[i])
        except BaseException as exc:  # noqa: BLE001  (reported by the caller; the device keeps running)
            self.error = exc
            return
        self._out[i] = y
        t1 = self.clock()
        self._done[i] = k
        self.record(k, t1 - t0, t1 - self._arrival[i])

    def record(self, k: int, compute: float, arrival_to_output: float) -> None:
        """Count block ``k`` as converted (``compute`` and ``arrival_to_output`` seconds), with
        its stages' seconds when the stream keeps ``stage_seconds``, then call ``on_block``."""
        self.compute.append(compute)
        self.arrival_to_output.append(arrival_to_output)
        now = getattr(self.stream, "stage_seconds", None)
        if now is not None:
            last = self._last_stages
            if any(now[s] < last.get(s, 0.0) for s in now):  # the stream was reset in between
                last = {}
            spent = {s: now[s] - last.get(s, 0.0) for s in now}
            spent["other"] = compute - sum(spent.values())
            for s, v in spent.items():
                self.stages.setdefault(s, []).append(v)
            self._last_stages = dict(now)
        if self.on_block is not None:
            self.on_block(k, compute, arrival_to_output)

    def callback(self, indata: np.ndarray | None, outdata: np.ndarray) -> None:
        """One device period: ``indata`` ``(block,)`` in (None: nothing more to convert),
        ``outdata`` ``(block,)`` filled with the previous block's conversion. Never blocks."""
        k = self.blocks
        slots = len(self._in)
        i = k % slots
        if indata is not None:
            self._in[i] = indata
            self._arrival[i] = self.clock()
            self._done[i] = -1
            try:
                self._q.put_nowait(k)
            except queue.Full:
                self.dropped += 1
            self.blocks += 1
        j = (k - 1) % slots  # the previous block's conversion plays now
        if k > 0 and self._done[j] == k - 1:
            outdata[:] = self._out[j]
        else:
            if k > 0:
                self.late += 1
            if self.late_mode == "dry" and k > 0:
                outdata[:] = self._in[j]
            else:
                outdata[:] = 0


def summarize(loop: LiveLoop, stream: Any, *, pace: str) -> dict[str, Any]:
    """The figures of a run: latencies in ms, compute percentiles, late/dropped blocks, and (a
    :class:`~rvc_convert.stream.Stream`) ``stage_ms``: mean wall ms per block of content features,
    index blending, pitch and the synthesizer, and ``stage_pct_ms``: each of those and ``other``
    (the rest of a block: resampling, RMS mix, SOLA) as ``[p50, p99, max]`` ms per block."""
    comp = np.asarray(loop.compute) * 1000
    a2o = np.asarray(loop.arrival_to_output) * 1000

    def pct(v: np.ndarray, q: float) -> float | None:
        return round(float(np.percentile(v, q)), 2) if v.size else None

    block_ms = 1000 * loop.block_size / stream.sample_rate
    stages = getattr(stream, "stage_seconds", None)
    done = getattr(stream, "blocks", 0)
    fig: dict[str, Any] = {
        "pace": pace,
        "sample_rate": stream.sample_rate,
        "block_ms": round(block_ms, 2),
        "blocks": loop.blocks,
        "algorithmic_latency_ms": round(1000 * stream.latency, 2),
        "end_to_end_latency_ms": round(1000 * stream.latency + block_ms, 2),
        "compute_ms": {
            "p50": pct(comp, 50),
            "p95": pct(comp, 95),
            "p99": pct(comp, 99),
            "max": round(float(comp.max()), 2) if comp.size else None,
        },
        "arrival_to_output_ms": {
            "p50": pct(a2o, 50),
            "p95": pct(a2o, 95),
            "max": round(float(a2o.max()), 2) if a2o.size else None,
        },
        "late_blocks": loop.late,
        "dropped_blocks": loop.dropped,
    }
    if stages and done:  # mean wall ms per block of each stage (Stream.stage_seconds)
        fig["stage_ms"] = {k: round(1000 * v / done, 2) for k, v in stages.items()}
    if loop.stages:  # where a slow block's time went: each stage's p50 / p99 / max ms per block
        fig["stage_pct_ms"] = {
            k: [pct(np.asarray(v) * 1000, 50), pct(np.asarray(v) * 1000, 99), round(1000 * max(v), 2)]
            for k, v in loop.stages.items()
        }
    return fig


def device_stream(
    sd: Any,
    loop: LiveLoop,
    *,
    device: tuple[Any, Any],
    on_status: Callable[[], None] | None = None,
    on_played: Callable[[np.ndarray], None] | None = None,
) -> Any:
    """A sounddevice ``Stream`` (not started: use it as a context manager) whose callback feeds
    ``loop`` one block per period: the microphone (mixed to mono) in, the previous block's
    conversion out on every output channel (one or two). ``device`` ``(input, output)``;
    ``on_status()`` is called for each over/underrun PortAudio reports, ``on_played(block)`` with
    each block played (a buffer reused next period: copy it to keep it)."""
    n = loop.block_size
    out_info = sd.query_devices(device[1], "output")
    channels = max(1, min(2, int(out_info["max_output_channels"])))
    mono = np.zeros(n, np.float32)

    def callback(indata: Any, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        if status and on_status is not None:
            on_status()
        if frames != n:  # PortAudio honours blocksize; anything else is played as silence
            outdata[:] = 0
            return
        loop.callback(indata.mean(axis=1) if indata.shape[1] > 1 else indata[:, 0], mono)
        outdata[:] = mono[:, None]
        if on_played is not None:
            on_played(mono)

    return sd.Stream(
        samplerate=loop.stream.sample_rate,
        blocksize=n,
        device=device,
        channels=(1, channels),
        dtype="float32",
        latency="low",
        callback=callback,
    )


def run_file(
    stream: Any,
    audio: np.ndarray,
    *,
    pace: str = "realtime",
    late: str = "silence",
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.perf_counter,
    on_block: Callable[[int, float, float], None] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Convert ``audio`` (``(N,)`` float at ``stream.sample_rate``) as a device would, block by block.

    ``pace="realtime"``: a simulated callback every block period feeds a :class:`LiveLoop`
    (worker thread, late blocks become silence or the dry block, as on a device).
    ``pace="fast"``: blocks are converted back to back (no waiting); a block is counted late
    when its compute exceeds the block period, and its converted audio is kept.

    Returns ``(out, figures)``: ``out`` ``(N,)`` float32, block ``k``'s conversion at block
    ``k``'s place (the device plays it one block later), and :func:`summarize`'s figures.
    """
    if pace not in ("realtime", "fast"):
        raise ValueError(f"pace={pace!r}; expected 'realtime' or 'fast'")
    x = np.asarray(audio, np.float32)
    n = int(stream.block_size)
    blocks = -(-len(x) // n)
    padded = np.zeros((blocks + 1) * n, np.float32)
    padded[: len(x)] = x
    out = np.zeros_like(padded)
    loop = LiveLoop(stream, late=late, on_block=on_block, clock=clock)
    period = n / stream.sample_rate
    if pace == "fast":
        for k in range(blocks):
            t0 = clock()
            out[k * n : (k + 1) * n] = stream.process(padded[k * n : (k + 1) * n])
            dt = clock() - t0
            loop.blocks += 1
            loop.late += dt > period
            loop.record(k, dt, dt)
    else:

        def device() -> None:  # the simulated audio callback: NumPy only, on its own thread
            start = clock()
            try:
                for k in range(blocks + 1):  # one more callback plays the last block
                    wait = start + (k + 1) * period - clock()  # block k is complete at the end of its period
                    if wait > 0:
                        sleep(wait)
                    dst = out[(k - 1) * n : k * n] if k > 0 else np.zeros(n, np.float32)
                    loop.callback(padded[k * n : (k + 1) * n] if k < blocks else None, dst)
            finally:
                loop.finish()

        feeder = threading.Thread(target=device, name="rvc-live-device", daemon=True)
        feeder.start()
        loop.serve()  # conversions on this thread, where the models were loaded
        feeder.join()
        if loop.error is not None:
            raise loop.error
    return out[: len(x)], summarize(loop, stream, pace=pace)
