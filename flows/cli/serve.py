"""`cerebro serve`: the scoring service under uvicorn (the service itself lives in serving/, without Prefect)."""
from __future__ import annotations

import typer

from flows.cli.common import ConfigOpt, fail, settings_or_exit


def serve(
    config: str | None = ConfigOpt,
    host: str | None = typer.Option(None, help="Interface to listen on (default: serving.host, 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default: serving.port, 8080; 0 picks a free one)."),
    token: str | None = typer.Option(None, envvar="CEREBRO_SERVING__TOKEN", show_default=False,
                                     help="Require `Authorization: Bearer <token>` on every endpoint but the probes "
                                     "(default: a token generated in <home>/serving/token, required on /admin/* and, "
                                     "off loopback, everywhere)."),
    poll: float | None = typer.Option(None, help="Seconds between alias checks (default: serving.poll_seconds; "
                                      "0: only POST /admin/reload)."),
    max_batch: int | None = typer.Option(None, "--max-batch", min=1, help="Most score requests scored in one model "
                                         "call when they arrive together (default: serving.max_batch, 16; 1: "
                                         "one at a time)."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Processes behind the port, each with its "
                                       "own copy of the models (default: serving.workers, 1). Replicas help "
                                       "CPU-bound models on a multi-core machine, where one process is held to "
                                       "one core by the GIL; each costs the models' memory again (memory x N), "
                                       "and requests are batched within a worker only. Needs --poll > 0."),
    log_level: str = typer.Option("info", help="uvicorn and service log level."),
):
    """Serve the registered models over HTTP: anomaly scores, forecasts and failure risk.

    The service loads each `serving.models` entry at its `champion` alias (the newest version while no alias
    is set), warms it up, and switches to a new version when the alias moves (blue-green; a version that does
    not load or warm up is refused). A live model whose error rate, latency or flag rate passes the
    `serving.rollback` limits is rolled back, and so is the alias. Score requests that arrive while the
    service is busy are scored together in one model call, where the model gives the same answers that way
    (checked at warm-up; `/models` says `batching`).

    With `--workers N` (N > 1), uvicorn runs N processes behind the port. Each loads its own copy of the
    models, batches its own requests, polls the aliases and judges its models itself; `/models` and
    `/metrics` answer for the worker that took the request (its pid is in `/models` and in the
    `X-Cerebro-Worker` header), and `POST /admin/reload` reaches one worker: the others follow the alias
    at their next poll. Worth it for CPU-bound models with idle cores; on a loaded machine, or for
    models that mostly wait, one process does as well with one copy of the models.

    Examples:

        cerebro serve                                  # http://127.0.0.1:8080/docs

        cerebro serve --port 9000 --token s3cret       # clients send Authorization: Bearer s3cret

        curl -s -X POST -H "Authorization: Bearer $(cat .cerebro/serving/token)" localhost:8080/admin/reload

        curl -s localhost:8080/models                  # what is live, since when

        cerebro serve --workers 2                      # two processes on the port (docs/serving.md, Replicas)

        python benchmarks/serving.py                   # latency and throughput figures
    """
    import logging

    import uvicorn

    overrides = {k: v for k, v in {"serving.host": host, "serving.port": port, "serving.token": token,
                                   "serving.poll_seconds": poll, "serving.max_batch": max_batch,
                                   "serving.workers": workers}.items()
                 if v is not None}
    settings = settings_or_exit(config, **overrides)
    from serving.auth import configured, loopback_only

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = settings.serving
    # Keep-alive and request-head limits are uvicorn's; the body's size and upload time, and the requests in
    # flight, are the app's own (serving/limits.py).
    server = {"host": cfg.host, "port": cfg.port, "log_level": log_level.lower(), "access_log": False,
              "timeout_keep_alive": int(max(1, cfg.keep_alive_seconds)),
              "h11_max_incomplete_event_size": cfg.max_header_kb * 1024}
    if cfg.workers > 1:
        return _serve_replicas(settings, config, overrides, log_level, server)
    from serving.app import create_app, limit_blas_threads, limit_torch_threads

    limit_torch_threads(settings.serving.torch_threads)
    limit_blas_threads(settings.serving.blas_threads)
    from flows.notify import notifier

    service = create_app(settings, alert=notifier(settings))
    if configured(cfg):
        token = "the configured token required on every endpoint but the probes"
    else:  # where the token is, as Jupyter says it; never the token itself
        token = (f"token in {service.state.token_file}: required on /admin/*"
                 + ("" if loopback_only(cfg.host) else " and every endpoint but the probes"))
    typer.echo(f"serving {', '.join(f'{k}={v}' for k, v in cfg.models.items())} from "
               f"{settings.mlflow_tracking_uri_shown} on http://{cfg.host}:{cfg.port} ({token})", err=True)
    uvicorn.run(service, **server)


def _serve_replicas(settings, config: str | None, overrides: dict, log_level: str, server: dict) -> None:
    """``serving.workers`` processes under uvicorn's supervisor, each building the service with
    :func:`replica_app`. The token file is written here, once, before any worker reads it."""
    import os

    import uvicorn

    from serving.auth import loopback_only, service_token
    from serving.replicas import SPEC_ENV, spec, torch_threads_per_worker

    cfg = settings.serving
    if cfg.poll_seconds <= 0:
        fail(f"--workers {cfg.workers} needs alias polling (--poll or serving.poll_seconds > 0): POST /admin/reload "
             "reaches one worker, and the others would keep their models until restarted", 2)
    _, token_file = service_token(settings)
    if token_file is None:
        token = "the configured token required on every endpoint but the probes"
    else:
        token = (f"token in {token_file}: required on /admin/*"
                 + ("" if loopback_only(cfg.host) else " and every endpoint but the probes"))
    os.environ[SPEC_ENV] = spec(config, overrides, log_level, cfg.workers)  # inherited by the workers
    threads = torch_threads_per_worker(cfg.torch_threads, cfg.workers)
    typer.echo(f"serving {', '.join(f'{k}={v}' for k, v in cfg.models.items())} from "
               f"{settings.mlflow_tracking_uri_shown} on http://{cfg.host}:{cfg.port} with {cfg.workers} worker "
               f"processes, {threads} torch thread(s) each ({token})", err=True)
    # A worker busy in a long C call (a full garbage collection over the models, a model load) answers
    # uvicorn's health check late, and past the timeout it is killed and restarted, models and all: 30 s
    # rather than uvicorn's 5 keeps a loaded machine from cycling its workers.
    uvicorn.run("flows.cli.serve:replica_app", factory=True, workers=cfg.workers, timeout_worker_healthcheck=30,
                **server)


def replica_app():
    """The service inside one worker of ``cerebro serve --workers N`` (uvicorn calls it in each process):
    the settings rebuilt from what the command line resolved, this worker's share of torch's threads, and a
    watch that ends the worker when its parent is gone."""
    import logging

    from configs.runtime import configure_environment
    from configs.settings import load_settings
    from flows.notify import notifier
    from serving.app import create_app, limit_blas_threads, limit_torch_threads
    from serving.replicas import exit_with_parent, read_spec, torch_threads_per_worker

    config, overrides, log_level, workers = read_spec()
    settings = load_settings(config, **overrides)
    configure_environment(settings)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    limit_torch_threads(torch_threads_per_worker(settings.serving.torch_threads, workers))
    limit_blas_threads(settings.serving.blas_threads)
    exit_with_parent()
    return create_app(settings, alert=notifier(settings), worker_header=True)
