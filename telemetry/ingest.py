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


def ingest_side_tables(folder: Path, lake_dir: Path) -> dict[str, int]:
    """Events, incidents, logs and the graph that travel with a simulated dataset."""
    from telemetry.dataset import read_side_tables

    added: dict[str, int] = {}
    for name, table in read_side_tables(folder).items():
        if name == "graph":
            lake.write_graph(table, lake_dir)
            added["graph"] = len(table.get("edges", []))
        else:
            added[name] = lake.write_table(name, table, lake_dir)
    return added


__all__ = ["IngestReport", "UnusableBatchError", "ingest_batch", "ingest_side_tables", "write_quarantine"]
