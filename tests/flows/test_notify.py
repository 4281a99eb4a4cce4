"""Alerts to the ML team, posted to a real local webhook: drift, rollbacks, a failed pipeline run; silence
without a URL; an unreachable URL is a warning; the URL (a secret) never reaches a log or the settings dump."""
from __future__ import annotations

import json
import logging

import pytest
from support.servers import WebhookReceiver

from configs.settings import load_settings
from flows import notify

DRIFT_SUMMARY = {
    "action": {"action": "retrain", "reasons": ["4 of 9 metrics drifted"], "applied": True, "triggered": True,
               "flow_run_id": "0b7e", "flow_run_name": "clever-fox", "deployment": "pipeline/retrain"},
    "share_drifted": 4 / 9, "data_drift": True, "compared": "inputs of cerebro-detector-ensemble v3",
    "drifted_metrics": ["cpu_pct", "latency_p50_ms", "latency_p99_ms", "memory_pct"],
    "prediction": {"psi": 0.31234, "alarm_rate_reference": 0.01, "alarm_rate_current": float("nan"),
                   "drifted": True},
    "performance": {}, "html": "/tmp/drift.html", "mlflow_run_id": "abc", "model": "cerebro-detector-ensemble/3",
}


@pytest.fixture
def hook():
    with WebhookReceiver() as receiver:
        yield receiver


def _settings(url, **more):
    return load_settings(**{"notify.webhook_url": url, **more})


def _texts(hook) -> list[str]:
    for post in hook.posts:
        assert set(post["json"]) == {"text"} and isinstance(post["json"]["text"], str)  # Slack's minimal body
    return [p["json"]["text"] for p in hook.posts]


def test_a_drift_finding_posts_one_message_naming_the_drifted_metrics(hook, caplog):
    caplog.set_level(logging.DEBUG)
    settings = _settings(hook.url)
    assert notify.alert_drift(settings, DRIFT_SUMMARY, compared=9)
    [text] = _texts(hook)
    assert text.startswith(":warning: CEREBRO drift: 4 of 9 metrics drifted (cpu_pct, latency_p50_ms, ")
    assert "retrain started (pipeline/retrain run clever-fox)" in text
    assert "PSI 0.31," in text and "alarm rate 1.0% -> n/a" in text  # rounded; a nan figure reads n/a
    assert "nan" not in text.lower() and "None" not in text
    assert hook.posts[0]["path"].endswith("s3cr3tW3bh00kT0k3n")  # delivered to the configured URL ...
    assert "s3cr3tW3bh00kT0k3n" not in caplog.text  # ... which no log line shows (httpx logs request URLs)


def test_no_drift_and_unwanted_events_post_nothing(hook):
    quiet = {**DRIFT_SUMMARY, "action": {"action": "none", "reasons": [], "applied": False}}
    assert not notify.alert_drift(_settings(hook.url), quiet, compared=9)
    assert not notify.alert_drift(_settings(hook.url, **{"notify.events": ["rollback"]}), DRIFT_SUMMARY, 9)
    assert hook.posts == []


def test_a_drift_fallback_names_both_models_and_why(hook):
    summary = {**DRIFT_SUMMARY, "action": {"action": "fallback", "applied": True, "fallback_version": "5",
                                           "reasons": ["F1 on 3 recent incidents is 0.500, down from 0.950"]}}
    assert notify.alert_drift(_settings(hook.url), summary, compared=9)
    [text] = _texts(hook)
    assert "cerebro-detector-ensemble v3 fell back to cerebro-detector-zscore" in text
    assert "(now cerebro-detector-ensemble v5" in text and "F1 on 3 recent incidents is 0.500" in text


def test_no_url_sends_nothing_and_never_fails(hook):
    settings = load_settings()
    assert settings.notify.webhook_url is None
    assert notify.notifier(settings) is None
    assert not notify.send(settings, "drift", "anything")
    assert not notify.alert_drift(settings, DRIFT_SUMMARY, 9)
    assert hook.posts == []


