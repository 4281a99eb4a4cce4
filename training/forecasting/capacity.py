"""Capacity planning: when does each service's resource reach its limit?

Input is the long telemetry frame (``timestamp, service, metric, value``). Each (service, metric) that has a
limit is aggregated onto a coarse grid (``freq``, hourly by default, the ``how`` of each bucket: mean by
default), forecast ``horizon`` ahead, and compared with its limit:

* ``crosses_upper_at``: the first time the upper 95 % bound reaches the limit (the earliest plausible
  run-out: plan by then);
* ``crosses_expected_at``: the first time the forecast itself (``yhat``) reaches it;
* ``crosses_lower_at``: the first time even the lower 95 % bound does (the latest: by then it is all
  but certain);
* ``probability``: the chance of reaching the limit within the horizon, from a normal approximation of
  each step's forecast (``sigma`` = the 95 % interval's half-width / 1.96): the largest per-step
  ``P(value >= limit)``. It is a lower bound on the chance of crossing at some step (exact when the
  path is monotone, as a fill is).

Times are bucket starts on the grid, ``hours_to_*`` are counted from the last observed bucket. A
resource already at or over its limit in its last bucket is reported as crossing now. A ``horizon``
longer than the history allows (the forecasting rule: no further ahead than the history is long) is
shortened to the history's length, with a note.

Default limits (:func:`fleet_limits`): ``disk_pct`` 90 %, ``cpu_pct`` 85 %, ``connections`` at the service's
connection-pool size from the topology; ``memory_pct`` on request. Any metric can be given a limit, one
number for every service or ``{service: limit}``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# The same choice as `cerebro forecast` and the forecasting stage (``auto``: per-series backtest among the
# statistical models and profiles, conformal intervals), so a run-out date comes from the model that did best
# on the series' own past. Two things made it fit for a week ahead of a fortnight of hourly means: a spike at
# the very end (a disk-fill incident two hours before the plan) is cleaned once the series has come back from
# it, where before ETS read it as a trend (a "certain" run-out at 232 %); and each step's interval scale is a
# median over neighbouring steps (one backtest week with an incident in it set every later width, "possible"
# run-outs at 104-111 % CPU). On 7 simulated fleets it then reports no run-out, as Prophet did; `--capacity-model
# prophet` (or ``forecasting.capacity_model``) keeps Prophet's piecewise-linear trend.
DEFAULT_MODEL = "auto"
Limits = Mapping[str, float | Mapping[str, float]]

COLUMNS = ["service", "metric", "limit", "last_value", "peak_forecast", "peak_upper_95", "crosses_upper_at",
           "crosses_expected_at", "crosses_lower_at", "hours_to_upper", "hours_to_expected", "hours_to_lower",
           "probability", "status", "horizon_hours", "note"]


@dataclass
class CapacityPlan:
    table: pd.DataFrame  # one row per (service, metric): COLUMNS, in input order
    forecasts: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    histories: dict[tuple[str, str], pd.Series] = field(default_factory=dict)
    model: str = DEFAULT_MODEL
    freq: str = "1h"
    how: str = "mean"
    horizon: pd.Timedelta = field(default_factory=lambda: pd.Timedelta(days=7))


def fleet_limits(topology=None, disk_pct: float = 90.0, cpu_pct: float = 85.0, memory_pct: float | None = None,
                 connections: bool = True) -> dict[str, float | dict[str, float]]:
    """The fleet's limits: disk and CPU thresholds for every service, connections at each pool size."""
    limits: dict[str, float | dict[str, float]] = {"disk_pct": float(disk_pct), "cpu_pct": float(cpu_pct)}
    if memory_pct is not None:
        limits["memory_pct"] = float(memory_pct)
    if connections:
        if topology is None:
            from telemetry.topology import default_topology

            topology = default_topology()
        limits["connections"] = {s.name: float(s.pool_size) for s in topology.services}
    return limits


