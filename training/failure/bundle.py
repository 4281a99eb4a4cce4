"""The failure predictor as a bundle (its row in ``training/kinds.py``): the MLflow bundle, its request adapter,
its figure on held-out data for the promotion gate, and the online-store path.

    bundle = failure_bundle(model, data_version)                 # what log_bundle pickles (kind "failure")
    out = predict(bundle, request, params)                       # what the pyfunc adapter returns
    out = predict_online(settings, model, ["payment", "auth"])   # latest features from Feast's online store

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
from training.kinds import FAILURE, JudgeError

KIND = FAILURE.name


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


def predict(bundle: dict, frame: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
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


# ------------------------------------------------------------------------------------------ the promotion gate
def check_labels(frame: pd.DataFrame, labels, **options) -> tuple[pd.DataFrame, np.ndarray]:
    """Labels: one 0/1 per frame row (a failure within the horizon)."""
    y = np.asarray(labels, dtype=float)
    if y.shape != (len(frame),) or np.isnan(y).any() or not np.isin(y, (0, 1)).all():
        raise JudgeError(f"failure labels: expected one 0/1 per frame row ({len(frame)}), got {y.shape}")
    return frame, y.astype(int)


def figures(bundle: dict, frame: pd.DataFrame, labels: np.ndarray, **options) -> dict:
    """PR-AUC of the predicted probabilities against the labels (None when they hold one class only)."""
    from sklearn.metrics import average_precision_score

    proba = predict(bundle, frame, {"top_k": 0})["failure_probability"].to_numpy(dtype=float)
    positives = int(labels.sum())
    pr_auc = float(average_precision_score(labels, proba)) if 0 < positives < len(labels) else None
    return {"pr_auc": pr_auc, "positives": positives, "positive_rate": positives / max(len(labels), 1)}


def unjudgeable(detail: dict) -> str | None:
    if not detail.get("champion_positives"):
        return "the held-out rows hold no failure, so PR-AUC says nothing; judge on a period with failures"
    return None


def heldout(settings, start: pd.Timestamp, end: pd.Timestamp, incidents: pd.DataFrame):
    """Feature rows of the window that are not inside an incident, labelled "fails within the horizon"."""
    from features.from_lake import read_features
    from training.failure.labels import LABEL, ONGOING, failure_labels

    if incidents.empty:
        raise JudgeError("the lake holds no incidents: the failure predictor cannot be judged")
    frame = read_features(settings, start, end)
    lab = failure_labels(frame["service"].to_numpy(), pd.DatetimeIndex(frame["timestamp"]), incidents,
                         horizon_minutes=settings.failure.horizon_minutes, at=settings.failure.failure_at)
    keep = ~lab[ONGOING].to_numpy(dtype=bool)  # the trouble is already visible there: not a prediction row
    return frame[keep].reset_index(drop=True), lab[LABEL].to_numpy()[keep], {}


def shadow_gap(champion, challenger) -> dict:
    """How far the challenger's answer is from the champion's (what the shadow log records)."""
    a, b = champion["alarm"].to_numpy(), challenger["alarm"].to_numpy()
    return {"agree": bool(len(a) == len(b) and (a == b).all()), "challenger_alarms": int(b.sum()),
            "challenger_max_probability": float(challenger["failure_probability"].max())}
