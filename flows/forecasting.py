"""The ``forecasting`` flow: backtest every forecaster against seasonal naive, fit them on the whole history,
plan capacity, register in MLflow, with tables, a capacity report and plots as artifacts."""
from __future__ import annotations

import time

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from configs.settings import load_settings
from flows import progress, reporting


@task(name="forecasting-series", cache_policy=NO_CACHE)
def load_series(settings, start: str, end: str):
    from training.forecasting.stage import forecasting_data

    data = forecasting_data(settings, pd.Timestamp(start), pd.Timestamp(end))
    if data.missing:
        get_run_logger().warning("not in the lake, skipped: %s", ", ".join(data.missing))
    return data


@task(name="backtest-forecasters", cache_policy=NO_CACHE)
def backtest(settings, data):
    from training.forecasting.stage import run_backtest

    logger = get_run_logger()
    return run_backtest(data, settings, on_progress=lambda what: logger.info("backtest: %s", what))


@task(name="fit-forecasters", cache_policy=NO_CACHE)
def fit(settings, data):
    from training.forecasting.stage import fit_forecasters

    return fit_forecasters(data, settings,
                           on_progress=lambda n, k, t: progress.advance("fit forecasters", k, t, n))


@task(name="plan-capacity", cache_policy=NO_CACHE)
def plan(settings, data):
    from training.forecasting.stage import capacity

    return capacity(data, settings)


@task(name="register-forecasters", cache_policy=NO_CACHE)
def register(settings, data, bt, fitted, capacity_plan, report_md: str, plots: list[str],
             started: float | None = None) -> dict:
    from pathlib import Path

    from training.forecasting.stage import register_forecasters

    return register_forecasters(settings, data, bt, fitted, capacity_plan, report_md, [Path(p) for p in plots],
                                on_progress=lambda n, k, t: progress.advance("register forecasters", k + 1, t, n),
                                started=started)


@task(name="champion-or-challenger", cache_policy=NO_CACHE)
def set_aliases(settings, bt, versions: dict[str, str]) -> dict[str, str]:
    """First versions that beat seasonal naive (or are it) become champions, the others get no alias; later
    ones wait as challengers (no held-out data here to judge them)."""
    from serving.promotion import champion_or_challenger
    from training.forecasting.stage import below_target

    return {name: champion_or_challenger(settings, f"cerebro-forecaster-{name}", v, below_target(bt, name))
            for name, v in versions.items()}


CAPACITY_COLUMNS = ["service", "metric", "status", "limit", "last_value", "peak_upper_95", "crosses_upper_at",
                    "hours_to_upper", "probability"]


@flow(name="forecasting", log_prints=True)
def forecasting_flow(start: str, end: str, config: str | None = None) -> dict:
    """Backtest, fit, plan capacity and register the forecasters on the lake's telemetry in [start, end)."""
    from training.forecasting.capacity import runs_out_first
    from training.forecasting.stage import NotEnoughHistory, plot_backtests, report_markdown, summarise

    settings = load_settings(config)
    started = time.time()  # the MLflow run is dated from here: its duration is the stage's
    data = load_series(settings, start, end)
    try:
        bt = backtest(settings, data)
    except NotEnoughHistory as exc:
        get_run_logger().warning("forecasting skipped: %s", exc)
        return {"skipped": str(exc)}
    fitted, failed = fit(settings, data)
    capacity_plan = plan(settings, data)
    report_md = report_markdown(bt, capacity_plan, data, failed)
    plots = plot_backtests(bt, settings.reports_dir / f"forecasting-{data.data_version.replace('@', '-')}")
    backtest_rows, _ = reporting.table(bt.aggregate, ["model", "horizon", "mase", "mase_vs_naive", "smape",
                                                      "coverage_80", "coverage_95", "runs", "failed"])
    create_table_artifact(key="forecast-backtest", table=backtest_rows,
                          description="Rolling-origin backtest per model and horizon: MASE, sMAPE, interval "
                                      "coverage, against seasonal naive")
    # The columns that answer "what runs out first, when"; every column is in the MLflow run (capacity_plan.json).
    capacity_rows, cut = reporting.table(runs_out_first(capacity_plan), CAPACITY_COLUMNS, top=20, what="resources")
    for row in capacity_rows:
        row["probability"] = reporting.probability(row["probability"])
    create_table_artifact(key="capacity-plan", table=capacity_rows,
                          description=" ".join(filter(None, [
                              "What runs out first: when each resource's forecast reaches its limit (UTC).", cut,
                              "Every column: capacity_plan.json in the MLflow forecasting run."])))
    create_markdown_artifact(key="forecasting-report",
                             markdown=report_md + "\n\nPlots: " + ", ".join(f"`{p}`" for p in plots),
                             description="Backtests and the capacity plan")
    for path in plots:
        series = path.stem.removeprefix("forecast-")
        create_markdown_artifact(key=f"forecast-plot-{_slug(series)}", markdown=reporting.png_markdown(path, series),
                                 description=f"{series}: history, the last backtest origin's forecast with its "
                                             "80 % and 95 % intervals, and the actuals")
    registered = register(settings, data, bt, fitted, capacity_plan, report_md, [str(p) for p in plots], started)
    aliases = set_aliases(settings, bt, registered["versions"])
    return {**summarise(bt, capacity_plan, failed), "series": list(data.series), "series_chosen": data.chosen,
            "data_version": data.data_version,
            "mlflow_run": registered["run_id"], "registered": registered["versions"], "aliases": aliases,
            "plots": [str(p) for p in plots]}


def _slug(text: str) -> str:
    """Artifact keys take lowercase letters, digits and dashes only."""
    import re

    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
