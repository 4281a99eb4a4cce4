"""Failure prediction: will a service fail within the next H minutes, how soon, and why?

    labels.py      failure labels from the incident table (H-minute horizon, ongoing incidents apart, the
                   precursor window in which a fault is under way)
    data.py        (service, minute) entity rows with labels, joined point-in-time through Feast (failure_v1)
    relative.py    what the trees see: levels against each service's baseline, minutes to the limit
    model.py       FailurePredictor: relative view -> imputer -> SMOTE -> monotone XGBoost, sigmoid calibration,
                   threshold, TTF, SHAP
    evaluation.py  PR-AUC, recall at precision 0.9, precision/recall at the threshold, lead times, per kind
    training.py    the time-ordered split (purged), the foreseeable target, train_failure_predictor -> (model, report)
    report.py      the report as markdown
    serving.py     the MLflow bundle and its request adapter, predictions from Feast's online store

Pure domain code: no Prefect, and the heavy libraries (xgboost, imbalanced-learn, shap, Feast) are imported
inside the functions that use them, so importing this package is cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

# Exported names and their modules, loaded on first use: ``import training.failure`` stays cheap (the model
# module pulls in scikit-learn, ~1.5 s on 2 cores).
_EXPORTS = {
    "FailureData": "data", "entity_rows": "data", "failure_data_from_features": "data",
    "failure_data_from_frames": "data", "failure_training_data": "data",
    "failure_labels": "labels",
    "Explanation": "model", "FailureDataError": "model", "FailurePredictor": "model", "choose_threshold": "model",
    "report_markdown": "report",
    "failure_bundle": "bundle", "predict_online": "bundle",
    "register_failure_predictor": "stage", "split_by_time": "stage", "summarise": "stage",
    "train_failure_predictor": "stage",
}
__all__ = [
    "Explanation",
    "FailureData",
    "FailureDataError",
    "FailurePredictor",
    "choose_threshold",
    "entity_rows",
    "failure_bundle",
    "failure_data_from_features",
    "failure_data_from_frames",
    "failure_labels",
    "failure_training_data",
    "predict_online",
    "register_failure_predictor",
    "report_markdown",
    "split_by_time",
    "summarise",
    "train_failure_predictor",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
