"""The ``failure`` flow: label the lake's history with the failures that followed, join Feast's failure_v1
features, train and measure the failure predictor, register it in MLflow, with its report as an artifact."""
from __future__ import annotations

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from configs.settings import load_settings


@task(name="failure-training-data", cache_policy=NO_CACHE)
def training_data(settings, dataset: str, start: str, end: str, build_store: bool):
    from training.failure.data import failure_training_data

    cfg = settings.failure
    return failure_training_data(settings, dataset, pd.Timestamp(start), pd.Timestamp(end),
                                 horizon_minutes=cfg.horizon_minutes, step_minutes=cfg.step_minutes,
                                 build_store=build_store, at=cfg.failure_at)


@task(name="train-failure-predictor", cache_policy=NO_CACHE)
def train(settings, data):
    from training.failure.stage import train_failure_predictor

    return train_failure_predictor(data, settings)


@task(name="register-failure-predictor", cache_policy=NO_CACHE)
def register(settings, model, report, data, report_md: str) -> dict:
    from training.failure.stage import register_failure_predictor

    return register_failure_predictor(settings, model, report, data, report_md)


@task(name="promote-failure-predictor", cache_policy=NO_CACHE)
def promote(settings, data, version: str) -> dict:
    """The new version against the champion on this run's test period (PR-AUC; the first becomes champion)."""
    from serving.promotion import promote_if_better
    from training.failure.labels import LABEL
    from training.failure.stage import split_by_time

    test = data.frame[split_by_time(data.frame, data.horizon_minutes, tuple(settings.failure.split)).masks["test"]]
    rows = test.reset_index()[["service", "timestamp", *data.features]]
    d = promote_if_better(settings, "cerebro-failure-predictor", version, rows, test[LABEL].to_numpy())
    return {"decision": d.decision, "reason": d.reason, "champion": d.champion_after}


def _too_few_failures(data, settings) -> str | None:
    """Why the window cannot train the predictor (no failure in its training or validation period), or None."""
    from training.failure.labels import LABEL
    from training.failure.stage import split_by_time

    splits = split_by_time(data.frame, data.horizon_minutes, tuple(settings.failure.split))
    y = data.frame[LABEL].to_numpy()
    for name in ("train", "validation"):
        n, pos = int(splits.masks[name].sum()), int(y[splits.masks[name]].sum())
        if pos == 0 or pos == n:
            return (f"the {name} period ({n} rows) holds {pos} failure rows: it needs both failures and normal rows; "
                    "use a longer window (simulator.days) or more incidents")
    return None


@flow(name="failure", log_prints=True)
def failure_flow(dataset: str, start: str, end: str, config: str | None = None, build_store: bool = True) -> dict:
    """Train, measure and register the failure predictor on one labelled dataset of the lake.

    ``build_store=False`` reuses the Feast store the detection stage has just built from the same window."""
    from training.failure.report import report_markdown
    from training.failure.stage import summarise

    settings = load_settings(config)
    data = training_data(settings, dataset, start, end, build_store)
    short = _too_few_failures(data, settings)
    if short:
        get_run_logger().warning("failure predictor skipped: %s", short)
        return {"skipped": short}
    model, report = train(settings, data)
    report_md = report_markdown(report)
    per_kind = report["test"].get("per_kind") or []
    if per_kind:
        create_table_artifact(key="failure-per-kind", table=per_kind,
                              description="Failure prediction on the test period, per fault kind")
    create_markdown_artifact(key="failure-report", markdown=report_md,
                             description="Failure predictor: PR-AUC, recall at precision 0.9, lead times")
    registered = register(settings, model, report, data, report_md)
    promotion = promote(settings, data, registered["version"])
    return {**summarise(report), "data_version": data.data_version, "mlflow_run": registered["run_id"],
            "registered_version": registered["version"], "promotion": promotion}
