"""What every ``cerebro`` command shares: the ``--config`` and ``--json`` options, the two consoles, loading
the settings, the error exit, the progress display and JSON output; and the rule for errors: a refused input is
one ``error:`` line and exit code 2, a traceback only with ``cerebro --debug`` or for a bug.

The command modules import from here and from the domain packages, never from each other.
"""
from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from typer.core import TyperGroup


def _results_width() -> int | None:
    """Results written to a file or a pipe are laid out 120 columns wide: rich's default there, 80, wraps a
    seven-column table into a word per line (`cerebro tools list > tools.txt`, `make run | tee run.log`).
    A terminal, or $COLUMNS, sets its own width."""
    if os.environ.get("COLUMNS") or sys.stdout.isatty():
        return None
    return 120


console = Console(stderr=True)  # errors, progress and status lines
out = Console(width=_results_width())  # results: tables, summaries, JSON

ConfigOpt = typer.Option(None, "--config", "-c", help="Profile name (default, scale) or a YAML file. "
                         "Also $CEREBRO_CONFIG.", show_default=False)
JsonOpt = typer.Option(False, "--json", help="Print one JSON document on stdout instead of tables.")


def settings_or_exit(config: str | None, **overrides):
    """The settings of a profile or YAML file with ``overrides`` applied, and the environment configured from
    them (Prefect, MLflow ...); a configuration error is printed and ends the command with exit code 2."""
    from configs.runtime import configure_environment
    from configs.settings import ConfigError, load_settings

    try:
        settings = load_settings(config, **overrides)
    except ConfigError as exc:
        console.print(f"[red]configuration error[/red]\n{exc}", soft_wrap=True)
        raise typer.Exit(2) from None
    configure_environment(settings)
    return settings


# Set by `cerebro --debug`: tracebacks for refused inputs too (see CerebroGroup and fail).
DEBUG = {"on": False}


def set_debug(on: bool) -> None:
    DEBUG["on"] = on


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and end the command with ``code`` (2: the input was refused). Under
    ``--debug``, the exception being handled (if any) is printed first, with its traceback."""
    import sys

    if DEBUG["on"] and sys.exc_info()[1] is not None:
        console.print_exception(show_locals=False)
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_json(doc) -> None:
    """One JSON document on stdout (what ``--json`` prints); values JSON cannot hold are written as text."""
    out.print_json(json.dumps(doc, default=str))


@contextmanager
def progress(title: str):
    """A rich progress bar fed by flows.progress: one line per stage (pipeline stages, batches ...)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from flows import progress as hub

    bars = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=console, transient=False)
    tasks: dict[str, int] = {}

    def listener(stage: str, done: int, total: int, detail: str) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total, detail="")
        bars.update(tasks[stage], completed=done, total=total, detail=Path(detail).name if "/" in detail else detail)

    with bars, hub.listen(listener):
        head = bars.add_task(title, total=None, detail="")
        try:
            yield
        finally:
            bars.update(head, total=1, completed=1)


# Exceptions that mean the user's input was refused (named, so that this module imports none of them): Prefect
# logs a failed run with its traceback, which is for bugs; for these the message says everything.
USER_ERRORS = frozenset({"IngestFailed", "SchemaError", "IncidentFileError", "UnusableBatchError", "FileNotFoundError",
                         "IsADirectoryError", "ConfigError", "NotEnoughHistory", "UserSeriesError", "SourceError",
                         "TraceFileError"})


def is_user_error(exc: BaseException | type[BaseException] | None) -> bool:
    """Whether ``exc`` (an exception or its class) says the user's input was refused rather than a bug."""
    kind = exc if isinstance(exc, type) else type(exc)
    return exc is not None and any(k.__name__ in USER_ERRORS for k in kind.__mro__)


class CerebroGroup(TyperGroup):
    """The ``cerebro`` command group: a refused input that no command caught still ends as one ``error:`` line
    and exit code 2; any other exception is a bug and keeps its traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if not is_user_error(exc) or DEBUG["on"]:
                raise
            fail(str(exc).strip() or type(exc).__name__, 2)


class _NoTracebackForUserErrors:
    def filter(self, record) -> bool:
        exc = record.exc_info[0] if record.exc_info else None
        if not DEBUG["on"] and is_user_error(exc):
            record.exc_info, record.exc_text = None, None
        return True


def quiet_tracebacks_for_user_errors() -> None:
    """Drop the traceback from log records of a refused input, on every handler Prefect's logging set up."""
    import logging

    loggers = [logging.getLogger(), logging.getLogger("prefect"),
               *(lg for name, lg in logging.Logger.manager.loggerDict.items()
                 if name.startswith("prefect") and isinstance(lg, logging.Logger))]
    for lg in loggers:
        for handler in lg.handlers:
            if not any(isinstance(f, _NoTracebackForUserErrors) for f in handler.filters):
                handler.addFilter(_NoTracebackForUserErrors())
