"""`cerebro batch`: the live champion's scores for a window of the lake, to a CSV or Parquet file
(serving/batch.py, ``export_scores``)."""
from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.common import ConfigOpt, JsonOpt, fail, out, print_json, settings_or_exit


def _time(value: str | None, option: str):
    if value is None:
        return None
    import pandas as pd

    try:
        return pd.Timestamp(value)
    except ValueError:
        fail(f"{option} {value!r} is not a time: expected ISO 8601, e.g. 2026-11-20T00:00Z", 2)


def batch(
    output: Path = typer.Option(..., "--output", "-o", help="File to write: .csv or .parquet, one row per "
                                "(timestamp, service): timestamp, service, score, is_anomaly."),
    start: str | None = typer.Option(None, "--from", help="Start of the window, ISO 8601 (default: 24 hours before "
                                     "its end)."),
    end: str | None = typer.Option(None, "--to", help="End of the window, exclusive, ISO 8601 (default: just after "
                                   "the lake's newest minute)."),
    service: list[str] | None = typer.Option(None, "--service", "-s", help="Only this service (repeatable; "
                                             "default: every service in the lake)."),
    failure: bool = typer.Option(False, "--failure", help="Add the failure predictor's champion: "
                                 "failure_probability and failure_alarm columns."),
    config: str | None = ConfigOpt,
    as_json: bool = JsonOpt,
):
    """Score a window of the lake with the live champion detector and write one row per (timestamp, service).

    The champion is `lifecycle.detector_model`@champion (or the fallback model's when it has none), the same
    model the `batch-inference` deployment and the scoring service use; the scores also land in the
    partitioned store under `lifecycle.batch_output_dir`, replacing an earlier run's rows for the window.

    Examples:

        cerebro batch --output scores.csv                                    # the lake's last 24 hours

        cerebro batch --from 2026-11-19T00:00Z --to 2026-11-20T00:00Z -s payment -o payment.parquet --json
    """
    settings = settings_or_exit(config)
    begin, stop = _time(start, "--from"), _time(end, "--to")
    from serving.batch import export_scores

    try:
        report = export_scores(settings, output, begin, stop, services=list(service or []) or None, failure=failure)
    except ValueError as exc:  # bad window, extension or service; RegistryError (no champion) is one too
        fail(str(exc), 2)
    if as_json:
        print_json(report.as_dict())
        return
    out.print(f"Scored {report.rows:,} service-minutes {report.start} .. {report.end} with {report.detector}"
              + (f" and {report.failure}" if report.failure else "")
              + f": {report.anomalies:,} anomalous; wrote {report.output}")
    for row in report.per_service:
        out.print(f"  {row['service']}: {row['minutes']:,} rows, {row['anomalies']:,} anomalous", highlight=False)
