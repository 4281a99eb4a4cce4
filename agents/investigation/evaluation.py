"""How well the ranking finds known root causes: AC@1, AC@3 on recorded incidents, specificity on quiet windows.

The ranking sees only the telemetry, the graph and the paged service (the symptom an operator would be
called for); the incidents' ``root_cause_service`` is read after every case has been ranked, to score.

    result = evaluate(telemetry, incidents, edges, quiet_target="frontend")
    result["ac@1"], result["ac@3"], result["specificity"]
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

WINDOW_MINUTES = 30  # an alert's first half hour: benchmarks/rca.py's headline window, chosen on its dev seeds
BASELINE_MINUTES = 300
QUIET_PAD_MINUTES = 30  # a quiet window (and its baseline) keeps this far from any incident
LOW_CONFIDENCE = 0.5  # a quiet window may name a cause, but not confidently


def paged_target(affected: Sequence[str], callers_of) -> str | None:
    """The service an operator is paged for: the entry point when the incident reached it, else the affected
    service with the fewest callers (the one users see first). ``callers_of(service)`` -> callers."""
    affected = [str(s) for s in affected]
    if not affected:
        return None
    if "frontend" in affected:
        return "frontend"
    return min(affected, key=lambda s: (len(list(callers_of(s))), s))


def quiet_windows(start, end, incidents, every_minutes: int = 30, limit: int = 16) -> list:
    """Window starts in [start, end - window] whose window and baseline (the ``BASELINE_MINUTES`` before it,
    which may reach before ``start``) keep ``QUIET_PAD_MINUTES`` from every incident; at most ``limit``,
    spread evenly."""
    import numpy as np
    import pandas as pd

    pad = pd.Timedelta(minutes=QUIET_PAD_MINUTES)
    base, win = pd.Timedelta(minutes=BASELINE_MINUTES), pd.Timedelta(minutes=WINDOW_MINUTES)
    spans = [(pd.Timestamp(a) - pad, pd.Timestamp(b) + pad) for a, b in zip(incidents["start"], incidents["end"])]
    at, out = pd.Timestamp(start), []
    while at + win <= pd.Timestamp(end):
        if not any(a < at + win and at - base < b for a, b in spans):
            out.append(at)
        at += pd.Timedelta(minutes=every_minutes)
    if len(out) > limit:
        out = [out[i] for i in np.linspace(0, len(out) - 1, limit).round().astype(int)]
    return out


def evaluate(telemetry, incidents, edges: Iterable[tuple[str, str]], quiet_target: str | None = None,
             period: tuple | None = None) -> dict:
    """Rank every incident that starts in ``period`` (all by default) and the quiet windows of that period.

    ``telemetry``: long frame covering the period and the baseline before it; ``incidents``: incident_id,
    start, end, kind, affected_services, root_cause_service."""
    import pandas as pd

    from agents.rca import RcaInputError, ServiceGraph, rank_root_causes

    graph = ServiceGraph(list(edges))
    tel = telemetry.assign(service=telemetry["service"].astype(str), metric=telemetry["metric"].astype(str))
    tel = tel.sort_values("timestamp", kind="stable").reset_index(drop=True)
    times = pd.DatetimeIndex(pd.to_datetime(tel["timestamp"], utc=True))
    lo, hi = (pd.Timestamp(period[0]), pd.Timestamp(period[1])) if period else (tel["timestamp"].min(),
                                                                              tel["timestamp"].max())
    inc = incidents[(pd.to_datetime(incidents["start"], utc=True) >= lo)
                    & (pd.to_datetime(incidents["start"], utc=True) < hi)]

    def slices(at):
        at = pd.Timestamp(at)
        at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
        a, b, c = times.searchsorted([at - pd.Timedelta(minutes=BASELINE_MINUTES), at,
                                      at + pd.Timedelta(minutes=WINDOW_MINUTES)])
        return tel.iloc[b:c], tel.iloc[a:b]

    def rank(at, target):
        window, base = slices(at)
        try:
            return rank_root_causes(window, base, graph, target=target, top=5)
        except RcaInputError:
            return None

    # The cases, built from the incidents without their root cause: what the ranking may know.
    cases = [(r.incident_id, pd.Timestamp(r.start), paged_target(list(r.affected_services), graph.callers))
             for r in inc.drop(columns=["root_cause_service"]).itertuples()]
    t0 = time.perf_counter()
    ranked = {}
    for incident_id, start, target in cases:
        res = rank(start, target)
        ranked[incident_id] = [c.service for c in res.causes] if res is not None else []
    quiet = []
    for at in quiet_windows(lo, hi, incidents):
        res = rank(at, quiet_target)
        quiet.append(not res or not res.causes or res.causes[0].confidence < LOW_CONFIDENCE)
    seconds = time.perf_counter() - t0

    # Scoring: the only place the root cause is read.
    rows = []
    for r in inc.itertuples():
        got = ranked[r.incident_id]
        rows.append({"incident_id": r.incident_id, "kind": r.kind, "root": r.root_cause_service,
                     "top": got[:3], "hit1": r.root_cause_service in got[:1], "hit3": r.root_cause_service in got[:3]})
    per_kind = {}
    for kind in sorted({r["kind"] for r in rows}):
        mine = [r for r in rows if r["kind"] == kind]
        per_kind[kind] = {"cases": len(mine), "ac@1": _share(r["hit1"] for r in mine),
                          "ac@3": _share(r["hit3"] for r in mine)}
    return {"cases": len(rows), "ac@1": _share(r["hit1"] for r in rows), "ac@3": _share(r["hit3"] for r in rows),
            "quiet_windows": len(quiet), "specificity": _share(quiet), "per_kind": per_kind, "rows": rows,
            "seconds": seconds, "window_minutes": WINDOW_MINUTES, "baseline_minutes": BASELINE_MINUTES}


def _share(flags) -> float | None:
    flags = list(flags)
    return sum(bool(f) for f in flags) / len(flags) if flags else None
