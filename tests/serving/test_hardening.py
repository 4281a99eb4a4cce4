"""The scoring service probed as an attacker and a careless client would (issue 22): the token on /admin/*,
client mistakes as 4xx that never move the champion, timestamps in range or refused, every documented
example answered, the limits on bodies and requests in flight, and notes for suspicious data."""
from __future__ import annotations

import asyncio
import json
import logging
import re
import stat
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from test_serving import _alias, _client, _register, _settings

pytestmark = pytest.mark.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[2]
DETECTOR = {"detector": "cerebro-detector-zscore"}


def _series(stamps: list, values: list | None = None, service: str = "cart", metric: str = "cpu_pct") -> dict:
    return {"series": [{"service": service, "metric": metric, "timestamps": stamps,
                        "values": values if values is not None else [40.0] * len(stamps)}]}


# ------------------------------------------------------------------------------------------------ auth
def test_admin_wants_the_generated_token_and_loopback_scoring_does_not(served, body, caplog):
    from serving.auth import client_token, token_path

    settings = _settings(models=DETECTOR)
    with caplog.at_level(logging.INFO, logger="cerebro.serving"), _client(settings, token=False) as client:
        path = token_path(settings)
        token = client_token(settings)
        assert token and stat.S_IMODE(path.stat().st_mode) == 0o600
        r = client.post("/admin/reload")
        assert r.status_code == 401 and str(path) in r.json()["detail"]
        assert client.post("/admin/reload", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.post("/admin/reload", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.post("/v1/score", json=body).status_code == 200  # loopback, no token configured
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert str(path) in logged and token not in logged  # where the token is, never the token


def test_beyond_loopback_every_endpoint_but_the_probes_wants_the_token(served, body):
    from serving.auth import client_token

    settings = _settings(models=DETECTOR, host="0.0.0.0")
    with _client(settings, token=False) as client:
        token = client_token(settings)
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
        assert client.post("/v1/score", json=body).status_code == 401
        assert client.get("/models").status_code == 401
        ok = client.post("/v1/score", json=body, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200


def test_a_token_file_others_can_read_is_made_owner_only(tmp_path):
    from serving.auth import client_token, service_token

    settings = _settings()
    settings.serving.token_file = tmp_path / "token"
    first, path = service_token(settings)
    assert path == tmp_path / "token" and service_token(settings)[0] == first == client_token(settings)
    path.chmod(0o644)
    assert service_token(settings)[0] == first and stat.S_IMODE(path.stat().st_mode) == 0o600


# ------------------------------------------------------------------------------- client errors, rollback
@pytest.fixture(scope="module")
def windowed(served):
    """An LSTM autoencoder (window 30) trained for one short epoch on the fleet's features: a member that
    cannot score a window shorter than 30 minutes."""
    from features.transforms import compute_features
    from telemetry.simulator import FleetSimulator
    from training.detectors.deep import LSTMAutoencoder
    from training.zoo import raw_metrics, time_split, train_zoo

    sim = FleetSimulator(days=2, seed=7, end="2026-11-20T00:00:00Z", incidents_per_day=4).run()  # served's fleet
    feats = compute_features(sim.telemetry, sim.events)
    frame = (feats.drop(columns=["created"]).rename(columns={"event_timestamp": "timestamp"})
             .set_index(["service", "timestamp"]).select_dtypes("number"))
    splits = time_split(frame, sim.incidents, fractions=(0.8, 0.1, 0.1))
    lstm = LSTMAutoencoder(features=raw_metrics(list(splits.frame.columns)), hidden=8, latent=4, epochs=1,
                           max_windows=256, device="cpu")
    result = train_zoo(splits, {"lstm_autoencoder": lstm}, ensemble_size=1)
    bundle = {"kind": "detector", "name": "lstm_autoencoder", "model": result.models["lstm_autoencoder"],
              "scaler": splits.scaler, "columns": list(splits.frame.columns), "inputs": list(frame.columns)}
    example = frame.reset_index().iloc[-40:]
    example["timestamp"] = example["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")  # as the pipeline logs it
    return bundle, example


def test_too_short_windows_are_422_and_the_champion_does_not_move(served, windowed):
    """The probe replayed: 20 windows shorter than the member's 30 rows each get a 422 that says what is
    needed; none counts toward the rollback, so the champion (and its alias) stay where they were."""
    from mlflow import MlflowClient

    bundle, example = windowed
    name = "test-hardening-window"
    v1 = _register(name, bundle, example)
    v2 = _register(name, bundle, example)
    _alias(name, v2)
    settings = _settings(models={"detector": name})
    short = window_body_of(served, minutes=5)
    with _client(settings) as client:
        codes, messages = [], set()
        for _ in range(20):
            r = client.post("/v1/score", json=short)
            codes.append(r.status_code)
            messages.add(r.json()["detail"])
        huge = window_body_of(served, minutes=60)
        huge["series"][0]["values"][7] = 1e200
        too_big = client.post("/v1/score", json=huge)
        after = client.post("/v1/score", json=window_body_of(served, minutes=60))
        client.app.state.live.wait_idle()
        info = client.get("/models").json()
    assert codes == [422] * 20
    (message,) = messages
    assert "LSTMAutoencoder needs at least window=30 rows" in message and f"{name} v{v2}" in message
    assert too_big.status_code == 422 and too_big.json()["detail"][0]["field"] == "series[0].values[7]"
    assert "max_abs_value" in too_big.json()["detail"][0]["problem"]
    assert after.status_code == 200 and after.json()["version"] == v2
    assert info["live"][0]["version"] == v2 and info["live"][0]["window"]["requests"] == 1
    assert not [e for e in info["events"] if e["event"] == "rolled back"]
    registry = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    assert str(registry.get_model_version_by_alias(name, "champion").version) == v2
    assert "cerebro.rolled_back" not in registry.get_model_version(name, v2).tags
    assert v1 != v2


def test_last_trims_the_answer_after_a_sequence_member_scored_the_window(served, windowed):
    """`last: 1` on a 60-minute window: the LSTM scores the last minute from the 30 before it."""
    from serving.schemas import ScoreRequest
    from serving.scoring import DetectorRunner

    bundle, example = windowed
    runner = DetectorRunner(bundle)
    runner.warm_up(example)
    body = window_body_of(served, minutes=60)
    full, _ = runner.score_window(ScoreRequest(**body))
    last, _ = runner.score_window(ScoreRequest(**body, last=1))
    assert len(last) == 1 and list(last["timestamp"]) == [list(full["timestamp"])[-1]]
    np.testing.assert_allclose(last["score"], np.asarray(full["score"])[-1:], rtol=1e-6)


def window_body_of(served, minutes: int) -> dict:
    from support.demo_models import window_body

    return window_body(served["telemetry"], "cart", minutes=minutes)


# ------------------------------------------------------------------------------------------- timestamps
@pytest.mark.parametrize("endpoint, body, field", [
    ("/v1/score", _series(["9999-12-31T10:00:00Z", "9999-12-31T10:01:00Z"]), "series[0].timestamps[0]"),
    ("/v1/score", _series(["2026-11-20T10:00:00Z", "1600-01-01T00:00:00Z"]), "series[0].timestamps[1]"),
    ("/v1/score", _series(["2026-11-20T10:00:00Z", "2300-01-01T00:00:00+01:00"]), "series[0].timestamps[1]"),
    ("/v1/score", {"telemetry": [{"timestamp": "1969-12-31T23:59:59Z", "service": "cart", "metric": "cpu_pct",
                                  "value": 1.0}]}, "telemetry[0].timestamp"),
    ("/v1/score", {**_series(["2026-11-20T10:00:00Z"]),
                   "events": [{"timestamp": "2201-01-01T00:00:00Z", "service": "cart", "kind": "deploy"}]}, "events[0].timestamp"),
    ("/v1/failure", {"rows": [{"service": "cart", "timestamp": "9999-12-31T10:00:00Z", "features": {}}]},
     "rows[0].timestamp"),
    ("/v1/failure", _series(["9999-12-31T10:00:00Z"]), "series[0].timestamps[0]"),
])
def test_a_stamp_outside_the_plausible_window_is_a_422_naming_it(served, endpoint, body, field):
    with _client(_settings(models=DETECTOR)) as client:
        r = client.post(endpoint, json=body)
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert problem["field"] == field and "plausible window" in problem["problem"]
    assert "1970-01-01 to 2200-12-31T23:59:59Z" in problem["problem"]


def test_no_stamp_path_wraps_around():
    """The per-object path refuses what pandas cannot hold instead of wrapping int64 (9999 read as 1816)."""
    from serving.schemas import ScoreRequest
    from serving.scoring import RequestError, _epoch_ns, _series_ns

    req = ScoreRequest(**_series(["9999-12-31T10:00:00Z", "1600-01-01T00:00:00Z"]))
    assert req.series[0].epoch_ns() is None  # the one-pass reader leaves such years to the checked path
    with pytest.raises(RequestError, match="1600-01-01T00:00:00.*outside the range pandas can hold"):
        _series_ns(req.series[0])
    with pytest.raises(RequestError, match="9999-12-31T10:00:00"):
        _epoch_ns(req.series[0].timestamps[:1])
    stamps = [datetime(2262, 4, 11, 23, 47, 16), datetime(1677, 9, 21, 0, 12, 44)]  # just inside pandas' range
    assert _epoch_ns(stamps).tolist() == [pd.Timestamp(t).value // 1000 * 1000 for t in stamps]


def _z(d: datetime) -> str:
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}Z"


EDGES = [datetime(1677, 9, 21, 0, 12, 44), datetime(1678, 1, 1), datetime(1969, 12, 31, 23, 59, 59),
         datetime(1970, 1, 1), datetime(2000, 2, 29, 12), datetime(2261, 12, 31, 23, 59, 59),
         datetime(2262, 4, 11, 23, 47, 16), datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)]


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
                          st.datetimes(min_value=datetime(1677, 1, 1), max_value=datetime(2263, 1, 1)),
                          st.sampled_from(EDGES)).map(lambda d: d.replace(microsecond=0)), min_size=1, max_size=8))
