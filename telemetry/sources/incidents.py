"""Past incidents from a pager: a loose CSV or JSON list, a PagerDuty export or Alertmanager alerts.

    read_incidents(path) -> (clean, quarantine)

``clean`` has the lake's incident columns (:data:`telemetry.schema.INCIDENT_COLUMNS`); ``quarantine`` has
one row per record that could not be used, with ``source``, ``source_row``, ``rule`` (start, end, order,
failed_at, record, duplicate), ``reason`` (what was wrong, naming the row and the field, and what was
expected) and ``raw`` (the record as JSON text). No record is dropped silently.

The format is told from the content, not the file name:

    pagerduty-json   the REST API v2 ``GET /incidents`` answer: {"incidents": [{"id", "incident_number",
                     "title", "created_at", "resolved_at" | "last_status_change_at", "status", "urgency",
                     "priority": {"summary"}, "service": {"summary"}, ...}]} (or the bare list)
    pagerduty-csv    the web app's CSV export: id, incident_number, description, status, urgency,
                     service_name, created_on, resolved_on, ...
    alertmanager     ``GET /api/v2/alerts`` (a list of {labels, annotations, startsAt, endsAt, status,
                     fingerprint}) or the webhook payload {"alerts": [...]}
    csv, json        any other table of incidents, one per row / object (JSON array, {"incidents": [...]},
                     or JSON lines). Headers are matched loosely, like telemetry files (case, spaces and
                     the synonyms in :data:`ALIASES`: started_at/begin/start_time, resolved_at/end_time,
                     service/component/app, title/description/summary, priority/urgency/severity,
                     type/category/kind ...); where several columns play one role the first non-empty wins.
    parquet          the same loose table as a Parquet file

Times are ISO 8601 or epoch seconds / milliseconds; a time without a zone is UTC. An incident that was
still open in the export (no end, or a PagerDuty status triggered/acknowledged, an Alertmanager alert still
firing) is kept with ``end = start + open_minutes`` (60 by default) and says so in its ``resolution``.
``failed_at`` comes from a column (failed_at, outage_at ...) when there is one, else it stays empty: the
failure predictor only learns from incidents that record a failure time. Without an id in the file, the
id is a stable hash of (start, service, summary), so importing the same file again gives the same ids.

Pure functions: no Prefect, no lake; :func:`telemetry.ingest.ingest_incidents` stores the result.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from telemetry.schema import INCIDENT_COLUMNS
from telemetry.sources.files import normalise_header

DEFAULT_OPEN_MINUTES = 60.0
FORMATS = ("pagerduty-json", "pagerduty-csv", "alertmanager", "csv", "json", "parquet")
QUARANTINE_COLUMNS = ["source", "source_row", "rule", "reason", "raw"]

# Roles of a loose table's columns, each with the names it may have (after normalise_header), in order of
# preference.
ALIASES: dict[str, tuple[str, ...]] = {
    "incident_id": ("incident_id", "id", "incident", "incident_number", "incident_key", "number", "key",
                    "ticket", "ticket_id", "reference", "ref"),
    "start": ("start", "started_at", "start_time", "started", "starts_at", "startsat", "begin", "began",
              "begin_time", "began_at", "opened_at", "created_at", "created_on", "created", "triggered_at",
              "detected_at", "start_date", "timestamp", "time"),
    "end": ("end", "ended_at", "end_time", "ended", "ends_at", "endsat", "resolved_at", "resolved_on",
            "resolved", "resolution_time", "closed_at", "closed_on", "closed", "finished_at", "recovered_at",
            "mitigated_at", "end_date"),
    "failed_at": ("failed_at", "failure_at", "failure_time", "failed", "outage_at", "outage_start",
                  "outage_time", "down_at", "down_since"),
    "service": ("root_cause_service", "root_cause", "service", "service_name", "svc", "component", "app",
                "application", "system", "job"),
    "affected": ("affected_services", "affected", "impacted_services", "impacted", "services"),
    "kind": ("kind", "type", "category", "incident_type", "fault", "fault_kind", "alertname", "cause"),
    "severity": ("severity", "sev", "priority", "urgency", "level", "impact"),
    "summary": ("summary", "title", "description", "subject", "name", "message", "details"),
    "resolution": ("resolution", "resolution_notes", "fix", "remediation", "mitigation", "action_taken",
                   "postmortem"),
    "status": ("status", "state"),
}
EXPECTED = ("a CSV or JSON list of incidents with at least a start time (a column or field named like "
            "start, started_at, begin, start_time or created_at), a PagerDuty incidents export (REST API "
            "JSON or the CSV download) or Alertmanager alerts (GET /api/v2/alerts or a webhook payload)")
OPEN_STATES = {"open", "opened", "ongoing", "active", "firing", "triggered", "acknowledged", "unresolved",
               "investigating", "in_progress", "in progress"}
_SEVERITY_WORDS = {
    "critical": "critical", "crit": "critical", "fatal": "critical", "emergency": "critical", "page": "critical",
    "p0": "critical", "p1": "critical", "sev0": "critical", "sev1": "critical", "s0": "critical", "s1": "critical",
    "high": "high", "major": "high", "error": "high", "p2": "high", "sev2": "high", "s2": "high",
    "medium": "medium", "moderate": "medium", "warning": "medium", "warn": "medium", "p3": "medium",
    "sev3": "medium", "s3": "medium",
    "low": "low", "minor": "low", "info": "low", "informational": "low", "none": "low", "p4": "low", "p5": "low",
    "sev4": "low", "sev5": "low", "s4": "low", "s5": "low",
}
_ZERO_TIME = re.compile(r"^0001-01-01")  # Go's zero time: Alertmanager's endsAt of an alert still firing
_WORD_TIMES = {"now", "today", "tomorrow", "yesterday"}


class IncidentFileError(ValueError):
    """The file as a whole cannot be read as incidents; the message names it and says what was expected."""


@dataclass
class IncidentRead:
    """What :func:`load_incidents` made of a file."""

    source: str
    fmt: str  # one of FORMATS
    clean: pd.DataFrame  # INCIDENT_COLUMNS
    quarantine: pd.DataFrame  # QUARANTINE_COLUMNS
    rows_in: int = 0
    open_incidents: list[str] = field(default_factory=list)  # ids whose end was set to start + open_minutes

    def reasons(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.quarantine["rule"].value_counts().sort_index().items()}


class _Bad(ValueError):
    def __init__(self, rule: str, message: str):
        super().__init__(message)
        self.rule = rule


# ---------------------------------------------------------------------------------------------- reading


def _text(path: Path) -> str:
    with pd.io.common.get_handle(path, "r", encoding="utf-8-sig", errors="replace", compression="infer") as h:
        return h.handle.read()


def _read_csv_records(text: str, source: str) -> list[dict]:
    head = text[:4096].splitlines()[0] if text.strip() else ""
    try:
        sep = csv.Sniffer().sniff(head, delimiters=",;\t|").delimiter
    except csv.Error:
        sep = ","
    reader = csv.reader(io.StringIO(text), delimiter=sep, skipinitialspace=True)
    try:
        header = [normalise_header(h) for h in next(reader)]
    except StopIteration:
        raise IncidentFileError(f"{source}: the file is empty; expected {EXPECTED}") from None
    dupes = sorted({h for h in header if header.count(h) > 1 and h})
    if dupes:
        raise IncidentFileError(f"{source}: column names repeat after normalising case and spaces: {dupes}")
    records = []
    for fields in reader:
        if not any(f.strip() for f in fields):
            continue
        record: dict = dict(zip(header, fields, strict=False))
        if len(fields) != len(header):
            record["__problem__"] = (f"line {reader.line_num}: expected {len(header)} fields as in the header, "
                                     f"found {len(fields)}")
        records.append(record)
    return records


def _parse_json(text: str, source: str):
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        first_error = exc
    # JSON lines: one object per line; a line that does not parse is a bad record, not a bad file.
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    records, parsed = [], 0
    for n, line in lines:
        try:
            records.append(json.loads(line))
            parsed += 1
        except json.JSONDecodeError as exc:
            records.append({"__problem__": f"line {n}: not valid JSON ({exc.msg} at column {exc.colno})",
                            "__raw__": line[:500]})
    if parsed == 0 or len(lines) < 2:
        e = first_error
        raise IncidentFileError(f"{source}: not valid JSON at line {e.lineno} column {e.colno}: {e.msg}; "
                                f"expected {EXPECTED}") from None
    return records, "lines"


def _looks_pagerduty(item) -> bool:
    return isinstance(item, dict) and ("incident_number" in item or (
        "created_at" in item and isinstance(item.get("service"), dict)))


def _looks_alertmanager(item) -> bool:
    return isinstance(item, dict) and isinstance(item.get("labels"), dict) and (
        "startsAt" in item or "startsat" in {normalise_header(k) for k in item})


def load_records(path: str | Path) -> tuple[str, list]:
    """(format, records) of an incidents file: the records as the file has them, not yet mapped.

    Raises FileNotFoundError, or IncidentFileError when the file is not incidents in any known format."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix.lower() in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
        frame.columns = [normalise_header(c) for c in frame.columns]
        return "parquet", frame.to_dict("records")
    try:
        text = _text(path)
    except (OSError, UnicodeError) as exc:
        raise IncidentFileError(f"{source}: cannot read the file: {exc}") from None
    if not text.strip():
        raise IncidentFileError(f"{source}: the file is empty; expected {EXPECTED}")
    if text.lstrip()[:1] not in "[{":
        records = _read_csv_records(text, source)
        columns = set().union(*(r.keys() for r in records)) if records else set()
        if "incident_number" in columns and ({"created_on", "service_name"} & columns):
            return "pagerduty-csv", records
        return "csv", records
    data, _ = _parse_json(text, source)
    if isinstance(data, dict):
        if isinstance(data.get("alerts"), list):
            return "alertmanager", data["alerts"]
        if isinstance(data.get("incidents"), list):
            data = data["incidents"]
        elif isinstance(data.get("incident"), dict):
            data = [data["incident"]]
        else:
            data = [data]
    if not isinstance(data, list):
        raise IncidentFileError(f"{source}: the JSON is a {type(data).__name__}; expected {EXPECTED}")
    if any(_looks_alertmanager(d) for d in data):
        return "alertmanager", data
    if any(_looks_pagerduty(d) for d in data):
        return "pagerduty-json", data
    return "json", data


