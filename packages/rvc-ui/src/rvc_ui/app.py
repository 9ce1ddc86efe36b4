"""The Gradio page: tabs laid out over :mod:`rvc_ui.actions` (the page holds no logic of its own).

Each tab is built by one ``_*_tab`` function (the Live tab's is in :mod:`rvc_ui.live_tab`); a new
tab is one more builder in :func:`build_app`.
"""

from __future__ import annotations

import functools
import html
import ipaddress
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import actions
from .live import LiveSession
from .state import ConverterCache, Settings

logger = logging.getLogger(__name__)

__all__ = ["build_app", "is_local_host", "launch"]

TITLE = "RVC voice conversion"
DEFAULTS = {
    "pitch": 0,
    "f0_method": "rmvpe",
    "index_rate": 0.75,
    "protect": 0.33,
    "rms_mix_rate": 0.25,
    "filter_radius": 3,
}


def is_local_host(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine (a loopback address)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _page_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn``; any exception becomes one readable message in the page (``gr.Error``), the
    traceback going to the server's log only."""
    import gradio as gr

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:
            logger.debug("%s failed", fn.__name__, exc_info=True)
            raise gr.Error(html.escape(actions.error_message(exc)), duration=None, print_exception=False) from None

    return wrapper


def _chunks(progress: Any, what: str) -> Callable[[int, int], None]:
    return lambda done, total: progress((done, total), desc=f"{what} {done}/{total}", unit=what)


# --- shared controls ---------------------------------------------------------------------------------


def _model_choices(settings: Settings) -> list[tuple[str, str]]:
    root = settings.models_dir
    return [(str(p.relative_to(root)), str(p)) for p in actions.find_models(root)]


def _index_choices(settings: Settings) -> list[tuple[str, str]]:
    root = settings.models_dir
    return [("none", "")] + [(str(p.relative_to(root)), str(p)) for p in actions.find_indexes(root)]


def _model_picker(gr: Any, settings: Settings, prefix: str) -> dict[str, Any]:
    """Model and index pickers: the models folder (with Refresh; a voice picks its index), or an upload."""
    models = _model_choices(settings)
    first = models[0][1] if models else None
    idx = actions.matching_index(first, actions.find_indexes(settings.models_dir)) if first else None
    c: dict[str, Any] = {}
    with gr.Row():
        c["model"] = gr.Dropdown(
            models,
            value=first,
            label="Voice model",
            info=f"from {settings.models_dir}",
            elem_id=f"{prefix}-model",
            scale=3,
        )
        c["index"] = gr.Dropdown(
            _index_choices(settings), value=str(idx) if idx else "", label="Index", elem_id=f"{prefix}-index", scale=3
        )
        c["refresh"] = gr.Button("Refresh", size="sm", scale=1, elem_id=f"{prefix}-refresh")
    with gr.Accordion("Or upload a model", open=False), gr.Row():
        c["model_file"] = gr.File(label="Model (.pth)", file_types=[".pth"], elem_id=f"{prefix}-model-file")
        c["index_file"] = gr.File(label="Index (.index)", file_types=[".index"], elem_id=f"{prefix}-index-file")

    def refresh() -> tuple[Any, Any]:
        return (gr.Dropdown(choices=_model_choices(settings)), gr.Dropdown(choices=_index_choices(settings)))

    def pick_index(model: str | None) -> Any:
        found = actions.matching_index(model, actions.find_indexes(settings.models_dir)) if model else None
        return gr.Dropdown(value=str(found) if found else "")

    c["refresh"].click(refresh, outputs=[c["model"], c["index"]], queue=False)
    c["model"].change(pick_index, inputs=c["model"], outputs=c["index"], queue=False)
    return c


def _voice_controls(gr: Any, settings: Settings, prefix: str) -> dict[str, Any]:
    """:func:`_model_picker` and the conversion settings."""
    c = _model_picker(gr, settings, prefix)
    with gr.Row():
        c["pitch"] = gr.Slider(
            -24,
            24,
            value=DEFAULTS["pitch"],
            step=1,
            label="Pitch (semitones)",
            info="+12 = one octave up (male to female), -12 = down",
            elem_id=f"{prefix}-pitch",
        )
        from rvc_f0 import METHODS

        c["f0_method"] = gr.Dropdown(
            list(METHODS), value=DEFAULTS["f0_method"], label="Pitch method", elem_id=f"{prefix}-f0-method"
        )
        c["output_format"] = gr.Dropdown(
            list(actions.FORMATS), value="wav", label="Output format", elem_id=f"{prefix}-format"
        )
    with gr.Accordion("More settings", open=False):
        with gr.Row():
            c["index_rate"] = gr.Slider(
                0,
                1,
                value=DEFAULTS["index_rate"],
                step=0.05,
                label="Index rate",
                info="how much of the voice's index replaces the input's timbre",
            )
            c["protect"] = gr.Slider(
                0,
                0.5,
                value=DEFAULTS["protect"],
                step=0.01,
                label="Protect",
                info="keeps breaths and consonants (0.5 = off)",
            )
        with gr.Row():
            c["rms_mix_rate"] = gr.Slider(
                0,
                1,
                value=DEFAULTS["rms_mix_rate"],
                step=0.05,
                label="Volume envelope",
                info="1 = the converted loudness, 0 = the input's",
            )
            c["filter_radius"] = gr.Slider(
                0,
                7,
                value=DEFAULTS["filter_radius"],
                step=1,
                label="Filter radius",
                info="harvest's median filter (3 or more: on)",
            )
    return c


OPTION_KEYS = ("pitch", "f0_method", "index_rate", "protect", "rms_mix_rate", "filter_radius")
VOICE_KEYS = ("model", "index", "model_file", "index_file", "output_format", *OPTION_KEYS)


def _voice(values: dict[str, Any]) -> tuple[str | None, str | None, dict[str, Any]]:
    """(model path, index path or None, ConvertOptions fields) from the controls' values; an
    uploaded model/index wins over the folder's."""
    model = values["model_file"] or values["model"]
    index = values["index_file"] or (values["index"] if not values["model_file"] else None) or None
    opts = {k: values[k] for k in OPTION_KEYS}
    opts["filter_radius"] = int(opts["filter_radius"])
    return model, index, opts


# --- tabs --------------------------------------------------------------------------------------------


def _convert_tab(gr: Any, cache: ConverterCache) -> None:
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            audio = gr.Audio(
                sources=["upload", "microphone"], type="filepath", label="Input audio", elem_id="input-audio"
            )
            c = _voice_controls(gr, cache.settings, "convert")
            run = gr.Button("Convert", variant="primary", elem_id="convert-button")
        with gr.Column(scale=5):
            out_audio = gr.Audio(label="Converted", type="filepath", interactive=False, elem_id="output-audio")
            download = gr.DownloadButton("Download", visible=False, elem_id="download-button")
            plot = gr.Plot(label="Waveforms and pitch", show_label=False, elem_id="conversion-plot")
            summary = gr.Markdown(elem_id="convert-summary")

    @_page_errors
    def convert(audio_path: str | None, *values: Any, progress: Any = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
        from .plots import conversion_figure

        model, index, opts = _voice(dict(zip(VOICE_KEYS, values)))
        progress(0, desc="loading the voice")
        conv = actions.convert_clip(
            cache,
            audio_path or "",
            model=model or "",
            index=index,
            output_format=values[VOICE_KEYS.index("output_format")],
            progress=_chunks(progress, "chunk"),
            **opts,
        )
        seconds = len(conv.output) / conv.sample_rate
        text = (
            f"**{conv.path.name}**: {seconds:.2f} s at {conv.sample_rate} Hz with {Path(model or '').name} "
            f"({opts['pitch']:+g} semitones, {opts['f0_method']})"
        )
        fig = conversion_figure(conv)
        return str(conv.path), gr.DownloadButton(value=str(conv.path), visible=True), fig, text

    run.click(
        convert,
        inputs=[audio, *(c[k] for k in VOICE_KEYS)],
        outputs=[out_audio, download, plot, summary],
        concurrency_id="convert",
        concurrency_limit=1,
    )


def _batch_tab(gr: Any, cache: ConverterCache) -> None:
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            files = gr.File(file_count="multiple", label="Audio files", elem_id="batch-files")
            folder = gr.Textbox(
                label="...or a folder on this machine", placeholder="/path/to/takes", elem_id="batch-folder"
            )
            c = _voice_controls(gr, cache.settings, "batch")
            out_dir = gr.Textbox(
                label="Output folder on this machine (empty: a zip to download)", elem_id="batch-output-dir"
            )
            run = gr.Button("Convert all", variant="primary", elem_id="batch-button")
        with gr.Column(scale=5):
            table = gr.Dataframe(headers=actions.BATCH_COLUMNS, label="Files", interactive=False, elem_id="batch-table")
            result = gr.File(label="Result", elem_id="batch-result")

    @_page_errors
    def convert_all(
        uploads: list[str] | None,
        folder_path: str,
        output_dir: str,
        *values: Any,
        progress: Any = gr.Progress(),  # noqa: B008
    ) -> tuple[Any, Any]:
        model, index, opts = _voice(dict(zip(VOICE_KEYS, values)))
        inputs = actions.batch_inputs(uploads, folder_path)
        rows, where = actions.convert_batch(
            cache,
            inputs,
            model=model or "",
            index=index,
            output_format=values[VOICE_KEYS.index("output_format")],
            output_dir=output_dir,
            progress=_chunks(progress, "file"),
            **opts,
        )
        if where.is_dir():
            gr.Info(f"written to {where}")
            return rows, None
        return rows, str(where)

    run.click(
        convert_all,
        inputs=[files, folder, out_dir, *(c[k] for k in VOICE_KEYS)],
        outputs=[table, result],
        concurrency_id="convert",
        concurrency_limit=1,
    )


def _models_tab(gr: Any, cache: ConverterCache) -> tuple[Callable[[], Any], list[Any]]:
    """Returns the function that fills the tables and their components (run on page load)."""
    settings = cache.settings
    gr.Markdown(f"Voices in **{settings.models_dir}** (`--models-dir` / `$RVC_MODELS_DIR`)")
    table = gr.Dataframe(headers=actions.MODEL_COLUMNS, label="Models", interactive=False, elem_id="models-table")
    refresh = gr.Button("Refresh", size="sm")
    with gr.Row(equal_height=False):
        with gr.Column():
            gr.Markdown("### Import a model\nRead with the safe reader: nothing in the file runs.")
            pth = gr.File(label="Model (.pth)", file_types=[".pth"], elem_id="import-file")
            name = gr.Textbox(label="Save as (optional)", placeholder="myvoice")
            replace = gr.Checkbox(label="replace an existing file")
            do_import = gr.Button("Import", elem_id="import-button")
            import_status = gr.Markdown(elem_id="import-status")
        with gr.Column():
            gr.Markdown("### Feature extractors\nContentVec (content) and RMVPE (pitch) weights.")
            weights = gr.Dataframe(headers=actions.WEIGHTS_COLUMNS, label="Weights", interactive=False)
            which = gr.Radio(["all", "contentvec", "rmvpe"], value="all", label="Download")
            fetch = gr.Button("Download weights")
        with gr.Column():
            gr.Markdown("### Build an index\nFrom recordings of the voice (its training data).")
            recs = gr.File(file_count="multiple", label="Recordings")
            rec_dir = gr.Textbox(label="...or a folder on this machine")
            index_name = gr.Textbox(label="Index name", placeholder="myvoice")
            version = gr.Radio(["v2", "v1"], value="v2", label="Model version")
            index_replace = gr.Checkbox(label="replace an existing index")
            build = gr.Button("Build index")
            index_status = gr.Markdown()

    @_page_errors
    def list_all() -> tuple[Any, Any]:
        return actions.model_rows(settings.models_dir), actions.weights_rows(settings)

    @_page_errors
    def import_pth(path: str | None, as_name: str, overwrite: bool) -> tuple[Any, str]:
        if not path:
            raise actions.UIInputError("no file; choose a .pth to import")
        dst, row = actions.import_model(path, settings.models_dir, name=as_name or None, overwrite=overwrite)
        cache.clear()
        return actions.model_rows(settings.models_dir), f"imported **{dst.name}**: {row[1]}, {row[2]} Hz"

    @_page_errors
    def download(name: str, progress: Any = gr.Progress()) -> Any:  # noqa: B008
        progress(None, desc=f"downloading {name}")
        actions.download_weights(name)
        return actions.weights_rows(settings)

    @_page_errors
    def build_index(
        uploads: list[str] | None,
        folder_path: str,
        as_name: str,
        ver: str,
        overwrite: bool,
        progress: Any = gr.Progress(),  # noqa: B008
    ) -> str:
        src = uploads or (folder_path.strip() if folder_path and folder_path.strip() else [])
        dst = actions.build_index(
            settings, src, name=as_name, version=ver, overwrite=overwrite, progress=_chunks(progress, "file")
        )
        return f"wrote **{dst}**; pick it in the Convert tab (Refresh)"

    refresh.click(list_all, outputs=[table, weights], queue=False)
    do_import.click(import_pth, inputs=[pth, name, replace], outputs=[table, import_status])
    fetch.click(download, inputs=which, outputs=weights)
    build.click(
        build_index,
        inputs=[recs, rec_dir, index_name, version, index_replace],
        outputs=index_status,
        concurrency_id="convert",
        concurrency_limit=1,
    )
    return list_all, [table, weights]


def build_app(
    settings: Settings | None = None, *, cache: ConverterCache | None = None, live: LiveSession | None = None
) -> Any:
    """The page as a ``gradio.Blocks`` (not launched): Convert, Batch, Models and Live tabs.
    Conversions share one queue slot (``concurrency_id="convert"``) and one :class:`ConverterCache`;
    the Live tab drives one :class:`~rvc_ui.live.LiveSession` (``demo.rvc_live``)."""
    import gradio as gr

    from .live_tab import live_tab

    cache = cache or ConverterCache(settings or Settings())
    live = live or LiveSession(cache.settings)
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.Markdown(f"## {TITLE}")
        with gr.Tabs():
            with gr.Tab("Convert", id="convert"):
                _convert_tab(gr, cache)
            with gr.Tab("Batch", id="batch"):
                _batch_tab(gr, cache)
            with gr.Tab("Models", id="models") as models_tab:
                load, outputs = _models_tab(gr, cache)
            with gr.Tab("Live", id="live"):
                live_tab(gr, live)
        models_tab.select(load, outputs=outputs, queue=False)  # reads every voice: only when looked at
    demo.rvc_cache = cache  # type: ignore[attr-defined]
    demo.rvc_live = live  # type: ignore[attr-defined]
    return demo


def _theme(gr: Any) -> Any:
    system = ["ui-sans-serif", "system-ui", "sans-serif"]  # no web fonts: the page works offline
    return gr.themes.Soft(primary_hue="orange", font=system, font_mono=["ui-monospace", "monospace"])


def launch(
    settings: Settings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 7865,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the page on ``http://host:port`` until interrupted (never a public share link).

    ``ready(url)`` is called once the server listens. ``host`` other than a loopback address makes
    the page reachable from the network: see :func:`is_local_host`.
    """
    demo = build_app(settings)
    demo.queue(default_concurrency_limit=1)
    demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        quiet=True,
        prevent_thread_lock=True,
        show_error=False,
        theme=_theme(__import__("gradio")),
        footer_links=[],
    )
    if ready is not None:
        ready(demo.local_url)
    try:
        demo.block_thread()
    finally:
        demo.rvc_live.stop()  # the live thread ends before the process does (MLX work on it)
        demo.close()
