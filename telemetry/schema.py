"""The canonical telemetry contract shared by every source, the validator and the lake.

Telemetry is a long frame: ``timestamp`` (UTC, tz-aware), ``service`` (str), ``metric`` (str),
``value`` (float). Events, incidents and log lines have their own small schemas, below.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

TELEMETRY_COLUMNS = ["timestamp", "service", "metric", "value"]
KEY_COLUMNS = ["timestamp", "service", "metric"]
# Provenance travels with raw rows so that an error can name the file and the line.
PROVENANCE_COLUMNS = ["source", "source_row"]

# ``dataset`` names the history a record belongs to (one simulation, one import), so that records of
# different histories never mix in the lake.
EVENT_COLUMNS = ["event_id", "timestamp", "service", "kind", "version", "detail", "dataset"]
INCIDENT_COLUMNS = [
    "incident_id", "root_cause_service", "affected_services", "kind", "severity",
    "start", "end", "failed_at", "summary", "resolution", "dataset",
]
LOG_COLUMNS = ["timestamp", "service", "level", "message", "incident_id", "dataset"]
# One row per span of a request trace. ``parent_span_id`` is null for a trace's root; ``start`` is UTC and
# ``duration_ms`` includes the span's children; ``status`` is ok or error. Keyed by (dataset, trace_id, span_id).
SPAN_COLUMNS = ["trace_id", "span_id", "parent_span_id", "service", "operation", "start", "duration_ms", "status",
                "dataset"]
SPAN_STATUSES = ("ok", "error")

SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")
METRIC_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:]{0,127}$")


@dataclass(frozen=True)
class MetricSpec:
    """A metric the fleet emits, with the range that is physically possible for it."""

    name: str
    unit: str
    minimum: float | None = 0.0
    maximum: float | None = None
    description: str = ""


# The nine golden signals every simulated service emits, one sample a minute.
FLEET_METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in [
        MetricSpec("cpu_pct", "%", 0.0, 100.0, "CPU utilisation"),
        MetricSpec("memory_pct", "%", 0.0, 100.0, "memory utilisation"),
        MetricSpec("latency_p50_ms", "ms", 0.0, None, "median request latency"),
        MetricSpec("latency_p99_ms", "ms", 0.0, None, "99th-percentile request latency"),
        MetricSpec("error_rate", "ratio", 0.0, 1.0, "share of requests that failed"),
        MetricSpec("request_rate", "req/s", 0.0, None, "requests per second"),
        MetricSpec("connections", "count", 0.0, None, "open connections"),
        MetricSpec("queue_depth", "count", 0.0, None, "messages or requests waiting"),
        MetricSpec("disk_pct", "%", 0.0, 100.0, "disk space used"),
    ]
}

# Suffixes that make a user's own metric non-negative or a percentage. Anything else only has
# to be a finite number.
# Column names of a wide file read as anomaly labels rather than metrics (compared lower-case): an exported
# benchmark or a past detector's output carries them beside the values
LABEL_NAMES = ("is_anomaly", "is_anomalous", "anomaly", "anomalies", "label", "labels", "anomaly_label",
               "ground_truth")
_PCT_SUFFIXES = ("_pct", "_percent", "_utilization", "_utilisation")
_NON_NEGATIVE_SUFFIXES = (
    "_rate", "_total", "_count", "_bytes", "_ms", "_seconds", "_per_second", "_rps", "_depth", "connections",
)


_COUNT_SUFFIXES = ("_count", "_total", "_depth", "connections")


def is_count(metric: str) -> bool:
    """Whether a metric counts whole things (connections, queued messages): a change of one is one thing."""
    spec = FLEET_METRICS.get(metric)
    if spec is not None:
        return spec.unit == "count"
    return metric.lower().endswith(_COUNT_SUFFIXES)


def physical_range(metric: str) -> tuple[float | None, float | None]:
    """(min, max) a metric's value may take; ``None`` means unbounded on that side."""
    spec = FLEET_METRICS.get(metric)
    if spec is not None:
        return spec.minimum, spec.maximum
    name = metric.lower()
    if name.endswith(_PCT_SUFFIXES):
        return 0.0, 100.0
    if name.endswith(_NON_NEGATIVE_SUFFIXES):
        return 0.0, None
    return None, None


def empty_telemetry() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
            "service": pd.Series([], dtype="string"),
            "metric": pd.Series([], dtype="string"),
            "value": pd.Series([], dtype="float64"),
        }
    )


def empty_spans() -> pd.DataFrame:
    return spans_frame(pd.DataFrame({c: [] for c in SPAN_COLUMNS}))


def spans_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Cast spans to the span schema's dtypes and column order."""
    out = frame[SPAN_COLUMNS].copy()
    for col in ("trace_id", "span_id", "parent_span_id", "service", "operation", "status", "dataset"):
        out[col] = out[col].astype("string")
    out["start"] = pd.to_datetime(out["start"], utc=True).astype("datetime64[ns, UTC]")
    out["duration_ms"] = out["duration_ms"].astype("float64")
    return out.reset_index(drop=True)


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Cast an already-clean frame to the canonical dtypes and column order, sorted by key."""
    out = frame[TELEMETRY_COLUMNS].copy()
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    out["service"] = out["service"].astype("string")
    out["metric"] = out["metric"].astype("string")
    out["value"] = out["value"].astype("float64")
    return out.sort_values(KEY_COLUMNS, kind="stable").reset_index(drop=True)
