"""Ingest one batch: load raw rows, validate, quarantine the bad ones, merge the good ones into the lake.

Plain functions with the I/O at the edges; the Prefect flow in ``flows/ingest.py`` only wires them.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from telemetry import lake
from telemetry.sources import SourceBatch
from telemetry.validation import UnusableBatchError, ValidationResult, validate_telemetry


@dataclass
class IngestReport:
    source: str
    rows_in: int = 0
    rows_clean: int = 0
    rows_quarantined: int = 0
    rows_new_in_lake: int = 0
    rows_updated_in_lake: int = 0
    partitions: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    rules: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    quarantine_path: str | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        return asdict(self)


def write_quarantine(frame: pd.DataFrame, quarantine_dir: Path, source: str, now: pd.Timestamp) -> Path | None:
    """Keep rejected rows, with their reasons, as Parquet under the home folder."""
    if frame.empty:
        return None
    slug = re.sub(r"[^A-Za-z0-9]+", "-", Path(source).name or source).strip("-")[:60] or "batch"
    digest = hashlib.sha1(source.encode()).hexdigest()[:8]
    path = Path(quarantine_dir) / f"{now:%Y-%m-%d}" / f"{slug}-{digest}-{now:%H%M%S}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.assign(quarantined_at=now).to_parquet(path, index=False)
    return path


def ingest_batch(batch: SourceBatch, settings, now: pd.Timestamp | None = None) -> IngestReport:
    """Validate one batch into the lake. An unusable batch is reported (``error``), its rows quarantined."""
    import time

    t0 = time.perf_counter()
    now = now or pd.Timestamp.now(tz="UTC")
    report = IngestReport(source=batch.name)
    raw = batch.load()
    report.rows_in = len(raw)
    v = settings.validation
    try:
        result: ValidationResult = validate_telemetry(
            raw, now=now, future_tolerance_minutes=v.future_tolerance_minutes, freshness_hours=v.freshness_hours,
            on_stale=v.on_stale, max_quarantine_share=v.max_quarantine_share, source=batch.name,
        )
    except UnusableBatchError as exc:
        result = getattr(exc, "result", None)
        report.error = str(exc)
        if result is None:
            report.seconds = time.perf_counter() - t0
            return report
        # Nothing is lost: the whole batch goes to the quarantine, good rows marked as held back.
        held = result.clean.assign(source=batch.name, rules="batch", reason="held back: batch rejected",
                                   source_row=pd.NA)
        quarantine = pd.concat([result.quarantine, held.astype({"timestamp": "string", "service": "string",
                                                                "metric": "string", "value": "string"})],
                               ignore_index=True)
        report.quarantine_path = str(write_quarantine(quarantine, settings.quarantine_dir, batch.name, now))
        report.rows_quarantined = len(quarantine)
        report.error += (f"\nNothing was stored; all {len(quarantine):,} rows are in the quarantine with their reasons: "
                         f"{report.quarantine_path} (see them with `cerebro quarantine {report.quarantine_path}`)")
        report.reasons = result.reasons()
        report.rules = result.table()
        report.seconds = time.perf_counter() - t0
        return report
    write = lake.write_telemetry(result.clean, settings.lake_dir)
    qpath = write_quarantine(result.quarantine, settings.quarantine_dir, batch.name, now)
    report.rows_clean = result.rows_clean
    report.rows_quarantined = result.rows_quarantined
    report.rows_new_in_lake = write.rows_new
    report.rows_updated_in_lake = write.rows_updated
    report.partitions = write.partitions
    report.reasons = result.reasons()
    report.rules = result.table()
    report.warnings = result.warnings
    report.quarantine_path = str(qpath) if qpath else None
    report.seconds = time.perf_counter() - t0
    return report


@dataclass
class IncidentImportReport:
    """What ``cerebro ingest --incidents`` did with one file."""

    source: str
    format: str = ""
    dataset: str = ""
    rows_in: int = 0
    rows_stored: int = 0
    rows_new_in_lake: int = 0
    rows_replaced_in_lake: int = 0  # ids of this dataset the lake had already: replaced by the file's version
    rows_quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    open_incidents: int = 0  # stored with end = start + open_minutes
    open_minutes: float = 0.0
    quarantine_path: str | None = None
    lake_path: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def ingest_incidents(path: str | Path, settings, *, dataset: str | None = None, open_minutes: float | None = None,
                     now: pd.Timestamp | None = None) -> IncidentImportReport:
    """Read past incidents from a file (see :mod:`telemetry.sources.incidents`), merge them into the lake's
    incidents table (the same ``dataset`` and id replace) and quarantine the records that cannot be used.

    Raises FileNotFoundError, or IncidentFileError when the file is not incidents at all or none of its
    records can be used (those are quarantined first, and the message says where)."""
    import time

    from telemetry.sources.incidents import DEFAULT_OPEN_MINUTES, IncidentFileError, load_incidents

    t0 = time.perf_counter()
    now = now or pd.Timestamp.now(tz="UTC")
    open_minutes = DEFAULT_OPEN_MINUTES if open_minutes is None else open_minutes
    result = load_incidents(path, dataset=dataset, open_minutes=open_minutes, now=now)
    report = IncidentImportReport(
        source=str(path), format=result.fmt, dataset=str(result.clean["dataset"].iloc[0]) if len(result.clean)
        else (dataset or ""), rows_in=result.rows_in, rows_quarantined=len(result.quarantine),
        reasons=result.reasons(), open_incidents=len(result.open_incidents), open_minutes=float(open_minutes),
        lake_path=str(Path(settings.lake_dir) / "incidents.parquet"))
    qpath = write_quarantine(result.quarantine, settings.quarantine_dir, str(path), now)
    report.quarantine_path = str(qpath) if qpath else None
    if result.clean.empty:
        first = result.quarantine["reason"].iloc[0]
        raise IncidentFileError(f"{path}: none of its {result.rows_in} records could be used as an incident "
                                f"({', '.join(f'{k}: {v}' for k, v in report.reasons.items())}); the first: "
                                f"{first}. Every record and its reason is in {qpath}")
    before = lake.read_table("incidents", settings.lake_dir)
    known = set()
    if not before.empty:
        known = set(before.loc[before["dataset"] == report.dataset, "incident_id"].astype(str))
    Path(settings.lake_dir).mkdir(parents=True, exist_ok=True)
    lake.write_table("incidents", result.clean, settings.lake_dir)
    ids = set(result.clean["incident_id"].astype(str))
    report.rows_stored = len(result.clean)
    report.rows_replaced_in_lake = len(ids & known)
    report.rows_new_in_lake = len(ids - known)
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


@dataclass
class TraceImportReport:
    """What ``cerebro ingest --traces`` did with a file or folder of OTLP/JSON traces."""

    source: str
    dataset: str = ""
    files: int = 0
    spans_in: int = 0
    spans_stored: int = 0
    spans_new_in_lake: int = 0
    traces: int = 0
    services: list[str] = field(default_factory=list)
    spans_quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    quarantine_path: str | None = None
    lake_path: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def ingest_traces(path: str | Path, settings, *, dataset: str | None = None,
                  now: pd.Timestamp | None = None) -> TraceImportReport:
    """Read OTLP/JSON trace files (see :mod:`telemetry.sources.otlp`) into the lake's traces table, keyed by
    (dataset, trace_id, span_id), so importing the same file again adds nothing; unusable spans are
    quarantined with a reason each.

    Raises FileNotFoundError, or TraceFileError when a file is not traces at all or none of the spans can
    be used (those are quarantined first, and the message says where)."""
    import time

    from telemetry.sources.otlp import TraceFileError, load_otlp

    t0 = time.perf_counter()
    now = now or pd.Timestamp.now(tz="UTC")
    result = load_otlp(path, dataset=dataset)
    clean = result.clean
    report = TraceImportReport(
        source=str(path), dataset=dataset or f"otlp-{Path(path).expanduser().stem}", files=len(result.files),
        spans_in=result.rows_in, spans_quarantined=len(result.quarantine), reasons=result.reasons(),
        lake_path=str(Path(settings.lake_dir) / "traces.parquet"))
    qpath = write_quarantine(result.quarantine, settings.quarantine_dir, str(path), now)
    report.quarantine_path = str(qpath) if qpath else None
    if clean.empty:
        detail = f"; each span and its reason is in the quarantine: {qpath}" if qpath else ""
        raise TraceFileError(f"{path}: none of its {result.rows_in} spans could be used "
                             f"({', '.join(f'{k}: {v}' for k, v in report.reasons.items()) or 'no spans'}){detail}")
    Path(settings.lake_dir).mkdir(parents=True, exist_ok=True)
    report.spans_new_in_lake = lake.write_table("traces", clean, settings.lake_dir)
    report.spans_stored = len(clean)
    report.traces = int(clean["trace_id"].nunique())
    report.services = sorted(clean["service"].unique())
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def ingest_side_tables(folder: Path, lake_dir: Path) -> dict[str, int]:
    """Events, incidents, logs, traces and the graph that travel with a simulated dataset."""
    from telemetry.dataset import read_side_tables

    added: dict[str, int] = {}
    for name, table in read_side_tables(folder).items():
        if name == "graph":
            lake.write_graph(table, lake_dir)
            added["graph"] = len(table.get("edges", []))
        else:
            added[name] = lake.write_table(name, table, lake_dir)
    return added


__all__ = ["IncidentImportReport", "IngestReport", "TraceImportReport", "UnusableBatchError", "ingest_batch",
           "ingest_incidents", "ingest_side_tables", "ingest_traces", "write_quarantine"]
