"""The detectors as a bundle (their row in ``training/kinds.py``): the MLflow bundle, its request adapter, and
its figure on held-out data for the promotion gate.

    bundle = detector_bundle(name, model, scaler, columns, inputs, data_version)   # what log_bundle pickles
    out = predict(bundle, request)                                                 # what the pyfunc adapter returns

A request is feature rows: ``service``, ``timestamp`` and the feature columns (``inputs``); the answer is one row
per request row: ``score`` (raw), ``calibrated`` (0-1, the shared scale) and ``is_anomaly`` (0/1, the threshold
learned in training).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from training.kinds import DETECTOR, JudgeError

INCIDENT_COLUMNS = ["incident_id", "kind", "start", "end", "affected_services"]


def detector_bundle(name: str, model, scaler, columns: list[str], inputs: list[str], data_version: str) -> dict:
    """``columns``: what the detector sees after the zoo's transforms; ``inputs``: the feature columns a request
    carries (the store's, baselines included)."""
    return {"kind": DETECTOR.name, "name": name, "model": model, "scaler": scaler, "columns": columns,
            "inputs": inputs, "data_version": data_version}


def predict(bundle: dict, frame: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
    from features.detector_inputs.pandas_path import detector_frame

    det = bundle["model"]
    score = det.score(detector_frame(bundle, frame))
    return pd.DataFrame({
        "score": score,
        "calibrated": det.calibrated(scores=score),
        "is_anomaly": (score > det.threshold_).astype(np.int64),
    })


# ------------------------------------------------------------------------------------------ the promotion gate
def check_labels(frame: pd.DataFrame, labels, **options) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Labels: the incidents frame. The frame is put in (service, time) order, as the detectors read series."""
    if not isinstance(labels, pd.DataFrame) or not {"start", "end", "affected_services"} <= set(labels.columns):
        raise JudgeError("detector labels: expected the incidents frame (incident_id, kind, start, end, "
                         "affected_services)")
    return frame.sort_values(["service", "timestamp"], kind="stable").reset_index(drop=True), labels


def figures(bundle: dict, frame: pd.DataFrame, incidents: pd.DataFrame, recovery_minutes: float = 0,
            **options) -> dict:
    """Event-wise F1 (``training.evaluation``); alarms up to ``recovery_minutes`` after an incident belong to it."""
    from training.evaluation import evaluate

    out = predict(bundle, frame)
    index = pd.MultiIndex.from_arrays([frame["service"].astype(str).to_numpy(),
                                       pd.to_datetime(frame["timestamp"], utc=True)])
    r = evaluate(index, out["score"].to_numpy(), float(bundle["model"].threshold_), incidents,
                 recovery_minutes=float(recovery_minutes))
    return {"f1": r["f1"], "precision": r["precision"], "recall": r["recall"], "incidents": r["incidents"],
            "false_alarms": r["false_alarm_events"]}


def unjudgeable(detail: dict) -> str | None:
    if not detail.get("champion_incidents"):
        return "the held-out period holds no incidents, so F1 says nothing; judge on a period with incidents"
    return None


def heldout(settings, start: pd.Timestamp, end: pd.Timestamp, incidents: pd.DataFrame):
    """Feature rows of the window, the lake's incidents, and the feature window as the recovery allowance."""
    from features.from_lake import read_features

    frame = read_features(settings, start, end)
    labels = incidents if not incidents.empty else pd.DataFrame(columns=INCIDENT_COLUMNS)
    return frame, labels, {"recovery_minutes": settings.feast.window_minutes}


def shadow_gap(champion, challenger) -> dict:
    """How far the challenger's answer is from the champion's; answers are DataFrames or ``serving.scoring.Rows``."""
    a, b = np.asarray(champion["is_anomaly"]), np.asarray(challenger["is_anomaly"])
    agree = len(a) == len(b) and bool((a == b).all())
    return {"agree": agree, "rows": len(b), "champion_anomalies": int(a.sum()),
            "challenger_anomalies": int(b.sum()),
            "challenger_max_calibrated": float(np.max(np.asarray(challenger["calibrated"])))}
