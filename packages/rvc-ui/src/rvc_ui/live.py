"""Live conversion for the page (no Gradio): audio devices, one :class:`LiveSession` at a time.

A session runs in a thread of its own: that thread loads the voice, opens the sounddevice stream
(PortAudio calls :meth:`rvc_convert.live.LiveLoop.callback` from its audio thread) and converts
in :meth:`~rvc_convert.live.LiveLoop.serve`, so every MLX call of the session runs on the thread
that loaded the models (``LiveLoop.serve``'s rule). Stop ends ``serve`` and joins the thread.
"Live from a file" goes through the same thread and :func:`rvc_convert.live.run_file`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .actions import UIInputError, _unique, error_message
from .state import Settings

logger = logging.getLogger(__name__)

__all__ = ["PORTAUDIO_HINT", "LiveBusyError", "LiveSession", "audio_devices", "figures_markdown"]

PORTAUDIO_HINT = (
    "Live from devices needs PortAudio and sounddevice: install PortAudio (`apt-get install libportaudio2`, "
    "`brew install portaudio` or `dnf install portaudio`) and `pip install sounddevice`, then restart `rvc ui`; "
    "'Live from a file' below works without a sound card"
)
STREAM_KEYS = ("pitch", "formant", "block", "crossfade", "extra", "threshold_db", "f0_method", "index_rate")
MORE_KEYS = ("rms_mix_rate", "speaker", "seed", "noise_scale")  # accepted, not on the page
Device = int | str | None
Loader = Callable[[str, str | None, str], Any]  # (model, index, f0_method) -> VoiceConverter


class LiveBusyError(UIInputError):
    """Start was pressed while a live session is running."""


def _sounddevice() -> Any:
    """The ``sounddevice`` module, or :class:`UIInputError` with :data:`PORTAUDIO_HINT`."""
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # not installed, or PortAudio missing (loaded on import)
        raise UIInputError(f"{error_message(exc)}. {PORTAUDIO_HINT}") from exc
    return sounddevice


def audio_devices() -> tuple[list[tuple[str, int]], list[tuple[str, int]], str | None]:
    """``(inputs, outputs, problem)``: ``("3: USB mic", 3)`` choices from
    ``sounddevice.query_devices()``; ``problem`` is one readable line when there is no sounddevice,
    no PortAudio or no device (then both lists are empty), else None."""
    try:
        sd = _sounddevice()
        devices = list(sd.query_devices())
    except Exception as exc:  # noqa: BLE001  (PortAudio errors too: the page must still load)
        return (
            [],
            [],
            error_message(exc) if isinstance(exc, UIInputError) else f"{error_message(exc)}. {PORTAUDIO_HINT}",
        )
    ins, outs = [], []
    for i, d in enumerate(devices):
        k = int(d.get("index", i))
        label = f"{k}: {d.get('name', '?')}"
        if d.get("max_input_channels", 0) > 0:
            ins.append((label, k))
        if d.get("max_output_channels", 0) > 0:
            outs.append((label, k))
    if not ins or not outs:
        missing = "input (microphone)" if not ins else "output (speakers)"
        return [], [], f"no audio {missing} device found by PortAudio; 'Live from a file' below works without one"
    return ins, outs, None


class _Stopped(Exception):
    pass


class LiveSession:
    """One live conversion at a time, for the whole page (every browser tab shares it).

    Args:
        settings: the page's settings (extractor weights, output folder).
        load: ``(model, index, f0_method) -> VoiceConverter``; default builds one from ``settings``
            in the session's thread (its own models, not the Convert tab's cache).

    :meth:`start` (devices) and :meth:`run_file` (a clip) raise :class:`LiveBusyError` while a
    session runs; :meth:`figures` may be called from any thread (the page's timer).
    """

    def __init__(self, settings: Settings, *, load: Loader | None = None) -> None:
        self.settings = settings
        self._load = load or self._default_load
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._loop: Any = None
        self._stream: Any = None
        self._state = "idle"
        self._what = ""
        self._error: BaseException | None = None
        self._xruns = 0
        self._device_ms = 0.0
        self._started = 0.0
        self._last: dict[str, Any] | None = None

    def _default_load(self, model: str, index: str | None, f0_method: str) -> Any:
        from rvc_convert import ConvertOptions, VoiceConverter

        s = self.settings
        return VoiceConverter(
            Path(model),
            index=Path(index) if index else None,
            contentvec=s.contentvec,
            rmvpe=s.rmvpe,
            options=ConvertOptions(f0_method=f0_method),
        )

    # --- state ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while a session's thread is alive (loading, converting or stopping)."""
        return self._thread is not None and self._thread.is_alive()

    def _claim(self, what: str, target: Callable[..., None], *args: Any) -> None:
        with self._lock:
            if self.running:
                raise LiveBusyError(f"a live session is already running ({self._what}); press Stop first")
            if not Path(str(args[0] or "")).exists():
                raise UIInputError("no voice model; pick one from the models folder or upload a .pth")
            self._stop.clear()
            self._ready.clear()
            self._loop = self._stream = self._error = self._last = None
            self._state, self._what, self._xruns, self._device_ms = "loading", what, 0, 0.0
            self._started = time.monotonic()
            self._thread = threading.Thread(target=self._main, args=(target, *args), name="rvc-ui-live", daemon=True)
            self._thread.start()

    def _main(self, target: Callable[..., None], *args: Any) -> None:
        try:
            target(*args)
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001  (shown in the page)
            logger.debug("live session failed", exc_info=True)
            self._error = exc.with_traceback(None)  # its frames would keep the models alive
        finally:
            with self._lock:  # the last figures kept; the models are freed with this thread's references
                if self._loop is not None:
                    self._last = _summary(self._loop, self._stream)
                self._loop = self._stream = None
                self._state = "failed" if self._error is not None else "stopped"
            self._ready.set()

    def _stream_for(self, model: str, index: str | None, sample_rate: int, options: dict[str, Any]) -> Any:
        known = (*STREAM_KEYS, *MORE_KEYS)
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise UIInputError(f"unknown live setting(s) {', '.join(unknown)}; expected any of {', '.join(known)}")
        vc = self._load(model, index, options.get("f0_method", "rmvpe"))
        stream = vc.stream(sample_rate=int(sample_rate), **options)
        stream.warmup()  # kernels built before the first real block (GPUs: seconds, it would play late)
        return stream

    # --- devices ----------------------------------------------------------------------------

    def start(
        self,
        model: str | os.PathLike[str],
        *,
        index: str | os.PathLike[str] | None = None,
        input_device: Device = None,
        output_device: Device = None,
        sample_rate: int = 48000,
        late: str = "silence",
        timeout: float = 300.0,
        **options: Any,
    ) -> dict[str, Any]:
        """Start converting ``input_device`` to ``output_device`` (None: the defaults) and return
        once the device runs (or raise what stopped it: no PortAudio, a bad device, a bad setting).

        Args:
            options: :data:`STREAM_KEYS` and :data:`MORE_KEYS` (``VoiceConverter.stream``'s settings:
                seconds, semitones, dB, 0..1 rates, a noise seed).
            late: what a block not converted in time plays: ``"silence"`` or ``"dry"``.
        """
        sd = _sounddevice()  # before the model load: the missing library is the first thing said
        idx = str(index) if index else None
        self._claim(
            "devices", self._run_devices, str(model), idx, sd, input_device, output_device, sample_rate, late, options
        )
        self._ready.wait(timeout)
        if self._error is not None:
            self._thread.join()  # type: ignore[union-attr]
            raise self._error
        return self.figures()

    def _run_devices(
        self,
        model: str,
        index: str | None,
        sd: Any,
        in_dev: Device,
        out_dev: Device,
        sample_rate: int,
        late: str,
        options: dict[str, Any],
    ) -> None:
        from rvc_convert.live import LiveLoop, device_stream

        stream = self._stream_for(model, index, sample_rate, options)
        loop = LiveLoop(stream, late=late)

        def count_xrun() -> None:
            self._xruns += 1

        def tick() -> None:
            if loop.error is not None:
                raise loop.error
            if self._stop.is_set():
                raise _Stopped

        if self._stop.is_set():
            return
        with device_stream(sd, loop, device=(in_dev, out_dev), on_status=count_xrun) as dev:
            self._device_ms = 1000 * float(sum(dev.latency))
            with self._lock:  # stop() sees this loop (and finishes it), or this thread sees the flag
                self._loop, self._stream, self._state = loop, stream, "running"
                stopped = self._stop.is_set()
            self._ready.set()
            if not stopped:
                loop.serve(tick=tick, interval=0.2)  # conversions here, on the thread that loaded the models
        if loop.error is not None:
            raise loop.error

    def stop(self, *, timeout: float = 60.0) -> dict[str, Any]:
        """End the session (the blocks already queued are converted first), join its thread and
        return the final figures. Nothing running: the last figures."""
        with self._lock:
            self._stop.set()
            loop, thread = self._loop, self._thread
        if thread is not None and thread.is_alive():
            if loop is not None:  # finish() may wait for a queue slot: never on the caller's thread
                threading.Thread(target=loop.finish, name="rvc-ui-live-finish", daemon=True).start()
            thread.join(timeout)
        return self.figures()

    # --- a file -----------------------------------------------------------------------------

    def run_file(
        self,
        audio: str | os.PathLike[str],
        model: str | os.PathLike[str],
        *,
        index: str | os.PathLike[str] | None = None,
        sample_rate: int = 48000,
        late: str = "silence",
        **options: Any,
    ) -> tuple[Path, dict[str, Any]]:
        """Convert a clip through the live path (``run_file(pace="fast")``: blocks back to back,
        a block late when its compute exceeds the block period) in the session thread; write
        ``<clip>_<model>_live.wav`` (same length as the clip at ``sample_rate``) to the output
        folder. Returns ``(path, figures)``."""
        if not audio:
            raise UIInputError("no input audio; upload a clip first")
        result: dict[str, Any] = {}
        idx = str(index) if index else None
        self._claim("a file", self._run_file, str(model), idx, str(audio), sample_rate, late, options, result)
        self._thread.join()  # type: ignore[union-attr]
        if self._error is not None:
            raise self._error
        return result["path"], self.figures()

    def _run_file(
        self,
        model: str,
        index: str | None,
        audio: str,
        sample_rate: int,
        late: str,
        options: dict[str, Any],
        result: dict[str, Any],
    ) -> None:
        from rvc_audio import load_audio, save_audio
        from rvc_convert.live import run_file

        x = load_audio(audio, sample_rate=int(sample_rate))  # decoding errors before the model load
        stream = self._stream_for(model, index, sample_rate, options)
        with self._lock:
            self._state = "running"
        compute: list[float] = []
        out, figs = run_file(stream, x, pace="fast", late=late, on_block=lambda k, dt, _: compute.append(dt))
        dst = _unique(self.settings.outputs() / f"{Path(audio).stem}_{Path(model).stem}_live.wav")
        result["path"] = save_audio(dst, out, stream.sample_rate)
        with self._lock:
            self._last = {**figs, "compute_recent_ms": _recent(compute)}

    # --- figures ----------------------------------------------------------------------------

    def figures(self) -> dict[str, Any]:
        """What the page shows: ``state`` (idle, loading, running, stopped, failed), ``source``
        (devices or a file), ``error`` (one line or None), ``xruns``, ``device_latency_ms`` and,
        once a stream exists, :func:`rvc_convert.live.summarize`'s figures plus ``compute_recent_ms``
        (the last 200 blocks' compute in ms)."""
        with self._lock:
            loop, stream, state = self._loop, self._stream, self._state
            last = self._last
        fig: dict[str, Any] = {
            "state": state,
            "source": self._what,
            "error": error_message(self._error) if self._error is not None else None,
            "xruns": self._xruns,
            "device_latency_ms": round(self._device_ms, 2),
            "seconds": round(time.monotonic() - self._started, 1) if self._started else 0.0,
        }
        if loop is not None and stream is not None:
            fig.update(_summary(loop, stream))
        elif last is not None:
            fig.update(last)
        return fig


def _recent(compute: list[float], n: int = 200) -> list[float]:
    return [round(1000 * c, 3) for c in compute[-n:]]


def _summary(loop: Any, stream: Any) -> dict[str, Any]:
    from rvc_convert.live import summarize

    return {**summarize(loop, stream, pace="device"), "compute_recent_ms": _recent(list(loop.compute))}


def figures_markdown(fig: dict[str, Any]) -> str:
    """The figures as a few Markdown lines (latency, compute per block, late/dropped blocks)."""
    head = {
        "idle": "Not running.",
        "loading": "Loading the voice...",
        "running": f"**Running** ({fig['source']}, {fig['seconds']:.0f} s).",
        "stopped": f"Stopped ({fig['source']}).",
        "failed": f"**Failed**: {fig['error']}",
    }[fig["state"]]
    if "algorithmic_latency_ms" not in fig:
        return head
    c = fig["compute_ms"]
    comp = f"p50 {c['p50']:.1f} ms, p99 {c['p99']:.1f} ms" if c["p50"] is not None else "no block yet"
    device = f" + {fig['device_latency_ms']:.0f} ms device buffers" if fig.get("device_latency_ms") else ""
    lines = [
        head,
        f"- latency: {fig['algorithmic_latency_ms']:.0f} ms algorithmic, "
        f"{fig['end_to_end_latency_ms']:.0f} ms with the block being converted{device}",
        f"- compute per {fig['block_ms']:.0f} ms block: {comp}",
        f"- blocks: {fig['blocks']}, late: {fig['late_blocks']}, dropped: {fig['dropped_blocks']}"
        + (f", device over/underruns: {fig['xruns']}" if fig.get("xruns") else ""),
    ]
    return "\n".join(lines)
