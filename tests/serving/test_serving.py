"""The scoring service: auth, validation, the features path, routing, shadow, blue-green, refusal, rollback.

One small fleet's z-score detector (and a seasonal-naive forecaster) is trained and registered once per
session (``served`` in conftest.py); each test registers its own copies under its own model name, so aliases never collide.
"""
from __future__ import annotations

import copy
import json
import logging
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.filterwarnings("ignore")


def _settings(**serving):
    from configs.settings import load_settings

    settings = load_settings()
    settings.serving.poll_seconds = 0
    for key, value in serving.items():
        setattr(settings.serving, key, value)
    return settings


def _register(name: str, bundle: dict, example: pd.DataFrame) -> str:
    import mlflow

    from training.tracking import log_bundle, use_experiment

    use_experiment(_settings())
    with mlflow.start_run(run_name=f"test-{name}"):
        return log_bundle(bundle, name, example, {}, {}, {})


def _shifted(bundle: dict, threshold: float) -> dict:
    """The same detector with another alarm threshold: a version whose answers differ."""
    other = dict(bundle)
    other["model"] = copy.deepcopy(bundle["model"])
    other["model"].threshold_ = threshold
    return other


def _alias(name: str, version: str, alias: str = "champion") -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=_settings().mlflow_tracking_uri).set_registered_model_alias(name, alias, version)


def _service(settings):
    from serving.live import LiveModels
    from serving.metrics import ServingMetrics
    from serving.router import Router

    live = LiveModels(settings, Router.from_settings(settings.serving), ServingMetrics())
    live.reload()
    return live


def _client(settings, live=None, token: bool = True):
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.auth import client_headers

    app = create_app(settings, live=live or _service(settings), load_in_background=False)
    return TestClient(app, headers=client_headers(settings) if token else None)  # the token /admin/* always wants


def _metric(text: str, name: str, **labels) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def test_the_service_scores_a_raw_window_like_the_bundle(served, body):
    from features.transforms import compute_features
    from serving.schemas import ScoreRequest
    from serving.scoring import window_frame
    from training.kinds import predict_bundle

    settings = _settings(models={"detector": "cerebro-detector-zscore"})
    with _client(settings) as client:
        answer = client.post("/v1/score", json=body)
    assert answer.status_code == 200, answer.text
    got = pd.DataFrame(answer.json()["rows"])
    feats = compute_features(window_frame(ScoreRequest(**body)), window=settings.feast.window_minutes)
    request = feats.drop(columns=["created"]).rename(columns={"event_timestamp": "timestamp"})
    expected = predict_bundle(served["bundle"], request, {})
    assert len(got) == len(expected) == 90
    np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-9)
    assert answer.json()["model"] == "cerebro-detector-zscore" and answer.json()["missing_metrics"] == []


