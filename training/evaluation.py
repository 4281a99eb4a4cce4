"""Honest measurement of anomaly detectors against labelled incidents.

Event-wise, without point adjustment:
* a detector's alarms (rows over its threshold) are merged per service into **alarm events**: alarms
  closer than ``merge_gap`` minutes join, and an event needs ``min_minutes`` alarmed minutes (a
  persistence rule like an alerting rule's ``for: 3m``);
* an alarm event on service *s* is **true** when it overlaps an incident that affected *s*, from
  ``lead`` minutes before the incident's start to its end plus ``recovery`` minutes; every other alarm
  event is a **false positive**. The recovery tail is the rolling-feature window: a row up to that long
  after the end still summarises incident minutes (a window holding both the saturated and the recovered
  level is as unusual as the saturation), so its alarm is about the incident, not a new one. It is 0 unless
  the caller passes it, and it never finds an incident;
* an incident is **found** (once, however many alarms it raised) when a true alarm event overlaps it
  between ``lead`` minutes before its start and its end;
  its time to detect is the first such alarm's start minus the incident's start (0 when the alarm came
  early);
* precision = true alarm events / alarm events, recall = incidents found / incidents, F1 their harmonic mean;
* a true alarm event that goes on past its incidents' end (plus the recovery tail) **overruns**: the operator
  sees an alarm for a service that has recovered. Precision does not see it (the event is true), so the
  median and 90th percentile of the overrun, in minutes over the true events, are reported beside it, as are
  the alarmed minutes of the false alarm events (precision counts a three-hour false alarm once).

Point-wise, AUC-PR (average precision) of the raw scores against "this row lies in an incident that
affected this service" needs no threshold at all.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

# The spec's targets for anomaly detection.
TARGETS = {"precision": 0.90, "recall": 0.95, "f1": 0.92}


@dataclass
class EventScore:
    precision: float
    recall: float
    f1: float
    incidents: int
    found: int
    alarm_events: int
    false_alarm_events: int
    mttd_minutes: float | None
    per_kind: dict = field(default_factory=dict)
    overrun_p50_minutes: float | None = None  # of true alarm events past their incidents' end + recovery tail
    overrun_p90_minutes: float | None = None
    false_alarm_minutes: int = 0  # alarmed minutes in false alarm events

    def meets_targets(self) -> bool:
        return all(getattr(self, k) > v for k, v in TARGETS.items())

    def to_dict(self) -> dict:
        return asdict(self)


def _index_parts(index: pd.MultiIndex) -> tuple[np.ndarray, pd.DatetimeIndex]:
    return index.get_level_values(0).astype(str).to_numpy(), pd.DatetimeIndex(index.get_level_values(1))


def incident_labels(index: pd.MultiIndex, incidents: pd.DataFrame, lead_minutes: float = 0) -> np.ndarray:
    """True for rows (service, timestamp) inside an incident that affected that service."""
    services, times = _index_parts(index)
    labels = np.zeros(len(index), dtype=bool)
    lead = pd.Timedelta(minutes=lead_minutes)
    for inc in incidents.itertuples():
        mask = np.isin(services, list(inc.affected_services)) & (times >= inc.start - lead) & (times <= inc.end)
        labels |= mask
    return labels


def sampling_steps(index: pd.MultiIndex) -> dict[str, float]:
    """Each service's sampling step in minutes (the median gap between its rows; 1 when it cannot tell)."""
    services, times = _index_parts(index)
    order = np.lexsort((times.asi8, services))
    s, ns = services[order], times.asi8[order]
    same = s[1:] == s[:-1]
    gaps = np.diff(ns)
    steps = {}
    for service in pd.unique(services):
        d = gaps[same & (s[1:] == service)]
        d = d[d > 0]
        steps[str(service)] = max(1.0, float(np.median(d)) / 60e9) if len(d) else 1.0
    return steps


def alarm_events(index: pd.MultiIndex, alarms: np.ndarray, scores: np.ndarray | None = None,
                 merge_gap: int = 10, min_minutes: int = 3, steps: dict[str, float] | None = None) -> pd.DataFrame:
    """Merge alarmed rows into events per service: columns service, start, end, minutes, peak.

    The rules are in minutes and converted per service with its sampling step (``steps``; default one
    minute): at a 5-minute step one alarmed row is 5 alarmed minutes, and alarms one missed sample apart
    still join."""
    services, times = _index_parts(index)
    alarms = np.asarray(alarms, dtype=bool)
    scores = np.zeros(len(alarms)) if scores is None else np.asarray(scores, dtype=float)
    rows = []
    for service in pd.unique(services[alarms]):
        step = (steps or {}).get(str(service), 1.0)
        gap = pd.Timedelta(minutes=max(merge_gap, 2 * step))
        need = max(1, int(np.ceil(min_minutes / step)))
        sel = np.flatnonzero(alarms & (services == service))
        order = sel[np.argsort(times[sel])]
        t = times[order]
        breaks = np.flatnonzero(np.diff(t.asi8) > gap.value) + 1
        for chunk in np.split(np.arange(len(order)), breaks):
            if len(chunk) < need:
                continue
            rows.append({"service": service, "start": t[chunk[0]], "end": t[chunk[-1]],
                         "minutes": round(len(chunk) * step), "peak": float(scores[order[chunk]].max())})
    return pd.DataFrame(rows, columns=["service", "start", "end", "minutes", "peak"])


