"""Choosing a detector without labels: anomalies injected into a copy of the user's own telemetry.

A user's telemetry carries no incident labels, so the validation period cannot say which detector finds
incidents. What it can say is which detector finds *known* anomalies planted in that same period, on those
same series, at the threshold each learned from training scores alone, without raising alarms elsewhere:

    planted = plant(telemetry, {"checkout": (start, end), ...}, seed=0)
    planted.telemetry      # the period's telemetry with the anomalies in it (long form)
    planted.incidents      # one labelled window per anomaly: incident_id, kind, start, end, affected_services

Five kinds, each on one metric of one service, sized against that metric's own short-term noise (a robust
spread of its first differences, so a daily cycle does not inflate it) measured on the reference period:
* ``spike``: one to three samples far off;
* ``level_shift``: the level moves and stays there for an hour or two;
* ``variance``: the noise grows several-fold for an hour;
* ``trend``: a ramp that builds up over two hours;
* ``time_of_day``: two hours of the values the same series had twelve hours earlier (a normal value at the
  wrong time of day).
Anomalies on one service never overlap and are spaced by at least two hours. The test period is never
touched: the caller passes the validation window.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd

KINDS = ("spike", "level_shift", "variance", "trend", "time_of_day")


@dataclass
class Planted:
    telemetry: pd.DataFrame  # long form, the window with the anomalies in it
    incidents: pd.DataFrame  # one row per anomaly (the incidents frame's columns)


def noise_scale(values: np.ndarray) -> float:
    """A robust spread of a series' sample-to-sample changes (1.4826 x MAD of the first differences / sqrt 2)."""
    d = np.diff(values[~np.isnan(values)])
    if len(d) < 3:
        return 0.0
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2))


def _spread(values: np.ndarray) -> float:
    v = values[~np.isnan(values)]
    return float(1.4826 * np.median(np.abs(v - np.median(v)))) if len(v) else 0.0


def plant(telemetry: pd.DataFrame, windows: dict[str, tuple[pd.Timestamp, pd.Timestamp]], per_service: int = 5,
          seed: int = 0) -> Planted:
    """Plant ``per_service`` anomalies per service in its window [start, end) of ``telemetry`` (long form).

    Rows outside the windows are returned unchanged (the features of a window need the history before it);
    a service's rows before its window set each metric's noise scale."""
    rng = np.random.default_rng(seed)
    out = telemetry.copy()
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True)
    incidents = []
    for service, rows in out.groupby(out["service"].astype(str), sort=True):
        if service not in windows:
            continue
        start, end = windows[service]
        in_window = rows[(rows["timestamp"] >= start) & (rows["timestamp"] < end)]
        metrics = sorted(in_window["metric"].astype(str).unique())
        if not metrics:
            continue
        stamps = pd.DatetimeIndex(in_window["timestamp"].unique()).sort_values()
        if len(stamps) < 10:
            continue
        step = pd.Timedelta(int(np.median(np.diff(stamps.asi8))))
        slots = _slots(stamps, per_service, rng)
        ref_rows = rows[rows["timestamp"] < start]
        for k, at in enumerate(slots):
            kind = KINDS[(k + rng.integers(len(KINDS))) % len(KINDS)]
            metric = metrics[rng.integers(len(metrics))]
            series_ref = ref_rows.loc[ref_rows["metric"].astype(str) == metric, "value"].to_numpy(dtype=float)
            sel_metric = (out["service"].astype(str) == service) & (out["metric"].astype(str) == metric)
            window = _apply(out, sel_metric, kind, pd.Timestamp(at), step, series_ref, rng)
            if window is None:
                continue
            a, b = window
            incidents.append({"incident_id": f"planted-{service}-{k}", "kind": kind, "start": a, "end": b,
                              "affected_services": [service], "root_cause_service": service, "metric": metric})
    frame = pd.DataFrame(incidents, columns=["incident_id", "kind", "start", "end", "affected_services",
                                             "root_cause_service", "metric"])
    return Planted(out, frame)


def _slots(times: pd.DatetimeIndex, n: int, rng: np.random.Generator) -> list:
    """``n`` start times spread over the window (one per equal part, placed at random inside it, clear of the
    part's last two hours so that anomalies never overlap)."""
    edges = np.linspace(0, len(times), n + 1).astype(int)
    slots = []
    for a, b in pairwise(edges):
        part = times[a:b]
        usable = part[part <= part[-1] - pd.Timedelta(hours=2)] if len(part) else part
        if len(usable):
            slots.append(usable[rng.integers(len(usable))])
    return slots


def _apply(out: pd.DataFrame, sel_metric: pd.Series, kind: str, at: pd.Timestamp, step: pd.Timedelta,
           reference: np.ndarray, rng: np.random.Generator):
    noise = noise_scale(reference) or _spread(reference) or 1.0
    times = out["timestamp"]
    sign = 1.0 if rng.random() < 0.5 else -1.0
    if kind == "spike":
        end = at + step * int(rng.integers(0, 3))
    elif kind == "variance":
        end = at + pd.Timedelta(hours=1)
    elif kind == "level_shift":
        end = at + pd.Timedelta(minutes=int(rng.integers(60, 120)))
    else:  # trend, time_of_day
        end = at + pd.Timedelta(hours=2)
    sel = sel_metric & (times >= at) & (times <= end)
    idx = out.index[sel]
    if len(idx) == 0:
        return None
    order = np.argsort(out.loc[idx, "timestamp"].to_numpy())
    idx = idx[order]
    x = out.loc[idx, "value"].to_numpy(dtype=float)
    n = len(x)
    if kind == "spike":
        x = x + sign * rng.uniform(8, 15) * noise
    elif kind == "level_shift":
        x = x + sign * rng.uniform(6, 12) * noise
    elif kind == "variance":
        x = x + rng.normal(0, rng.uniform(4, 8) * noise, n)
    elif kind == "trend":
        x = x + sign * np.linspace(0, rng.uniform(10, 20) * noise, n)
    else:  # the same series twelve hours earlier
        earlier = out.loc[sel_metric & (times >= at - pd.Timedelta(hours=12)) & (times <= end - pd.Timedelta(hours=12))]
        past = earlier.sort_values("timestamp")["value"].to_numpy(dtype=float)
        if len(past) < n or _spread(reference) < 4 * noise:  # no daily cycle to be out of step with: a level shift
            x = x + sign * rng.uniform(6, 12) * noise
        else:
            x = past[:n]
    out.loc[idx, "value"] = x
    times_sel = out.loc[idx, "timestamp"]
    return times_sel.min(), times_sel.max()