def test_the_one_pass_stamp_reader_agrees_with_pandas(stamps):
    """``utc_z_ns`` gives pandas' nanoseconds for every stamp, or None (the checked path) when any year is
    outside the years pandas holds whole: never a wrapped number."""
    from serving.schemas import NS_YEARS, utc_z_ns

    got = utc_z_ns([_z(d) for d in stamps])
    if all(NS_YEARS[0] <= d.year <= NS_YEARS[1] for d in stamps):
        assert got is not None and got.tolist() == [pd.Timestamp(_z(d)).value for d in stamps]
    else:
        assert got is None


# -------------------------------------------------------------------------------- documented examples
def _doc_requests() -> list[tuple[str, dict]]:
    """Every request body in docs/*.md (a ```json block that is not an answer) with the endpoint it is for."""
    out = []
    for path in sorted((ROOT / "docs").glob("serving*.md")):
        for block in re.findall(r"```json\n(.*?)```", path.read_text(), flags=re.DOTALL):
            body = json.loads(block)
            if "model" in body:  # an answer
                continue
            endpoint = "/v1/forecast" if "horizon" in body else "/v1/failure" if "rows" in body or "top_k" in body \
                else "/v1/score"
            out.append((endpoint, body))
    return out


def test_every_documented_example_is_answered(served):
    """The OpenAPI examples and the docs' requests give a 2xx (the failure examples need a failure model,
    which this registry lacks: those must get past validation and ask for one, a 503)."""
    from serving.app import create_app

    settings = _settings(models={**DETECTOR, "forecaster": "cerebro-forecaster-seasonal_naive", "failure": ""})
    spec = create_app(settings).openapi()
    examples = [(path, ex) for path, item in spec["paths"].items() for op in item.values()
                for ex in (op.get("requestBody", {}).get("content", {}).get("application/json", {})
                           .get("schema", {}).get("examples") or [])]
    for name, schema in spec["components"]["schemas"].items():
        for ex in schema.get("examples", []):
            path = {"ScoreRequest": "/v1/score", "ForecastRequest": "/v1/forecast", "FailureRequest": "/v1/failure"}
            if name in path:
                examples.append((path[name], ex))
    docs = _doc_requests()
    assert len(examples) >= 5 and docs  # the schema's examples and the docs' were all found
    with _client(settings) as client:
        for endpoint, example in examples + docs:
            r = client.post(endpoint, json=example)
            expected = 503 if endpoint == "/v1/failure" else 200
            assert r.status_code == expected, (endpoint, example, r.text)