def detect_format(path: str | Path) -> str:
    """One of :data:`FORMATS`."""
    return load_records(path)[0]


# ---------------------------------------------------------------------------------------------- values


def _blank(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if value is pd.NaT:
        return True
    return isinstance(value, str) and not value.strip()


def _name(value) -> str:
    """Text of a field that may be a PagerDuty reference ({"summary": ...}) or a plain value."""
    if _blank(value):
        return ""
    if isinstance(value, dict):
        for key in ("summary", "name", "title", "id"):
            if not _blank(value.get(key)):
                return str(value[key]).strip()
        return ""
    return str(value).strip()


def parse_time(value, where: str) -> pd.Timestamp | None:
    """A UTC timestamp from ISO 8601 text, epoch seconds or epoch milliseconds; ``None`` when blank.

    Raises ValueError naming ``where`` (file, row, field) and what was expected."""
    if _blank(value):
        return None
    expected = "expected an ISO 8601 time (2026-11-20T14:05:00Z) or epoch seconds / milliseconds"
    if isinstance(value, datetime):
        stamp = pd.Timestamp(value)
    else:
        text = str(value).strip()
        if _ZERO_TIME.match(text):
            return None
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is not None:
            if not math.isfinite(number) or number <= 0:
                raise ValueError(f"{where}: {value!r} is not a time; {expected}")
            unit = "s" if number < 1e11 else "ms" if number < 1e14 else "us" if number < 1e17 else "ns"
            stamp = pd.Timestamp(number, unit=unit)
        else:
            if text.lower() in _WORD_TIMES:
                raise ValueError(f"{where}: {value!r} is not a time; {expected}")
            try:
                stamp = pd.Timestamp(text)
            except (ValueError, TypeError, OverflowError):
                raise ValueError(f"{where}: {value!r} is not a time; {expected}") from None
    if stamp is pd.NaT or pd.isna(stamp):
        raise ValueError(f"{where}: {value!r} is not a time; {expected}")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    if not 1990 <= stamp.year <= 2200:
        raise ValueError(f"{where}: {value!r} reads as {stamp.isoformat()}, outside 1990..2200; {expected}")
    return stamp


def normalise_severity(value) -> str:
    """critical / high / medium / low from the words pagers use (P1, SEV2, urgency high, warning ...);
    anything else is kept as given, lower-cased."""
    text = _name(value).lower()
    key = re.sub(r"[\s_\-]+", "", text)
    return _SEVERITY_WORDS.get(key, text)


def _services(value) -> list[str]:
    if _blank(value):
        return []
    if isinstance(value, str):
        return [v.strip() for v in re.split(r"[,;|]", value) if v.strip()]
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return [_name(v) for v in value if _name(v)]
    return [_name(value)]


def stable_incident_id(start: pd.Timestamp, service: str, summary: str) -> str:
    """``INC-`` and 12 hex digits of (start, service, summary): the same incident gives the same id."""
    digest = hashlib.sha1(f"{start.isoformat()}\x1f{service}\x1f{summary}".encode()).hexdigest()[:12]
    return f"INC-{digest}"


# ---------------------------------------------------------------------------------------------- mappers
# Each mapper turns one record into the raw fields of an incident (text, not yet parsed): incident_id, start,
# end, failed_at, service, affected, kind, severity, summary, resolution, open (bool: the source says it
# had not ended).


def _pick(record: dict, role: str):
    for alias in ALIASES[role]:
        if alias in record and not _blank(record[alias]):
            return record[alias]
    return None


def map_table_record(record: dict) -> dict:
    """A row of a loose CSV or JSON table (keys already normalised or not)."""
    norm = {normalise_header(k): v for k, v in record.items()}
    status = _name(_pick(norm, "status")).lower()
    return {
        "incident_id": _name(_pick(norm, "incident_id")),
        "start": _pick(norm, "start"),
        "end": _pick(norm, "end"),
        "failed_at": _pick(norm, "failed_at"),
        "service": _name(_pick(norm, "service")),
        "affected": _services(_pick(norm, "affected")),
        "kind": _name(_pick(norm, "kind")),
        "severity": normalise_severity(_pick(norm, "severity")),
        "summary": _name(_pick(norm, "summary")),
        "resolution": _name(_pick(norm, "resolution")),
        "open": status in OPEN_STATES,
    }


def map_pagerduty(record: dict) -> dict:
    """One incident of the PagerDuty REST API v2 (``GET /incidents``)."""
    status = _name(record.get("status")).lower()
    end = record.get("resolved_at")
    if _blank(end) and status == "resolved":
        end = record.get("last_status_change_at")
    priority = _name(record.get("priority"))
    severity = normalise_severity(priority or record.get("urgency"))
    title = _name(record.get("title")) or _name(record.get("summary"))
    description = _name(record.get("description"))
    summary = title if not description or description == title else f"{title}; {description}"
    return {
        "incident_id": _name(record.get("id")) or _name(record.get("incident_number")),
        "start": record.get("created_at"),
        "end": end,
        "failed_at": None,
        "service": _name(record.get("service")),
        "affected": [],
        "kind": "",
        "severity": severity,
        "summary": summary,
        "resolution": "",
        "open": status in ("triggered", "acknowledged"),
    }


def map_pagerduty_csv(record: dict) -> dict:
    """One row of PagerDuty's incidents CSV download (id, incident_number, description, status, urgency,
    service_name, created_on, resolved_on ...)."""
    norm = {normalise_header(k): v for k, v in record.items()}
    status = _name(norm.get("status")).lower()
    severity = normalise_severity(_name(norm.get("priority")) or _name(norm.get("urgency")))
    return {
        "incident_id": _name(norm.get("id")) or _name(norm.get("incident_number")),
        "start": norm.get("created_on") or norm.get("created_at"),
        "end": norm.get("resolved_on") or norm.get("resolved_at"),
        "failed_at": None,
        "service": _name(norm.get("service_name")),
        "affected": [],
        "kind": "",
        "severity": severity,
        "summary": _name(norm.get("title")) or _name(norm.get("description")) or _name(norm.get("summary")),
        "resolution": "",
        "open": status in ("triggered", "acknowledged"),
    }


def map_alertmanager(record: dict) -> dict:
    """One alert of Alertmanager's ``GET /api/v2/alerts`` or of a webhook payload's ``alerts``."""
    labels = record.get("labels") or {}
    notes = record.get("annotations") or {}
    state = record.get("status")
    state = _name(state.get("state") if isinstance(state, dict) else state).lower()
    service = next((_name(labels.get(k)) for k in ("service", "app", "job", "instance") if _name(labels.get(k))),
                   "")
    summary = _name(notes.get("summary")) or _name(notes.get("description")) or _name(labels.get("alertname"))
    description = _name(notes.get("description"))
    if description and description != summary:
        summary = f"{summary}; {description}"
    start = record.get("startsAt")
    fingerprint = _name(record.get("fingerprint"))
    incident_id = ""
    if fingerprint and not _blank(start):
        incident_id = f"AM-{fingerprint}-{re.sub(r'[^0-9]', '', str(start))[:14]}"
    return {
        "incident_id": incident_id,
        "start": start,
        "end": record.get("endsAt"),
        "failed_at": None,
        "service": service,
        "affected": [],
        "kind": _name(labels.get("alertname")),
        "severity": normalise_severity(labels.get("severity") or labels.get("priority")),
        "summary": summary,
        "resolution": "",
        "open": state in ("active", "suppressed", "firing", "unprocessed"),
    }


MAPPERS = {"pagerduty-json": map_pagerduty, "pagerduty-csv": map_pagerduty_csv, "alertmanager": map_alertmanager,
           "csv": map_table_record, "json": map_table_record, "parquet": map_table_record}


# ---------------------------------------------------------------------------------------------- assembly


def _raw_text(record) -> str:
    if isinstance(record, dict) and "__raw__" in record:
        return str(record["__raw__"])
    try:
        return json.dumps(record, default=str, sort_keys=True)[:2000]
    except (TypeError, ValueError):
        return repr(record)[:2000]


def _incident(fields: dict, where: str, dataset: str, open_duration: pd.Timedelta, now: pd.Timestamp) -> tuple[dict, bool]:
    try:
        start = parse_time(fields["start"], f"{where}: field `start`")
    except ValueError as exc:
        raise _Bad("start", str(exc)) from None
    if start is None:
        raise _Bad("start", f"{where}: no start time; every incident needs one (a field named like start, "
                            "started_at, begin, created_at or startsAt)")
    try:
        end = parse_time(fields["end"], f"{where}: field `end`")
    except ValueError as exc:
        raise _Bad("end", str(exc)) from None
    try:
        failed_at = parse_time(fields["failed_at"], f"{where}: field `failed_at`")
    except ValueError as exc:
        raise _Bad("failed_at", str(exc)) from None
    if start > now + pd.Timedelta(days=1):
        raise _Bad("start", f"{where}: field `start` {start.isoformat()} is in the future; expected a past incident")
    still_open = end is None or bool(fields["open"])
    if end is not None and end < start:
        raise _Bad("order", f"{where}: field `end` {end.isoformat()} is before `start` {start.isoformat()}")
    if failed_at is not None and failed_at < start:
        raise _Bad("failed_at", f"{where}: field `failed_at` {failed_at.isoformat()} is before `start` "
                                f"{start.isoformat()}; expected a time within the incident")
    if still_open:
        end = max(start + open_duration, failed_at or start)
    elif failed_at is not None and failed_at > end:
        raise _Bad("failed_at", f"{where}: field `failed_at` {failed_at.isoformat()} is after `end` "
                                f"{end.isoformat()}; expected a time within the incident")
    service = fields["service"]
    summary = fields["summary"] or (f"{fields['kind'] or 'Incident'} on {service or 'an unnamed service'} "
                                    "(the source gave no summary)")
    resolution = fields["resolution"]
    if still_open:
        note = (f"Still open when imported: no end time in the source, so end is taken as start + "
                f"{open_duration.total_seconds() / 60:g} minutes.")
        resolution = f"{resolution} {note}".strip()
    affected = list(dict.fromkeys(([service] if service else []) + fields["affected"]))
    incident_id = fields["incident_id"] or stable_incident_id(start, service, summary)
    return {
        "incident_id": incident_id, "root_cause_service": service, "affected_services": affected,
        "kind": fields["kind"], "severity": fields["severity"], "start": start, "end": end,
        "failed_at": failed_at, "summary": summary, "resolution": resolution, "dataset": dataset,
    }, still_open


def empty_incidents() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in INCIDENT_COLUMNS})
    for col in ("start", "end", "failed_at"):
        frame[col] = pd.Series([], dtype="datetime64[ns, UTC]")
    return frame


