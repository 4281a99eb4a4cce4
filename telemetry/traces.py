"""Questions asked of spans (telemetry.schema.SPAN_COLUMNS): pure functions over a frame of them.

    slowest_spans(spans, service="payment", start=..., end=..., k=10)
    failing_spans(spans, service="checkout")
    critical_path(spans, trace_id)      the spans that decide how long the trace took
"""
from __future__ import annotations

import pandas as pd


def _window(spans: pd.DataFrame, service: str | None, start, end) -> pd.DataFrame:
    """Spans of ``service`` (any when None) that started in [start, end)."""
    keep = pd.Series(True, index=spans.index)
    if service is not None:
        keep &= spans["service"] == service
    if start is not None:
        keep &= spans["start"] >= _utc(start)
    if end is not None:
        keep &= spans["start"] < _utc(end)
    return spans[keep]


def _utc(t) -> pd.Timestamp:
    t = pd.Timestamp(t)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def slowest_spans(spans: pd.DataFrame, service: str | None = None, start=None, end=None,
                  k: int = 10) -> pd.DataFrame:
    """The ``k`` longest spans of ``service`` that started in [start, end), longest first."""
    picked = _window(spans, service, start, end)
    return picked.sort_values(["duration_ms", "start"], ascending=[False, True], kind="stable").head(k) \
        .reset_index(drop=True)


def failing_spans(spans: pd.DataFrame, service: str | None = None, start=None, end=None,
                  k: int | None = None) -> pd.DataFrame:
    """Spans with status error of ``service`` that started in [start, end), oldest first (the first ``k``)."""
    picked = _window(spans, service, start, end)
    picked = picked[picked["status"] == "error"].sort_values(["start", "trace_id", "span_id"], kind="stable")
    return (picked if k is None else picked.head(k)).reset_index(drop=True)


def critical_path(spans: pd.DataFrame, trace_id: str) -> pd.DataFrame:
    """The spans of one trace that determine its duration, in start order, with ``critical_ms``: the time
    each spends on the path itself (not waiting on a child that is also on it). The ``critical_ms`` add up
    to the root span's duration.

    Walking back from the root's end: the child that finished last is on the path, then the child that
    finished last before that one started, and so on; inside each chosen child the same again. Time not
    covered by a chosen child is the parent's own. A child that overlaps a chosen sibling did not delay
    anything and is left out. Raises KeyError for an unknown trace and ValueError without exactly one root."""
    trace = spans[spans["trace_id"] == trace_id]
    if trace.empty:
        raise KeyError(f"no spans of trace {trace_id!r}")
    start_ns = trace["start"].astype("int64").to_numpy()
    end_ns = start_ns + (trace["duration_ms"].to_numpy() * 1e6).round().astype("int64")
    ids = trace["span_id"].astype(str).tolist()
    known = set(ids)
    parents = [None if pd.isna(p) or str(p) not in known else str(p) for p in trace["parent_span_id"]]
    roots = [i for i, p in enumerate(parents) if p is None]
    if len(roots) != 1:
        raise ValueError(f"trace {trace_id!r} has {len(roots)} spans without a parent in it; expected one root")
    children: dict[str, list[int]] = {}
    for i, p in enumerate(parents):
        if p is not None:
            children.setdefault(p, []).append(i)

    own: dict[int, int] = {}

    def walk(i: int, until: int) -> None:
        # ``until``: where this span's stretch of the path ends (its end, or the start of a later sibling
        # on the path it overlaps); a span is not charged for time after that.
        cursor = min(end_ns[i], until)
        charged = 0
        for c in sorted(children.get(ids[i], []), key=lambda c: end_ns[c], reverse=True):
            if end_ns[c] > cursor or end_ns[c] <= start_ns[i]:
                continue  # finished after the path moved on (it overlapped), or a zero-length child
            charged += cursor - end_ns[c]
            walk(c, end_ns[c])
            cursor = max(start_ns[c], start_ns[i])
        own[i] = charged + max(0, cursor - start_ns[i])

    walk(roots[0], end_ns[roots[0]])
    rows = sorted(own, key=lambda i: (start_ns[i], -end_ns[i]))
    out = trace.iloc[rows].reset_index(drop=True)
    out["critical_ms"] = [own[i] / 1e6 for i in rows]
    return out


__all__ = ["critical_path", "failing_spans", "slowest_spans"]
