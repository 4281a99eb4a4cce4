"""The local lake: Parquet partitioned by date and service under the home folder.

    <lake>/telemetry/date=2026-11-20/service=payment/part.parquet     timestamp, metric, value
    <lake>/events.parquet  incidents.parquet  logs.parquet  traces.parquet  graph.json

Writes merge into the partitions they touch: a row whose (timestamp, service, metric) is already there
replaces it, so ingesting the same window twice leaves the lake as it was. Each partition is rewritten
to a temporary file and renamed, so a crash never leaves half a partition.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from telemetry.schema import canonical, empty_telemetry

# Tables other than telemetry, with the columns that identify a row.
TABLE_KEYS = {
    "events": ["dataset", "event_id"],
    "incidents": ["dataset", "incident_id"],
    "logs": ["dataset", "timestamp", "service", "message"],
    "traces": ["dataset", "trace_id", "span_id"],  # spans: simulated, or imported from OTLP files
}


@dataclass
class LakeWrite:
    rows_written: int  # rows in the batch
    rows_new: int  # rows the lake did not have before
    rows_updated: int  # rows that replaced an existing (timestamp, service, metric)
    partitions: int


def _atomic_write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def write_telemetry(frame: pd.DataFrame, lake_dir: Path) -> LakeWrite:
    """Merge clean canonical telemetry into the lake; idempotent for the same rows."""
    root = Path(lake_dir) / "telemetry"
    if frame.empty:
        return LakeWrite(0, 0, 0, 0)
    days = frame["timestamp"].dt.floor("D")
    services = frame["service"].astype("category")
    new = updated = parts = 0
    for (day, service), part in frame.groupby([days, services], sort=True, observed=True):
        path = root / f"date={day:%Y-%m-%d}" / f"service={service}" / "part.parquet"
        incoming = pd.DataFrame({"timestamp": part["timestamp"].array,
                                 "metric": part["metric"].astype(str).to_numpy(),
                                 "value": part["value"].to_numpy()})
        incoming = incoming.drop_duplicates(subset=["timestamp", "metric"], keep="last")
        if path.exists():
            existing = pq.read_table(path).to_pandas()
            changed = _changed_values(existing, incoming)
            merged = pd.concat([existing, incoming], ignore_index=True)
            merged = merged.drop_duplicates(subset=["timestamp", "metric"], keep="last")
            added = len(merged) - len(existing)
            if added == 0 and changed == 0:
                parts += 1
                continue  # nothing new: leave the file untouched
        else:
            merged, added, changed = incoming, len(incoming), 0
        merged = merged.sort_values(["timestamp", "metric"], kind="stable")
        _atomic_write(pa.Table.from_pandas(merged, preserve_index=False), path)
        new += added
        updated += changed
        parts += 1
    return LakeWrite(len(frame), new, updated, parts)


def _changed_values(existing: pd.DataFrame, incoming: pd.DataFrame) -> int:
    both = existing.merge(incoming, on=["timestamp", "metric"], suffixes=("_old", "_new"))
    return int((both["value_old"] != both["value_new"]).sum())


def read_telemetry(
    lake_dir: Path,
    start: pd.Timestamp | str | None = None,
    end: pd.Timestamp | str | None = None,
    services: list[str] | None = None,
    metrics: list[str] | None = None,
) -> pd.DataFrame:
    """Read canonical telemetry back, optionally for a window [start, end), services and metrics."""
    root = Path(lake_dir) / "telemetry"
    if not root.exists():
        return empty_telemetry()
    dataset = ds.dataset(root, format="parquet", partitioning="hive")
    cond = None

    def _and(a, b):
        return b if a is None else a & b

    if start is not None:
        start = pd.Timestamp(start).tz_convert("UTC") if pd.Timestamp(start).tzinfo else pd.Timestamp(start, tz="UTC")
        cond = _and(cond, ds.field("date") >= start.strftime("%Y-%m-%d"))
        cond = _and(cond, ds.field("timestamp") >= pa.scalar(start.to_pydatetime(), pa.timestamp("ns", "UTC")))
    if end is not None:
        end = pd.Timestamp(end).tz_convert("UTC") if pd.Timestamp(end).tzinfo else pd.Timestamp(end, tz="UTC")
        cond = _and(cond, ds.field("date") <= end.strftime("%Y-%m-%d"))
        cond = _and(cond, ds.field("timestamp") < pa.scalar(end.to_pydatetime(), pa.timestamp("ns", "UTC")))
    if services:
        cond = _and(cond, ds.field("service").isin(list(services)))
    if metrics:
        cond = _and(cond, ds.field("metric").isin(list(metrics)))
    table = dataset.to_table(filter=cond, columns=["timestamp", "service", "metric", "value"])
    frame = table.to_pandas()
    if frame.empty:
        return empty_telemetry()
    frame["service"] = frame["service"].astype(str)
    return canonical(frame)


def lake_stats(lake_dir: Path) -> dict:
    """Rows, services and time span in the lake, cheaply from Parquet metadata where possible."""
    root = Path(lake_dir) / "telemetry"
    if not root.exists():
        return {"rows": 0, "partitions": 0, "services": [], "dates": []}
    files = sorted(root.glob("date=*/service=*/part.parquet"))
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    services = sorted({f.parent.name.split("=", 1)[1] for f in files})
    dates = sorted({f.parent.parent.name.split("=", 1)[1] for f in files})
    return {"rows": rows, "partitions": len(files), "services": services, "dates": dates}


def write_table(name: str, frame: pd.DataFrame, lake_dir: Path) -> int:
    """Merge a side table (events, incidents, logs, traces) by its key; returns the number of new rows."""
    keys = TABLE_KEYS[name]
    path = Path(lake_dir) / f"{name}.parquet"
    if path.exists():
        existing = pd.read_parquet(path)
        merged = pd.concat([existing, frame], ignore_index=True).drop_duplicates(subset=keys, keep="last")
        added = len(merged) - len(existing)
    else:
        merged, added = frame.drop_duplicates(subset=keys, keep="last"), len(frame)
    sort = [c for c in ("start", "timestamp") if c in merged.columns][:1] + keys
    merged = merged.sort_values(list(dict.fromkeys(sort)), kind="stable").reset_index(drop=True)
    _atomic_write(pa.Table.from_pandas(merged, preserve_index=False), path)
    return int(added)


def read_table(name: str, lake_dir: Path, dataset: str | None = None) -> pd.DataFrame:
    """A side table, optionally only the records of one history (``dataset``)."""
    path = Path(lake_dir) / f"{name}.parquet"
    if not path.exists():
        return pd.DataFrame()
    frame = pd.read_parquet(path)
    return frame[frame["dataset"] == dataset].reset_index(drop=True) if dataset else frame


def write_graph(graph: dict, lake_dir: Path) -> Path:
    path = Path(lake_dir) / "graph.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(graph, indent=2, sort_keys=True))
    return path


def read_graph(lake_dir: Path) -> dict | None:
    path = Path(lake_dir) / "graph.json"
    return json.loads(path.read_text()) if path.exists() else None


__all__ = [
    "LakeWrite", "lake_stats", "read_graph", "read_table", "read_telemetry", "write_graph",
    "write_table", "write_telemetry",
]