def score_events(events: pd.DataFrame, incidents: pd.DataFrame, lead_minutes: float = 10,
                 context: pd.DataFrame | None = None, recovery_minutes: float = 0) -> EventScore:
    """``incidents`` are the ones to find; ``context`` (default: the same) are all incidents an alarm may
    rightly belong to, such as one that began before the period and runs into it."""
    lead = pd.Timedelta(minutes=lead_minutes)
    tail = pd.Timedelta(minutes=recovery_minutes)
    true_event = np.zeros(len(events), dtype=bool)
    covered_until = np.full(len(events), np.iinfo(np.int64).min)  # ns: the latest end + tail of its incidents
    first_alarm: dict[str, pd.Timestamp] = {}
    to_find = set(incidents["incident_id"])
    for inc in (incidents if context is None else context).itertuples():
        if not len(events):
            break
        on_affected = events["service"].isin(list(inc.affected_services)) & (events["end"] >= inc.start - lead)
        hit = (on_affected & (events["start"] <= inc.end)).to_numpy()
        belongs = (on_affected & (events["start"] <= inc.end + tail)).to_numpy()
        true_event |= belongs
        covered_until[belongs] = np.maximum(covered_until[belongs], (inc.end + tail).value)
        if hit.any() and inc.incident_id in to_find:
            first_alarm[inc.incident_id] = events.loc[hit, "start"].min()
    n_inc, found = len(incidents), len(first_alarm)
    precision = float(true_event.mean()) if len(events) else (1.0 if n_inc == 0 else 0.0)
    recall = found / n_inc if n_inc else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    ttd = {i: max(0.0, (t - s).total_seconds() / 60) for i, t, s in
           ((i, first_alarm[i], incidents.set_index("incident_id").loc[i, "start"]) for i in first_alarm)}
    per_kind = {}
    for kind, group in incidents.groupby("kind"):
        hits = [ttd[i] for i in group["incident_id"] if i in ttd]
        per_kind[kind] = {"incidents": len(group), "found": len(hits), "recall": len(hits) / len(group),
                          "mttd_minutes": float(np.mean(hits)) if hits else None}
    overrun = None
    if true_event.any():
        ends = pd.DatetimeIndex(events["end"]).asi8[true_event]
        overrun = np.maximum(0, ends - covered_until[true_event]) / 60e9
    return EventScore(
        precision=precision, recall=recall, f1=f1, incidents=n_inc, found=found, alarm_events=len(events),
        false_alarm_events=int((~true_event).sum()),
        mttd_minutes=float(np.mean(list(ttd.values()))) if ttd else None, per_kind=per_kind,
        false_alarm_minutes=int(events["minutes"].to_numpy()[~true_event].sum()) if len(events) else 0,
        overrun_p50_minutes=None if overrun is None else float(np.median(overrun)),
        overrun_p90_minutes=None if overrun is None else float(np.quantile(overrun, 0.9)),
    )


def auc_pr(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import average_precision_score

    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        return None
    s = np.nan_to_num(np.asarray(scores, dtype=float), nan=0.0, posinf=1e300)
    return float(average_precision_score(labels, s))


def no_incidents() -> pd.DataFrame:
    """An incidents frame with none in it, typed so that time comparisons work on it."""
    return pd.DataFrame({"incident_id": pd.Series([], dtype=object), "kind": pd.Series([], dtype=object),
                         "start": pd.Series([], dtype="datetime64[ns, UTC]"),
                         "end": pd.Series([], dtype="datetime64[ns, UTC]"),
                         "affected_services": pd.Series([], dtype=object),
                         "root_cause_service": pd.Series([], dtype=object)})


def incidents_in(incidents: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The incidents that start inside [start, end)."""
    return incidents[(incidents["start"] >= start) & (incidents["start"] < end)].reset_index(drop=True)


def evaluate(index: pd.MultiIndex, scores: np.ndarray, threshold: float, incidents: pd.DataFrame,
             merge_gap: int = 10, min_minutes: int = 3, lead_minutes: float = 10,
             recovery_minutes: float = 0) -> dict:
    """Event-wise and point-wise figures for one detector on one period (``index`` covers the period)."""
    times = pd.DatetimeIndex(index.get_level_values(1))
    lo, hi = times.min(), times.max()
    period = incidents_in(incidents, lo, hi)
    tail = pd.Timedelta(minutes=recovery_minutes)
    overlapping = incidents[(incidents["end"] + tail >= lo) & (incidents["start"] <= hi)]
    events = alarm_events(index, scores > threshold, scores, merge_gap, min_minutes, steps=sampling_steps(index))
    ev = score_events(events, period, lead_minutes, context=overlapping, recovery_minutes=recovery_minutes)
    return {**ev.to_dict(), "auc_pr": auc_pr(incident_labels(index, period), scores),
            "meets_targets": ev.meets_targets()}
