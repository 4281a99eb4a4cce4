"""`cerebro ui` (the Prefect and MLflow UIs over the home folder, flows/services.py) and `cerebro env` (the
environment that points the `prefect` and `mlflow` commands at it)."""
from __future__ import annotations

import json
import subprocess
import time

import typer

from flows.cli.common import ConfigOpt, fail, out, settings_or_exit


def ui(
    config: str | None = ConfigOpt,
    prefect_port: int = typer.Option(4200, help="Port of the Prefect UI."),
    mlflow_port: int = typer.Option(5000, help="Port of the MLflow UI."),
    wait: bool = typer.Option(True, help="Stay in the foreground until Ctrl-C (--no-wait starts them and returns)."),
    stop: bool = typer.Option(False, "--stop", help="Stop UIs that an earlier `cerebro ui --no-wait` left running."),
    deployments: bool = typer.Option(True, help="Register prefect.yaml's deployments on the work pool "
                                     "cerebro-local and start a worker for it (--no-deployments: the UIs only)."),
):
    """Start the Prefect UI and the MLflow UI on localhost over the home folder, register prefect.yaml's
    deployments there with a process worker, and print their addresses.

    Example:

        cerebro ui            # then open http://127.0.0.1:4200 and http://127.0.0.1:5000

        cerebro ui --no-wait  # leave them running; `cerebro ui --stop` ends them

        prefect deployment run 'pipeline/on-demand'   # with `eval "$(cerebro env)"`; the worker runs it
    """
    settings = settings_or_exit(config)
    from flows.services import (
        DeploymentsFailed,
        point_prefect_command,
        register_deployments,
        start_uis,
        start_worker,
        stop_detached,
        stop_uis,
        unpoint_prefect_command,
    )

    if stop:
        out.print(f"stopped {stop_detached(settings)} process(es)")
        if unpoint_prefect_command():
            out.print("removed ./prefect.toml (the prefect command's pointer at this server)")
        return
    try:
        procs = start_uis(settings, prefect_port, mlflow_port)
    except RuntimeError as exc:
        fail(str(exc))
    api = f"http://127.0.0.1:{prefect_port}/api"
    if deployments:
        out.print("registering prefect.yaml's deployments on work pool cerebro-local ...")
        try:
            register_deployments(settings, api)
            procs.append(start_worker(settings, api))
        except (DeploymentsFailed, OSError, subprocess.TimeoutExpired) as exc:
            stop_uis(procs)
            fail(f"{exc}\n(`cerebro ui --no-deployments` starts the UIs alone)")
    pointer = point_prefect_command(api)
    if pointer:
        out.print(f"wrote {pointer}: `prefect deployment run ...` typed in this folder reaches this server")
    out.print(f"Prefect UI  http://127.0.0.1:{prefect_port}  (deployments: /deployments, worker: "
              f"/work-pools/work-pool/cerebro-local)\nMLflow UI   http://127.0.0.1:{mlflow_port}  (training runs: "
              f"Experiments -> cerebro; models: Models)\nLogs and pids in {settings.home / 'run'}")
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
        unpoint_prefect_command()


def deployments(
    config: str | None = ConfigOpt,
    api_url: str | None = typer.Option(None, help="The Prefect API; default: prefect.api_url of the configuration, "
                                       "else the `cerebro ui` server http://127.0.0.1:4200/api."),
    if_running: bool = typer.Option(False, "--if-running", help="Do nothing (exit 0) when no server answers: what "
                                    "`make run` uses after the pipeline."),
):
    """Register prefect.yaml's deployments on a running Prefect server (work pool cerebro-local). `cerebro ui`
    does this itself; run this after changing prefect.yaml, or against your own server.

    Example:

        cerebro deployments && prefect deployment ls
    """
    settings = settings_or_exit(config)
    from flows.services import DeploymentsFailed, register_deployments, server_up

    api = api_url or settings.prefect.api_url or "http://127.0.0.1:4200/api"
    if not server_up(api):
        if if_running:
            out.print(f"no Prefect server at {api}: deployments not registered (`make ui` starts one and registers them)")
            return
        fail(f"no Prefect server answers at {api}; start one with `cerebro ui` (or give --api-url)")
    try:
        register_deployments(settings, api)
    except (DeploymentsFailed, subprocess.TimeoutExpired) as exc:
        fail(str(exc))
    out.print(f"deployments of prefect.yaml registered on {api} (work pool cerebro-local); a worker runs them: "
              "`make worker`, or `cerebro ui` starts one")


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
