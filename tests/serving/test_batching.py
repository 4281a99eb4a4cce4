"""Adaptive batching: /v1/score requests that arrive together are scored in one detector call, and each
answer is the one the request gets alone."""
from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from serving.coalesce import Coalescer

pytestmark = pytest.mark.filterwarnings("ignore")

END = pd.Timestamp("2026-11-20T00:00:00Z")


@pytest.fixture(scope="module")
def fleet():
    from telemetry.simulator import FleetSimulator

    return FleetSimulator(days=3, seed=11, end=END.isoformat(), incidents_per_day=3).run()


@pytest.fixture(scope="module")
def ensemble(fleet):
    """PCA (row by row) and EWMA (which reads the minutes before each row, per service) as an ensemble."""
    from features.transforms import compute_features
    from training.zoo import build_zoo, time_split, train_zoo

    feats = compute_features(fleet.telemetry, fleet.events)
    frame = (feats.drop(columns=["created"]).rename(columns={"event_timestamp": "timestamp"})
             .set_index(["service", "timestamp"]).select_dtypes("number"))
    splits = time_split(frame, fleet.incidents, fractions=(0.8, 0.1, 0.1))
    result = train_zoo(splits, build_zoo(list(splits.frame.columns), [], include=["pca", "ewma"]), ensemble_size=2)
    bundle = {"kind": "detector", "name": "batching", "model": result.models["ensemble"], "scaler": splits.scaler,
              "columns": list(splits.frame.columns), "inputs": list(frame.columns)}
    example = frame.loc[["cart"]].tail(60).astype("float64").reset_index()  # as ``register_zoo`` logs it
    example["timestamp"] = example["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    example["service"] = example["service"].astype(str)
    return bundle, example


def _bodies(fleet) -> list[dict]:
    """Two windows of one service that overlap, one of two services, and one with a deploy and baselines sent
    with it: the renaming has something to keep apart, and what a request sends besides its samples stays its own."""
    from support.demo_models import window_body

    tel = fleet.telemetry
    two = window_body(tel, "cart", minutes=45, end=END - pd.Timedelta(hours=2))
    two["series"] += window_body(tel, "auth", minutes=45, end=END - pd.Timedelta(hours=2))["series"]
    deployed = window_body(tel, "cart", minutes=60, end=END - pd.Timedelta(minutes=40))
    deployed["events"] = [{"timestamp": (END - pd.Timedelta(minutes=70)).isoformat(), "service": "cart",
                           "kind": "deploy"}]
    deployed["baselines"] = {"cart": {s["metric"]: 2 * s["values"][0] for s in deployed["series"]}}
    return [window_body(tel, "cart", minutes=60, end=END - pd.Timedelta(hours=1)),
            window_body(tel, "cart", minutes=60, end=END - pd.Timedelta(minutes=30)),
            two, deployed]


def test_windows_scored_together_answer_as_each_alone(ensemble, fleet):
    from serving.schemas import ScoreRequest
    from serving.scoring import DetectorRunner

    bundle, example = ensemble
    runner = DetectorRunner(bundle)
    runner.warm_up(example)
    assert runner.fast_window is not None and runner.batchable
    reqs = [ScoreRequest(**b) for b in _bodies(fleet)]
    together = runner.score_windows(reqs)
    for req, (rows, missing) in zip(reqs, together):
        alone, alone_missing = runner.score_window(req)
        assert missing == alone_missing and list(rows["service"]) == list(alone["service"])
        assert list(rows["timestamp"]) == list(alone["timestamp"])
        np.testing.assert_allclose(rows["score"], alone["score"], rtol=1e-9, atol=1e-12)
        assert (rows["is_anomaly"] == alone["is_anomaly"]).all()


@pytest.mark.parametrize("members", [("zscore",), ("zscore", "mad", "holt_winters"), ("seasonal_residual", "zscore")])
def test_members_that_learn_per_series_batch_too(fleet, members, monkeypatch):
    """Z-score, MAD, Holt-Winters and the seasonal residual look up what they learned per service by the name before
    the batch suffix, so a batched window scores as it does alone and the warm-up leaves batching on (it was off for
    any ensemble with one of them). Z-score alone, and the ensemble of the seasonal residual (which is given the
    rows' times) with z-score, score arrays directly (``score_values``): the warm-up keeps that path only where it
    gives the frame path's scores."""
    from features.transforms import compute_features
    from serving.schemas import ScoreRequest
    from serving.scoring import DetectorRunner
    from training.zoo import build_zoo, time_split, train_zoo

    feats = compute_features(fleet.telemetry, fleet.events)
    frame = (feats.drop(columns=["created"]).rename(columns={"event_timestamp": "timestamp"})
             .set_index(["service", "timestamp"]).select_dtypes("number"))
    splits = time_split(frame, fleet.incidents, fractions=(0.8, 0.1, 0.1))
    # an ensemble of exactly these members: none left out for its calibration (training.zoo.miscalibrated)
    monkeypatch.setattr("training.zoo.MISCALIBRATED_SHARE", 1.0)
    result = train_zoo(splits, build_zoo(list(splits.frame.columns), [], include=list(members)),
                       ensemble_size=len(members))
    name = members[0] if len(members) == 1 else "ensemble"
    bundle = {"kind": "detector", "name": name, "model": result.models[name], "scaler": splits.scaler,
              "columns": list(splits.frame.columns), "inputs": list(frame.columns)}
    example = frame.loc[["cart"]].tail(60).astype("float64").reset_index()
    example["timestamp"] = example["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    example["service"] = example["service"].astype(str)
    runner = DetectorRunner(bundle)
    runner.warm_up(example)
    assert runner.batchable
    assert (runner.fast_window.direct is not None) == (members != ("zscore", "mad", "holt_winters"))
    reqs = [ScoreRequest(**b) for b in _bodies(fleet)]
    for req, (rows, _) in zip(reqs, runner.score_windows(reqs)):
        alone = runner.score_window(req)[0]
        np.testing.assert_allclose(rows["score"], alone["score"], rtol=1e-9, atol=1e-12)
        # a service the scaler knows gets its own statistics, not the pooled ones a suffixed name would find
        assert set(rows["service"]) <= set(runner.known_services())


class _ReadsTheBatch:
    """A detector whose scores depend on what else is in the call (as a graph autoencoder's do: it reads every
    service at each minute): batching must not be used for it."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def score(self, frame):
        return self._inner.score(frame) + 1e-3 * len(frame)


def test_a_detector_that_reads_the_whole_batch_is_served_one_window_at_a_time(ensemble, fleet):
    from serving.schemas import ScoreRequest
    from serving.scoring import DetectorRunner

    bundle, example = ensemble
    runner = DetectorRunner(bundle)
    runner.det = _ReadsTheBatch(runner.det)
    runner.fast_window.direct = None  # score through ``det.score``, as every ensemble does
    runner.fast = True
    runner._check_batching(example)
    assert not runner.batchable
    reqs = [ScoreRequest(**b) for b in _bodies(fleet)]
    for req, (rows, _) in zip(reqs, runner.score_windows(reqs)):
        np.testing.assert_allclose(rows["score"], runner.score_window(req)[0]["score"], rtol=1e-12)


def test_a_request_the_window_cannot_be_made_from_fails_alone(ensemble, fleet):
    from serving.schemas import ScoreRequest
    from serving.scoring import DetectorRunner, RequestError

    bundle, example = ensemble
    runner = DetectorRunner(bundle)
    runner.warm_up(example)
    good = [ScoreRequest(**b) for b in _bodies(fleet)[:2]]
    bad = ScoreRequest(series=[{"service": "cart", "metric": "no_such_metric", "timestamps": ["2026-11-19T20:00:00Z"],
                                "values": [1.0]}])
    out = runner.score_windows([good[0], bad, good[1]])
    try:
        runner.score_window(bad)
        alone_fails = False
    except RequestError:
        alone_fails = True
    assert isinstance(out[1], RequestError) == alone_fails
    np.testing.assert_allclose(out[0][0]["score"], runner.score_window(good[0])[0]["score"], rtol=1e-9)
    np.testing.assert_allclose(out[2][0]["score"], runner.score_window(good[1])[0]["score"], rtol=1e-9)


def test_the_coalescer_batches_what_arrives_together_and_keeps_failures_apart():
    calls: list[list] = []

    def run(key, items):
        calls.append(list(items))
        return [ValueError(f"bad {i}") if i < 0 else (key, i * 10) for i in items]

    async def scenario():
        co = Coalescer(run, max_batch=4)
        together = await asyncio.gather(*(co.submit("m", i) for i in (1, 2, -3)), return_exceptions=True)
        alone = await co.submit("m", 5)
        many = await asyncio.gather(*(co.submit("m", i) for i in range(10)))
        other = await asyncio.gather(co.submit("a", 1), co.submit("b", 2))
        return together, alone, many, other

    together, alone, many, other = asyncio.run(scenario())
    assert together[:2] == [("m", 10), ("m", 20)] and isinstance(together[2], ValueError)
    assert str(together[2]) == "bad -3"
    assert alone == ("m", 50)
    assert many == [("m", i * 10) for i in range(10)]
    assert other == [("a", 10), ("b", 20)]
    sizes = [len(c) for c in calls]
    assert sizes[:2] == [3, 1] and sizes[2:5] == [4, 4, 2]  # max_batch 4 splits the ten


def test_a_batch_that_raises_fails_each_of_its_requests():
    def run(key, items):
        raise RuntimeError("model broke")

    async def scenario():
        co = Coalescer(run, max_batch=8)
        return await asyncio.gather(co.submit("m", 1), co.submit("m", 2), return_exceptions=True)

    out = asyncio.run(scenario())
    assert all(isinstance(e, RuntimeError) and str(e) == "model broke" for e in out)


def test_the_service_scores_concurrent_requests_in_one_call(ensemble, fleet, home):
    """Through the app: six requests at once get the answers they get one by one, in fewer model calls."""
    import httpx
    import mlflow
    from mlflow import MlflowClient

    from configs.settings import load_settings
    from serving.app import create_app
    from serving.live import LiveModels
    from serving.metrics import ServingMetrics
    from serving.router import Router
    from training.tracking import log_bundle, use_experiment

    settings = load_settings()
    settings.serving.poll_seconds = 0
    settings.serving.models = {"detector": "cerebro-detector-batching"}
    bundle, example = ensemble
    use_experiment(settings)
    with mlflow.start_run(run_name="test-batching"):
        version = log_bundle(bundle, "cerebro-detector-batching", example, {}, {}, {})
    MlflowClient(settings.mlflow_tracking_uri).set_registered_model_alias("cerebro-detector-batching", "champion",
                                                                          version)

    def service(max_batch: int):
        settings.serving.max_batch = max_batch
        live = LiveModels(settings, Router.from_settings(settings.serving), ServingMetrics())
        settled = []
        live.after_change = lambda: settled.append(1)
        live.reload()
        live.reload()  # nothing moved: the heap is not settled again
        assert settled == [1]
        app = create_app(settings, live=live, load_in_background=False)
        app.state.live = live  # what the lifespan does; httpx's ASGI transport does not run it
        return app, live

    bodies = _bodies(fleet) * 2

    async def post_all(app, concurrently: bool):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cerebro") as client:
            if concurrently:
                answers = await asyncio.gather(*(client.post("/v1/score", json=b) for b in bodies))
            else:
                answers = [await client.post("/v1/score", json=b) for b in bodies]
            metrics = (await client.get("/metrics")).text
        return answers, metrics

    one_app, _ = service(1)
    alone, _ = asyncio.run(post_all(one_app, concurrently=False))
    app, live = service(16)
    assert live.get("detector", "champion").runner.batchable
    assert [m["batching"] for m in live.describe()["live"]] == [True]
    together, metrics = asyncio.run(post_all(app, concurrently=True))
    from prometheus_client.parser import text_string_to_metric_families

    samples_model_sum = next(s.value for f in text_string_to_metric_families(metrics) for s in f.samples
                             if s.name == "cerebro_serving_model_seconds_sum")
    for a, b in zip(alone, together):
        assert a.status_code == b.status_code == 200, (a.text, b.text)
        ra, rb = a.json()["rows"], b.json()["rows"]
        assert [r["timestamp"] for r in ra] == [r["timestamp"] for r in rb]
        np.testing.assert_allclose([r["score"] for r in ra], [r["score"] for r in rb], rtol=1e-9)
    from prometheus_client.parser import text_string_to_metric_families

    samples = {s.name: s.value for f in text_string_to_metric_families(metrics) for s in f.samples
               if s.name.startswith("cerebro_serving_batch_size") and not s.labels.get("le")}
    assert samples["cerebro_serving_batch_size_sum"] == len(bodies)  # every request counted once
    assert samples["cerebro_serving_batch_size_count"] < len(bodies)  # in fewer model calls

    # Each request is judged on its share of the batch's time: a model that costs 40 ms a window is read as
    # such (the rollback's latency limit), not as 40 ms times the batch.
    runner = live.get("detector", "champion").runner
    real = runner.score_windows

    def costs_40ms_a_window(reqs):
        import time

        time.sleep(0.04 * len(reqs))
        return real(reqs)

    runner.score_windows = costs_40ms_a_window
    _, metrics = asyncio.run(post_all(app, concurrently=True))
    latency = {s.name: s.value for f in text_string_to_metric_families(metrics) for s in f.samples
               if s.name.startswith("cerebro_serving_model_seconds") and not s.labels.get("le")}
    batches = {s.name: s.value for f in text_string_to_metric_families(metrics) for s in f.samples
               if s.name.startswith("cerebro_serving_batch_size") and not s.labels.get("le")}
    assert batches["cerebro_serving_batch_size_count"] < 2 * len(bodies) - 1  # batched again
    second_round = latency["cerebro_serving_model_seconds_sum"] - samples_model_sum
    assert 0.04 <= second_round / len(bodies) < 0.08
    assert [m["batching"] for m in service(1)[1].describe()["live"]] == [False]


def test_the_service_settles_its_heap_after_a_switch(home):
    """``settle_heap`` freezes what the process holds, so a full collection no longer walks the loaded models
    under load; the service (not a test's app, which brings its own LiveModels) calls it after each switch."""
    import gc

    from fastapi.testclient import TestClient

    from configs.settings import load_settings
    from serving.app import create_app, settle_heap

    settings = load_settings()
    settings.serving.poll_seconds = 0
    with TestClient(create_app(settings, load_in_background=False)) as client:  # an empty store: nothing loads
        assert client.app.state.live.after_change is settle_heap
    try:
        assert settle_heap() >= 0 and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_cerebro_serve_takes_the_largest_batch_from_its_option(home, monkeypatch):
    import uvicorn
    from typer.testing import CliRunner

    import serving.app
    from flows.cli import app as cli

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    monkeypatch.setattr(serving.app, "limit_torch_threads", lambda threads: threads)  # leave this process's torch
    monkeypatch.setattr(serving.app, "limit_blas_threads", lambda threads: threads)  # and its BLAS
    result = CliRunner().invoke(cli, ["serve", "--max-batch", "4", "--port", "0"])
    assert result.exit_code == 0, result.output
    assert served["app"].state.coalescer.max_batch == 4 and served["port"] == 0
    result = CliRunner().invoke(cli, ["serve", "--max-batch", "0"])
    assert result.exit_code == 2 and "--max-batch" in result.output