def test_a_token_is_required_when_configured(served, body):
    settings = _settings(models={"detector": "cerebro-detector-zscore"}, token="s3cret")
    with _client(settings, token=False) as client:
        assert client.get("/healthz").status_code == 200  # probes stay open
        assert client.post("/v1/score", json=body).status_code == 401
        wrong = client.post("/v1/score", json=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "bearer token" in wrong.json()["detail"]
        assert client.get("/models").status_code == 401
        ok = client.post("/v1/score", json=body, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200


def test_bad_bodies_get_a_4xx_that_names_the_field(served):
    settings = _settings(models={"detector": "cerebro-detector-zscore"})
    with _client(settings) as client:
        r = client.post("/v1/score", content=b'{"telemetry": [', headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
        r = client.post("/v1/score", content=b"hello", headers={"Content-Type": "text/plain"})
        assert r.status_code == 400 and "JSON object" in r.json()["detail"]
        r = client.post("/v1/score", json={"telemetry": [{"timestamp": "2026-11-20T00:00:00Z", "service": "cart",
                                                          "metric": "cpu_pct", "value": "high"}]})
        assert r.status_code == 422
        assert r.json()["detail"][0]["field"] == "telemetry[0].value" and r.json()["detail"][0]["got"] == "high"
        assert "valid number" in r.json()["message"]
        r = client.post("/v1/score", json={"series": [{"service": "cart", "metric": "cpu_pct",
                                                       "timestamps": ["2026-11-20T00:00:00Z"], "values": [1.0, 2.0]}]})
        assert r.status_code == 422 and "timestamps has 1 items but values has 2" in r.json()["message"]
        r = client.post("/v1/score", json={})
        assert r.status_code == 422 and "no samples" in r.json()["message"]
        r = client.post("/v1/score", json={"telemetry": [], "serie": []})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "serie"
        r = client.post("/v1/forecast", json={"series": ["frontend/request_rate"]})
        assert r.status_code == 422 and r.json()["detail"][0] == {"field": "horizon", "problem": "required field is missing"}


def test_forecasts_and_flags(served):
    settings = _settings(models={"forecaster": "cerebro-forecaster-seasonal_naive"})
    with _client(settings) as client:
        r = client.post("/v1/forecast", json={"series": ["frontend/request_rate"], "horizon": 4})
        assert r.status_code == 200, r.text
        steps = r.json()["steps"]
        assert len(steps) == 4 and all(s["yhat_lower_95"] <= s["yhat"] <= s["yhat_upper_95"] for s in steps)
        r = client.post("/v1/forecast", json={"series": ["nowhere/cpu_pct"], "horizon": 4})
        assert r.status_code == 422 and "nowhere/cpu_pct" in r.json()["detail"]
        assert client.post("/v1/score", json={"series": [{"service": "a", "metric": "cpu_pct", "timestamps": [0],
                                                          "values": [1]}]}).status_code == 503  # no detector
    settings.serving.flags = {"score": True, "forecast": False, "failure": True}
    with _client(settings) as client:
        r = client.post("/v1/forecast", json={"series": ["frontend/request_rate"], "horizon": 4})
        assert r.status_code == 404 and "serving.flags.forecast" in r.json()["detail"]


def test_router_split_is_deterministic_across_processes():
    from serving.router import Router, bucket

    keys = [f"svc-{i}" for i in range(200)]
    here = [bucket(k) for k in keys]
    code = "import json; from serving.router import bucket; print(json.dumps([bucket(f'svc-{i}') for i in range(200)]))"
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(there) == here
    router = Router(split={"detector": 0.3})
    variants = [router.variant("detector", k) for k in keys]
    assert variants == [router.variant("detector", k) for k in keys]
    assert 0.2 < variants.count("challenger") / len(keys) < 0.4
    assert all(router.variant("forecaster", k) == "champion" for k in keys)


def test_split_answers_by_variant_with_per_variant_metrics(served, body):
    name = "test-split-detector"
    v1 = _register(name, served["bundle"], served["example"])
    v2 = _register(name, _shifted(served["bundle"], 1e9), served["example"])
    _alias(name, v1), _alias(name, v2, "challenger")
    settings = _settings(models={"detector": name}, split={"detector": 0.5})
    from serving.router import Router

    router = Router.from_settings(settings.serving)
    with _client(settings) as client:
        seen = {}
        for i in range(20):
            key = f"tenant-{i}"
            r = client.post("/v1/score", json={**body, "key": key, "last": 1})
            assert r.status_code == 200
            seen[key] = r.json()["variant"]
            assert r.json()["version"] == (v2 if seen[key] == "challenger" else v1)
            assert seen[key] == router.variant("detector", key)
        text = client.get("/metrics").text
    assert set(seen.values()) == {"champion", "challenger"}
    for variant in ("champion", "challenger"):
        n = list(seen.values()).count(variant)
        assert _metric(text, "cerebro_serving_predictions_total", variant=variant, outcome="ok") == n


def test_shadow_scores_are_logged_not_returned(served, body, caplog):
    name = "test-shadow-detector"
    v1 = _register(name, served["bundle"], served["example"])
    v2 = _register(name, _shifted(served["bundle"], -1.0), served["example"])  # flags everything
    _alias(name, v1), _alias(name, v2, "challenger")
    settings = _settings(models={"detector": name}, shadow=["detector"])
    with caplog.at_level(logging.INFO, logger="cerebro.serving.shadow"), _client(settings) as client:
        r = client.post("/v1/score", json=body)
        text = client.get("/metrics").text
    assert r.status_code == 200 and r.json()["version"] == v1 and r.json()["variant"] == "champion"
    assert r.json()["anomalies"] < len(r.json()["rows"])  # the champion's answer, not the challenger's
    records = [rec.getMessage() for rec in caplog.records if rec.name == "cerebro.serving.shadow"]
    assert len(records) == 1 and f'"challenger": "{v2}"' in records[0] and '"agree": false' in records[0]
    assert f'"challenger_anomalies": {len(r.json()["rows"])}' in records[0]
    assert _metric(text, "cerebro_serving_shadow_total", kind="detector", outcome="disagree") == 1
    assert _metric(text, "cerebro_serving_predictions_total", variant="challenger") == 1


def test_blue_green_switch_when_the_alias_moves(served, body):
    name = "test-bluegreen-detector"
    v1 = _register(name, served["bundle"], served["example"])
    _alias(name, v1)
    settings = _settings(models={"detector": name})
    live = _service(settings)
    with _client(settings, live) as client:
        assert client.post("/v1/score", json=body).json()["version"] == v1
        v2 = _register(name, _shifted(served["bundle"], 5.0), served["example"])
        assert client.post("/v1/score", json=body).json()["version"] == v1  # the alias has not moved
        _alias(name, v2)
        old = live.get("detector")
        changes = client.post("/admin/reload").json()["changes"]
        assert changes == [{"kind": "detector", "variant": "champion", "version": v2, "from_version": v1}]
        assert client.post("/v1/score", json=body).json()["version"] == v2
        assert live.previous[("detector", "champion")] is old  # kept loaded: the rollback target
        info = client.get("/models").json()
    (entry,) = info["live"]
    assert (entry["version"], entry["alias"]) == (v2, "champion") and entry["live_since"]
    assert info["events"][-1]["event"] == "switched" and info["events"][-1]["from_version"] == v1


def test_a_broken_version_is_refused_and_the_old_one_stays_live(served, body, tmp_path):
    import mlflow

    from training.tracking import PYFUNC_FILE, use_experiment

    name = "test-broken-detector"
    v1 = _register(name, served["bundle"], served["example"])
    _alias(name, v1)
    settings = _settings(models={"detector": name})
    live = _service(settings)
    broken = tmp_path / "bundle.joblib"
    broken.write_text("this is not a joblib file")
    use_experiment(settings)
    with mlflow.start_run(run_name="broken"):
        info = mlflow.pyfunc.log_model(name="model", python_model=str(PYFUNC_FILE), artifacts={"bundle": str(broken)},
                                       registered_model_name=name, pip_requirements=["pandas"])
    v2 = str(info.registered_model_version)
    _alias(name, v2)
    # A version that loads but is the wrong kind of model fails its warm-up.
    forecaster = mlflow.pyfunc.load_model("models:/cerebro-forecaster-seasonal_naive/1")
    v3 = _register(name, forecaster.unwrap_python_model().bundle, forecaster.input_example)
    with _client(settings, live) as client:
        changes = client.post("/admin/reload").json()["changes"]
        assert changes[0]["refused"] == v2
        assert client.post("/v1/score", json=body).json()["version"] == v1
        _alias(name, v3)
        changes = client.post("/admin/reload").json()["changes"]
        assert changes[0]["refused"] == v3 and "forecaster" in changes[0]["reason"]
        assert client.post("/admin/reload").json()["changes"] == []  # refused versions are not retried
        assert client.get("/readyz").status_code == 200
        assert client.post("/v1/score", json=body).json()["version"] == v1
        info = client.get("/models").json()
        text = client.get("/metrics").text
    assert [m["version"] for m in info["live"]] == [v1]
    assert {r["version"] for r in info["refused"]} == {v2, v3}
    assert _metric(text, "cerebro_serving_refusals_total", kind="detector") == 2


@pytest.mark.parametrize("failure", ["errors", "latency"])
def test_rollback_when_the_live_model_passes_a_limit(served, body, failure, caplog):
    import time

    from mlflow import MlflowClient

    name = f"test-rollback-{failure}"
    v1 = _register(name, served["bundle"], served["example"])
    v2 = _register(name, _shifted(served["bundle"], 4.0), served["example"])
    _alias(name, v1)
    settings = _settings(models={"detector": name})
    settings.serving.rollback.min_requests = 5
    settings.serving.rollback.max_p95_ms = 150
    live = _service(settings)
    with _client(settings, live) as client, caplog.at_level(logging.WARNING, logger="cerebro.serving"):
        _alias(name, v2)
        client.post("/admin/reload")
        bad = live.get("detector")
        assert bad.version == v2
        score = bad.runner.score_window

        def broken(req):
            if failure == "errors":
                raise RuntimeError("model exploded")
            time.sleep(0.2)
            return score(req)

        bad.runner.score_window = broken
        codes = [client.post("/v1/score", json=body).status_code for _ in range(5)]
        live.wait_idle()
        assert codes == ([500] * 5 if failure == "errors" else [200] * 5)
        after = client.post("/v1/score", json=body)
        info = client.get("/models").json()
    assert after.status_code == 200 and after.json()["version"] == v1
    event = info["events"][-1]
    assert event["event"] == "rolled back" and (event["version"], event["to_version"]) == (v2, v1)
    assert ("error rate" if failure == "errors" else "p95 latency") in event["reason"]
    assert any("rolled back" in r.getMessage() and event["reason"] in r.getMessage() for r in caplog.records)
    client_ = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    assert str(client_.get_model_version_by_alias(name, "champion").version) == v1
    assert client_.get_model_version(name, v2).tags["cerebro.rolled_back"] == event["reason"]


def test_a_real_uvicorn_process_serves_and_reports_ready(served, body, cerebro_home):
    import json
    import os
    import socket
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CEREBRO_HOME": str(cerebro_home),
           "CEREBRO_SERVING__MODELS": json.dumps({"detector": "cerebro-detector-zscore"})}
    proc = subprocess.Popen([sys.executable, "-c", "from flows.cli import app; app()", "serve", "--port", str(port), "--token", "t0k",
                             "--poll", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base, ready = f"http://127.0.0.1:{port}", False
        deadline = time.time() + 90
        while time.time() < deadline and proc.poll() is None and not ready:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        assert ready, proc.stdout.read().decode() if proc.poll() is not None else "not ready in 90 s"
        r = httpx.post(f"{base}/v1/score", json=body, headers={"Authorization": "Bearer t0k"}, timeout=10)
        assert r.status_code == 200 and len(r.json()["rows"]) == 90
        metrics = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer t0k"}).text
        assert _metric(metrics, "cerebro_serving_requests_total", endpoint="/v1/score", status="200") == 1
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _gappy_body(tel: pd.DataFrame, services: list[str], minutes: int) -> tuple[pd.Timestamp, dict]:
    """A /v1/score body of ``services``' last ``minutes`` (ending 3 hours before the data does): a tenth of the
    samples dropped (gaps), the rest sorted by time with metrics interleaved, 20 seconds off the minute (the
    features ceil them)."""
    end = tel["timestamp"].max() - pd.Timedelta(hours=3)
    rows = tel[tel["service"].astype(str).isin(services) & (tel["timestamp"] > end - pd.Timedelta(minutes=minutes))
               & (tel["timestamp"] <= end)]
    rows = rows.sample(frac=0.9, random_state=1).sort_values("timestamp")
    return end, {"telemetry": [{"timestamp": t.isoformat(), "service": str(s), "metric": str(m), "value": float(v)}
                               for t, s, m, v in zip(rows["timestamp"] + pd.Timedelta(seconds=20), rows["service"],
                                                     rows["metric"], rows["value"])]}


@pytest.fixture(scope="module")
def rolling_bundle():
    """A bundle whose members read the rolling window features (PCA, LOF, Isolation Forest, as an ensemble),
    built in memory the way ``register_zoo`` builds it."""
    from features.transforms import compute_features
    from telemetry.simulator import FleetSimulator
    from training.zoo import build_zoo, time_split, train_zoo

    # Nine days: the training period then holds week-over-week values, so the members read them.
    sim = FleetSimulator(days=9, seed=7, end="2026-11-20T00:00:00Z", incidents_per_day=2).run()
    feats = compute_features(sim.telemetry, sim.events)
    frame = (feats.drop(columns=["created"]).rename(columns={"event_timestamp": "timestamp"})
             .set_index(["service", "timestamp"]).select_dtypes("number"))
    splits = time_split(frame, sim.incidents, fractions=(0.9, 0.05, 0.05))
    result = train_zoo(splits, build_zoo(list(splits.frame.columns), [], include=["pca", "lof", "isolation_forest"]),
                       ensemble_size=3)
    example = frame.reset_index().iloc[-40:]
    return {"bundle": {"kind": "detector", "name": "rolling", "model": result.models["ensemble"],
                       "scaler": splits.scaler, "columns": list(splits.frame.columns), "inputs": list(frame.columns)},
            "example": example, "telemetry": sim.telemetry}


@pytest.mark.parametrize("case", ["two services, gaps, deploys", "baselines sent, last minutes", "a week of one series"])
def test_the_numpy_window_path_equals_compute_features_for_rolling_features(rolling_bundle, case):
    """Rolling statistics, rate of change and week over week in numpy give the scores ``compute_features`` gives."""
    from serving.schemas import ScoreRequest
    from serving.scoring import DetectorRunner

    runner = DetectorRunner(rolling_bundle["bundle"])
    runner.warm_up(rolling_bundle["example"])
    assert runner.fast and runner.fast_window is not None  # the warm-up kept it: it agreed on the example
    assert any("__p95_" in c for c in runner.used) and any("__slope_" in c for c in runner.used)
    tel = rolling_bundle["telemetry"]
    week = case.startswith("a week")
    end, body = _gappy_body(tel, ["cart"] if week else ["cart", "auth"], 10080 + 90 if week else 150)
    if case.startswith("two"):
        body["events"] = [{"timestamp": (end - pd.Timedelta(minutes=40)).isoformat(), "service": "cart", "kind": "deploy"}]
    elif case.startswith("baselines"):
        body.update(baselines={"cart": {"cpu_pct": 35.0, "latency_p99_ms": 120.0}}, last=140)
    req = ScoreRequest(**body)
    fast, fast_missing = runner.score_window(req)
    if case.startswith("a week"):  # week over week has values, and the scaled members read them
        wow = [j for j, c in enumerate(runner.used) if c.endswith("__wow")]
        assert wow and np.isfinite(runner.fast_window.features(req)[2][:, wow]).any()
        assert np.isfinite(runner._mean[:, wow]).all()
    window, runner.fast_window = runner.fast_window, None
    full, full_missing = runner.score_window(req)
    runner.fast_window = window
    assert len(fast) == len(full) > 0 and fast_missing == full_missing
    assert list(fast["service"]) == list(full["service"]) and list(fast["timestamp"]) == list(full["timestamp"])
    np.testing.assert_allclose(fast["score"], full["score"], rtol=1e-9, atol=1e-12)
    assert (fast["is_anomaly"] == full["is_anomaly"]).all()


@pytest.mark.parametrize("case", ["two services, gaps, deploys", "baselines sent, last minutes"])
def test_the_numpy_window_path_equals_compute_features(served, case):
    from serving.schemas import ScoreRequest
    from serving.scoring import DetectorRunner

    runner = DetectorRunner(served["bundle"])
    assert runner.fast_window is not None and runner.fast_window.direct is not None  # z-score scores arrays
    tel = served["telemetry"]
    end, body = _gappy_body(tel, ["cart", "auth"], 150)
    if case.startswith("two"):
        body["events"] = [{"timestamp": (end - pd.Timedelta(minutes=40)).isoformat(), "service": "cart", "kind": "deploy"}]
    else:
        without, _ = runner.score_window(ScoreRequest(**body, last=140))
        body.update(baselines={"cart": {"cpu_pct": 35.0, "latency_p99_ms": 120.0}}, last=140)
    req = ScoreRequest(**body)
    fast, fast_missing = runner.score_window(req)
    runner.fast_window = None
    full, full_missing = runner.score_window(req)
    assert len(fast) == len(full) > 0 and fast_missing == full_missing
    assert list(fast["service"]) == list(full["service"]) and list(fast["timestamp"]) == list(full["timestamp"])
    np.testing.assert_allclose(fast["score"], full["score"], rtol=1e-9)
    assert (fast["is_anomaly"] == full["is_anomaly"]).all()
    if "baselines" in body:  # the sent baselines filled the first hour, which had none of its own
        assert len(fast) == 280 and not np.allclose(fast["score"], without["score"])


def test_rollback_window_totals_follow_evictions():
    """The running totals equal a fresh count over what is left in the window, after evictions too."""
    from serving.rollback import Outcome, Window

    rng = np.random.default_rng(3)
    window, kept = Window(25), []
    for _ in range(120):
        o = Outcome(bool(rng.random() > 0.2), float(rng.random()), int(rng.integers(0, 60)), int(rng.integers(0, 5)))
        window.add(o)
        kept = (kept + [o])[-25:]
        stats = window.stats()
        rows = sum(x.rows for x in kept if x.ok)
        assert stats["requests"] == len(kept)
        assert stats["error_rate"] == pytest.approx(sum(not x.ok for x in kept) / len(kept))
        assert stats["flag_rate"] == pytest.approx(sum(x.flagged for x in kept if x.ok) / rows if rows else 0.0)
        assert stats["p95_ms"] == pytest.approx(np.percentile([x.seconds for x in kept], 95) * 1000)


def test_failure_risk_from_feature_rows_and_from_a_raw_window(served, body):
    """/v1/failure gives the bundle's probability and signed top factors for ready feature rows, judges a raw
    window on each service's newest minute, and answers unknown features with a 422 that names them."""
    from support.failure_fleet import synthetic_fleet

    SMALL = {"n_estimators": 60, "max_depth": 3, "inputs": "raw"}  # as the failure tests: enough trees, fast

    from training.failure import failure_bundle, train_failure_predictor
    from training.failure.bundle import predict as predict_failure_bundle

    fleet = synthetic_fleet(days=4)
    model, _ = train_failure_predictor(fleet, **SMALL)
    bundle = failure_bundle(model, "synthetic")
    name = "test-failure-endpoint"
    picked = fleet.frame[fleet.features].iloc[[5, 300, 700]].reset_index()
    picked["timestamp"] = picked["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")  # as the pipeline logs its example
    _alias(name, _register(name, bundle, picked.head(2)))
    expected = predict_failure_bundle(bundle, picked, {"top_k": 2})
    rows = [{"service": str(r["service"]), "timestamp": r["timestamp"],
             "features": {f: (None if pd.isna(r[f]) else float(r[f])) for f in fleet.features}}
            for _, r in picked.iterrows()]
    with _client(_settings(models={"failure": name})) as client:
        r = client.post("/v1/failure", json={"rows": rows, "top_k": 2})
        assert r.status_code == 200, r.text
        got = r.json()["rows"]
        assert [g["service"] for g in got] == picked["service"].astype(str).tolist()
        np.testing.assert_allclose([g["failure_probability"] for g in got],
                                   expected["failure_probability"].to_numpy(), atol=1e-12)
        assert [g["alarm"] for g in got] == expected["alarm"].tolist()
        for g, factors in zip(got, expected["top_factors"]):
            assert g["top_factors"] == json.loads(factors) and len(g["top_factors"]) == 2
        bad = client.post("/v1/failure", json={"rows": [{**rows[0], "features": {"no_such_feature": 1.0}}]})
        assert bad.status_code == 422 and "no_such_feature" in bad.json()["detail"]
        window = client.post("/v1/failure", json={**body, "top_k": 1})
        assert window.status_code == 200, window.text
        judged = window.json()["rows"]
        assert [g["service"] for g in judged] == ["cart"] and 0 <= judged[0]["failure_probability"] <= 1
        assert judged[0]["timestamp"] == body["series"][0]["timestamps"][-1]


def test_the_service_limits_torch_to_the_configured_threads():
    """``serving.torch_threads`` (default 1) is what `cerebro serve` gives torch; 0 leaves torch's default."""
    import torch

    from configs.settings import load_settings
    from serving.app import limit_torch_threads

    assert load_settings().serving.torch_threads == 1
    before = torch.get_num_threads()
    try:
        assert limit_torch_threads(0) is None and torch.get_num_threads() == before
        assert limit_torch_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_the_service_limits_blas_to_the_configured_threads_and_the_measurement_puts_them_back():
    """``serving.blas_threads`` (default 1) is what `cerebro serve` gives numpy's and scipy's BLAS; the serving-cost
    measurement runs under the same limit and restores the process's own afterwards."""
    import numpy  # noqa: F401 - loads numpy's OpenBLAS, which the limit applies to
    from threadpoolctl import threadpool_limits

    from configs.settings import load_settings
    from serving.app import limit_blas_threads
    from serving.cost import _as_served

    assert load_settings().serving.blas_threads == 1
    keep = threadpool_limits(limits=2, user_api="blas")  # what this test changes is put back at the end
    try:
        assert set(_blas_threads()) == {2}
        with _as_served(torch_threads=0, blas_threads=1):
            assert set(_blas_threads()) == {1}
        assert set(_blas_threads()) == {2}
        assert limit_blas_threads(0) is None and set(_blas_threads()) == {2}
        assert limit_blas_threads(1) == 1 and set(_blas_threads()) == {1}
    finally:
        keep.restore_original_limits()


@pytest.mark.parametrize("stamps, fast", [
    (["2026-11-20T00:00:00Z", "2026-11-20T00:01:00Z", "2028-02-29T23:59:59Z"], True),  # a leap day
    (["1969-12-31T23:59:59Z", "2000-01-01T00:00:00Z", "2099-12-31T12:34:56Z"], True),  # before the epoch
    (["2026-11-20T00:00:00Z", "2026-11-20T01:00:00+01:00", "2026-11-20T00:02:00Z"], False),  # an offset
    (["2026-11-20T00:00:00.5Z", "2026-11-20T00:01:00Z", "2026-11-20T00:02:00Z"], False),  # a fraction
    ([1795651200, "2026-11-20T00:01:00Z", "2026-11-20T00:02:00Z"], False),  # epoch seconds
    (["2026-11-20 00:00:00Z", "2026-11-20T00:01:00Z", "2026-11-20T00:02:00Z"], False),  # a space for the T
])
def test_stamps_read_in_one_pass_equal_the_per_object_path(stamps, fast):
    """The columnar body's "...Z" stamps become epoch nanoseconds in one numpy pass; anything else (and so the
    whole request) takes the per-datetime path. Both give the same instants."""
    from serving.schemas import ScoreRequest
    from serving.scoring import _epoch_ns, _series_ns

    body = {"series": [{"service": "cart", "metric": m, "timestamps": stamps[k:] + stamps[:k], "values": [1.0, 2.0, 3.0]}
                       for k, m in enumerate(["cpu_pct", "memory_pct"])]}
    req = ScoreRequest(**body)
    for s in req.series:
        assert (s.epoch_ns() is not None) == fast
        np.testing.assert_array_equal(_series_ns(s), _epoch_ns(s.timestamps))


def test_json_bodies_the_standard_library_reads_are_still_read(served, body):
    """Bodies go through orjson, and what it refuses (NaN, as Python's json.dumps writes a missing value)
    through the standard library: the answer is the one a null gives."""
    import json

    settings = _settings(models={"detector": "cerebro-detector-zscore"})
    with_nan = {**body, "series": [{**s, "values": [float("nan"), *s["values"][1:]]} for s in body["series"]]}
    with_null = {**body, "series": [{**s, "values": [None, *s["values"][1:]]} for s in body["series"]]}
    with _client(settings) as client:
        a = client.post("/v1/score", content=json.dumps(with_nan).encode(), headers={"Content-Type": "application/json"})
        b = client.post("/v1/score", json=with_null)
    assert a.status_code == b.status_code == 200, a.text
    assert a.json()["rows"] == b.json()["rows"]


def test_a_window_built_from_series_objects_takes_the_per_object_path():
    from serving.schemas import ScoreRequest, Series
    from serving.scoring import _epoch_ns, _series_ns

    series = Series(service="cart", metric="cpu_pct", timestamps=["2026-11-20T00:00:00Z"], values=[1.0])
    req = ScoreRequest(series=[series])
    assert req.series[0].epoch_ns() is None
    np.testing.assert_array_equal(_series_ns(req.series[0]), _epoch_ns(req.series[0].timestamps))
