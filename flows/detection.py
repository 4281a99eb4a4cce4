"""The ``detection`` flow: features (Feast) -> train the zoo -> evaluate -> register in MLflow, with artifacts.

    prefect deployment run 'pipeline/on-demand'       # runs it as a stage of the pipeline
"""
from __future__ import annotations

import time

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from configs.settings import load_settings
from flows import progress, reporting


@task(name="build-features", cache_policy=NO_CACHE)
def build_features(settings, dataset: str | None, start: str, end: str, window: str | None = None):
    from training.detectors.stage import training_data

    spans = None
    if dataset is None:
        from features.from_lake import service_spans

        spans = service_spans(settings, window or "14d")
    data = training_data(settings, dataset, pd.Timestamp(start), pd.Timestamp(end), spans=spans)
    join = data.feature_report["join"]
    get_run_logger().info("features: %d rows x %d columns; %s", len(data.frame), data.frame.shape[1],
                          f"{join['rows_dropped_ttl']} entity rows dropped by the TTL" if join["rows_dropped_ttl"]
                          else "no rows dropped by the TTL")
    return data


@task(name="train-and-evaluate-zoo", cache_policy=NO_CACHE)
def train_and_evaluate(settings, data):
    """The zoo fitted where ``training.backend`` says: here, or as a SageMaker training job."""
    from training.backends import fit_detectors

    logger = get_run_logger()
    where = "a SageMaker training job" if settings.training.backend == "sagemaker" else "the detector zoo"
    bar = progress.ProgressArtifact(f"training {where}")

    def on_progress(name: str, done: int, total: int) -> None:
        bar.update(done, total)
        progress.advance("train detectors", done, total, name)
        if settings.training.backend == "local" and name not in ("done",):
            logger.info("training %s (%d/%d)", name, done + 1, total)

    return fit_detectors(settings, data, on_progress=on_progress, on_log=logger.info)


@task(name="register-models", cache_policy=NO_CACHE)
def register(settings, result, splits, data, report_md: str, plot_path: str, started: float | None = None,
             trained: dict | None = None) -> dict:
    from pathlib import Path

    from training.detectors.stage import register_zoo

    return register_zoo(settings, result, splits, data, report_md, Path(plot_path),
                        on_progress=lambda n, k, t: progress.advance("register in MLflow", k + 1, t, n),
                        started=started, trained=trained)


@task(name="promote-champions", cache_policy=NO_CACHE)
def promote(settings, data, splits, result, versions: dict[str, str]) -> list[dict]:
    """Judge each new version against its model's champion on this run's test period (the promotion gate);
    a model's first version becomes champion directly if it meets the targets or is the model put forward, and
    is registered without an alias otherwise (``below-target``)."""
    from serving.promotion import promote_if_better
    from training.detectors.stage import below_target

    test_rows = data.frame.loc[splits.frame.index[splits.masks["test"]]].reset_index()
    decisions = []
    for k, (name, version) in enumerate(versions.items()):
        progress.advance("promotion gate", k, len(versions), name)
        d = promote_if_better(settings, f"cerebro-detector-{name}", version, test_rows, data.incidents,
                              recovery_minutes=settings.feast.window_minutes,
                              below_target=below_target(result, name))
        decisions.append({"model": name, "version": version, "decision": d.decision, "reason": d.reason})
    return decisions


@flow(name="detection", log_prints=True)
def detection_flow(dataset: str | None, start: str, end: str, config: str | None = None,
                   window: str | None = None) -> dict:
    """Train, evaluate and register the anomaly-detection zoo on one labelled dataset of the lake, or
    (``dataset`` None) on the lake's last ``window`` of each service, labelled or not."""
    from training.detectors.stage import plot_scores, report_markdown, summarise

    settings = load_settings(config)
    started = time.time()  # the MLflow run is dated from here: its duration is the stage's
    data = build_features(settings, dataset, start, end, window)
    splits, result, trained = train_and_evaluate(settings, data)
    report_md = report_markdown(result, splits, data, settings.detection.put_forward)
    plot = plot_scores(result, splits, settings.reports_dir / f"detection-{data.data_version.replace('@', '-')}.png")
    create_table_artifact(key="detector-comparison", table=reporting.table(result.comparison("test"))[0],
                          description="Every detector on the test period: event-wise precision, recall, F1 "
                                      "(no point adjustment), AUC-PR, mean time to detect")
    create_markdown_artifact(key="detection-report", markdown=report_md + f"\n\nScores plot: `{plot}`",
                             description="Which detectors meet the spec's targets, per fault kind")
    create_markdown_artifact(key="detection-scores-plot",
                             markdown=reporting.png_markdown(plot, f"{result.best}: scores on the test period"),
                             description="The put-forward model's scores over the test period, incidents shaded")
    registered = register(settings, result, splits, data, report_md, str(plot), started, trained)
    promotions = promote(settings, data, splits, result, registered["versions"])
    create_table_artifact(key="detector-promotions", table=reporting.table(promotions)[0],
                          description="Each new version against its model's champion on the same test period")
    return {**summarise(result), "comparison": result.comparison("test"), "data_version": data.data_version, "mlflow_run": registered["run_id"],
            "registered": registered["versions"], "promotions": promotions, "plot": str(plot),
            "ttl_dropped": data.feature_report["join"]["rows_dropped_ttl"], "trained_on": trained}
