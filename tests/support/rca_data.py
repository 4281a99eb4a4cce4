"""A hand-built incident for the root-cause ranking tests: a slow database under an API under a front end."""
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
