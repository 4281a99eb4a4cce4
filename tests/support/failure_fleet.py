"""A synthetic fleet for the failure predictor's tests: feature rows where nothing but a planted precursor says a
failure is coming (the training tests and the scoring service's failure endpoint share it)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from features.transforms import failure_feature_names
from training.failure import FailureData, failure_labels
from training.failure.labels import LABEL, LABEL_COLUMNS, TTF

FEATURES = failure_feature_names()


def incidents_frame(rows: list[tuple[str, str, list[str], str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame({
        "incident_id": [r[0] for r in rows], "root_cause_service": [r[1] for r in rows],
        "affected_services": [r[2] for r in rows], "kind": [r[3] for r in rows], "severity": "high",
        "start": pd.to_datetime([r[4] for r in rows], utc=True), "end": pd.to_datetime([r[5] for r in rows], utc=True),
    })


def synthetic_fleet(days: float = 6, step: int = 5, n_services: int = 6, signal: bool = True, seed: int = 0,
                    nan_share: float = 0.0) -> FailureData:
    """Feature rows of a fleet where nothing but a planted precursor says a failure is coming.

    Every ~4 hours one service fails (30-minute incident). With ``signal`` its memory slope and queue depth
    climb linearly over the hour before the start (0 -> 5 standard deviations); every other value is noise
    with a per-service offset. Without ``signal`` the labels are the same and the features say nothing."""
    rng = np.random.default_rng(seed)
    services = [f"svc-{k}" for k in range(n_services)]
    times = pd.date_range("2026-11-02", periods=int(days * 1440 / step), freq=f"{step}min", tz="UTC")
    offsets = np.arange(180, days * 1440 - 120, 240) + rng.integers(-60, 60, size=len(np.arange(180, days * 1440 - 120, 240)))
    roots = rng.choice(services, size=len(offsets))
    incidents = incidents_frame([
        (f"INC-{k}", str(root), [str(root)], ["memory_leak", "connection_pool_exhaustion"][k % 2],
         str(times[0] + pd.Timedelta(minutes=int(o))), str(times[0] + pd.Timedelta(minutes=int(o) + 30)))
        for k, (o, root) in enumerate(zip(offsets, roots))
    ])
    svc = np.repeat(services, len(times))
    ts = pd.DatetimeIndex(np.tile(times, n_services))
    labels = failure_labels(svc, ts, incidents, horizon_minutes=60)
    n = len(svc)
    shift = {s: rng.normal(0, 2, len(FEATURES)) for s in services}
    values = rng.normal(0, 1, (n, len(FEATURES))) + np.vstack([shift[s] for s in svc])
    frame = pd.DataFrame(values, columns=FEATURES)
    frame["hour"] = ts.hour
    frame["weekday"] = ts.weekday
    frame["minutes_since_deploy"] = rng.uniform(0, 600, n)
    if signal:
        ramp = np.where(labels[LABEL] == 1, 1 - labels[TTF].fillna(60) / 60, 0.0)
        frame["memory_pct__slope_15m"] += 5 * ramp
        frame["queue_depth"] += 5 * ramp
    if nan_share:
        for col in ("cpu_pct__slope_15m", "memory_pct__slope_15m"):
            frame.loc[rng.random(n) < nan_share, col] = np.nan
    frame.index = pd.MultiIndex.from_arrays([svc, ts], names=["service", "timestamp"])
    for col in LABEL_COLUMNS:
        frame[col] = labels[col].to_numpy()
    return FailureData(frame.sort_index(), FEATURES, incidents, 60, step)
