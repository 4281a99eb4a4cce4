"""Failure labels from the incident table: will this service fail within the next H minutes?

    labels = failure_labels(services, times, incidents, horizon_minutes=60)

A service *fails* at the start of every incident whose root cause it is or that lists it among the affected
services. For a row (service s, minute t):

* ``failure`` = 1 when a failure of s starts in (t, t + H]: strictly after t (the row's features, which come
  from data at or before t, cannot contain the failure) and at most H minutes later;
* ``time_to_failure_minutes`` = minutes from t to that next start (0 < ttf <= H) on positive rows, NaN
  elsewhere;
* ``ongoing`` = True when t lies inside an incident of s ([start, end]). Those rows are *not* negatives and
  not positives: the failure has already happened, so they belong to detection, not prediction. Labelling them
  0 would teach the model that failure-looking metrics mean "no failure coming"; labelling them 1 would reward
  it for detecting what is already visible and inflate every figure. Training and evaluation leave them out
  (:data:`ONGOING` is kept in the frame so that a caller can see how many there were);
* ``failure_incident`` / ``failure_kind`` name the incident a positive row points at (for lead times and
  per-kind figures).

Labels at t depend only on incidents that start after t, and on the incident that contains t (``ongoing``).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

LABEL = "failure"
TTF = "time_to_failure_minutes"
ONGOING = "ongoing"
INCIDENT = "failure_incident"
KIND = "failure_kind"
LABEL_COLUMNS = [LABEL, TTF, ONGOING, INCIDENT, KIND]
_NS_PER_MINUTE = 60_000_000_000


def failures_by_service(incidents: pd.DataFrame, at: str = "start") -> pd.DataFrame:
    """One row per (service, incident) the service took part in: service, incident_id, kind, start, end, where
    ``start`` is the failure moment (the incident column ``at``).

    With ``at="start"`` every service the incident touched fails when it starts (a root cause that the
    simulator's blast-radius narrowing left out of ``affected_services`` still fails). With a column that records
    when the service itself gave out (the simulator's ``failed_at``: the OOM kill, the full disk, the exhausted
    pool), only the root cause fails then: its callers feel it, but nothing in their own metrics foretells it.
    """
    if at not in incidents.columns:
        raise ValueError(f"the incident table has no column {at!r} (the failure moment); it has "
                         f"{list(incidents.columns)}")
    rows = []
    for inc in incidents.to_dict("records"):
        affected = list(inc["affected_services"]) if inc["affected_services"] is not None else []
        failing = {str(inc["root_cause_service"])} if at != "start" else {str(inc["root_cause_service"]), *map(str, affected)}
        for service in sorted(failing):
            rows.append((service, str(inc["incident_id"]), str(inc["kind"]), inc[at], inc["end"]))
    frame = pd.DataFrame(rows, columns=["service", "incident_id", "kind", "start", "end"])
    for col in ("start", "end"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame.sort_values(["service", "start"], kind="stable").reset_index(drop=True)


def failure_labels(
    services: Sequence[str] | np.ndarray | pd.Index,
    times: Sequence | pd.DatetimeIndex,
    incidents: pd.DataFrame,
    horizon_minutes: float = 60,
    at: str = "start",
) -> pd.DataFrame:
    """Labels for rows (services[i], times[i]); see the module docstring. Row order and count are kept.

    ``at`` names the incident column that holds the failure moment: ``start`` (the default: the incident's
    start), or another column such as a ``failed_at`` (the OOM kill of a memory leak, the full disk) once the
    incident table records one. Rows from that moment to the incident's end are ``ongoing``."""
    if horizon_minutes <= 0:
        raise ValueError(f"horizon_minutes={horizon_minutes}: must be positive")
    services = np.asarray(services, dtype=object).astype(str)
    stamps = pd.DatetimeIndex(pd.to_datetime(times, utc=True))
    t_ns = stamps.asi8
    n = len(services)
    label = np.zeros(n, dtype=np.int8)
    ttf = np.full(n, np.nan)
    ongoing = np.zeros(n, dtype=bool)
    incident = np.full(n, None, dtype=object)
    kind = np.full(n, None, dtype=object)
    horizon_ns = round(horizon_minutes * _NS_PER_MINUTE)

    table = failures_by_service(incidents, at) if len(incidents) else None
    if table is not None:
        for service, group in table.groupby("service", sort=False):
            rows = np.flatnonzero(services == service)
            if not len(rows):
                continue
            starts = group["start"].array.asi8  # sorted
            # Running maximum of the ends: an incident that outlasts a later one still covers t.
            ends = np.maximum.accumulate(group["end"].array.asi8)
            t = t_ns[rows]
            # The next failure strictly after t.
            nxt = np.searchsorted(starts, t, side="right")
            has = nxt < len(starts)
            gap = np.where(has, starts[np.minimum(nxt, len(starts) - 1)] - t, np.iinfo(np.int64).max)
            pos = has & (gap <= horizon_ns)
            label[rows[pos]] = 1
            ttf[rows[pos]] = gap[pos] / _NS_PER_MINUTE
            incident[rows[pos]] = group["incident_id"].to_numpy()[nxt[pos]]
            kind[rows[pos]] = group["kind"].to_numpy()[nxt[pos]]
            # Inside an incident: the latest start at or before t, and t at or before its end.
            last = np.searchsorted(starts, t, side="right") - 1
            inside = (last >= 0) & (t <= ends[np.maximum(last, 0)])
            ongoing[rows[inside]] = True
    return pd.DataFrame({LABEL: label, TTF: ttf, ONGOING: ongoing, INCIDENT: incident, KIND: kind})

