"""The ``drift`` flow: has the lake's last day left the week before it? Retrain or fall back when it has.

    prefect deployment run 'drift/hourly'                 # what the hourly schedule runs
    prefect deployment run 'drift/hourly' --param trigger=false   # report only

Data drift (KS and PSI per input of the live detector, as it reads them; per raw metric when none is live),
prediction drift (the live detector's scores) and, where incidents have been recorded for the window,
performance drift; the Evidently HTML report is saved under the home folder,
linked from a Prefect artifact and logged to MLflow. ``retrain`` runs the retraining deployment
(``drift.retrain_deployment``); ``fallback`` serves the configured simpler detector under the live model's
name (a new version that becomes its champion) and records why.
"""
from __future__ import annotations

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from configs.settings import load_settings


@task(name="read-windows", cache_policy=NO_CACHE)
def read_windows(settings, end: str | None):
    from serving.drift import split_windows
    from telemetry import lake

    cfg = settings.drift
    stats = lake.lake_stats(settings.lake_dir)
    if not stats.get("rows"):
        raise ValueError(f"the lake at {settings.lake_dir} is empty: ingest telemetry first (cerebro ingest / make run)")
    if end:
        stop = pd.Timestamp(end)
        stop = stop.tz_localize("UTC") if stop.tzinfo is None else stop.tz_convert("UTC")
    else:  # the newest row: read only the newest day's partitions to find it
        stop = lake.read_telemetry(settings.lake_dir, start=pd.Timestamp(stats["dates"][-1], tz="UTC"))["timestamp"].max()
    # A day before the reference too, so the current window's rolling features and baselines have history.
    start = stop - pd.Timedelta(hours=cfg.current_hours) - pd.Timedelta(days=cfg.reference_days + 1)
    telemetry = lake.read_telemetry(settings.lake_dir, start=start, end=stop)
    reference, current = split_windows(telemetry[telemetry["timestamp"] >= start + pd.Timedelta(days=1)], stop,
                                       cfg.reference_days, cfg.current_hours)
    return telemetry, reference, current, stop


@task(name="live-detector", cache_policy=NO_CACHE)
def load_live(settings, telemetry, current_start):
    """The live detector (None when none is registered) and the feature rows of both windows."""
    import mlflow

    from features.from_lake import deploy_events, features_of
    from serving import watch

    cfg = settings.drift
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    live = watch.live_model(cfg.model)
    if live is None:
        return None, None
    events = deploy_events(settings)
    features = features_of(telemetry, events if len(events) else None, settings.feast.window_minutes)
    features = features[pd.to_datetime(features["timestamp"], utc=True)
                        >= current_start - pd.Timedelta(days=cfg.reference_days)]
    return live, features


@task(name="data-drift", cache_policy=NO_CACHE)
def check_data(settings, reference, current, html_path: str, live, features, current_start):
    """Drift of the live detector's inputs (``drift.compare: inputs``), with the raw metrics reported beside;
    of the raw metrics alone when no detector is live, its inputs cannot be computed, or ``compare: metrics``."""
    from pathlib import Path

    from serving import watch
    from serving.drift import data_drift, wide
    from serving.scoring import RequestError, WarmUpError
    from telemetry.schema import FLEET_METRICS

    cfg = settings.drift
    ref, cur = wide(reference), wide(current)
    columns = cfg.metrics or [m for m in FLEET_METRICS if m in ref.columns]
    options = {"ks_pvalue": cfg.ks_pvalue, "psi": cfg.psi, "drift_share": cfg.drift_share, "clip": cfg.clip_quantile}
    by_inputs = live is not None and cfg.compare == "inputs"
    raw = data_drift(ref, cur, columns, html_path=None if by_inputs else Path(html_path), **options)
    if not by_inputs:
        return raw
    try:
        ref_in, cur_in, used = watch.input_windows(live, features, current_start)
    except (RequestError, WarmUpError) as exc:
        get_run_logger().warning("drift: comparing raw metrics: %s", exc)
        raw.compared = f"raw metrics ({live.name} v{live.version}'s inputs could not be computed: {exc})"
        return raw
    result = data_drift(ref_in, cur_in, used, html_path=Path(html_path), **options,
                        compared=f"inputs of {live.name} v{live.version}")
    result.raw = raw.metrics
    return result


@task(name="prediction-and-performance-drift", cache_policy=NO_CACHE)
def check_predictions(settings, live, features, current_start, stop):
    from serving import watch
    from serving.drift import performance_drift, prediction_drift

    cfg = settings.drift
    if live is None:
        return {}, {}
    scored = watch.score_windows(live, features, current_start)
    prediction = prediction_drift(watch.scores_of(scored["reference"]), watch.scores_of(scored["current"]),
                                  scored["reference"]["is_anomaly"].to_numpy(), scored["current"]["is_anomaly"].to_numpy(),
                                  psi=cfg.prediction_psi)
    performance = {}
    incidents = watch.recent_incidents(settings.lake_dir, current_start, stop)
    if len(incidents):
        f1, n = watch.current_f1(scored["current"], incidents, settings.feast.window_minutes)
        performance = performance_drift(f1, live.registered_f1, cfg.max_f1_drop, n)
    return prediction, performance


