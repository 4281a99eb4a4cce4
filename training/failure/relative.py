"""The failure predictor's relative view: levels against each service's own baseline, and time to the limit.

    names = relative_columns(columns)          # what the trees see, from the failure_v1 columns
    view = relative_view(frame, columns)       # those columns, computed (pure pandas: training = serving)
    signs = monotone_signs(names)              # +1 / -1 / 0 per column (XGBoost monotone constraints)

Why: services sit at different levels (the database's disk at 55 %, the cache's at 15 %; a pool of 60 or of
600 connections), and a history holds a handful of creeping failures, each on one service. On raw levels the
trees learn *which service* failed in training (any level identifies a service), and a leak on another service
in the test period goes unseen: on a simulated fleet, a disk filling to 99 % on the notification service scored
a probability of 0.005, its largest SHAP factor the service's ordinary memory level (the trees had learned the
memory levels of the services whose disks filled in training, which scored 0.7 to 0.8). Against the service's
own trailing baseline (``<m>__base_24h``, the median of the 24 hourly means before the current hour:
causal, and a leak of a few hours hardly moves it) the same fault looks the same on every service.

For each metric ``m`` of the input columns that has its baseline column ``m__base_24h`` there too:

* ``m__vs_base`` = m - baseline, for percentages (memory, disk, CPU: points above the usual level);
* ``m__x_base`` = m / max(baseline, floor), for everything else (connections, queue depth, latency, error rate:
  times the usual level). The floor keeps a near-zero baseline from making a ratio of noise: one unit for counts
  (connections, queued messages), 1 ms for latencies, 0.001 otherwise (an error rate of 0.1 %); the ratio is
  clipped to 1000;

and for each metric with a physical maximum (``telemetry.schema.physical_range``: 100 % for memory and disk) and
its slope column ``m__slope_<w>m``:

* ``m__minutes_to_limit`` = (maximum - m) / slope: minutes until the limit at the current trend; 0 at the limit
  (within 0.5 % of the range: memory pinned at 100 % waits for the OOM kill), ``CAP_MINUTES`` (a week) when the
  trend is flat or falling, NaN when the slope is missing and the limit not reached.

Kept as they are: the other columns that describe change rather than level (slopes, rates of change), which are
comparable across services already. Left out: the levels replaced above, the baselines themselves (a baseline
names its service and says nothing else), and the calendar and deploy context (``hour``, ``weekday``,
``minutes_since_deploy``): with a few failures in a history these only tell the trees *when* those few happened;
on ten simulated fleets (seeds 1-6 and 8-11, test periods), adding them back caught 46 instead of 53 of the 62
foreseeable failures, with twice the false alarms.

Monotone constraints (:func:`monotone_signs`): a level further above the service's usual one never lowers the
failure probability, and fewer minutes to the limit never lower it either. With a few episodes to learn from,
this keeps the trees from carving pockets around the few training values (0 for every other column).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

BASE_SUFFIX = "__base_24h"
CONTEXT = ("hour", "weekday", "minutes_since_deploy")
CAP_MINUTES = 10080.0  # one week: "not in any foreseeable time"
RATIO_CLIP = 1000.0
AT_LIMIT_SHARE = 0.005  # within 0.5 % of the physical range counts as at the limit
VS_BASE, X_BASE, TO_LIMIT = "__vs_base", "__x_base", "__minutes_to_limit"


def _is_percent(metric: str) -> bool:
    from telemetry.schema import FLEET_METRICS

    spec = FLEET_METRICS.get(metric)
    return spec.unit == "%" if spec is not None else metric.lower().endswith(("_pct", "_percent"))


def _floor(metric: str) -> float:
    from telemetry.schema import is_count

    if is_count(metric):
        return 1.0
    if metric.lower().endswith("_ms"):
        return 1.0
    return 1e-3


def _maximum(metric: str) -> float | None:
    from telemetry.schema import physical_range

    high = physical_range(metric)[1]
    return None if high is None or not np.isfinite(high) else float(high)


def _slope_column(metric: str, columns: Sequence[str]) -> str | None:
    prefix = f"{metric}__slope_"
    found = [c for c in columns if c.startswith(prefix) and c.endswith("m")]
    return found[0] if found else None


def _plan(columns: Sequence[str]) -> tuple[list[str], list[tuple[str, str, str, str | None]]]:
    """(raw columns kept, derived columns as (name, how, metric, helper column))."""
    columns = list(columns)
    have = set(columns)
    baselined = [c for c in columns if c + BASE_SUFFIX in have]
    kept = [c for c in columns
            if not c.endswith(BASE_SUFFIX) and c not in CONTEXT and c not in baselined]
    derived: list[tuple[str, str, str, str | None]] = []
    for m in baselined:
        how = VS_BASE if _is_percent(m) else X_BASE
        derived.append((m + how, how, m, m + BASE_SUFFIX))
    for m in [c for c in columns if "__" not in c and c not in CONTEXT]:
        slope = _slope_column(m, columns)
        if slope is not None and _maximum(m) is not None:
            derived.append((m + TO_LIMIT, TO_LIMIT, m, slope))
    return kept, derived


def relative_columns(columns: Sequence[str]) -> list[str]:
    """The columns of :func:`relative_view` for these input columns, in order."""
    kept, derived = _plan(columns)
    return kept + [name for name, *_ in derived]


def relative_view(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The relative view of ``frame`` (which must hold ``columns``), same index, float64. Row by row: a row's
    values depend on that row alone, so one request computes what the whole training frame did."""
    kept, derived = _plan(columns)
    out = {c: frame[c].to_numpy(dtype="float64") for c in kept}
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, how, m, helper in derived:
            value = frame[m].to_numpy(dtype="float64")
            other = frame[helper].to_numpy(dtype="float64")
            if how == VS_BASE:
                out[name] = value - other
            elif how == X_BASE:
                out[name] = np.minimum(value / np.maximum(other, _floor(m)), RATIO_CLIP)
            else:
                high = _maximum(m)
                headroom = np.maximum(high - value, 0.0)
                at_limit = headroom <= AT_LIMIT_SHARE * high
                rising = other > 0
                minutes = np.where(rising, headroom / np.where(rising, other, 1.0), CAP_MINUTES)
                minutes = np.where(np.isnan(other), np.nan, np.minimum(minutes, CAP_MINUTES))
                out[name] = np.where(at_limit, 0.0, minutes)
                out[name][np.isnan(value)] = np.nan
    return pd.DataFrame(out, index=frame.index, columns=relative_columns(columns))


def monotone_signs(names: Sequence[str]) -> list[int]:
    """+1 for levels against the baseline, -1 for minutes to the limit, 0 for the rest."""
    return [1 if n.endswith((VS_BASE, X_BASE)) else -1 if n.endswith(TO_LIMIT) else 0 for n in names]


__all__ = ["BASE_SUFFIX", "CAP_MINUTES", "CONTEXT", "monotone_signs", "relative_columns", "relative_view"]
