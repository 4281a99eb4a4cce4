"""What a logged model bundle does with a request frame. Kept out of the pyfunc file so it is testable."""
from __future__ import annotations

import numpy as np
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
    if bundle["kind"] == "detector":
        det = bundle["model"]
        X = detector_frame(bundle, frame)
        score = det.score(X)
        return pd.DataFrame({
            "score": score,
            "calibrated": det.calibrated(scores=score),
            "is_anomaly": (score > det.threshold_).astype(np.int64),
        })
    if bundle["kind"] == "forecaster":
        from training.forecasting.stage import predict_forecast_bundle

        return predict_forecast_bundle(bundle, frame)
    if bundle["kind"] == "failure":
        from training.failure.serving import predict_failure_bundle

        return predict_failure_bundle(bundle, frame, params)
    raise ValueError(f"unknown model kind {bundle['kind']!r}")
