"""The ``drift`` flow: has the lake's last day left the same hours a week earlier? Retrain or fall back when it has.

    prefect deployment run 'drift/hourly'                 # what the hourly schedule runs
    prefect deployment run 'drift/hourly' --param trigger=false   # report only

Data drift (KS and PSI per input of the live detector, as it reads them; per raw metric when none is live),
prediction drift (the live detector's scores) and, where incidents have been recorded for the window,
performance drift; the Evidently HTML report is saved under the home folder and logged to MLflow, and the
Prefect artifacts link to the MLflow run's artifacts (``mlflow.ui_url``). ``retrain`` runs the retraining deployment
(``drift.retrain_deployment``); ``fallback`` serves the configured simpler detector under the live model's
name (a new version that becomes its champion) and records why. The check itself, its decision and its
MLflow run are ``serving.drift_check.run_drift_check``; this flow runs its steps as tasks, starts the
retraining deployment, writes the artifacts and, when it acts, alerts the ML team (``notify``, flows/notify.py).
"""
from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from configs.settings import load_settings
from flows import reporting


def _as_task(name: str, fn):
    """A step of the check as a Prefect task of that name (never cached: the lake and the registry move)."""
    return task(fn, name=name, cache_policy=NO_CACHE)


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
    return {"triggered": True, "flow_run_id": str(run.id), "flow_run_name": run.name, "deployment": deployment}


@flow(name="drift", log_prints=True)
def drift_flow(config: str | None = None, end: str | None = None, trigger: bool = True) -> dict:
    """Compare the lake's last ``drift.current_hours`` with their reference (``drift.reference``), then act.

    ``end``: the end of the current window (default: the lake's newest row). ``trigger=False`` reports the
    decision without running the retraining deployment or falling back (the pipeline's own check)."""
    from serving.drift import metric_of
    from serving.drift_check import run_drift_check

    settings = load_settings(config)
    check = run_drift_check(settings, end, act=trigger, retrain=trigger_retraining, step=_as_task,
                            logger=get_run_logger)
    result = check.result
    run_url = reporting.mlflow_run_url(settings, check.mlflow_run_id, artifacts=True)
    where = ""
    if result.html:
        name = Path(result.html).name
        where = (f"\n\nThe Evidently report ({name}) is in the [drift-check run's artifacts in MLflow]({run_url}) "
                 f"(with `cerebro ui` running), and on this machine at `{Path(result.html).resolve()}`.")
    create_markdown_artifact(key="drift-report", markdown=check.report_md + where, description="Drift check")
    rows, _ = reporting.table([{"column": c, "metric": metric_of(c), **v} for c, v in result.metrics.items()],
                              ["column", "metric", "ks_pvalue", "psi", "drifted"])
    create_table_artifact(key="drift-metrics", table=rows,
                          description=f"KS p-value and PSI per column of the {result.compared}; drifted: KS p < "
                                      f"{settings.drift.ks_pvalue:g} and PSI > {settings.drift.psi:g}")
    if result.html:
        # The MLflow UI's page of the run, not a file:// link: browsers block those from an http page.
        create_link_artifact(key="drift-evidently-report", link=run_url,
                             link_text=f"Evidently drift report (HTML) in the MLflow run: {Path(result.html).name}")
    summary = check.summary()
    if trigger:  # the hourly check acts, so it alerts; report-only checks (`cerebro drift`, the pipeline's) do not
        from flows.notify import alert_drift

        alert_drift(settings, summary, compared=len(result.groups or result.metrics))
    return summary
