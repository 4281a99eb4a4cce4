"""Every model reaches MLflow through the one pyfunc adapter and comes back by its registered name."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from support.raw_fleet import raw_fleet

from training.zoo import time_split, train_zoo


@pytest.fixture
def tiny_zoo(home):
    from configs.settings import load_settings
    from training.detectors.stage import TrainingData
    from training.zoo import build_zoo

    sim, wide = raw_fleet(days=2, seed=5)
    data = TrainingData(frame=wide, incidents=sim.incidents, edges=[], dataset=sim.dataset,
                        data_version=f"{sim.dataset}@test")
    splits = time_split(wide, sim.incidents)
    result = train_zoo(splits, build_zoo(list(wide.columns), [], include=["zscore", "pca"]), ensemble_size=2)
    return load_settings(**{"serving.token": "canary-tracking-token"}), data, splits, result


def test_register_and_load_back_by_name(tiny_zoo):
    import time

    import mlflow
    from mlflow import MlflowClient

    from training.detectors.stage import register_zoo, report_markdown

    settings, data, splits, result = tiny_zoo
    started = time.time() - 120  # the stage began two minutes ago: the run is dated from then
    out = register_zoo(settings, result, splits, data, report_markdown(result, splits, data), started=started)
    assert set(out["versions"]) == {"zscore", "pca", "ensemble"}
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    parent = client.get_run(out["run_id"])
    assert parent.data.tags["cerebro.data_version"] == data.data_version
    assert parent.info.start_time == int(started * 1000) and parent.info.end_time - parent.info.start_time >= 120_000
    assert parent.data.params["put_forward"] == "ensemble" and parent.data.params["rows"] == str(len(data.frame))
    (dataset_input,) = parent.inputs.dataset_inputs  # the Dataset column: the data version as its digest
    assert dataset_input.dataset.digest == data.data_version[:36]
    assert {t.key: t.value for t in dataset_input.tags}["rows"] == str(len(data.frame))
    # every version and model says what it is, on which data, and how it did
    pca = client.get_model_version("cerebro-detector-pca", out["versions"]["pca"])
    assert "PCADetector" in pca.description and data.data_version in pca.description and "F1" in pca.description
    assert "promotion gate" in client.get_registered_model("cerebro-detector-pca").description
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


def test_the_report_says_why_the_ensemble_is_put_forward_when_a_member_scored_higher():
    from types import SimpleNamespace

    from training.detectors.stage import below_target, put_forward_note

    def rep(f1, meets=False):
        return {"validation": {"f1": f1}, "test": {"f1": f1, "precision": f1, "recall": f1, "meets_targets": meets}}

    result = SimpleNamespace(best="ensemble", serving=None, reports={"ensemble": rep(0.80), "dbscan": rep(0.93, True),
                                                       "graph": rep(0.5)})
    note = put_forward_note(result, "ensemble")
    assert note.startswith("Why ensemble is put forward though dbscan scored higher on validation (F1 0.930 against "
                           "0.800) and dbscan scored higher on test") and "put_forward: best" in note
    assert put_forward_note(SimpleNamespace(best="dbscan", reports=result.reports), "best") == ""
    # the put-forward model may be champion below the targets; a member below them may not
    assert below_target(result, "ensemble") is None and below_target(result, "dbscan") is None
    assert below_target(result, "graph") == "test precision 0.500 <= 0.9, recall 0.500 <= 0.95, f1 0.500 <= 0.92"


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
