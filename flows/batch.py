"""The ``batch-inference`` flow: score a window of the lake with the champion models and write Parquet scores.

    cerebro models ...                                     # see which versions are champions
    python -c "from flows.batch import batch_flow; batch_flow(start='2026-11-19', end='2026-11-20')"
"""
from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from configs.settings import load_settings


@task(name="score-window", cache_policy=NO_CACHE)
def score_window(settings, start: str | None, end: str | None, failure: bool, services: list[str] | None) -> dict:
    from serving.batch import run_batch

    report = run_batch(settings, start, end, failure=failure, services=services)
    get_run_logger().info("scored %d minutes %s .. %s with %s: %d anomalies, %d rows of an earlier run replaced",
                          report.rows, report.start, report.end, report.detector, report.anomalies, report.replaced)
    return report.as_dict()


@flow(name="batch-inference", log_prints=True)
def batch_flow(start: str | None = None, end: str | None = None, failure: bool = False,
               services: list[str] | None = None, config: str | None = None) -> dict:
    """Score [start, end) of the lake (default: its last 24 hours) with the champion detector (and the failure
    predictor with ``failure=True``); scores land in ``lifecycle.batch_output_dir``, one partition per date."""
    settings = load_settings(config)
    report = score_window(settings, start, end, failure, services)
    create_table_artifact(
        key="batch-scores", table=report["per_service"],
        description=f"Batch scores {report['start']} .. {report['end']} by {report['detector']}"
                    + (f" and {report['failure']}" if report["failure"] else "")
                    + f": {report['rows']} minutes, {report['anomalies']} anomalous; written to {report['output']}")
    return report
