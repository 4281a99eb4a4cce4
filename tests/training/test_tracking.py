"""Every model reaches MLflow through the one pyfunc adapter and comes back by its registered name."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from training.zoo import time_split, train_zoo


@pytest.fixture
def tiny_zoo(home):
    from configs.settings import load_settings
    from telemetry.simulator import FleetSimulator
    from training.detectors.stage import TrainingData
    from training.zoo import build_zoo

    sim = FleetSimulator(days=2, seed=5, end="2026-11-20T00:00Z", incidents_per_day=4).run()
    wide = sim.telemetry.pivot_table(index=["service", "timestamp"], columns="metric", values="value", observed=True)
    wide.columns = [str(c) for c in wide.columns]
    data = TrainingData(frame=wide, incidents=sim.incidents, edges=[], dataset=sim.dataset,
                        data_version=f"{sim.dataset}@test")
    splits = time_split(wide, sim.incidents)
    result = train_zoo(splits, build_zoo(list(wide.columns), [], include=["zscore", "pca"]), ensemble_size=2)
    return load_settings(**{"serving.token": "canary-tracking-token"}), data, splits, result


def test_register_and_load_back_by_name(tiny_zoo):
    import mlflow
    from mlflow import MlflowClient

    from training.detectors.stage import register_zoo, report_markdown

    settings, data, splits, result = tiny_zoo
    out = register_zoo(settings, result, splits, data, report_markdown(result, splits, data))
    assert set(out["versions"]) == {"zscore", "pca", "ensemble"}
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    parent = client.get_run(out["run_id"])
    assert parent.data.tags["cerebro.data_version"] == data.data_version
    assert {"comparison_test.json", "report.md", "config.json"} <= {a.path for a in client.list_artifacts(out["run_id"])}
    config = mlflow.artifacts.load_dict(f"runs:/{out['run_id']}/config.json")  # the settings, secrets redacted
    assert config["serving"]["token"] == "**********" and "canary-tracking-token" not in json.dumps(config)
    assert config["detection"]["ensemble_size"] == settings.detection.ensemble_size

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/cerebro-detector-zscore/{out['versions']['zscore']}")
    request = data.frame.loc[["cart"]].tail(30).reset_index().astype({"service": str})
    request["timestamp"] = request["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    answer = model.predict(request)
    assert list(answer.columns) == ["score", "calibrated", "is_anomaly"] and len(answer) == 30
    from features.detector_inputs.pandas_path import with_time_of_day

    expected = result.models["zscore"].score(splits.scaler.transform(with_time_of_day(data.frame.loc[["cart"]].tail(30))))
    np.testing.assert_allclose(answer["score"].to_numpy(), expected)
    signature_cols = [c.name for c in model.metadata.get_input_schema().inputs]
    assert "service" in signature_cols and "cpu_pct" in signature_cols
    version = client.get_model_version("cerebro-detector-pca", out["versions"]["pca"])
    run = client.get_run(version.run_id)
    assert "test_f1" in run.data.metrics and run.data.params["detector"] == "PCADetector"


def test_a_request_without_the_features_is_refused(tiny_zoo):
    from training.kinds import predict_bundle

    _settings, _data, splits, result = tiny_zoo
    bundle = {"kind": "detector", "model": result.models["zscore"], "scaler": splits.scaler,
              "columns": list(splits.frame.columns)}
    with pytest.raises(ValueError, match="lacks columns"):
        predict_bundle(bundle, pd.DataFrame({"service": ["a"], "timestamp": ["2026-11-20T00:00Z"]}), {})


def test_a_stage_that_loses_the_race_to_create_the_experiment_uses_the_winners(home, monkeypatch):
    """Forecasting trains beside detection: both may find the experiment missing, and one create then fails."""
    import mlflow

    from configs.settings import load_settings
    from training.tracking import use_experiment

    settings = load_settings()
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    winner = mlflow.create_experiment(settings.mlflow.experiment, artifact_location=settings.mlflow_artifact_root)
    real = mlflow.get_experiment_by_name
    calls = []

    def missing_at_first(name):  # what the loser saw before the winner's create committed
        calls.append(name)
        return None if len(calls) == 1 else real(name)

    monkeypatch.setattr(mlflow, "get_experiment_by_name", missing_at_first)
    assert use_experiment(settings) == settings.mlflow.experiment
    assert mlflow.get_experiment_by_name(settings.mlflow.experiment).experiment_id == winner
