"""A detector request frame as the detector reads it; ``predict_bundle`` for models registered before the kind
table (``training/kinds.py``), whose logged adapter file imports it from here."""
from __future__ import annotations

import pandas as pd


def detector_frame(bundle: dict, frame: pd.DataFrame) -> pd.DataFrame:
    """Index a request by (service, timestamp) and scale it like the training data."""
    from training.zoo import (
        TIME_OF_DAY,
        recent_deploys,
        relative_to_baseline,
        settle_after_deploys,
        with_time_of_day,
    )

    # ``inputs``: the feature columns a request carries (the store's, baselines included); ``columns``: what the
    # detector sees after the zoo's own transforms.
    inputs = bundle.get("inputs") or [c for c in bundle["columns"] if c not in TIME_OF_DAY]
    needed = ["service", "timestamp", *inputs]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"request lacks columns {missing}; expected {needed}")
    indexed = frame.assign(timestamp=pd.to_datetime(frame["timestamp"], utc=True)).set_index(["service", "timestamp"])
    indexed = with_time_of_day(recent_deploys(settle_after_deploys(relative_to_baseline(indexed[inputs].astype(float)))))
    features = indexed[bundle["columns"]].astype(float)
    return bundle["scaler"].transform(features) if bundle.get("scaler") is not None else features


def predict_bundle(bundle: dict, frame: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Kept for models registered before the kind table: their logged ``pyfunc_model.py`` imports this name."""
    from training.kinds import predict_bundle as by_kind

    return by_kind(bundle, frame, params)
