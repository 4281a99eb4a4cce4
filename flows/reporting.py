"""Turn reports into the tables and markdown that Prefect artifacts and the CLI show. No Prefect here.

Every number a person reads goes through :func:`number` (rounded to what it means, a blank for a missing value)
and every table artifact through :func:`table`, which also keeps it narrow and says when it was cut.
"""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta


def number(value, digits: int = 3):
    """A cell for people: floats rounded to ``digits`` significant figures (whole numbers from 1,000 up, one
    decimal from 10 up), timestamps to the minute, a blank for None, NaN and NaT, and "yes"/"no" for booleans.
    Strings and integers pass unchanged."""
    import pandas as pd

    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return value
    if isinstance(value, (pd.Timestamp, datetime, date)):
        return "" if pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, (pd.Timedelta, timedelta)):
        return "" if pd.isna(value) else str(pd.Timedelta(value).round("min"))
    if isinstance(value, str):
        return "" if value in ("nan", "NaT", "None", "<NA>") else value
    try:
        x = float(value)
    except (TypeError, ValueError):
        return "" if pd.isna(value) is True else str(value)
    if not math.isfinite(x):
        return "" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if float(x).is_integer() and abs(x) < 1e15:
        return int(x)
    if abs(x) >= 1000:
        return round(x)
    if abs(x) >= 10:
        return round(x, 1)
    return float(f"{x:.{digits}g}")


def probability(value):
    """A probability for people: three decimals, "<0.001" for what rounds to nothing but is not zero."""
    cell = number(value)
    if isinstance(cell, (int, float)) and not isinstance(cell, bool):
        return "<0.001" if 0 < cell < 0.0005 else round(float(cell), 3)
    return cell


def table(rows, columns: list[str] | None = None, top: int | None = None, what: str = "rows") -> tuple[list[dict], str]:
    """``rows`` (records or a DataFrame) with every cell through :func:`number`, only ``columns`` (in that
    order), the first ``top``; and a sentence that says how many of how many are shown ("" when all are)."""
    import pandas as pd

    records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows)
    total = len(records)
    if top is not None:
        records = records[:top]
    keep = columns or (list(records[0]) if records else [])
    shown = [{c: number(r.get(c)) for c in keep} for r in records]
    note = f"Showing {len(shown)} of {total} {what}." if len(shown) < total else ""
    return shown, note


