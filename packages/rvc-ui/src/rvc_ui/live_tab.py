"""The Live tab: devices, voice, settings, Start/Stop and figures refreshed by a timer; and "Live
from a file". The logic is :class:`rvc_ui.live.LiveSession`'s."""

from __future__ import annotations

from typing import Any

from .app import _model_picker, _page_errors
from .live import LiveSession, audio_devices, figures_markdown

RATES = (16000, 24000, 32000, 44100, 48000)
LIVE_DEFAULTS = {
    "pitch": 0,
    "formant": 0.0,
    "block": 0.25,
    "crossfade": 0.05,
    "extra": 2.5,
    "threshold_db": -60,
    "f0_method": "rmvpe",
    "index_rate": 0.0,
}
SETTING_KEYS = tuple(LIVE_DEFAULTS)


def _settings_controls(gr: Any) -> dict[str, Any]:
    from rvc_f0 import METHODS

    c: dict[str, Any] = {}
    d = LIVE_DEFAULTS
    with gr.Row():
        c["pitch"] = gr.Slider(-24, 24, value=d["pitch"], step=1, label="Pitch (semitones)", elem_id="live-pitch")
        c["formant"] = gr.Slider(-12, 12, value=d["formant"], step=0.5, label="Formant (semitones)")
        c["f0_method"] = gr.Dropdown(list(METHODS), value=d["f0_method"], label="Pitch method", elem_id="live-f0")
    with gr.Row():
        c["block"] = gr.Slider(
            0.02, 1.5, value=d["block"], step=0.01, label="Block (s)", info="latency vs compute headroom"
        )
        c["crossfade"] = gr.Slider(0.01, 0.15, value=d["crossfade"], step=0.01, label="Crossfade (s)")
        c["extra"] = gr.Slider(
            0.05, 5, value=d["extra"], step=0.05, label="Extra context (s)", info="quality vs compute"
        )
    with gr.Row():
        c["threshold_db"] = gr.Slider(-60, 0, value=d["threshold_db"], step=1, label="Silence gate (dB, -60 = off)")
        c["index_rate"] = gr.Slider(
            0, 1, value=d["index_rate"], step=0.05, label="Index rate", info="0 = none; a search per block"
        )
        c["late"] = gr.Radio(
            ["silence", "dry"], value="silence", label="A late block plays", info="silence, or the dry input"
        )
        c["sample_rate"] = gr.Dropdown(list(RATES), value=48000, label="Sample rate (Hz)")
    return c


def _options(values: dict[str, Any]) -> dict[str, Any]:
    opts = {k: values[k] for k in SETTING_KEYS}
    opts["pitch"] = float(opts["pitch"])
    return opts


def _outputs(gr: Any, fig: dict[str, Any]) -> tuple[Any, Any]:
    from .plots import live_figure

    return figures_markdown(fig), live_figure(fig)


def live_tab(gr: Any, session: LiveSession) -> None:
    settings = session.settings
    ins, outs, problem = audio_devices()
    gr.Markdown(
        "Convert a microphone to the voice on the speakers, block by block (as `rvc live`). Latency = block "
        "+ crossfade + 10 ms, plus one block (converted while the next is recorded), plus the device's buffers."
    )
    c = _model_picker(gr, settings, "live")
    with gr.Row():
        in_dev = gr.Dropdown(
            [("default", -1), *ins], value=-1, label="Input device", interactive=not problem, elem_id="live-input"
        )
        out_dev = gr.Dropdown(
            [("default", -1), *outs], value=-1, label="Output device", interactive=not problem, elem_id="live-output"
        )
    gr.Markdown(f"**No audio devices**: {problem}" if problem else "", elem_id="live-devices-status")
    s = _settings_controls(gr)
    with gr.Row():
        start = gr.Button("Start", variant="primary", interactive=not problem, elem_id="live-start")
        stop = gr.Button("Stop", variant="stop", interactive=not problem, elem_id="live-stop")
    status = gr.Markdown("Not running.", elem_id="live-figures")
    plot = gr.Plot(label="Compute per block", show_label=False, elem_id="live-plot")
    timer = gr.Timer(1.0, active=False)
    with gr.Accordion("Live from a file (no sound card needed)", open=problem is not None):
        with gr.Row(equal_height=False):
            clip = gr.Audio(sources=["upload"], type="filepath", label="Clip", elem_id="live-file-input")
            out_audio = gr.Audio(label="Through the live path", type="filepath", interactive=False)
        run = gr.Button("Convert through the live path", elem_id="live-file-button")
        file_status = gr.Markdown(elem_id="live-file-figures")
        file_plot = gr.Plot(show_label=False)

    voice_keys = ("model", "index", "model_file", "index_file")
    setting_keys = (*SETTING_KEYS, "late", "sample_rate")
    inputs = [*(c[k] for k in voice_keys), *(s[k] for k in setting_keys)]

    def _voice(values: tuple[Any, ...]) -> tuple[str, str | None, dict[str, Any]]:
        v = dict(zip((*voice_keys, *setting_keys), values))
        model = v["model_file"] or v["model"] or ""
        index = v["index_file"] or (v["index"] if not v["model_file"] else None) or None
        return model, index, v

    @_page_errors
    def on_start(i: int, o: int, *values: Any) -> tuple[Any, ...]:
        model, index, v = _voice(values)
        fig = session.start(
            model,
            index=index,
            input_device=None if i in (None, -1) else i,
            output_device=None if o in (None, -1) else o,
            sample_rate=int(v["sample_rate"]),
            late=v["late"],
            **_options(v),
        )
        return (*_outputs(gr, fig), gr.Timer(active=True))

    def on_stop() -> tuple[Any, ...]:
        return (*_outputs(gr, session.stop()), gr.Timer(active=False))

    def on_tick() -> tuple[Any, ...]:
        fig = session.figures()
        return (*_outputs(gr, fig), gr.Timer(active=fig["state"] in ("loading", "running")))

    @_page_errors
    def on_file(audio: str | None, *values: Any) -> tuple[Any, ...]:
        model, index, v = _voice(values)
        path, fig = session.run_file(
            audio or "", model, index=index, sample_rate=int(v["sample_rate"]), late=v["late"], **_options(v)
        )
        return (str(path), *_outputs(gr, fig))

    start.click(on_start, inputs=[in_dev, out_dev, *inputs], outputs=[status, plot, timer], concurrency_id="live")
    stop.click(on_stop, outputs=[status, plot, timer], queue=False)
    timer.tick(on_tick, outputs=[status, plot, timer], queue=False)
    run.click(
        on_file,
        inputs=[clip, *inputs],
        outputs=[out_audio, file_status, file_plot],
        concurrency_id="convert",
        concurrency_limit=1,
    )
