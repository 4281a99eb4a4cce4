"""`cerebro serve`: the scoring service under uvicorn (the service itself lives in serving/, without Prefect)."""
from __future__ import annotations

import typer

from flows.cli.common import ConfigOpt, settings_or_exit


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
    log_level: str = typer.Option("info", help="uvicorn and service log level."),
):
    """Serve the registered models over HTTP: anomaly scores, forecasts and failure risk.

    The service loads each `serving.models` entry at its `champion` alias (the newest version while no alias
    is set), warms it up, and switches to a new version when the alias moves (blue-green; a version that does
    not load or warm up is refused). A live model whose error rate, latency or flag rate passes the
    `serving.rollback` limits is rolled back, and so is the alias. Score requests that arrive while the
    service is busy are scored together in one model call, where the model gives the same answers that way
    (checked at warm-up; `/models` says `batching`).

    Examples:

        cerebro serve                                  # http://127.0.0.1:8080/docs

        cerebro serve --port 9000 --token s3cret       # clients send Authorization: Bearer s3cret

        curl -s -X POST -H "Authorization: Bearer $(cat .cerebro/serving/token)" localhost:8080/admin/reload

        curl -s localhost:8080/models                  # what is live, since when

        python benchmarks/serving.py                   # latency and throughput figures
    """
    import logging

    import uvicorn

    overrides = {k: v for k, v in {"serving.host": host, "serving.port": port, "serving.token": token,
                                   "serving.poll_seconds": poll, "serving.max_batch": max_batch}.items()
                 if v is not None}
    settings = settings_or_exit(config, **overrides)
    from serving.app import create_app, limit_torch_threads
    from serving.auth import configured, loopback_only

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    limit_torch_threads(settings.serving.torch_threads)
    from flows.notify import notifier

    cfg = settings.serving
    service = create_app(settings, alert=notifier(settings))
    if configured(cfg):
        token = "the configured token required on every endpoint but the probes"
    else:  # where the token is, as Jupyter says it; never the token itself
        token = (f"token in {service.state.token_file}: required on /admin/*"
                 + ("" if loopback_only(cfg.host) else " and every endpoint but the probes"))
    typer.echo(f"serving {', '.join(f'{k}={v}' for k, v in cfg.models.items())} from "
               f"{settings.mlflow_tracking_uri_shown} on http://{cfg.host}:{cfg.port} ({token})", err=True)
    # Keep-alive and request-head limits are uvicorn's; the body's size and upload time, and the requests in
    # flight, are the app's own (serving/limits.py).
    uvicorn.run(service, host=cfg.host, port=cfg.port, log_level=log_level.lower(), access_log=False,
                timeout_keep_alive=int(max(1, cfg.keep_alive_seconds)),
                h11_max_incomplete_event_size=cfg.max_header_kb * 1024)
