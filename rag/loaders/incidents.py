"""Incident records: JSON, YAML or CSV files, and the simulator's / the lake's incidents table.

A record needs an ``incident_id`` (or ``id``) and a ``summary``; ``root_cause_service``,
``affected_services``, ``kind``, ``severity``, ``start``, ``end``, ``failed_at`` and ``resolution`` are
read when present. A record that breaks these rules is skipped and reported with its file, row and field;
a file that does not parse is an error naming the file.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml

from rag.documents import Document, LoadError, LoadReport, stable_id
from rag.loaders._common import as_list, iso_utc, load_files

SUFFIXES = (".json", ".yaml", ".yml", ".csv")
LAKE_ORIGIN = "lake:incidents"  # the origin the lake's incidents are indexed under, by every path that indexes them


def _records(path: Path) -> list:
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return list(csv.DictReader(text.splitlines()))
        data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise LoadError(f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except yaml.YAMLError as exc:
        raise LoadError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("incidents"), list):
        return data["incidents"]
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return data
    raise LoadError(f"{path}: expected a list of incidents (or {{\"incidents\": [...]}}), got {type(data).__name__}")


def incident_document(record, source: str, row: int | str) -> Document:
    """One incident record -> a Document; raises LoadError naming the row and the field."""
    where = f"{source}: record {row}"
    if not isinstance(record, dict):
        raise LoadError(f"{where}: expected a mapping of fields, got {type(record).__name__}")
    incident_id = record.get("incident_id") or record.get("id")
    if not incident_id or not isinstance(incident_id, (str, int)):
        raise LoadError(f"{where}: field `incident_id` is missing; every incident needs an id")
    where = f"{source}: record {row} ({incident_id})"
    summary = record.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        raise LoadError(f"{where}: field `summary` must be a non-empty text, got {summary!r}")
    root = record.get("root_cause_service") or record.get("service")
    if root is not None and not isinstance(root, str):
        raise LoadError(f"{where}: field `root_cause_service` must be a service name, got {root!r}")
    affected = as_list(record.get("affected_services"), f"{where}: field `affected_services`")
    times = {f: iso_utc(record.get(f), f"{where}: field `{f}`") for f in ("start", "end", "failed_at")}
    if times["start"] and times["end"] and times["end"] < times["start"]:
        raise LoadError(f"{where}: field `end` ({times['end']}) is before `start` ({times['start']})")
    kind = record.get("kind") or ""
    severity = record.get("severity") or ""
    resolution = record.get("resolution") or ""
    if not isinstance(resolution, str):
        raise LoadError(f"{where}: field `resolution` must be text, got {resolution!r}")
    services = list(dict.fromkeys(([root] if root else []) + affected))
    facts = [f"Kind: {kind}." if kind else "", f"Severity: {severity}." if severity else "",
             f"Root cause: {root}." if root else "",
             f"Affected services: {', '.join(affected)}." if affected else "",
             f"Started {times['start']}, ended {times['end']}." if times["start"] and times["end"] else ""]
    text = (f"## Summary\n{summary.strip()}\n\n## Details\n{' '.join(f for f in facts if f)}\n\n"
            + (f"## Resolution\n{resolution.strip()}\n" if resolution.strip() else ""))
    return Document(
        doc_id=stable_id("incident", str(incident_id)), source=f"{source}#{incident_id}",
        title=f"Incident {incident_id}: {summary.strip().split(';')[0]}", kind="incident", text=text,
        services=tuple(services), created=times["start"], updated=times["end"] or times["start"],
        metadata={"incident_id": str(incident_id), "fault_kind": str(kind), "severity": str(severity),
                  "service": root or "", "relpath": Path(source).name},
    )


def incidents_from_records(records: list, source: str) -> LoadReport:
    report = LoadReport()
    for row, record in enumerate(records, start=1):
        try:
            report.documents.append(incident_document(record, source, row))
        except LoadError as exc:
            report.skipped.append((f"{source}#{row}", str(exc)))
    return report


def incidents_from_frame(frame, source: str) -> LoadReport:
    """The simulator's or the lake's incidents table (one row per incident) -> documents."""
    return incidents_from_records(frame.to_dict("records"), source)


def lake_incidents(lake_dir: str | Path) -> LoadReport:
    """The lake's incidents table (simulated histories and ``cerebro ingest --incidents`` imports) -> documents,
    one per incident id (the last stored wins). The knowledge flow and ``cerebro kb index --source
    lake:incidents`` index them under :data:`LAKE_ORIGIN`."""
    from telemetry.lake import read_table

    frame = read_table("incidents", Path(lake_dir))
    if frame.empty:
        return LoadReport()
    return incidents_from_frame(frame.drop_duplicates("incident_id", keep="last"),
                                str(Path(lake_dir) / "incidents.parquet"))


def load_incidents(root: str | Path) -> LoadReport:
    root = Path(root)
    return load_files(root, SUFFIXES, lambda path, _: incidents_from_records(_records(path), str(path.resolve())))