def default_dataset(path: str | Path) -> str:
    """``incidents-<file stem>``, lower-case, with runs of other characters as one dash."""
    stem = Path(path).name.split(".")[0]
    return "incidents-" + (re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-") or "import")


def map_records(records: list, fmt: str, source: str, *, dataset: str,
                open_minutes: float = DEFAULT_OPEN_MINUTES, now: pd.Timestamp | None = None) -> IncidentRead:
    """Map records of a known format onto the lake's incident columns, quarantining the bad ones."""
    if fmt not in MAPPERS:
        raise IncidentFileError(f"{source}: unknown incident format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not records:
        raise IncidentFileError(f"{source}: no incidents in the file (read as {fmt}); expected {EXPECTED}")
    if not open_minutes > 0:
        raise ValueError(f"open_minutes must be positive, got {open_minutes!r}")
    now = now or pd.Timestamp.now(tz="UTC")
    mapper = MAPPERS[fmt]
    open_duration = pd.Timedelta(minutes=open_minutes)
    if fmt in ("csv", "json", "parquet"):
        keys = {normalise_header(k) for r in records if isinstance(r, dict) for k in r}
        if not keys & set(ALIASES["start"]):
            raise IncidentFileError(
                f"{source}: no start time column; expected one named like {', '.join(ALIASES['start'][:8])} "
                f"(any case), found {sorted(keys)[:30]}. Accepted: {EXPECTED}")
    rows, bad, open_ids = [], [], []
    seen: dict[str, int] = {}
    for n, record in enumerate(records, start=1):
        where = f"{source}: row {n}"
        try:
            if not isinstance(record, dict):
                raise _Bad("record", f"{where}: expected an object of fields, got {type(record).__name__} "
                                     f"{_raw_text(record)[:80]}")
            if "__problem__" in record:
                raise _Bad("record", f"{where}: {record['__problem__']}")
            fields = mapper(record)
            if fields["incident_id"]:
                where = f"{where} ({fields['incident_id']})"
            row, still_open = _incident(fields, where, dataset, open_duration, now)
            if row["incident_id"] in seen:
                raise _Bad("duplicate", f"{where}: incident {row['incident_id']} repeats row {seen[row['incident_id']]}; "
                                        "the first is kept")
        except _Bad as exc:
            bad.append({"source": source, "source_row": n, "rule": exc.rule, "reason": str(exc),
                        "raw": _raw_text(record)})
            continue
        seen[row["incident_id"]] = n
        rows.append(row)
        if still_open:
            open_ids.append(row["incident_id"])
    clean = pd.DataFrame(rows, columns=INCIDENT_COLUMNS) if rows else empty_incidents()
    for col in ("start", "end", "failed_at"):
        clean[col] = pd.to_datetime(clean[col], utc=True).astype("datetime64[ns, UTC]")
    for col in ("incident_id", "root_cause_service", "kind", "severity", "summary", "resolution", "dataset"):
        clean[col] = clean[col].astype(object)
    quarantine = pd.DataFrame(bad, columns=QUARANTINE_COLUMNS).astype({"source_row": "int64"})
    return IncidentRead(source=source, fmt=fmt, clean=clean.reset_index(drop=True), quarantine=quarantine,
                        rows_in=len(records), open_incidents=open_ids)


def load_incidents(path: str | Path, *, dataset: str | None = None, open_minutes: float = DEFAULT_OPEN_MINUTES,
                   now: pd.Timestamp | None = None) -> IncidentRead:
    """Read, detect and map an incidents file (see the module docstring). ``dataset`` defaults to
    :func:`default_dataset`."""
    fmt, records = load_records(path)
    return map_records(records, fmt, str(path), dataset=dataset or default_dataset(path),
                       open_minutes=open_minutes, now=now)


def read_incidents(path: str | Path, *, dataset: str | None = None, open_minutes: float = DEFAULT_OPEN_MINUTES,
                   now: pd.Timestamp | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(clean incidents in the lake's columns, quarantined records with ``rule`` and ``reason``)."""
    result = load_incidents(path, dataset=dataset, open_minutes=open_minutes, now=now)
    return result.clean, result.quarantine


__all__ = [
    "ALIASES", "DEFAULT_OPEN_MINUTES", "FORMATS", "IncidentFileError", "IncidentRead", "default_dataset",
    "detect_format", "load_incidents", "load_records", "map_alertmanager", "map_pagerduty", "map_pagerduty_csv",
    "map_records", "map_table_record", "normalise_severity", "parse_time", "read_incidents", "stable_incident_id",
]
