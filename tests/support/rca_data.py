"""Data for the root-cause ranking tests: a hand-built incident (a slow database under an API under a front
end) and a wandering crowd of 400 services."""
from __future__ import annotations

import numpy as np
import pandas as pd

T0 = pd.Timestamp("2024-05-01T00:00Z")
EDGES = [("frontend", "api"), ("api", "db"), ("api", "cache")]


def hand_built(slow: bool, seed: int = 0, n_base: int = 240, n_inc: int = 12):
    """frontend -> api -> db, api -> cache; db slows down 5x and its latency flows up to its callers."""
    rng = np.random.default_rng(seed)
    own = {"frontend": 10.0, "api": 5.0, "db": 8.0, "cache": 1.0}
    rows = []
    for i in range(n_base + n_inc):
        factor = 5.0 if slow and i >= n_base else 1.0
        lat = {s: own[s] * np.exp(rng.normal(0, 0.05)) for s in own}
        lat["db"] *= factor
        lat["api"] += lat["db"] + lat["cache"]
        lat["frontend"] += lat["api"]
        for s, v in lat.items():
            rows.append((T0 + pd.Timedelta(minutes=i), s, "latency_p90", v))
            rows.append((T0 + pd.Timedelta(minutes=i), s, "requests_Sum", 100 * np.exp(rng.normal(0, 0.05))))
    df = pd.DataFrame(rows, columns=["timestamp", "service", "metric", "value"])
    cut = T0 + pd.Timedelta(minutes=n_base)
    return df[df["timestamp"] >= cut], df[df["timestamp"] < cut]


def wandering_crowd(seed: int, fault: bool, services: int = 400):
    """A front door calling 400 services whose CPU wanders (AR(1) with heavy-tailed steps) and whose latency
    is steady; with ``fault`` one of them gets 50 noise widths slower for the last 30 minutes."""
    rng = np.random.default_rng(seed)
    T, cut = 330, 300
    steps = rng.standard_t(3, (T, services))
    cpu = np.zeros((T, services))
    for t in range(1, T):
        cpu[t] = 0.9 * cpu[t - 1] + steps[t]
    latency = 100 + rng.normal(0, 3, (T, services))
    if fault:
        latency[cut:, 7] += 150
    stamps = pd.date_range("2024-06-01", periods=T, freq="min", tz="UTC")
    names = [f"svc-{i:03d}" for i in range(services)]
    frames = [pd.DataFrame({"timestamp": np.repeat(stamps, services), "service": np.tile(names, T),
                            "metric": metric, "value": values.ravel()})
              for metric, values in (("cpu_pct", 40 + cpu), ("latency_p90", latency))]
    tel = pd.concat(frames, ignore_index=True)
    at = tel["timestamp"] >= stamps[cut]
    return tel[at], tel[~at], [("front", n) for n in names]
