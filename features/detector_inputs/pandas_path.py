"""The zoo's transforms on feature rows: from the feature store's columns to what a detector reads.

    frame = zoo_transforms(features)           # index (service, timestamp), compute_features' columns
    X     = detector_frame(bundle, request)    # a request frame, indexed, transformed and scaled as in training

Training (``training.zoo.time_split``), the MLflow adapter (``training.detectors.bundle.predict``) and
the scoring service's full path (``serving.scoring.DetectorRunner``) all go through ``zoo_transforms``; the
scoring service's numpy path (``numpy_path``) computes the same columns from a window's samples.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from features.detector_inputs.columns import (
    BASE_SUFFIX,
    DEPLOY_HORIZON_MINUTES,
    LEVEL_STATS,
    RESTARTED_BY_DEPLOYS,
    inputs_of,
    settle_minutes,
    time_of_day,
    windows_of,
)


def recent_deploys(frame: pd.DataFrame) -> pd.DataFrame:
    """Cap ``minutes_since_deploy`` at four hours: a deploy's effects are short-lived, while the raw count
    grows without bound between deploys and would drift past anything the training period saw."""
    if "minutes_since_deploy" not in frame.columns:
        return frame
    return frame.assign(minutes_since_deploy=frame["minutes_since_deploy"].clip(upper=DEPLOY_HORIZON_MINUTES))


def settle_after_deploys(frame: pd.DataFrame) -> pd.DataFrame:
    """Blank the CPU and memory features of a service while its last deploy is still inside the feature
    window (NaN, which the detectors read as "at the baseline").

    A deploy restarts the process: CPU spikes while it warms up and memory drops back from whatever it had
    crept to, by more the longer the service ran without a deploy; no training period shows every size of
    that drop. Those two are what any deploy moves. What a bad deploy breaks is what callers see (errors,
    latency, traffic, queues), and those features stay. The blank lasts as long as the widest window
    (the rolling statistics hold the restart that long), from the deploy minute on."""
    if "minutes_since_deploy" not in frame.columns:
        return frame
    settle = settle_minutes(frame.columns)
    if settle == 0:
        return frame
    fresh = (frame["minutes_since_deploy"] < settle).to_numpy()
    if not fresh.any():
        return frame
    cols = [c for c in frame.columns if c.split("__")[0] in RESTARTED_BY_DEPLOYS and not c.endswith("__wow")
            and "__base_" not in c]
    out = frame.copy()
    out.loc[fresh, cols] = np.nan
    return out


def with_time_of_day(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the time of day as a point on a circle (23:59 sits next to 00:00), from the timestamp index.

    Traffic at 01:00 that would be normal at 14:00 is an anomaly only a model that knows the hour can see."""
    times = pd.DatetimeIndex(frame.index.get_level_values(-1))
    tod_sin, tod_cos = time_of_day((times.hour * 60 + times.minute).to_numpy())
    return frame.assign(tod_sin=tod_sin, tod_cos=tod_cos)


def relative_to_baseline(frame: pd.DataFrame) -> pd.DataFrame:
    """Measure every level feature (a metric's value and its window mean, min, max and p95) against the
    metric's trailing 24-hour baseline (``<m>__base_24h``), and drop the baselines themselves.

    Levels drift while nothing is wrong: memory creeps between deploys, disks grow, traffic grows. Scaled with
    the training period's statistics, a level that drifted for a week sits past anything training saw and every
    daily peak becomes an alarm. Against the level of the last day, the drift is gone, while a fault (minutes to
    hours long) still stands out. Where no baseline exists yet (the first hour of a history) the level features
    are NaN, which the detectors read as "at the baseline"; the other features still speak."""
    bases = [c for c in frame.columns if c.endswith(BASE_SUFFIX)]
    if not bases:
        return frame
    out = frame.drop(columns=bases)
    updates = {}
    for base in bases:
        metric = base.split("__")[0]
        b = frame[base].to_numpy()
        levels = [metric, *(f"{metric}__{stat}_{w}" for stat in LEVEL_STATS for w in windows_of(frame.columns, metric))]
        for col in levels:
            if col in out.columns:
                v = out[col].to_numpy()
                updates[col] = v - b
    if not updates:
        return out
    # One concat instead of a column assignment per level (~45): the scoring service runs this per request.
    moved = pd.DataFrame(updates, index=out.index)
    return pd.concat([out.drop(columns=list(updates)), moved], axis=1)[list(out.columns)]


def zoo_transforms(frame: pd.DataFrame) -> pd.DataFrame:
    """The zoo's transforms, in order, on feature rows indexed by (service, timestamp): levels against their
    baselines (baselines dropped), CPU and memory settled after deploys, the deploy clock capped, the time of
    day added."""
    return with_time_of_day(recent_deploys(settle_after_deploys(relative_to_baseline(frame))))


def by_service_and_time(frame: pd.DataFrame) -> pd.DataFrame:
    """Feature rows with ``service`` and ``timestamp`` columns, indexed by them (timestamps parsed as UTC)."""
    return frame.assign(timestamp=pd.to_datetime(frame["timestamp"], utc=True)).set_index(["service", "timestamp"])


def detector_frame(bundle: dict, frame: pd.DataFrame) -> pd.DataFrame:
    """Index a request by (service, timestamp) and scale it like the training data."""
    inputs = inputs_of(bundle)
    needed = ["service", "timestamp", *inputs]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"request lacks columns {missing}; expected {needed}")
    indexed = zoo_transforms(by_service_and_time(frame)[inputs].astype(float))
    features = indexed[bundle["columns"]].astype(float)
    return bundle["scaler"].transform(features) if bundle.get("scaler") is not None else features