@task(name="log-drift-to-mlflow", cache_policy=NO_CACHE)
def log_to_mlflow(settings, result, decision, report_md: str) -> str:
    import mlflow

    from training.tracking import use_experiment

    use_experiment(settings)
    with mlflow.start_run(run_name="drift-check") as run:
        mlflow.set_tags({"cerebro.stage": "drift", "cerebro.drift_action": decision.action})
        mlflow.log_metrics({"share_drifted": result.share_drifted, "data_drift": float(result.data_drift),
                            **{f"psi_{c}": v["psi"] for c, v in result.metrics.items() if "psi" in v},
                            **{f"raw_psi_{c}": v["psi"] for c, v in result.raw.items() if "psi" in v},
                            **{f"prediction_{k}": float(v) for k, v in result.prediction.items()},
                            **{f"performance_{k}": float(v) for k, v in result.performance.items()
                               if v is not None}})
        mlflow.log_dict(result.as_dict(), "drift.json")
        mlflow.log_text(report_md, "drift.md")
        if result.html:
            mlflow.log_artifact(result.html)
        return run.info.run_id


@task(name="trigger-retraining", cache_policy=NO_CACHE)
def trigger_retraining(deployment: str, reasons: list[str]) -> dict:
    """Run the retraining deployment now (no waiting); say plainly when it does not exist."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    try:
        run = run_deployment(name=deployment, timeout=0, tags=["drift"])
    except ObjectNotFound:
        return {"triggered": False, "why": f"deployment {deployment!r} not found: register it with `make deploy`"}
    get_run_logger().warning("drift: started %s (flow run %s) because %s", deployment, run.id, "; ".join(reasons))
    return {"triggered": True, "flow_run_id": str(run.id), "deployment": deployment}


@flow(name="drift", log_prints=True)
def drift_flow(config: str | None = None, end: str | None = None, trigger: bool = True) -> dict:
    """Compare the lake's last ``drift.current_hours`` with the ``drift.reference_days`` before them, then act.

    ``end``: the end of the current window (default: the lake's newest row). ``trigger=False`` reports the
    decision without running the retraining deployment or falling back (the pipeline's own check)."""
    from serving import watch
    from serving.drift import decide, report_markdown

    settings = load_settings(config)
    logger = get_run_logger()
    telemetry, reference, current, stop = read_windows(settings, end)
    current_start = stop - pd.Timedelta(hours=settings.drift.current_hours)
    html = settings.reports_dir / f"drift-{stop:%Y%m%dT%H%M}.html"
    live, features = load_live(settings, telemetry, current_start)
    result = check_data(settings, reference, current, str(html), live, features, current_start)
    result.prediction, result.performance = check_predictions(settings, live, features, current_start, stop)
    decision = decide(result)
    window = {"reference": f"{reference['timestamp'].min():%Y-%m-%d %H:%M} to {reference['timestamp'].max():%Y-%m-%d %H:%M}",
              "current": f"{current['timestamp'].min():%Y-%m-%d %H:%M} to {current['timestamp'].max():%Y-%m-%d %H:%M}"}
    report_md = report_markdown(result, decision, window)
    if live is None:
        report_md += f"\n\nNo `{settings.drift.model}` is registered: prediction and performance drift not checked."
    run_id = log_to_mlflow(settings, result, decision, report_md)

    action: dict = {"action": decision.action, "reasons": decision.reasons, "applied": False}
    if trigger and decision.action == "retrain":
        action.update(trigger_retraining(settings.drift.retrain_deployment, decision.reasons))
        action["applied"] = action.get("triggered", False)
    elif trigger and decision.action == "fallback" and live is not None:
        version = watch.fall_back(live, settings.drift.fallback_model, "; ".join(decision.reasons))
        action.update({"applied": True, "fallback_version": version})
        logger.warning("drift: %s now serves %s as version %s because %s", live.name,
                       settings.drift.fallback_model, version, "; ".join(decision.reasons))
    report_md += f"\n\nWhat was done: {action}"
    create_markdown_artifact(key="drift-report", markdown=report_md, description="Drift check")
    create_table_artifact(key="drift-metrics", table=[{"column": c, **v} for c, v in result.metrics.items()],
                          description=f"KS p-value and PSI per column of the {result.compared}")
    if result.html:
        create_link_artifact(key="drift-evidently-report", link=html.resolve().as_uri(),
                             link_text="Evidently drift report (HTML)")
        pruned = watch.prune_reports(settings.reports_dir, settings.drift.keep_reports)
        if pruned:
            logger.info("drift: removed %d older report(s) (drift.keep_reports: %d)", len(pruned),
                        settings.drift.keep_reports)
    logger.info("drift: %s (%s)", decision.action, "; ".join(decision.reasons))
    return {"action": action, "share_drifted": result.share_drifted, "data_drift": result.data_drift,
            "compared": result.compared,
            "drifted_metrics": sorted(name for name, g in result.groups.items() if g["drift"]),
            "prediction": result.prediction, "performance": result.performance, "html": result.html,
            "mlflow_run_id": run_id, "model": None if live is None else f"{live.name}/{live.version}"}
