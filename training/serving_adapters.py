"""What a logged model bundle does with a request frame. Kept out of the pyfunc file so it is testable."""
from __future__ import annotations

import numpy as np
import pandas as pd

from features.detector_inputs.pandas_path import detector_frame


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
