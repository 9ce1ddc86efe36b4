"""Console, logging, progress and error reporting shared by every `rvc` command.

Results go to stdout (``out``); progress, logs and errors go to stderr (``err``). Nothing here
imports MLX, FAISS or the rvc stage packages: their error classes are looked up in
``sys.modules`` only when an exception is being classified (a package that was never imported
cannot have raised).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text
from typer.exceptions import TyperException

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

_state = {"quiet": False}

# (module, class): the error base class of each rvc package.
_ERROR_BASES = (
    ("rvc_audio.errors", "RVCAudioError"),
    ("rvc_f0.errors", "RVCF0Error"),
    ("rvc_index.errors", "RVCIndexError"),
    ("rvc_synth.errors", "RVCSynthError"),
    ("rvc_features.errors", "RVCFeaturesError"),
    ("rvc_convert", "RVCConvertError"),
    ("rvc_convert.errors", "RVCConvertError"),
)


class CLIError(Exception):
    """An expected failure detected by the command line itself (bad argument combination...)."""


def debug() -> bool:
    """``RVC_DEBUG=1`` (or any value but ``0``/empty): show tracebacks and debug logs."""
    return os.environ.get("RVC_DEBUG", "") not in ("", "0")


def set_quiet(quiet: bool, *, reset: bool = False) -> None:
    """``--quiet``: no progress bars or informational messages (errors and results remain).

    The root callback resets the flag for each invocation (``reset=True``); a command's own
    ``--quiet`` can only turn it on.
    """
    if quiet or reset:
        _state["quiet"] = quiet
    setup_logging()


def quiet() -> bool:
    return _state["quiet"]


def setup_logging() -> None:
    """Route the rvc packages' logging to stderr: WARNING (``--quiet``: ERROR; ``RVC_DEBUG``: DEBUG)."""
    level = logging.DEBUG if debug() else logging.ERROR if quiet() else logging.WARNING
    for name in (
        "rvc_audio",
        "rvc_f0",
        "rvc_index",
        "rvc_synth",
        "rvc_features",
        "rvc_runtime",
        "rvc_convert",
        "rvc_cli",
    ):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate = False
        for h in list(logger.handlers):
            if getattr(h, "_rvc_cli", False):
                logger.removeHandler(h)
        handler = RichHandler(console=err, show_time=False, show_path=debug(), markup=False, rich_tracebacks=False)
        handler._rvc_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    # huggingface-hub logs every retry of an unreachable Hub; the error line says it all. It sets
    # its level from HF_HUB_VERBOSITY when first imported (later, inside the commands).
    os.environ.setdefault("HF_HUB_VERBOSITY", "debug" if debug() else "error")
    logging.getLogger("huggingface_hub").setLevel(logging.DEBUG if debug() else logging.ERROR)


def info(message: str) -> None:
    """An informational line on stderr (hidden by ``--quiet``)."""
    if not quiet():
        err.print(Text(message, style="dim"))


def warn(message: str) -> None:
    """A yellow warning line on stderr (hidden by ``--quiet``)."""
    if not quiet():
        err.print(Text(f"warning: {message}", style="bold yellow"))


def result(message: str) -> None:
    """A result line on stdout (paths written, tables...), printed even with ``--quiet``."""
    out.print(Text(message))


def _error_bases() -> tuple[type[BaseException], ...]:
    bases = []
    for module, name in _ERROR_BASES:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type):
            bases.append(cls)
    return tuple(bases)


def is_expected(exc: BaseException) -> bool:
    """Errors a user can cause: the rvc packages' errors, OS errors and bad values (not bugs)."""
    return isinstance(exc, (CLIError, OSError, ValueError, MemoryError) + _error_bases())


# The libraries' messages name their Python arguments; on the command line those are options.
_CLI_WORDING = (
    (re.compile(r"pass overwrite=True(?: \((?:CLI: )?--force\))? to replace it"), "pass --force to overwrite it"),
    (re.compile(r"overwrite=True(?: \((?:CLI: )?--force\))?"), "--force"),
    (re.compile(r"\bno \w+= path \((--[\w-]+)\)"), r"no \1 path"),  # the spec names its CLI option
    (re.compile(r"\bpass \w+=(\S+) \((--[\w-]+)\)"), r"pass \2 \1"),
    (re.compile(r"\bno (\w+)= path(?: was given)?"), lambda m: f"no --{_dashed(m[1])} path"),
    (re.compile(r"\(from (\w+)=\)"), lambda m: f"(from --{_dashed(m[1])})"),
    (re.compile(r" \(rvc_convert\.weights\.download_weights\)"), ""),
)


def _dashed(name: str) -> str:
    return name.replace("_", "-")


def cli_wording(text: str) -> str:
    """A library message in the command line's words: ``overwrite=True`` -> ``--force``,
    ``no contentvec= path`` -> ``no --contentvec path``..."""
    for pattern, repl in _CLI_WORDING:
        text = pattern.sub(repl, text)
    return text


def message(exc: BaseException) -> str:
    """The exception as one line (no traceback), in the command line's words."""
    if isinstance(exc, MemoryError):
        return "out of memory; try --preset lowmem (smaller chunks) or a shorter input"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f"{text}: {exc.filename}"
    return cli_wording(" ".join(line.strip() for line in text.splitlines() if line.strip()))


def error_line(text: str) -> None:
    """One red line on stderr."""
    err.print(Text(f"error: {text}", style="bold red"))


def traceback_lines(exc: BaseException) -> None:
    """The exception's traceback on stderr (for ``RVC_DEBUG=1``)."""
    err.print(Text("".join(traceback.format_exception(exc)).rstrip(), style="dim"))


def report(exc: BaseException) -> None:
    """Print an exception as one red line (with the traceback first when ``RVC_DEBUG=1``)."""
    if debug():
        traceback_lines(exc)
    error_line(message(exc))


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Turn expected failures into one red line + exit code 1; Ctrl-C into exit code 130."""
    try:
        yield
    except (typer.Exit, typer.Abort, TyperException):  # typer's own exits (its bundled click's, not click's)
        raise
    except KeyboardInterrupt:
        error_line("interrupted")
        raise typer.Exit(130) from None
    except Exception as exc:
        if not is_expected(exc):
            raise  # a bug: Python's traceback is the useful report
        report(exc)
        raise typer.Exit(1) from None


def status(text: str) -> contextlib.AbstractContextManager:
    """A spinner on stderr while something slow runs (a plain line when stderr is not a terminal)."""
    if quiet():
        return contextlib.nullcontext()
    if not err.is_terminal:
        info(text)
        return contextlib.nullcontext()
    return err.status(text, spinner="dots")


def progress() -> Progress:
    """A rich progress bar on stderr (only on a terminal, and not with ``--quiet``)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=quiet() or not err.is_terminal,
        transient=False,
    )


def chunk_callback(bar: Progress, task: object, *, first: str | None = None) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback driving one task of ``bar``.

    ``first``: a description shown until the first call, e.g. the whole-file F0 pass that
    ``rvc_convert`` runs before its first ``progress(0, n_chunks)``; the task's own description
    comes back then."""
    name = None
    if first is not None:
        name = bar.tasks[[t.id for t in bar.tasks].index(task)].description  # type: ignore[arg-type]
        bar.update(task, description=f"{name}: {first}")  # type: ignore[arg-type]
    state = {"first": first is not None}

    def update(done: int, total: int) -> None:
        if state["first"]:
            state["first"] = False
            bar.update(task, description=name)  # type: ignore[arg-type]
        bar.update(task, completed=done, total=total)  # type: ignore[arg-type]

    return update
