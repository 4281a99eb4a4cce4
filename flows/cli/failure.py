"""`cerebro predict-failure`: the registered failure predictor on the latest online features
(training/failure/bundle.py)."""
from __future__ import annotations

import math

import typer
from rich.table import Table

from flows.cli.common import ConfigOpt, JsonOpt, fail, out, print_json, settings_or_exit


def predict_failure(
    service: list[str] | None = typer.Option(None, "--service", "-s", help="Service(s) to predict (repeatable; "
                                             "default: every service of the fleet in the lake)."),
    top: int = typer.Option(3, "--top", min=1, max=20, help="Contributing factors shown per service."),
    version: str = typer.Option("latest", help="Version of the registered cerebro-failure-predictor."),
    config: str | None = ConfigOpt,
    as_json: bool = JsonOpt,
):
    """Which services are likely to fail soon, how soon, and why: the registered failure predictor on the
    latest features in Feast's online store.

    Prints, per service: the calibrated probability of a failure within the model's horizon, whether that is
    over the alarm threshold learned on validation, the estimated time to failure (for alarms), and the top
    SHAP factors (feature, its value, its signed push on the log-odds). Needs a pipeline run first
    (`cerebro run`), which trains, registers and materialises everything this reads.

    Examples:

        cerebro predict-failure

        cerebro predict-failure --service payment --service database --top 5 --json
    """
    settings = settings_or_exit(config)
    import mlflow

    from telemetry import lake
    from training.failure.bundle import predict_online
    from training.kinds import FAILURE

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    uri = f"models:/{FAILURE.registered_name()}/{version}"
    try:
        bundle = mlflow.pyfunc.load_model(uri).unwrap_python_model().bundle
    except Exception as exc:  # noqa: BLE001 - MLflow raises several types for "no such model"
        fail(f"no failure predictor at {uri} in {settings.mlflow_tracking_uri_shown} ({type(exc).__name__}); run the "
             "pipeline first: cerebro run", 2)
    model = bundle["model"]
    services = list(service or [])
    if not services:
        graph = lake.read_graph(settings.lake_dir) or {}
        services = [s["name"] for s in graph.get("services", [])]
        if not services:
            fail(f"no fleet graph in {settings.lake_dir}: name the services with --service", 2)
    try:
        result = predict_online(settings, model, services, top_k=top)
    except Exception as exc:  # noqa: BLE001 - the Feast repo or its online store is missing
        fail(f"could not read the online features ({type(exc).__name__}: {exc}); run the pipeline first: cerebro run", 2)
    unknown = result.attrs.get("unknown_services", [])
    result = result.sort_values("failure_probability", ascending=False)
    rows = [{"service": r.service, "failure_probability": float(r.failure_probability), "alarm": bool(r.alarm),
             "time_to_failure_minutes": None if math.isnan(r.time_to_failure_minutes)
             else float(r.time_to_failure_minutes),
             "top_factors": list(r.top_factors)} for r in result.itertuples()]
    summary = {"model": uri, "horizon_minutes": bundle.get("horizon_minutes"), "threshold": bundle.get("threshold"),
               "data_version": bundle.get("data_version"), "predictions": rows, "unknown_services": unknown}
    if as_json:
        print_json(summary)
        return
    table = Table(title=f"Failure within {bundle.get('horizon_minutes', 0):g} min (alarm at p >= "
                        f"{bundle.get('threshold', 0):.3f}; {uri})")
    for col in ("service", "probability", "alarm", "time to failure", "top factors (SHAP, log-odds)"):
        table.add_column(col)
    for r in rows:
        factors = "; ".join(f"{f['feature']}={_fmt(f.get('value'))} ({f['contribution']:+.2f})" for f in r["top_factors"])
        ttf = "-" if r["time_to_failure_minutes"] is None else f"{r['time_to_failure_minutes']:.0f} min"
        table.add_row(r["service"], f"{r['failure_probability']:.3f}", "yes" if r["alarm"] else "no", ttf, factors)
    out.print(table)
    if unknown:
        out.print(f"[yellow]no features in the online store for[/yellow] {', '.join(unknown)}")


def _fmt(value) -> str:
    return "NaN" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