def mlflow_run_url(settings, run_id: str, artifacts: bool = False) -> str:
    """The run's page in the MLflow UI (``mlflow.ui_url``, what `cerebro ui` starts), its artifacts tab with
    ``artifacts``: a link a browser opens from the Prefect UI, where a file:// link is blocked."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    ui = settings.mlflow.ui_url.rstrip("/")
    try:
        experiment = MlflowClient(tracking_uri=settings.mlflow_tracking_uri).get_run(run_id).info.experiment_id
    except MlflowException:  # a link must never fail a flow: the UI's run route finds the experiment itself
        return f"{ui}/#/runs/{run_id}"
    url = f"{ui}/#/experiments/{experiment}/runs/{run_id}"
    return url + "/artifacts" if artifacts else url


def ingest_summary(reports: list[dict], side: dict, settings) -> dict:
    from telemetry.lake import lake_stats

    totals = {k: sum(r[k] for r in reports) for k in
              ("rows_in", "rows_clean", "rows_quarantined", "rows_new_in_lake", "rows_updated_in_lake")}
    reasons: dict[str, int] = {}
    for r in reports:
        for k, v in r["reasons"].items():
            reasons[k] = reasons.get(k, 0) + v
    return {
        "batches": len(reports),
        **totals,
        "quarantine_reasons": reasons,
        "quarantine_files": [r["quarantine_path"] for r in reports if r["quarantine_path"]],
        "warnings": [w for r in reports for w in r["warnings"]],
        "errors": [r["error"] for r in reports if r["error"]],
        "side_tables": side,
        "lake": {k: v for k, v in lake_stats(settings.lake_dir).items() if k in ("rows", "partitions")},
        "lake_dir": str(settings.lake_dir),
    }


def quality_rows(reports: list[dict]) -> list[dict]:
    rows = []
    for r in reports:
        for rule in r["rules"]:
            rows.append({"batch": r["source"], **rule})
    return rows


def ingest_markdown(reports: list[dict], side: dict) -> str:
    lines = ["# Ingest", "", "| batch | rows | clean | quarantined | new in lake | why quarantined |",
             "|---|---:|---:|---:|---:|---|"]
    for r in reports:
        why = ", ".join(f"{k}: {v}" for k, v in sorted(r["reasons"].items())) or "-"
        lines.append(f"| `{r['source']}` | {r['rows_in']:,} | {r['rows_clean']:,} | {r['rows_quarantined']:,} | "
                     f"{r['rows_new_in_lake']:,} | {why} |")
    errors = [r for r in reports if r["error"]]
    if errors:
        lines += ["", "## Rejected batches", ""] + [f"- {r['error']}" for r in errors]
    warnings = [w for r in reports for w in r["warnings"]]
    if warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in warnings]
    qfiles = [r["quarantine_path"] for r in reports if r["quarantine_path"]]
    if qfiles:
        lines += ["", "## Quarantine", "", "Rejected rows, each with its reason:", ""] + [f"- `{q}`" for q in qfiles]
    if side:
        lines += ["", "## Side tables", ""] + [f"- {k}: {v:,} new" for k, v in side.items()]
    return "\n".join(lines)


def incidents_markdown(report: dict) -> str:
    """An incidents import (telemetry.ingest.IncidentImportReport.to_dict()) as the ``ingest-incidents`` artifact."""
    head = f"`{report['source']}` read as **{report['format']}** into dataset `{report['dataset']}`"
    counts = " | ".join(f"{report[k]:,}" for k in ("rows_in", "rows_stored", "rows_new_in_lake",
                                                   "rows_replaced_in_lake", "rows_quarantined", "open_incidents"))
    lines = ["# Incidents import", "", head, "", "| records | stored | new | replaced | quarantined | still open |",
             "|---:|---:|---:|---:|---:|---:|", f"| {counts} |"]
    if report["open_incidents"]:
        lines += ["", f"Still-open incidents are stored with end = start + {report['open_minutes']:g} minutes."]
    if report["quarantine_path"]:
        why = ", ".join(f"{k}: {v}" for k, v in report["reasons"].items())
        lines += ["", f"Quarantined ({why}), each record with its reason: `{report['quarantine_path']}`"]
    return "\n".join(lines)


def stages_markdown(title: str, stages: list[dict], footer: str = "") -> str:
    lines = [f"# {title}", "", "| stage | seconds | result |", "|---|---:|---|"]
    for s in stages:
        lines.append(f"| {s['stage']} | {s['seconds']:.1f} | {s['result']} |")
    if footer:
        lines += ["", footer]
    return "\n".join(lines)


PREFECT_UI = "http://127.0.0.1:4200"  # what `cerebro ui` starts
# stage of the pipeline summary -> (its key in the summary, its Prefect artifacts)
STAGE_ARTIFACTS = {
    "ingest": ("ingest", ["ingest-summary", "ingest-data-quality"]),
    "detection": ("detection", ["detection-report", "detector-comparison", "detector-promotions",
                                "detection-scores-plot"]),
    "forecasting": ("forecasting", ["forecasting-report", "forecast-backtest", "capacity-plan"]),
    "failure predictor": ("failure", ["failure-report"]),
    "drift check": ("drift", ["drift-report", "drift-metrics", "drift-evidently-report"]),
    "investigations": ("investigations", ["rca-evaluation"]),
}


def links_markdown(settings, summary: dict) -> str:
    """Where each stage's results are: its Prefect artifacts (the UI's page of each key) and its MLflow run."""
    lines = ["## Where to look", "", "| stage | Prefect artifacts | MLflow run |", "|---|---|---|"]
    for stage, (key, artifacts) in STAGE_ARTIFACTS.items():
        part = summary.get(key)
        if not isinstance(part, dict) or isinstance(part.get("skipped"), str):  # a stage skipped, and why
            continue
        links = ", ".join(f"[{a}]({PREFECT_UI}/artifacts/key/{a})" for a in artifacts)
        run_id = part.get("mlflow_run") or part.get("mlflow_run_id")
        run = ""
        if run_id:
            try:
                run = f"[{stage}]({mlflow_run_url(settings, run_id)})"
            except Exception:  # noqa: BLE001 - a link is not worth failing the summary over
                run = f"`{run_id}`"
        lines.append(f"| {stage} | {links} | {run} |")
    return "\n".join(lines)


def png_markdown(path, title: str) -> str:
    """A PNG embedded in markdown (a ``data:`` URI inside ``![...]()``), so a markdown artifact shows the plot
    itself without printing the URI as an "Image URL" the way an image artifact does (the Prefect server may
    not see this machine's disk, so a path would not do); the file's path follows as text."""
    import base64
    from pathlib import Path

    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"![{title}](data:image/png;base64,{data})\n\nFile: `{path}`"