def limit_for(limits: Limits, service: str, metric: str) -> float | None:
    value = limits.get(metric)
    if isinstance(value, Mapping):
        value = value.get(service)
    return None if value is None else float(value)


def resource_series(telemetry: pd.DataFrame, limits: Limits, freq: str = "1h", how: str = "mean",
                    services: list[str] | None = None) -> dict[tuple[str, str], pd.Series]:
    """{(service, metric): series on the ``freq`` grid} for every pair that has a limit."""
    t = telemetry[telemetry["metric"].astype(str).isin(list(limits))]
    if services is not None:
        t = t[t["service"].astype(str).isin(services)]
    t = t.assign(service=t["service"].astype(str), metric=t["metric"].astype(str),
                 timestamp=pd.to_datetime(t["timestamp"], utc=True))
    grouped = t.groupby(["service", "metric", pd.Grouper(key="timestamp", freq=freq)])["value"].agg(how)
    out = {}
    for (service, metric), s in grouped.groupby(level=[0, 1], sort=False):
        if limit_for(limits, service, metric) is not None:
            out[(service, metric)] = s.droplevel([0, 1]).rename(f"{service}/{metric}")
    return out


def plan_capacity(telemetry: pd.DataFrame, limits: Limits | None = None, horizon: str | pd.Timedelta = "7D",
                  freq: str = "1h", model: str = DEFAULT_MODEL, params: dict | None = None, how: str = "mean",
                  services: list[str] | None = None, errors: str = "record",
                  on_progress: Callable[[str], None] | None = None) -> CapacityPlan:
    """Forecast every limited (service, metric) and report when it reaches its limit (module docstring)."""
    from training.forecasting.registry import build_forecaster, for_horizon

    limits = fleet_limits() if limits is None else limits
    horizon = pd.Timedelta(horizon)
    step = pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
    wanted = max(1, int(horizon / step))
    series = resource_series(telemetry, limits, freq=freq, how=how, services=services)
    if not series:
        raise ValueError(f"no telemetry for the limited metrics {sorted(limits)}")
    rows, forecasts = [], {}
    for (service, metric), y in series.items():
        if on_progress:
            on_progress(f"{service}/{metric}")
        limit = limit_for(limits, service, metric)
        row = {"service": service, "metric": metric, "limit": limit, "last_value": float(y.dropna().iloc[-1])}
        notes = []
        h = min(wanted, int(y.notna().sum()))
        if h < wanted:
            notes.append(f"horizon shortened to {h} steps: the history is only {h} steps long")
        try:
            fc = for_horizon(build_forecaster(model, **(params or {})), h, fixed=params).fit(y).predict(h)
        except Exception as exc:
            if errors == "raise":
                raise
            row.update(status="error", note=f"{type(exc).__name__}: {exc}", horizon_hours=h * step / pd.Timedelta(hours=1))
            rows.append(row)
            continue
        forecasts[(service, metric)] = fc
        row.update(crossings(fc, limit, last_time=y.index[-1], last_value=row["last_value"]))
        row["horizon_hours"] = h * step / pd.Timedelta(hours=1)
        row["note"] = "; ".join(notes) or None
        rows.append(row)
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    return CapacityPlan(table=table, forecasts=forecasts, histories=series, model=model, freq=freq, how=how,
                        horizon=horizon)


