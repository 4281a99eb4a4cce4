"""What a logged model bundle does with a request frame. Kept out of the pyfunc file so it is testable."""
from __future__ import annotations

import numpy as np
import pandas as pd


def detector_frame(bundle: dict, frame: pd.DataFrame) -> pd.DataFrame:
    """Index a request by (service, timestamp) and scale it like the training data."""
    missing = [c for c in ["service", "timestamp", *bundle["columns"]] if c not in frame.columns]
    if missing:
        raise ValueError(f"request lacks columns {missing}; expected service, timestamp and {bundle['columns']}")
    indexed = frame.assign(timestamp=pd.to_datetime(frame["timestamp"], utc=True)).set_index(["service", "timestamp"])
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
    raise ValueError(f"unknown model kind {bundle['kind']!r}")
