"""Turn reports into the tables and markdown that Prefect artifacts and the CLI show. No Prefect here."""
from __future__ import annotations


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


def png_data_uri(path) -> str:
    """A PNG as a ``data:`` URI, so an image artifact shows the plot itself and not only where it lies (the
    Prefect server may not see this machine's disk)."""
    import base64
    from pathlib import Path

    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")
