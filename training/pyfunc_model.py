"""The one MLflow pyfunc adapter every CEREBRO model is served through (models-from-code).

MLflow loads this file and calls ``set_model``; the model's own state lives in the ``bundle`` artifact
(a joblib file: the fitted estimator plus what it needs around it, such as the per-service scaler).
``predict`` takes a DataFrame and returns a DataFrame; what the columns are depends on the bundle's
``kind`` (``training/kinds.py`` names the module that answers for each kind):

* ``detector``: input ``service``, ``timestamp`` and the feature columns; output ``score`` (raw),
  ``calibrated`` (0-1, shared scale) and ``is_anomaly`` (0/1, the threshold learned in training).
* ``forecaster``: input ``series`` (SERVICE/METRIC) and ``horizon`` (steps); output one row per future step:
  ``series``, ``timestamp``, ``yhat`` and the 80 % / 95 % interval columns.
* ``failure``: input ``service``, ``timestamp`` and the ``failure_v1`` features; output
  ``failure_probability``, ``alarm``, ``time_to_failure_minutes`` and ``top_factors`` (JSON, SHAP).
"""
from __future__ import annotations

import mlflow
import pandas as pd


class CerebroModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import joblib

        self.bundle = joblib.load(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params=None):
        from training.kinds import predict_bundle

        return predict_bundle(self.bundle, model_input, params or {})


mlflow.models.set_model(CerebroModel())