def test_an_unreachable_or_failing_webhook_is_a_warning_naming_the_event(hook, caplog):
    caplog.set_level(logging.DEBUG)
    with WebhookReceiver() as gone:
        url = gone.url  # the port is closed once the receiver stops
    settings = _settings(url, **{"notify.timeout_s": 2})
    assert notify.send(settings, "rollback", "x") is False
    hook.status = 500
    assert notify.send(_settings(hook.url), "drift", "y") is False
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("alert 'rollback' not delivered" in w for w in warnings), warnings
    assert any("alert 'drift' not delivered: the webhook answered HTTP 500" in w for w in warnings), warnings
    assert "s3cr3tW3bh00kT0k3n" not in caplog.text


def test_the_url_is_a_secret_in_the_settings_dump_and_in_config_errors(monkeypatch, tmp_path):
    monkeypatch.setenv("CEREBRO_NOTIFY__WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/s3cr3tW3bh00kT0k3n")
    settings = load_settings()
    assert settings.notify.webhook_url.get_secret_value().endswith("s3cr3tW3bh00kT0k3n")
    dumped = json.dumps(settings.model_dump(mode="json"))  # what the pipeline logs to MLflow as config.json
    assert "s3cr3tW3bh00kT0k3n" not in dumped and "s3cr3tW3bh00kT0k3n" not in repr(settings)
    assert settings.model_dump(mode="json")["notify"]["webhook_url"] == "**********"
    monkeypatch.setenv("CEREBRO_NOTIFY__WEBHOOK_URL", "hooks.slack.com/services/s3cr3tW3bh00kT0k3n")
    from configs.settings import ConfigError

    with pytest.raises(ConfigError, match="notify.webhook_url") as info:
        load_settings()
    assert "s3cr3tW3bh00kT0k3n" not in str(info.value)
    monkeypatch.setenv("CEREBRO_NOTIFY__WEBHOOK_URL", "")
    assert load_settings().notify.webhook_url is None  # empty: alerts off


def test_a_rollback_by_hand_posts_model_versions_and_reason(hook, monkeypatch):
    from types import SimpleNamespace

    from typer.testing import CliRunner

    import serving.promotion
    from flows.cli import app

    decision = SimpleNamespace(name="cerebro-detector-ensemble", version="7", decision="rollback",
                               reason="champion rolled back from v7 to v6", champion_before="7",
                               champion_after="6", margin=None, figures=None, run_id="r1",
                               as_dict=lambda: {"decision": "rollback"})
    monkeypatch.setattr(serving.promotion, "rollback", lambda settings, name: decision)
    monkeypatch.setenv("CEREBRO_NOTIFY__WEBHOOK_URL", hook.url)
    result = CliRunner().invoke(app, ["models", "rollback", "cerebro-detector-ensemble", "--json"])
    assert result.exit_code == 0, result.output
    [text] = _texts(hook)
    assert text.startswith(":rewind: CEREBRO rollback: cerebro-detector-ensemble v7 -> v6")
    assert "cerebro models rollback" in text


def test_the_scoring_services_automatic_rollback_alerts(hook):
    """LiveModels.rollback, with its MLflow client and loaded models stood in for: the alert is a plain
    callable (serving/ imports no Prefect) and is sent off the reload lock."""
    import threading
    from collections import deque
    from types import SimpleNamespace

    from serving.live import LiveModels, LoadedModel
    from serving.metrics import ServingMetrics
    from serving.rollback import Window

    settings = _settings(hook.url)
    calls = []
    client = SimpleNamespace(set_registered_model_alias=lambda *a: calls.append(a),
                             set_model_version_tag=lambda *a: calls.append(a))
    live = LiveModels.__new__(LiveModels)  # no MLflow: only the rollback path runs
    live.settings, live.cfg, live.client, live.metrics = settings, settings.serving, client, ServingMetrics()
    live.slots, live.previous, live.refused, live.events = {}, {}, {}, deque(maxlen=10)
    live._lock, live._reload_lock, live._background = threading.RLock(), threading.Lock(), []
    live.after_change, live.alert = None, notify.notifier(settings)

    def model(version):
        return LoadedModel("detector", "champion", "cerebro-detector-ensemble", version, "champion", None, "run",
                           Window(10))

    bad, good = model("7"), model("6")
    live.slots[("detector", "champion")], live.previous[("detector", "champion")] = bad, good
    assert live.rollback(bad, "error rate 12.0% over 200 requests > 5.0%") is good
    live.wait_idle(timeout=10)
    [text] = _texts(hook)
    assert text.startswith(":rewind: CEREBRO rollback: cerebro-detector-ensemble v7 -> v6 (scoring service")
    assert text.endswith("reason: error rate 12.0% over 200 requests > 5.0%")


