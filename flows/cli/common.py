"""What every ``cerebro`` command shares: the ``--config`` and ``--json`` options, the two consoles, loading
the settings, the error exit, the progress display and JSON output.

The command modules import from here and from the domain packages, never from each other.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

console = Console(stderr=True)  # errors, progress and status lines
out = Console()  # results: tables, summaries, JSON

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


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and end the command with ``code`` (2: the input was refused)."""
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
                         "ConfigError", "NotEnoughHistory", "UserSeriesError"})


class _NoTracebackForUserErrors:
    def filter(self, record) -> bool:
        exc = record.exc_info[0] if record.exc_info else None
        if exc is not None and any(k.__name__ in USER_ERRORS for k in exc.__mro__):
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
