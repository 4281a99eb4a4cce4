"""`cerebro ui` (the Prefect and MLflow UIs over the home folder, flows/services.py) and `cerebro env` (the
environment that points the `prefect` and `mlflow` commands at it)."""
from __future__ import annotations

import json
import time

import typer

from flows.cli.common import ConfigOpt, fail, out, settings_or_exit


def ui(
    config: str | None = ConfigOpt,
    prefect_port: int = typer.Option(4200, help="Port of the Prefect UI."),
    mlflow_port: int = typer.Option(5000, help="Port of the MLflow UI."),
    wait: bool = typer.Option(True, help="Stay in the foreground until Ctrl-C (--no-wait starts them and returns)."),
    stop: bool = typer.Option(False, "--stop", help="Stop UIs that an earlier `cerebro ui --no-wait` left running."),
):
    """Start the Prefect UI and the MLflow UI on localhost over the home folder, and print their addresses.

    Example:

        cerebro ui            # then open http://127.0.0.1:4200 and http://127.0.0.1:5000

        cerebro ui --no-wait  # leave them running; `cerebro ui --stop` ends them
    """
    settings = settings_or_exit(config)
    from flows.services import start_uis, stop_detached, stop_uis

    if stop:
        out.print(f"stopped {stop_detached(settings)} process(es)")
        return
    try:
        procs = start_uis(settings, prefect_port, mlflow_port)
    except RuntimeError as exc:
        fail(str(exc))
    out.print(f"Prefect UI  http://127.0.0.1:{prefect_port}\nMLflow UI   http://127.0.0.1:{mlflow_port}\n"
              f"Logs and pids in {settings.home / 'run'}")
    if not wait:
        return
    out.print("Press Ctrl-C to stop both.")
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        stop_uis(procs)


def env(config: str | None = ConfigOpt):
    """Print `export` lines that point the `prefect` and `mlflow` commands at this project's home folder.

    Example:

        eval "$(cerebro env)" && prefect deployment ls
    """
    from configs.runtime import engine_environment
    from configs.settings import ConfigError, load_settings

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        fail(str(exc), 2)
    for key, value in engine_environment(settings).items():
        print(f"export {key}={json.dumps(value)}")
