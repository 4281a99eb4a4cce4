"""The ``ingest`` flow: source -> validate (Great Expectations) -> quarantine + lake, with artifacts.

    cerebro ingest --source data/export.csv
    prefect deployment run 'ingest/on-demand' --param source=s3://bucket/telemetry/
    prefect deployment run 'ingest/on-demand' --param incidents=/data/pagerduty.json
    prefect deployment run 'ingest/on-demand' --param traces=/data/otel/traces.jsonl
"""
from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from configs.settings import load_settings
from flows import progress, reporting


class IngestFailed(RuntimeError):
    """One or more batches were unusable; the message names each and its first problems."""


@task(name="resolve-source", cache_policy=NO_CACHE)
def resolve_source(source: str, settings, mapping: dict) -> list:
    from telemetry.sources import resolve

    return resolve(source, settings, **mapping)


@task(name="validate-and-store", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2,
      task_run_name="validate-and-store {batch.name}")
def validate_and_store(batch, settings) -> dict:
    from telemetry.ingest import ingest_batch

    report = ingest_batch(batch, settings)
    logger = get_run_logger()
    if report.error:
        logger.error(report.error)
    else:
        logger.info("%s: %d rows, %d clean, %d quarantined %s", batch.name, report.rows_in, report.rows_clean,
                    report.rows_quarantined, report.reasons or "")
    for warning in report.warnings:
        logger.warning(warning)
    return report.to_dict()


@task(name="store-side-tables", cache_policy=NO_CACHE)
def store_side_tables(folder: str, settings) -> dict:
    from telemetry.ingest import ingest_side_tables

    return ingest_side_tables(Path(folder), settings.lake_dir)


def publish_ingest_artifacts(reports: list[dict], side: dict, key_prefix: str = "ingest") -> None:
    create_table_artifact(key=f"{key_prefix}-data-quality", table=reporting.quality_rows(reports),
                          description="Great Expectations rules per batch: rows checked, failed, an example")
    create_markdown_artifact(key=f"{key_prefix}-summary", markdown=reporting.ingest_markdown(reports, side),
                             description="What was ingested, what was quarantined and why")


@task(name="import-incidents", cache_policy=NO_CACHE)
def import_incidents(path: str, settings, dataset: str | None, open_minutes: float | None) -> dict:
    from telemetry.ingest import ingest_incidents

    report = ingest_incidents(path, settings, dataset=dataset, open_minutes=open_minutes)
    create_markdown_artifact(key="ingest-incidents", markdown=reporting.incidents_markdown(report.to_dict()),
                             description="Past incidents imported into the lake, and what was quarantined")
    get_run_logger().info("%s (%s): %d records, %d stored as dataset %s, %d quarantined %s", path, report.format,
                          report.rows_in, report.rows_stored, report.dataset, report.rows_quarantined,
                          report.reasons or "")
    return report.to_dict()


@task(name="import-traces", cache_policy=NO_CACHE)
def import_traces(path: str, settings, dataset: str | None) -> dict:
    from telemetry.ingest import ingest_traces

    report = ingest_traces(path, settings, dataset=dataset)
    get_run_logger().info("%s: %d spans, %d stored as dataset %s (%d traces), %d quarantined %s", path,
                          report.spans_in, report.spans_stored, report.dataset, report.traces,
                          report.spans_quarantined, report.reasons or "")
    return report.to_dict()


@flow(name="ingest", log_prints=True)
def ingest_flow(
    source: str | None = None,
    config: str | None = None,
    time_col: str | None = None,
    service_col: str | None = None,
    value_cols: list[str] | None = None,
    default_service: str | None = None,
    incidents: str | None = None,
    dataset: str | None = None,
    open_minutes: float | None = None,
    traces: str | None = None,
) -> dict:
    """Ingest telemetry from a file, folder, s3://, prometheus:// or cloudwatch:// source into the lake, and/or
    past incidents from a file (``incidents``: CSV/JSON, PagerDuty or Alertmanager export) into its
    incidents table, as ``dataset`` (default incidents-<file name>).

    ``traces``: an OpenTelemetry OTLP/JSON file or folder of request traces, stored in the lake's traces table
    as ``dataset`` (default otlp-<name>).

    Bad rows are quarantined with a reason each; a batch that is mostly bad fails the run, by name, and so
    does an incidents or traces file of which nothing is usable."""
    if not source and not incidents and not traces:
        raise ValueError("nothing to ingest: give source (telemetry), incidents (a file of past incidents) and/or "
                         "traces (OTLP/JSON files)")
    settings = load_settings(config)
    imported = import_incidents(incidents, settings, dataset, open_minutes) if incidents else None
    spans = import_traces(traces, settings, dataset) if traces else None
    if not source:
        return {k: v for k, v in {"incidents": imported, "traces": spans}.items() if v is not None}
    mapping = {k: v for k, v in {"time_col": time_col, "service_col": service_col, "value_cols": value_cols,
                                 "default_service": default_service}.items() if v}
    batches = resolve_source(source, settings, mapping)
    # One task per file or object: they run side by side on the configured task runner (threads or Dask).
    futures = validate_and_store.map(batches, settings=unmapped(settings))
    bar = progress.ProgressArtifact(f"validating {len(batches)} batch(es) from {source}")
    progress.advance("validate", 0, len(batches), source)
    for done, future in enumerate(futures, start=1):
        future.wait()
        bar.update(done, len(batches))
        progress.advance("validate", done, len(batches), batches[done - 1].name)
    reports = futures.result()
    side = store_side_tables(source, settings) if Path(source).is_dir() else {}
    publish_ingest_artifacts(reports, side)
    summary = reporting.ingest_summary(reports, side, settings)
    failed = [r for r in reports if r["error"]]
    if failed:
        raise IngestFailed("\n".join(r["error"] for r in failed))
    if imported is not None:
        summary["incidents"] = imported
    if spans is not None:
        summary["traces"] = spans
    return summary