# ----------------------------------------------------------------------------- errors always serialise
@pytest.mark.parametrize("raw, status, field", [
    ((b'{"series": [], "telemetry": [{"timestamp": "2026-11-20T10:00:00Z", "service": "cart", "metric": "cpu_pct", '
     b'"value": 1.0}], "last": NaN}'), 422, "last"),
    ((b'{"key": Infinity, "series": [{"service": "cart", "metric": "cpu_pct", "timestamps": ["2026-11-20T10:00:00Z"], '
     b'"values": [1.0]}]}'), 422, "key"),
    ((b'{"series": [{"service": "\\ud800", "metric": "cpu_pct", "timestamps": ["2026-11-20T10:00:00Z"], '
     b'"values": [1.0]}]}'), 400, None),
])
def test_error_answers_are_always_json(served, raw, status, field):
    with _client(_settings(models=DETECTOR)) as client:
        r = client.post("/v1/score", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == status and r.headers["content-type"] == "application/json", r.text
    if field:
        assert r.json()["detail"][0]["field"] == field
    else:
        assert "surrogate" in r.json()["detail"]


def test_a_horizon_the_schema_allows_but_the_model_cannot_is_a_422(served):
    with _client(_settings(models={"forecaster": "cerebro-forecaster-seasonal_naive"})) as client:
        r = client.post("/v1/forecast", json={"series": ["frontend/request_rate"], "horizon": 2160})
        live = client.get("/models").json()["live"][0]
    assert r.status_code == 422 and "horizon 2160 is too long" in r.json()["detail"]
    assert live["window"]["requests"] == 0  # not counted toward the forecaster's rollback


# ------------------------------------------------------------------------------------------------ limits
def test_a_body_past_the_limit_is_a_413_before_it_is_read(served):
    settings = _settings(models=DETECTOR)
    with _client(settings) as client:
        big = b'{"series": [' + b" " * 30_000_000 + b"]}"
        r = client.post("/v1/score", content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "serving.max_body_mb" in r.json()["detail"]

        def chunks():  # no Content-Length: counted as it arrives
            for _ in range(20):
                yield b" " * 1_000_000

        r = client.post("/v1/score", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413


def _asgi_call(app, path: str, receive):
    sent = []

    async def send(message):
        sent.append(message)

    async def run():
        await app({"type": "http", "method": "POST", "path": path, "headers": []}, receive, send)

    return run, sent


def test_requests_past_the_cap_get_503_with_retry_after_and_probes_still_answer():
    from serving.limits import RequestLimits

    async def scenario():
        gate = asyncio.Event()

        async def slow(scope, receive, send):
            await receive()
            await gate.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})

        limits = RequestLimits(slow, max_body_bytes=1000, max_concurrent=2, body_timeout=5,
                               unlimited_paths=frozenset({"/healthz"}))

        async def empty():
            return {"type": "http.request", "body": b"", "more_body": False}

        calls = [_asgi_call(limits, p, empty) for p in ("/v1/score", "/v1/score", "/v1/score", "/healthz")]
        tasks = [asyncio.create_task(run()) for run, _ in calls]
        await asyncio.sleep(0.05)
        assert tasks[2].done() and not tasks[3].done()  # the third refused at once; the probe is let through
        gate.set()
        await asyncio.gather(*tasks)
        statuses = [sent[0]["status"] for _, sent in calls]
        assert statuses == [200, 200, 503, 200]
        assert (b"retry-after", b"1") in calls[2][1][0]["headers"]
        assert limits.in_flight == 0

    asyncio.run(scenario())


def test_a_body_that_stops_arriving_gets_a_408():
    from serving.limits import RequestLimits

    async def never_called(scope, receive, send):
        raise AssertionError("the app must not see a body that never arrived")

    async def scenario():
        async def stalls():
            await asyncio.sleep(10)

        run, sent = _asgi_call(RequestLimits(never_called, 1000, 4, body_timeout=0.05), "/v1/score", stalls)
        await run()
        assert sent[0]["status"] == 408 and b"body_timeout_seconds" in sent[1]["body"]

    asyncio.run(scenario())


# ------------------------------------------------------------------------------------------------- notes
def test_suspicious_data_is_scored_and_counted_in_notes(served, body):
    """NaN, Infinity and null values, control characters in a name and a service the model never saw are
    scored, and each is named in `notes` (an infinite value is read as missing, as NaN and null are)."""
    values = body["series"][0]["values"]
    raw = json.dumps({**body, "series": [{**body["series"][0], "values": [None, float("nan"), float("inf"),
                                                                          *values[3:]]}, *body["series"][1:]]})
    odd = {"series": [{**s, "service": "new\x07svc"} for s in body["series"]]}
    with _client(_settings(models=DETECTOR)) as client:
        a = client.post("/v1/score", content=raw.encode(), headers={"Content-Type": "application/json"})
        b = client.post("/v1/score", json=odd)
        clean = client.post("/v1/score", json=body)
    assert a.status_code == 200 and a.json()["notes"] == ["values read as missing: 1 null, 1 NaN, 1 Infinity"]
    assert all(np.isfinite(row["score"]) for row in a.json()["rows"])
    notes = b.json()["notes"]
    assert b.status_code == 200 and len(notes) == 2
    assert "control characters" in notes[0] and "'new\\x07svc'" in notes[0]
    assert "not trained on" in notes[1]
    assert clean.json()["notes"] == []
