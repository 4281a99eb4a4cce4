"""Failure labels from the incident table: will this service fail within the next H minutes?

    labels = failure_labels(services, times, incidents, horizon_minutes=60, at="failed_at")

A service *fails* at the failure moment of an incident (the incident column ``at``): with ``at="start"`` every
service the incident touched fails when it starts; with a column that records when the root cause itself gave
out (the simulator's ``failed_at``: the OOM kill, the full disk, the exhausted pool) only the root cause fails,
then. For a row (service s, minute t):

* ``failure`` = 1 when a failure of s comes in (t, t + H]: strictly after t (the row's features, which come
  from data at or before t, cannot contain the failure) and at most H minutes later;
* ``time_to_failure_minutes`` = minutes from t to that next failure (0 < ttf <= H) on positive rows, NaN
  elsewhere;
* ``ongoing`` = True when t lies inside an incident of s: from the failure moment to the incident's end for a
  service that fails, and, with a failure moment other than ``start``, from the incident's start to its end for
  the services it affected without failing (its callers feel the OOM kill or the slow pool). Those rows are *not*
  negatives and not positives: the trouble is already visible, so they belong to detection, not prediction.
  Labelling them 0 would teach the model that failure-looking metrics mean "no failure coming"; labelling them 1
  would reward it for detecting what is already visible and inflate every figure. Training and evaluation leave
  them out (:data:`ONGOING` is kept in the frame so that a caller can see how many there were);
* ``underway`` = True when t lies in [start, failure moment) of an incident whose root cause is s: the fault has
  begun (memory climbing, disk filling, connections piling up) and the service has not given out yet. Only a
  failure moment later than the start has such a window (the *precursor*); the abrupt kinds (CPU saturation, an
  error burst, a slow dependency, a traffic surge) fail at their start and have none. A positive row that is
  underway is *foreseeable*: something in the data at or before t already points at the failure. A positive row
  that is not (an abrupt failure ahead, or a creeping one whose fault has not begun yet) is not: nothing before
  the fault distinguishes it from a normal row. A negative row that is underway is *early*: the fault is there
  but the failure is more than H minutes away;
* ``failure_incident`` / ``failure_kind`` name the incident a positive row points at (for lead times and
  per-kind figures).

Labels at t depend only on failures after t, and on the incidents that contain t (``ongoing``, ``underway``). ``underway`` is ground truth known after the fact (when the fault began): it selects training
rows and splits the figures; it is never a feature.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

LABEL = "failure"
TTF = "time_to_failure_minutes"
ONGOING = "ongoing"
UNDERWAY = "underway"
INCIDENT = "failure_incident"
KIND = "failure_kind"
LABEL_COLUMNS = [LABEL, TTF, ONGOING, UNDERWAY, INCIDENT, KIND]
_NS_PER_MINUTE = 60_000_000_000


def failures_by_service(incidents: pd.DataFrame, at: str = "start") -> pd.DataFrame:
    """One row per (service, incident) the service failed in: service, incident_id, kind, start, end, began,
    where ``start`` is the failure moment (the incident column ``at``) and ``began`` the incident's start (the
    fault's onset: ``start - began`` is the precursor window, 0 for a failure at the onset).

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
            rows.append((service, str(inc["incident_id"]), str(inc["kind"]), inc[at], inc["end"], inc["start"]))
    frame = pd.DataFrame(rows, columns=["service", "incident_id", "kind", "start", "end", "began"])
    for col in ("start", "end", "began"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame.sort_values(["service", "start"], kind="stable").reset_index(drop=True)


def incident_spans(incidents: pd.DataFrame, at: str = "start") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ongoing, underway): per service, the [start, end] intervals in which it is inside an incident, and the
    [start, end) intervals in which its own fault is under way (see the module docstring). Columns service,
    start, end; sorted by service, then start."""
    if at not in incidents.columns:
        raise ValueError(f"the incident table has no column {at!r} (the failure moment); it has "
                         f"{list(incidents.columns)}")
    ongoing, underway = [], []
    for inc in incidents.to_dict("records"):
        root = str(inc["root_cause_service"])
        affected = set(map(str, inc["affected_services"])) if inc["affected_services"] is not None else set()
        if at == "start":
            for service in affected | {root}:
                ongoing.append((service, inc["start"], inc["end"]))
            continue
        ongoing.append((root, inc[at], inc["end"]))
        if pd.Timestamp(inc[at]) > pd.Timestamp(inc["start"]):
            underway.append((root, inc["start"], inc[at]))
        for service in affected - {root}:
            ongoing.append((service, inc["start"], inc["end"]))

    def frame(rows):
        out = pd.DataFrame(rows, columns=["service", "start", "end"])
        for col in ("start", "end"):
            out[col] = pd.to_datetime(out[col], utc=True)
        return out.sort_values(["service", "start"], kind="stable").reset_index(drop=True)

    return frame(ongoing), frame(underway)


def _inside(services: np.ndarray, t_ns: np.ndarray, spans: pd.DataFrame, closed_end: bool) -> np.ndarray:
    """Rows whose (service, time) lies inside one of the service's spans: [start, end] or [start, end)."""
    out = np.zeros(len(services), dtype=bool)
    for service, group in spans.groupby("service", sort=False):
        rows = np.flatnonzero(services == service)
        if not len(rows):
            continue
        starts = group["start"].array.asi8  # sorted
        # Running maximum of the ends: a span that outlasts a later one still covers t.
        ends = np.maximum.accumulate(group["end"].array.asi8)
        t = t_ns[rows]
        last = np.searchsorted(starts, t, side="right") - 1  # the latest start at or before t
        end = ends[np.maximum(last, 0)]
        out[rows] = (last >= 0) & ((t <= end) if closed_end else (t < end))
    return out


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
    incident table records one. Rows from that moment to the incident's end are ``ongoing`` (and, for such a
    column, the affected services' rows from the incident's start); rows from the incident's start to that
    moment are ``underway`` on the root cause."""
    if horizon_minutes <= 0:
        raise ValueError(f"horizon_minutes={horizon_minutes}: must be positive")
    services = np.asarray(services, dtype=object).astype(str)
    stamps = pd.DatetimeIndex(pd.to_datetime(times, utc=True))
    t_ns = stamps.asi8
    n = len(services)
    label = np.zeros(n, dtype=np.int8)
    ttf = np.full(n, np.nan)
    ongoing = np.zeros(n, dtype=bool)
    underway = np.zeros(n, dtype=bool)
    incident = np.full(n, None, dtype=object)
    kind = np.full(n, None, dtype=object)
    horizon_ns = round(horizon_minutes * _NS_PER_MINUTE)

    if len(incidents):
        table = failures_by_service(incidents, at)
        for service, group in table.groupby("service", sort=False):
            rows = np.flatnonzero(services == service)
            if not len(rows):
                continue
            starts = group["start"].array.asi8  # sorted
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
        inside, faulty = incident_spans(incidents, at)
        ongoing = _inside(services, t_ns, inside, closed_end=True)
        underway = _inside(services, t_ns, faulty, closed_end=False)
    return pd.DataFrame({LABEL: label, TTF: ttf, ONGOING: ongoing, UNDERWAY: underway, INCIDENT: incident,
                         KIND: kind})

