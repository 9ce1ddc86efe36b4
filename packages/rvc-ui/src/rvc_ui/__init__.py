"""rvc-ui: a local web page (Gradio) for RVC voice conversion, on top of rvc-convert.

>>> import rvc_ui
>>> rvc_ui.launch(rvc_ui.Settings(models_dir="models"), port=7865)   # or: rvc ui

Public API: :func:`launch`, :func:`build_app` (the ``gradio.Blocks``, not launched),
:class:`Settings`, :class:`ConverterCache`, :class:`LiveSession` (the Live tab's one live
conversion, :mod:`rvc_ui.live`), :func:`is_local_host`; what the buttons do lives in
:mod:`rvc_ui.actions` (plain functions, no Gradio) and the pictures in :mod:`rvc_ui.plots`.
Importing this package imports neither Gradio nor MLX.
"""

from __future__ import annotations

from .state import ConverterCache, Settings

__all__ = ["ConverterCache", "LiveSession", "Settings", "build_app", "is_local_host", "launch"]
__version__ = "0.1.0"


def __getattr__(name: str):  # the Gradio layer on first use
    if name in ("build_app", "is_local_host", "launch"):
        from . import app

        return getattr(app, name)
    if name == "LiveSession":
        from .live import LiveSession

        return LiveSession
    raise AttributeError(f"module 'rvc_ui' has no attribute {name!r}")