def crossings(fc: pd.DataFrame, limit: float, last_time: pd.Timestamp, last_value: float) -> dict:
    """When the upper bound, the forecast and the lower bound first reach ``limit``, and how likely it is."""
    from scipy.stats import norm

    hour = pd.Timedelta(hours=1)

    def first(col: str):
        hit = fc.index[fc[col].to_numpy() >= limit]
        return hit[0] if len(hit) else pd.NaT

    out = {"peak_forecast": float(fc["yhat"].max()), "peak_upper_95": float(fc["yhat_upper_95"].max())}
    if last_value >= limit:
        out.update(crosses_upper_at=last_time, crosses_expected_at=last_time, crosses_lower_at=last_time,
                   probability=1.0, status="over limit now")
    else:
        out.update(crosses_upper_at=first("yhat_upper_95"), crosses_expected_at=first("yhat"),
                   crosses_lower_at=first("yhat_lower_95"))
        sigma = (fc["yhat_upper_95"] - fc["yhat_lower_95"]).to_numpy() / (2 * norm.ppf(0.975))
        gap = limit - fc["yhat"].to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(sigma > 0, norm.sf(gap / np.where(sigma > 0, sigma, 1.0)), (gap <= 0).astype(float))
        out["probability"] = float(p.max())
        out["status"] = ("certain" if pd.notna(out["crosses_lower_at"]) else
                         "expected" if pd.notna(out["crosses_expected_at"]) else
                         "possible" if pd.notna(out["crosses_upper_at"]) else "ok")
    for key in ("upper", "expected", "lower"):
        at = out[f"crosses_{key}_at"]
        out[f"hours_to_{key}"] = (at - last_time) / hour if pd.notna(at) else np.nan
    return out


def runs_out_first(plan: CapacityPlan | pd.DataFrame) -> pd.DataFrame:
    """The plan sorted by urgency: earliest plausible run-out (upper bound) first, then the most likely;
    resources with no crossing last, least headroom first."""
    table = plan.table if isinstance(plan, CapacityPlan) else plan
    headroom = (table["limit"] - table["peak_upper_95"]) / table["limit"]
    return (table.assign(_headroom=headroom, _p=-table["probability"].fillna(0))
            .sort_values(["hours_to_upper", "_p", "_headroom"], na_position="last", kind="stable")
            .drop(columns=["_headroom", "_p"]).reset_index(drop=True))


def capacity_markdown(plan: CapacityPlan, top: int | None = 15) -> str:
    """What runs out first, as a markdown report."""
    ranked = runs_out_first(plan)
    at_risk = ranked[ranked["status"].isin(["over limit now", "certain", "expected", "possible"])]
    errors = ranked[ranked["status"] == "error"]
    hours = plan.horizon / pd.Timedelta(hours=1)
    lines = ["# Capacity: what runs out first", "",
             (f"Model `{plan.model}` on the {plan.how} of each {plan.freq}, horizon {hours:g} h; {len(ranked)} resources checked, "
             f"{len(at_risk)} may reach their limit within the horizon."), ""]

    def when(at, hrs) -> str:
        return "-" if pd.isna(at) else f"{at:%Y-%m-%d %H:%M} (+{hrs:.0f} h)"

    if len(at_risk):
        if top is not None and len(at_risk) > top:
            lines[-2] += f" The first {top} follow."
        lines += [("| service | metric | limit | now | earliest (upper 95 %) | expected | certain (lower 95 %) "
                  "| probability | status |"), "|---|---|---|---|---|---|---|---|---|"]
        for r in at_risk.head(top).itertuples():
            lines.append(f"| {r.service} | {r.metric} | {r.limit:g} | {r.last_value:.1f} | "
                         f"{when(r.crosses_upper_at, r.hours_to_upper)} | "
                         f"{when(r.crosses_expected_at, r.hours_to_expected)} | "
                         f"{when(r.crosses_lower_at, r.hours_to_lower)} | {r.probability:.2f} | {r.status} |")
    else:
        lines.append("No resource reaches its limit within the horizon, even at the upper 95 % bound.")
    ok = ranked[ranked["status"] == "ok"]
    if len(ok):
        tight = ok.head(3)
        lines += ["", "Least headroom among the rest: " + ", ".join(
            f"{r.service}/{r.metric} (upper bound peaks at {r.peak_upper_95:.1f} of {r.limit:g})"
            for r in tight.itertuples()) + "."]
    if len(errors):
        lines += ["", "Not forecast: " + "; ".join(f"{r.service}/{r.metric}: {r.note}" for r in errors.itertuples())]
    return "\n".join(lines) + "\n"
