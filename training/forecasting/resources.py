"""Which of a user's own metrics are resources and traffic, and where their limits are.

The fleet's metrics have fixed names (``cpu_pct``, ``disk_pct`` ...); a user's telemetry has its exporter's
(``CPUUtilization``, ``node_filesystem_used_percent``, ``mem_used_percent``, ``http_requests_per_second``).
The role of a metric is read from its name; whether it is a percentage from its name or, failing that, from
its values (all within 0 to 100 and named like a resource):

    role_of("CPUUtilization")                       # "cpu"
    pick_series(telemetry, ["frontend/request_rate"])   # configured series the lake holds, else one traffic
                                                        # series and one resource series found by name
    lake_limits(telemetry, settings)                # {metric: limit}: configuration first, then defaults
"""
from __future__ import annotations

import re

import pandas as pd

# Substrings of a lower-cased metric name, tried in this order (``disk`` before ``util`` matters for
# ``disk_util_pct``: it is the disk's).
ROLES = {
    "disk": ("disk", "filesystem", "_fs_", "fs_used", "volume", "storage"),
    "memory": ("mem", "heap", "rss"),
    "cpu": ("cpu", "processor"),
    "connections": ("connections", "conn_", "_conns", "sessions"),
    "traffic": ("request", "rps", "qps", "throughput", "traffic", "invocations", "ingress", "hits"),
}
_PERCENT = re.compile(r"(pct|percent|utili[sz]ation|_util$|_util_|ratio_100)")


def role_of(metric: str) -> str | None:
    """``disk``, ``memory``, ``cpu``, ``connections``, ``traffic`` or None, from the metric's name."""
    name = metric.lower()
    for role, needles in ROLES.items():
        if any(n in name for n in needles):
            return role
    return None


def is_percent(metric: str, values: pd.Series | None = None) -> bool:
    """A percentage by name (``_pct``, ``percent``, ``utilization``), or a resource whose values all lie in
    0-100 with some above 1 (a 0-1 ratio is not a percentage)."""
    if _PERCENT.search(metric.lower()):
        return True
    if values is None or role_of(metric) not in ("cpu", "memory", "disk"):
        return False
    v = pd.to_numeric(values, errors="coerce").dropna()
    return bool(len(v)) and v.min() >= 0 and v.max() <= 100 and v.max() > 1


def pick_series(telemetry: pd.DataFrame, configured: list[str], limit: int = 2) -> tuple[list[str], str]:
    """The ``service/metric`` series to forecast, and how they were chosen.

    The configured ones the lake holds; when it holds none of them, one traffic series (the busiest by mean)
    and one resource series (the fullest percentage, disk first), named ``service/metric``."""
    keys = (telemetry["service"].astype(str) + "/" + telemetry["metric"].astype(str))
    present = set(keys.unique())
    chosen = [s for s in configured if s in present]
    if chosen:
        return chosen[:max(limit, len(chosen))], "configured"
    means = telemetry.groupby(keys, sort=True)["value"].mean()
    by_role: dict[str, list[tuple[float, str]]] = {}
    for key, mean in means.items():
        role = role_of(key.split("/", 1)[1])
        if role:
            by_role.setdefault(role, []).append((float(mean), key))
    picks = []
    if by_role.get("traffic"):
        picks.append(max(by_role["traffic"])[1])
    for role in ("disk", "memory", "cpu", "connections"):
        if by_role.get(role) and len(picks) < limit:
            picks.append(max(by_role[role])[1])
            break
    if picks:
        return picks[:limit], "picked from the lake by name (traffic, then the fullest resource)"
    # No name says what a series is: the longest histories (the most samples), so the stage still forecasts.
    counts = keys.value_counts(sort=False).sort_index()
    longest = counts.sort_values(ascending=False, kind="stable").index[:limit]
    return list(longest), "the longest series (no metric name reads as traffic or a resource)"


def lake_limits(telemetry: pd.DataFrame, settings) -> dict[str, float]:
    """A limit for each resource metric of the lake: ``forecasting.limits`` by metric name first; otherwise a
    percentage of CPU, disk or memory gets the configured ``*_limit_pct`` (memory only when one is set)."""
    cfg = settings.forecasting
    defaults = {"cpu": cfg.cpu_limit_pct, "disk": cfg.disk_limit_pct, "memory": cfg.memory_limit_pct}
    limits: dict[str, float] = {}
    for metric, values in telemetry.groupby(telemetry["metric"].astype(str), sort=True)["value"]:
        if metric in cfg.limits:
            limits[metric] = cfg.limits[metric]
            continue
        role = role_of(metric)
        if role in defaults and defaults[role] is not None and is_percent(metric, values):
            limits[metric] = float(defaults[role])
    return limits
