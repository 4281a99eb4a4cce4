"""The pipeline's forecasting stage, without Prefect: series from the lake, backtests, final fits, the
capacity plan, and their registration in MLflow.

    data = forecasting_data(settings, start, end)               # hourly series + the raw telemetry
    bt = run_backtest(data, settings)                            # every model against seasonal naive
    fitted = fit_forecasters(data, settings)                     # each model on the whole history
    plan = capacity(data, settings)                              # what runs out first
    register_forecasters(settings, data, bt, fitted, plan, report_md, plots)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from training.forecasting.prepare import series_of
from training.forecasting.registry import BASELINE, build_forecaster, for_horizon


@dataclass
class ForecastingData:
    series: dict[str, pd.Series]  # "service/metric" -> regular series on the configured grid
    telemetry: pd.DataFrame  # the long telemetry of the window (capacity planning reads it)
    graph: dict | None
    data_version: str
    missing: list[str] = field(default_factory=list)  # configured series the lake does not hold
    chosen: str = "configured"  # how the series were chosen (resources.pick_series)


def forecasting_data(settings, start: pd.Timestamp, end: pd.Timestamp) -> ForecastingData:
    from telemetry import lake
    from training.data_version import of_telemetry

    telemetry = lake.read_telemetry(settings.lake_dir, start=start, end=end)
    if telemetry.empty:
        raise ValueError(f"the lake holds no telemetry between {start} and {end}")
    from training.forecasting.resources import pick_series

    cfg = settings.forecasting
    names, chosen = pick_series(telemetry, list(cfg.series))
    series, _ = series_of(telemetry, names, cfg.freq)
    missing = [s for s in cfg.series if s not in series]
    return ForecastingData(series=series, telemetry=telemetry, graph=lake.read_graph(settings.lake_dir),
                           data_version=of_telemetry(telemetry, start, end), missing=missing, chosen=chosen)


def models_of(settings) -> list[str]:
    models = list(dict.fromkeys(settings.forecasting.models))
    return models if BASELINE in models else [BASELINE, *models]


class NotEnoughHistory(ValueError):
    """The window is too short for this stage: the pipeline skips the stage and says why."""


def run_backtest(data: ForecastingData, settings, on_progress: Callable[[str], None] | None = None):
    """The backtest at every configured horizon the history allows (the longest are dropped first, and the
    result says which were); :class:`NotEnoughHistory` when not even the shortest fits."""
    from training.forecasting.backtest import backtest
    from training.forecasting.prepare import ForecastInputError

    cfg = settings.forecasting
    if not data.series:
        raise NotEnoughHistory(f"none of forecasting.series {list(cfg.series)} is in the lake")
    horizons = sorted(set(cfg.horizons))
    while horizons:
        try:
            result = backtest(data.series, models_of(settings), horizons=horizons, n_origins=cfg.origins,
                              stride=cfg.stride, profile=cfg.profile, errors="record", on_progress=on_progress)
        except ForecastInputError as exc:
            last_error = exc
            horizons = horizons[:-1]
            continue
        result.dropped_horizons = sorted(set(cfg.horizons) - set(horizons))
        return result
    raise NotEnoughHistory(f"too little history to backtest at any of horizons {sorted(set(cfg.horizons))} with "
                           f"{cfg.origins} origin(s): {last_error}")


def fit_forecasters(data: ForecastingData, settings, on_progress: Callable[[str, int, int], None] | None = None):
    """Every model fitted on the whole history of every series (``fit_many``); a model that fails is skipped
    with its reason."""
    fitted, failed = {}, {}
    models = models_of(settings)
    for k, name in enumerate(models):
        if on_progress:
            on_progress(name, k, len(models))
        try:
            model = build_forecaster(name, profile=settings.forecasting.profile)
            fitted[name] = for_horizon(model, max(settings.forecasting.horizons)).fit_many(data.series)
        except Exception as exc:  # noqa: BLE001 - one model's failure must not cost the others; the reason is reported
            failed[name] = f"{type(exc).__name__}: {exc}"
    return fitted, failed


def limits_for(settings, graph: dict | None, telemetry: pd.DataFrame | None = None) -> dict:
    """The fleet's limits, the configured ``forecasting.limits``, and defaults for a user's own percentages of
    CPU, disk and memory (``training.forecasting.resources.lake_limits``)."""
    from training.forecasting.resources import lake_limits

    cfg = settings.forecasting
    limits: dict = lake_limits(telemetry, settings) if telemetry is not None else {}
    limits.update({"cpu_pct": cfg.cpu_limit_pct, "disk_pct": cfg.disk_limit_pct})
    limits.update(cfg.limits)
    if cfg.memory_limit_pct is not None:
        limits["memory_pct"] = cfg.memory_limit_pct
    if cfg.connections_at_pool_size and graph:
        pools = {s["name"]: float(s["pool_size"]) for s in graph.get("services", []) if s.get("pool_size")}
        if pools:
            limits["connections"] = pools
    return limits


def capacity(data: ForecastingData, settings, on_progress: Callable[[str], None] | None = None):
    from training.forecasting.capacity import COLUMNS, CapacityPlan, plan_capacity

    cfg = settings.forecasting
    limits = limits_for(settings, data.graph, data.telemetry)
    if not set(limits) & set(data.telemetry["metric"].astype(str).unique()):
        # Nothing in the lake has a limit (a user's telemetry of latencies and request counts): an empty plan
        # that says so, not a failed pipeline.
        return CapacityPlan(table=pd.DataFrame(columns=COLUMNS), model=cfg.capacity_model, freq=cfg.freq,
                            horizon=pd.Timedelta(hours=cfg.capacity_horizon_hours))
    return plan_capacity(data.telemetry, limits,
                         horizon=pd.Timedelta(hours=cfg.capacity_horizon_hours), freq=cfg.freq,
                         model=cfg.capacity_model, on_progress=on_progress)


def report_markdown(bt, plan, data: ForecastingData, failed: dict[str, str]) -> str:
    from training.forecasting.capacity import capacity_markdown

    agg = bt.aggregate
    lines = ["# Forecasting", "",
             (f"Rolling-origin backtest on {len(data.series)} series ({', '.join(data.series)}), data "
             f"`{data.data_version}`. MASE below 1 beats a naive forecast in sample; `mase_vs_naive` below 1 "
             "beats the seasonal-naive baseline on the same origins."), ""]
    if data.missing and data.chosen == "configured":
        lines += [f"Not in the lake, skipped: {', '.join(data.missing)}.", ""]
    elif data.chosen != "configured":
        lines += [f"None of forecasting.series ({', '.join(data.missing)}) is in the lake; series {data.chosen}.", ""]
    if getattr(bt, "dropped_horizons", None):
        lines += [f"Horizons {bt.dropped_horizons} left out: the history is too short to backtest them.", ""]
    lines += ["| model | horizon | MASE | vs naive | sMAPE | coverage 80 % | coverage 95 % |", "|---|---|---|---|---|---|---|"]
    for r in agg.itertuples():
        lines.append(f"| {r.model} | {r.horizon} | {r.mase:.3f} | {r.mase_vs_naive:.3f} | {r.smape:.2f} | "
                     f"{r.coverage_80:.2f} | {r.coverage_95:.2f} |")
    beat = sorted({r.model for r in agg.itertuples() if r.model != BASELINE and r.mase_vs_naive < 1})
    lines += ["", ("Beat seasonal naive at some horizon: " + ", ".join(beat)) if beat
              else "No model beat seasonal naive at any horizon.", ""]
    errors = bt.frame[bt.frame["error"].notna()]
    for name, why in failed.items():
        lines.append(f"- `{name}` could not be fitted: {why}")
    if len(errors):
        lines.append(f"- {len(errors)} backtest runs failed; first: {errors.iloc[0]['model']}: {errors.iloc[0]['error']}")
    return "\n".join(lines) + "\n\n" + capacity_markdown(plan)


def plot_backtests(bt, directory: Path) -> list[Path]:
    """One PNG per series: its history, the last origin's forecasts of the baseline and the best other model,
    their intervals and the actuals."""
    from training.forecasting.plots import plot_forecast

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    agg = bt.aggregate
    others = agg[agg["model"] != BASELINE]
    means = others.groupby("model")["mase"].mean().dropna()  # a model whose every backtest run failed has none
    best = means.idxmin() if len(means) else BASELINE
    for key, history in bt.histories.items():
        fc = bt.forecasts.get((key, best)) if (key, best) in bt.forecasts else bt.forecasts.get((key, BASELINE))
        if fc is None:
            continue
        path = directory / f"forecast-{key.replace('/', '-')}.png"
        actual = fc.get("actual")
        horizon = len(fc)
        train = history[history.index < fc.index[0]]
        paths.append(plot_forecast(train, fc, path, actual=actual, last=max(8 * horizon, 96),
                                   title=f"{key}: {best}, last backtest origin"))
    return paths


def register_forecasters(settings, data: ForecastingData, bt, fitted: dict, plan, report_md: str,
                         plots: list[Path], on_progress: Callable[[str, int, int], None] | None = None,
                         started: float | None = None) -> dict:
    """One ``forecasting`` run (dated from ``started``, epoch seconds, when the stage began) with the settings as
    params, each model's backtest figures as metrics, the backtest, the capacity plan and the plots; a child run
    per model with its backtest metrics, registered as ``cerebro-forecaster-<name>``."""
    import mlflow

    from configs.settings import redacted_dump
    from training.forecasting.bundle import forecast_bundle
    from training.kinds import FORECASTER
    from training.tracking import log_bundle, log_dataset, start_stage_run
    cfg = settings.forecasting
    first = min(data.series)
    example = pd.DataFrame({"series": [first], "horizon": [max(cfg.horizons)]})
    versions = {}
    with start_stage_run(settings, "forecasting", started) as parent:
        mlflow.set_tags({"cerebro.stage": "forecasting", "cerebro.data_version": data.data_version})
        mlflow.log_params({"models": ",".join(models_of(settings)), "freq": cfg.freq,
                           "horizons": ",".join(str(h) for h in sorted(set(cfg.horizons))), "origins": cfg.origins,
                           "stride": cfg.stride, "profile": cfg.profile, "capacity_model": cfg.capacity_model,
                           "capacity_horizon_hours": cfg.capacity_horizon_hours, "series": ",".join(sorted(data.series)),
                           "series_chosen": data.chosen})
        agg = bt.aggregate
        mlflow.log_metrics({f"{r.model}_h{r.horizon}_{k}": float(getattr(r, k)) for r in agg.itertuples()
                            for k in ("mase", "mase_vs_naive", "smape") if pd.notna(getattr(r, k))})
        mlflow.log_metrics({"resources_checked": len(plan.table), "resources_at_risk": int(
            plan.table["status"].isin(["over limit now", "certain", "expected", "possible"]).sum()),
            "backtest_runs_failed": int(agg["failed"].sum())})
        telemetry = data.telemetry
        log_dataset(telemetry, "forecasting-telemetry", str(settings.lake_dir), data.data_version)
        mlflow.log_dict(redacted_dump(settings), "config.json")  # never a password or token in MLflow
        mlflow.log_table(bt.aggregate, "backtest_aggregate.json")
        mlflow.log_table(bt.frame.astype({"origin": "string"}), "backtest_runs.json")
        mlflow.log_table(plan.table.astype(str), "capacity_plan.json")
        mlflow.log_text(report_md, "report.md")
        for p in plots:
            mlflow.log_artifact(str(p), "plots")
        for k, (name, model) in enumerate(fitted.items()):
            if on_progress:
                on_progress(name, k, len(fitted))
            rows = bt.aggregate[bt.aggregate["model"] == name]
            metrics = {}
            for r in rows.itertuples():
                metrics.update({f"h{r.horizon}_mase": r.mase, f"h{r.horizon}_mase_vs_naive": r.mase_vs_naive,
                                f"h{r.horizon}_smape": r.smape, f"h{r.horizon}_coverage_80": r.coverage_80,
                                f"h{r.horizon}_coverage_95": r.coverage_95})
            bundle = forecast_bundle(name, model, cfg.freq, data.data_version)
            with mlflow.start_run(run_name=f"forecaster-{name}", nested=True):
                params = {k2: v for k2, v in model.get_params(deep=False).items()}
                params.update({"forecaster": type(model).__name__, "series": sorted(data.series), "freq": cfg.freq})
                versions[name] = log_bundle(bundle, FORECASTER.registered_name(name), example, params, metrics,
                                            {"cerebro.data_version": data.data_version, "cerebro.kind": FORECASTER.name},
                                            description=version_description(bt, data, name, cfg.freq),
                                            model_description=MODEL_DESCRIPTION.format(name=name))
        run_id = parent.info.run_id
    return {"run_id": run_id, "versions": versions}


def below_target(bt, name: str) -> str | None:
    """Why forecaster ``name`` may not become champion, in words; None when it is the baseline or beats it
    (mean ``mase_vs_naive`` over the backtested horizons below 1: what every model must do)."""
    if name == BASELINE:
        return None
    rows = bt.aggregate[bt.aggregate["model"] == name]["mase_vs_naive"].dropna()
    if rows.empty:
        return "no backtest figure against seasonal naive"
    ratio = float(rows.mean())
    return None if ratio < 1 else f"backtest MASE {ratio:.2f}x seasonal naive's; it must be below 1x"


def version_description(bt, data: ForecastingData, name: str, freq: str) -> str:
    rows = bt.aggregate[bt.aggregate["model"] == name]
    figures = "; ".join(f"horizon {r.horizon}: MASE {r.mase:.3f} ({r.mase_vs_naive:.2f}x seasonal naive)"
                        for r in rows.itertuples())
    why = below_target(bt, name)
    standing = "the baseline" if name == BASELINE else (f"misses the target ({why})" if why else "beats seasonal naive")
    start, end = data.telemetry["timestamp"].min(), data.telemetry["timestamp"].max()
    return (f"Forecaster {name} on {freq} means of {', '.join(sorted(data.series))}, fitted on the whole history. "
            f"Data {data.data_version}, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC. Rolling-origin backtest: "
            f"{figures or 'none'}. Standing: {standing}.")


MODEL_DESCRIPTION = ("Forecaster `{name}`, fitted by the pipeline's forecasting stage on the lake's hourly series. "
                     "@champion is the version /v1/forecast serves; a first version becomes champion only if it is "
                     "the seasonal-naive baseline or beats it in the backtest; later ones wait as @challenger until "
                     "`cerebro models promote` judges them (docs/lifecycle.md).")


def summarise(bt, plan, failed: dict[str, str]) -> dict:
    from training.forecasting.capacity import runs_out_first

    agg = bt.aggregate
    first = runs_out_first(plan).head(5)
    return {
        "backtest": agg.round(4).to_dict("records"),
        "failed": failed,
        "capacity_at_risk": int(plan.table["status"].isin(["over limit now", "certain", "expected", "possible"]).sum()),
        "runs_out_first": [{"service": r.service, "metric": r.metric, "status": r.status,
                            "hours_to_upper": None if pd.isna(r.hours_to_upper) else float(r.hours_to_upper)}
                           for r in first.itertuples()],
        "capacity": [{"service": r.service, "metric": r.metric, "limit": float(r.limit), "status": r.status}
                     for r in plan.table.itertuples()],
    }
