"""Writes ``examples/shop/``: a small shop's own monitoring export, in a shape other than the simulator's.

    python examples/make_shop_export.py          # rewrites metrics.csv and incidents.csv (deterministic)

What makes it a user's export rather than the simulator's:
* wide form (``Time, App`` and one column per metric), a sample every 5 minutes, 14 days;
* the exporter's own metric names (``CPUUtilization``, ``mem_used_percent``, ``http_p95_ms``,
  ``http_requests_per_second``, ``disk_used_percent``);
* daily and weekly traffic cycles, noise, a 2-hour gap in one service's samples, and a few bad rows
  (a timestamp that is not a time, a percentage over 100, a value that is not a number);
* incidents from the pager in ``incidents.csv`` with its own headers (``started_at, resolved_at, service,
  type, priority, title``), not the simulator's ground truth.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).parent / "shop"
START = pd.Timestamp("2026-10-07 00:00", tz="UTC")  # a Wednesday: the last day is a Tuesday, not a weekend
DAYS = 14
STEP = "5min"
SERVICES = {  # baseline requests per second, CPU per request, p95 latency
    "checkout": (40.0, 0.9, 180.0),
    "catalog": (120.0, 0.35, 60.0),
    "search": (80.0, 0.5, 110.0),
}
# (service, kind, start, hours, priority, title): what the pager recorded; the telemetry carries each one.
INCIDENTS = [
    ("catalog", "latency", "2026-10-08 14:10", 1.0, "P2", "Catalog p95 latency above 400 ms"),
    ("checkout", "cpu_saturation", "2026-10-10 10:00", 2.0, "P1", "Checkout CPU pegged, orders slow"),
    ("search", "traffic_drop", "2026-10-11 19:30", 1.0, "P2", "Search traffic fell by two thirds"),
    ("catalog", "memory_leak", "2026-10-14 02:00", 5.0, "P3", "Catalog memory climbing, pods restarted"),
    ("checkout", "latency", "2026-10-15 16:00", 1.5, "P1", "Checkout timeouts from payment provider"),
    ("search", "cpu_saturation", "2026-10-17 11:00", 1.5, "P2", "Search CPU saturated after reindex"),
    ("checkout", "error_burst", "2026-10-18 20:15", 0.75, "P1", "Checkout latency spike after deploy"),
    ("catalog", "disk_fill", "2026-10-19 06:00", 4.0, "P3", "Catalog disk filling with debug logs"),
]


def series(rng: np.random.Generator, times: pd.DatetimeIndex, service: str) -> pd.DataFrame:
    base_rps, cpu_per_req, p95 = SERVICES[service]
    hours = times.hour + times.minute / 60
    daily = 0.55 + 0.45 * np.sin((hours - 9) / 24 * 2 * np.pi) ** 2 * (hours > 6)
    weekly = np.where(times.weekday >= 5, 0.7, 1.0)
    rps = base_rps * daily * weekly * rng.lognormal(0, 0.06, len(times))
    cpu = np.clip(8 + cpu_per_req * rps * rng.normal(1, 0.05, len(times)), 0, 100)
    mem = 48 + 6 * daily + rng.normal(0, 0.8, len(times))
    lat = p95 * (1 + 0.25 * daily) * rng.lognormal(0, 0.08, len(times))
    disk = 41 + np.arange(len(times)) * 0.0009 + rng.normal(0, 0.05, len(times))
    return pd.DataFrame({"CPUUtilization": cpu, "mem_used_percent": mem, "http_p95_ms": lat,
                         "http_requests_per_second": rps, "disk_used_percent": disk}, index=times)


def inject(frame: pd.DataFrame, kind: str, start: pd.Timestamp, hours: float) -> None:
    sel = (frame.index >= start) & (frame.index < start + pd.Timedelta(hours=hours))
    n = int(sel.sum())
    ramp = np.linspace(0, 1, n)
    if kind == "cpu_saturation":
        frame.loc[sel, "CPUUtilization"] = np.minimum(99.0, frame.loc[sel, "CPUUtilization"] + 55)
        frame.loc[sel, "http_p95_ms"] *= 2.2
    elif kind in ("latency", "error_burst"):
        frame.loc[sel, "http_p95_ms"] *= 3.5 if kind == "latency" else 5.0
    elif kind == "traffic_drop":
        frame.loc[sel, "http_requests_per_second"] *= 0.33
        frame.loc[sel, "CPUUtilization"] *= 0.6
    elif kind == "memory_leak":
        frame.loc[sel, "mem_used_percent"] += 40 * ramp
    elif kind == "disk_fill":
        frame.loc[sel, "disk_used_percent"] += 35 * ramp


def main() -> None:
    rng = np.random.default_rng(20261005)
    times = pd.date_range(START, periods=DAYS * 288, freq=STEP)
    frames = []
    for service in SERVICES:
        frame = series(rng, times, service)
        for svc, kind, start, hours, *_ in INCIDENTS:
            if svc == service:
                inject(frame, kind, pd.Timestamp(start, tz="UTC"), hours)
        if service == "search":  # the exporter lost two hours of one service
            frame = frame[(frame.index < "2026-10-12 03:00") | (frame.index >= "2026-10-12 05:00")]
        frames.append(frame.round(2).rename_axis("Time").reset_index().assign(App=service))
    wide = pd.concat(frames).sort_values(["Time", "App"], kind="stable").reset_index(drop=True)
    wide["Time"] = wide["Time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    wide = wide[["Time", "App", "CPUUtilization", "mem_used_percent", "http_p95_ms", "http_requests_per_second",
                 "disk_used_percent"]].astype(object)
    wide.loc[100, "Time"] = "not-a-time"          # bad rows: quarantined with a reason, never dropped silently
    wide.loc[2000, "mem_used_percent"] = 180.0     # a percentage over 100
    wide.loc[3000, "http_p95_ms"] = "n/a"         # not a number
    OUT.mkdir(exist_ok=True)
    wide.to_csv(OUT / "metrics.csv", index=False)
    rows = [{"started_at": f"{start}:00Z".replace(" ", "T"),
             "resolved_at": (pd.Timestamp(start, tz="UTC") + pd.Timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "service": svc, "type": kind, "priority": prio, "title": title}
            for svc, kind, start, hours, prio, title in INCIDENTS]
    pd.DataFrame(rows).to_csv(OUT / "incidents.csv", index=False)


if __name__ == "__main__":
    main()