def test_a_failed_flow_run_posts_its_name_stage_and_error(hook, monkeypatch, prefect_server):
    """The pipeline's own hooks on a tiny flow that fails in a task: one message naming the run, the stage
    and the error's first line; the run still ends Failed, as it would without alerts."""
    from prefect import flow, task

    from flows.pipeline import pipeline_flow

    assert notify.pipeline_failed in pipeline_flow.on_failure_hooks  # the real pipeline has the hook ...
    assert notify.pipeline_failed in pipeline_flow.on_crashed_hooks

    @task(name="ingest-batch")
    def ingest():
        raise ValueError("source /nowhere/fleet.csv does not exist\nTraceback detail that is not for Slack")

    @flow(name="pipeline", on_failure=[notify.pipeline_failed])  # ... and this flow the same one
    def tiny_pipeline(config: str | None = None):
        ingest()

    monkeypatch.setenv("CEREBRO_NOTIFY__WEBHOOK_URL", hook.url)
    state = tiny_pipeline(return_state=True)
    assert state.is_failed()
    [text] = _texts(hook)
    assert text.startswith(":x: CEREBRO pipeline run ") and " failed at ingest-batch: " in text, text
    assert "ValueError: source /nowhere/fleet.csv does not exist" in text and "Traceback" not in text
    assert "flow run id " in text or "/runs/flow-run/" in text  # where to look
    run_name = text.split(" run ", 1)[1].split(" failed", 1)[0]
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        assert client.read_flow_run(state.state_details.flow_run_id).name == run_name


def test_a_failed_run_without_a_url_posts_nothing(hook, monkeypatch, prefect_server):
    from prefect import flow

    @flow(name="pipeline", on_failure=[notify.pipeline_failed])
    def tiny_pipeline(config: str | None = None):
        raise RuntimeError("boom")

    monkeypatch.delenv("CEREBRO_NOTIFY__WEBHOOK_URL", raising=False)
    assert tiny_pipeline(return_state=True).is_failed()
    assert hook.posts == []


def test_the_drift_flow_alerts_when_it_acts_and_not_when_it_only_reports(hook, monkeypatch, prefect_server):
    """flows/drift.py with the check itself stood in for (its figures are tests/serving/test_drift.py's)."""
    import serving.drift_check
    from flows.drift import drift_flow
    from serving.drift import Decision, DriftResult

    groups = {m: {"inputs": 1, "drifted": [m] if m in DRIFT_SUMMARY["drifted_metrics"] else [],
                  "drift": m in DRIFT_SUMMARY["drifted_metrics"]}
              for m in [*DRIFT_SUMMARY["drifted_metrics"], "request_rate", "error_rate", "disk_pct", "conns", "gc"]}
    result = DriftResult(metrics={m: {"psi": 0.5, "ks_pvalue": 0.001, "drifted": g["drift"]} for m, g in groups.items()},
                         share_drifted=4 / 9, data_drift=True, reference_rows=10, current_rows=10, groups=groups)

    def fake_check(settings, end, act, retrain, step, logger):
        action = {"action": "retrain", "reasons": ["4 of 9 metrics drifted"], "applied": act}
        if act:
            action.update(triggered=True, flow_run_id="0b7e", flow_run_name="clever-fox", deployment="pipeline/retrain")
        return serving.drift_check.DriftCheck(result=result, decision=Decision("retrain", action["reasons"]),
                                              action=action, report_md="# drift", live=None, mlflow_run_id="r1")

    monkeypatch.setattr(serving.drift_check, "run_drift_check", fake_check)
    monkeypatch.setenv("CEREBRO_NOTIFY__WEBHOOK_URL", hook.url)
    drift_flow(trigger=False)  # report only (`cerebro drift`, the pipeline's own check): no alert
    assert hook.posts == []
    drift_flow(trigger=True)  # the hourly deployment acts, and alerts
    [text] = _texts(hook)
    assert text.startswith(":warning: CEREBRO drift: 4 of 9 metrics drifted (cpu_pct, latency_p50_ms, ")
    assert "retrain started (pipeline/retrain run clever-fox)" in text
