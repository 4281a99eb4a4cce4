"""The failure predictor at serving time: an MLflow bundle, its request adapter, and the online-store path.

    bundle = failure_bundle(model, data_version)                 # what log_bundle pickles (kind "failure")
    out = predict_failure_bundle(bundle, request, params)        # what the pyfunc adapter returns
    out = predict_online(settings, model, ["payment", "auth"])   # latest features from Feast's online store

To serve it through ``training/pyfunc_model.py``, ``training/serving_adapters.predict_bundle`` needs one branch:

    if bundle["kind"] == "failure":
        from training.failure.serving import predict_failure_bundle
        return predict_failure_bundle(bundle, frame, params)

Request: ``service``, ``timestamp`` (ISO 8601 text or datetimes, taken as UTC) and the ``failure_v1`` feature
columns (NaN allowed). Response: one row per request row, in order: service, timestamp (ISO 8601 text),
failure_probability, alarm (0/1), time_to_failure_minutes (NaN without an alarm) and top_factors, a JSON
array of {feature, value, contribution} (text, because a column of nested objects does not fit an MLflow
signature and JSON is what a serving client reads anyway). Params: ``top_k`` (default 3; 0 skips SHAP, the
slow part) and ``threshold`` (overrides the stored alarm threshold for this request).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from training.failure.model import FailurePredictor

KIND = "failure"


def failure_bundle(model: FailurePredictor, data_version: str = "", name: str = "failure_predictor") -> dict:
    """A bundle on the project's contract: kind, name, model, columns, data_version (+ what serving reads)."""
    return {"kind": KIND, "name": name, "model": model, "columns": list(model.features_),
            "horizon_minutes": float(model.horizon_minutes), "threshold": float(model.threshold_),
            "data_version": data_version}


def request_example(frame: pd.DataFrame, features: Sequence[str], rows: int = 5) -> pd.DataFrame:
    """A request built from feature rows indexed (service, timestamp): floats, ISO timestamps (for MLflow)."""
    example = frame[list(features)].head(rows).astype("float64").reset_index()
    example["timestamp"] = pd.to_datetime(example["timestamp"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    example["service"] = example["service"].astype(str)
    return example


def predict_failure_bundle(bundle: dict, frame: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
    if bundle.get("kind") != KIND:
        raise ValueError(f"not a failure-predictor bundle (kind {bundle.get('kind')!r})")
    params = params or {}
    model: FailurePredictor = bundle["model"]
    needed = ["service", "timestamp", *bundle["columns"]]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"request lacks columns {missing}; expected {needed}")
    request = frame.assign(timestamp=pd.to_datetime(frame["timestamp"], utc=True),
                           service=frame["service"].astype(str))
    request[bundle["columns"]] = request[bundle["columns"]].astype("float64")
    out = model.predict_frame(request, top_k=int(params.get("top_k", 3)))
    if params.get("threshold") is not None:
        out["alarm"] = (out["failure_probability"] >= float(params["threshold"])).astype(np.int64)
        ttf = model.predict_time_to_failure(request)
        out["time_to_failure_minutes"] = np.where(out["alarm"] == 1, ttf, np.nan)
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out["top_factors"] = [json.dumps(f) for f in out["top_factors"]]
    return out


def predict_online(settings: Any, model: FailurePredictor, services: Sequence[str], top_k: int = 3,
                   as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """Predictions from each service's latest materialised ``failure_v1`` row (Feast's online store).

    The online store keeps no event time, so ``timestamp`` is ``as_of`` (default: now, to the minute). A
    service the store has never seen comes back with NaN features; it is predicted like any row with
    missing values (the imputer's medians), which says nothing, so it is dropped and reported instead."""
    from features.store import online_features

    latest = online_features(settings, list(services), feature_service="failure_v1")
    known = latest[model.features_].notna().any(axis=1)
    stamp = (as_of or pd.Timestamp.now(tz="UTC")).floor("min")
    rows = latest[known].assign(timestamp=stamp)
    out = model.predict_frame(rows, top_k=top_k)
    out.attrs["unknown_services"] = latest.loc[~known, "service"].astype(str).tolist()
    return out
