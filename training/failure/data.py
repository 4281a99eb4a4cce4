"""Training rows for the failure predictor: (service, minute) entity rows with labels, features through Feast.

    data = failure_training_data(settings, dataset, start, end, horizon_minutes=60)    # from the lake
    data = failure_data_from_frames(settings, telemetry, events, incidents)            # from frames in memory
    data = failure_data_from_features(features, incidents)                             # no Feast (tests, backfills)

The entity rows are every ``step_minutes``-th minute of every service (minutes aligned across services, so
each sampled minute holds the whole fleet), labelled by :func:`training.failure.labels.failure_labels`, and
joined point-in-time with the ``failure_v1`` feature service: each row gets the newest feature row of its
service at or before its minute, never a later one.

Why sample, and why uniformly: one row a minute is 262,080 rows for a 14-day fleet of 13 services, and
neighbouring minutes are nearly the same row (15-minute windows). Every 5th minute keeps 52,416 rows and about
12 positive rows per failure at H = 60, trains in a few seconds, and costs lead-time resolution only
(5 minutes). Sampling is uniform in time, not by class, so the validation rows keep the real positive rate
that the calibration must learn.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from training.failure.labels import LABEL, LABEL_COLUMNS, ONGOING, TTF, UNDERWAY, failure_labels

FEATURE_SERVICE = "failure_v1"
DEFAULT_HORIZON = 60
DEFAULT_STEP = 5
_NS_PER_MINUTE = 60_000_000_000


@dataclass
class FailureData:
    """Labelled feature rows, index (service, timestamp): the feature columns, then the label columns."""

    frame: pd.DataFrame
    features: list[str]
    incidents: pd.DataFrame
    horizon_minutes: float
    step_minutes: int
    dataset: str = ""
    data_version: str = ""
    feature_report: dict = field(default_factory=dict)
    failure_at: str = "start"  # the incident column that holds the failure moment (see labels.py)

    @property
    def X(self) -> pd.DataFrame:
        return self.frame[self.features]

    @property
    def y(self) -> np.ndarray:
        return self.frame[LABEL].to_numpy()

    @property
    def ttf(self) -> np.ndarray:
        return self.frame[TTF].to_numpy()

    def summary(self) -> dict[str, Any]:
        usable = ~self.frame[ONGOING].to_numpy()
        y = self.frame[LABEL].to_numpy()[usable] == 1
        underway = (self.frame[UNDERWAY].to_numpy(dtype=bool)[usable] if UNDERWAY in self.frame.columns
                    else np.zeros(int(usable.sum()), dtype=bool))
        return {"rows": len(self.frame), "ongoing_rows_left_out": int((~usable).sum()),
                "failure_rows": int(self.frame[LABEL].to_numpy()[usable].sum()),
                "foreseeable_failure_rows": int((y & underway).sum()), "early_rows": int((~y & underway).sum()),
                "positive_rate": float(self.frame[LABEL].to_numpy()[usable].mean()) if usable.any() else float("nan"),
                "services": int(self.frame.index.get_level_values(0).nunique()),
                "incidents": len(self.incidents), "horizon_minutes": self.horizon_minutes,
                "step_minutes": self.step_minutes, "failure_at": self.failure_at}


def _incidents(incidents: pd.DataFrame) -> pd.DataFrame:
    incidents = incidents.copy()
    for col in [c for c in ("start", "end", "failed_at") if c in incidents.columns]:
        incidents[col] = pd.to_datetime(incidents[col], utc=True)
    return incidents.reset_index(drop=True)


def sample_minutes(times: pd.Series | pd.DatetimeIndex, step_minutes: int) -> np.ndarray:
    """Mask of the rows on every ``step_minutes``-th minute since the epoch (the same minutes for every service)."""
    if step_minutes < 1:
        raise ValueError(f"step_minutes={step_minutes}: must be at least 1")
    ns = pd.DatetimeIndex(pd.to_datetime(times, utc=True)).asi8
    on_minute = ns % _NS_PER_MINUTE == 0
    return on_minute & ((ns // _NS_PER_MINUTE) % step_minutes == 0)


def entity_rows(keys: pd.DataFrame, incidents: pd.DataFrame, horizon_minutes: float = DEFAULT_HORIZON,
                step_minutes: int = DEFAULT_STEP, at: str = "start") -> pd.DataFrame:
    """``keys`` (service, timestamp) -> the entity_df Feast joins: service, event_timestamp and the labels.

    Times are moved to the next whole minute first, as ``compute_features`` does with samples off the minute
    (a feed that samples at :15 s still gets rows, and their features exist at that minute)."""
    minutes = pd.to_datetime(keys["timestamp"], utc=True).dt.ceil("min")
    keys = pd.DataFrame({"service": keys["service"].astype(str).to_numpy(), "timestamp": minutes.array})
    keys = keys[sample_minutes(keys["timestamp"], step_minutes)].drop_duplicates()
    keys = keys.sort_values(["service", "timestamp"], kind="stable").reset_index(drop=True)
    labels = failure_labels(keys["service"].to_numpy(), keys["timestamp"], incidents, horizon_minutes, at=at)
    entity = pd.DataFrame({"service": keys["service"].astype(str).to_numpy(),
                           "event_timestamp": pd.to_datetime(keys["timestamp"], utc=True).array})
    return pd.concat([entity, labels], axis=1)


def _to_frame(joined: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    frame = joined.rename(columns={"event_timestamp": "timestamp"}).set_index(["service", "timestamp"])
    return frame[features + LABEL_COLUMNS].sort_index(level=[0, 1])


def failure_data_from_features(features: pd.DataFrame, incidents: pd.DataFrame,
                               horizon_minutes: float = DEFAULT_HORIZON, step_minutes: int = DEFAULT_STEP,
                               feature_names: list[str] | None = None, dataset: str = "",
                               at: str = "start") -> FailureData:
    """Label a feature frame from ``compute_features`` directly (rows at feature minutes, no Feast join): the
    same rows the Feast path returns for entity rows on whole minutes, without the store. For tests, quick
    experiments and backfills; the pipeline goes through Feast."""
    from features.transforms import failure_feature_names

    names = feature_names or failure_feature_names()
    missing = [c for c in names if c not in features.columns]
    if missing:
        raise ValueError(f"the feature frame lacks {missing}")
    incidents = _incidents(incidents)
    keys = features[["service", "event_timestamp"]].rename(columns={"event_timestamp": "timestamp"})
    entity = entity_rows(keys, incidents, horizon_minutes, step_minutes, at)
    values = features.set_index(["service", "event_timestamp"])[names]
    joined = entity.join(values, on=["service", "event_timestamp"])
    return FailureData(_to_frame(joined, names), names, incidents, horizon_minutes, step_minutes, dataset=dataset,
                       data_version=dataset, failure_at=at)


def failure_data_from_frames(settings, telemetry: pd.DataFrame, events: pd.DataFrame | None,
                             incidents: pd.DataFrame, horizon_minutes: float = DEFAULT_HORIZON,
                             step_minutes: int = DEFAULT_STEP, dataset: str = "",
                             build_store: bool = True, at: str = "start") -> FailureData:
    """Build (or reuse) the feature store from telemetry, then join the labelled entity rows through Feast.

    ``build_store=False`` reuses the store as it stands: pass it when the detection stage has just built it
    from the same window (the build recomputes every feature and re-materialises the online store)."""
    from features.repo import source_path
    from features.store import build_feature_store, training_frame
    from training.data_version import of_parquet

    report: dict[str, Any] = {}
    if build_store:
        build = build_feature_store(settings, telemetry, events, replace=True)
        report["build"] = build.as_dict()
    elif not source_path(settings).exists():
        raise FileNotFoundError(f"no feature store at {source_path(settings)}: build it first (build_store=True)")
    # One row per sampled (service, minute); thin the long frame (a row per metric) before anything else.
    keys = telemetry[["service", "timestamp"]]
    stamps = pd.to_datetime(keys["timestamp"], utc=True).dt.ceil("min")
    entity = entity_rows(keys[sample_minutes(stamps, step_minutes)], _incidents(incidents), horizon_minutes,
                         step_minutes, at)
    joined, join = training_frame(settings, entity, FEATURE_SERVICE)
    report["join"] = {k: v for k, v in join.as_dict().items() if k != "dropped_index"}
    features = [c for c in joined.columns if c not in entity.columns]
    joined = joined.dropna(subset=features, how="all")  # a service the store never saw: nothing to predict from
    version = of_parquet(source_path(settings), dataset) if dataset else dataset
    return FailureData(_to_frame(joined, features), features, _incidents(incidents), horizon_minutes, step_minutes,
                       dataset=dataset, data_version=version, feature_report=report, failure_at=at)


def failure_training_data(settings, dataset: str, start: pd.Timestamp, end: pd.Timestamp,
                          horizon_minutes: float = DEFAULT_HORIZON, step_minutes: int = DEFAULT_STEP,
                          build_store: bool = True, at: str = "start") -> FailureData:
    """The lake's telemetry, deploy events and incidents of ``dataset`` in [start, end), through Feast."""
    from telemetry import lake

    telemetry = lake.read_telemetry(settings.lake_dir, start=start, end=end)
    if telemetry.empty:
        raise ValueError(f"the lake holds no telemetry between {start} and {end}")
    events = lake.read_table("events", settings.lake_dir, dataset=dataset)
    incidents = lake.read_table("incidents", settings.lake_dir, dataset=dataset)
    if incidents.empty:
        raise ValueError(f"the lake holds no incidents for dataset {dataset!r}: the failure labels come from them")
    return failure_data_from_frames(settings, telemetry, events, incidents, horizon_minutes, step_minutes,
                                    dataset=dataset, build_store=build_store, at=at)
