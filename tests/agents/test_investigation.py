"""Evidence bundles: question parsing, assembly from loaded frames, the report, and the RCA evaluation."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from support.rca_data import EDGES, T0, hand_built

from agents.investigation import assemble, diagnose, make_window, parse_duration, parse_question
from agents.investigation.bundle import changes_from, knowledge_from, neighbourhood, spans_from
from agents.investigation.evaluation import evaluate, paged_target, quiet_windows
from agents.investigation.models import EvidenceBundle
from agents.investigation.report import num, report_markdown

SERVICES = ["frontend", "api-gateway", "api", "checkout", "cart", "payment"]
METRICS = ["latency_p50_ms", "latency_p99_ms", "error_rate", "cpu_pct", "request_rate"]


@pytest.mark.parametrize(("text", "service", "aspect"), [
    ("why is checkout slow?", "checkout", "latency"),
    ("Checkout is SLOW", "checkout", "latency"),
    ("errors on the api gateway", "api-gateway", "errors"),
    ("api_gateway throws 500s", "api-gateway", "errors"),
    ("is the api overloaded with traffic?", "api", "traffic"),
    ("cartography is fine", None, None),  # a service name inside a word is not that service
    ("what is going on?", None, None),
])
def test_question_names_its_service_and_aspect(text, service, aspect):
    q = parse_question(text, SERVICES, METRICS)
    assert q.service == service and q.aspect == aspect and q.text == text


def test_question_metrics_prefer_the_p99_and_keep_every_service_in_order():
    q = parse_question("payment slow since checkout deploy", SERVICES, METRICS)
    assert q.services == ["payment", "checkout"] and q.metrics == ["latency_p99_ms", "latency_p50_ms"]
    q = parse_question("checkout errors at 2026-12-01T14:05Z", SERVICES, METRICS)
    assert q.metrics == ["error_rate"] and q.at == pd.Timestamp("2026-12-01T14:05Z")
    assert parse_question("", SERVICES).service is None and parse_question(None, SERVICES).text is None


def test_durations_and_windows():
    assert parse_duration("60m") == pd.Timedelta(minutes=60) and parse_duration("90") == pd.Timedelta(minutes=90)
    for bad in ("soon", "0m", "-5m"):
        with pytest.raises(ValueError, match="window"):
            parse_duration(bad)
    w = make_window("2026-12-01T14:05", "15m")
    assert (w.start, w.end) == (pd.Timestamp("2026-12-01T13:50Z"), pd.Timestamp("2026-12-01T14:05Z"))
    assert w.baseline_end == w.start and w.start - w.baseline_start == pd.Timedelta(minutes=300)


def _telemetry(slow: bool) -> pd.DataFrame:
    inc, base = hand_built(slow)
    return pd.concat([base, inc], ignore_index=True)


def _bundle(slow: bool, **extra) -> EvidenceBundle:
    tel = _telemetry(slow)
    window = make_window(T0 + pd.Timedelta(minutes=252), "12m")
    q = parse_question("why is the frontend slow?", ["frontend", "api", "db", "cache"], ["latency_p90", "requests_Sum"])
    result = diagnose(tel, EDGES, window, target=q.service, target_metric=q.metrics[0])
    return assemble(q, window, result, target=q.service, target_metric=q.metrics[0],
                    graph=neighbourhood(EDGES, [c.service for c in result.causes[:3]], "test:graph"), **extra)


def test_bundle_names_the_slow_dependency_with_onset_and_sources():
    b = _bundle(True)
    assert b.verdict == "abnormal" and b.causes[0].service == "db" and b.causes[0].path == ["db", "api", "frontend"]
    top = b.causes[0].evidence[0]
    assert top.metric == "latency_p90" and top.direction == "up" and top.value > 3 * top.baseline
    assert top.onset == T0 + pd.Timedelta(minutes=240)  # the first minute of the slowdown
    assert {(a.service, a.metric) for a in b.abnormal} >= {("db", "latency_p90"), ("frontend", "latency_p90")}
    assert ("api", "db") in b.graph.edges and "db" in b.summary and "frontend" in b.summary
    # every item says where it came from; the whole bundle survives JSON
    for item in [*b.abnormal, *b.causes, b.graph]:
        assert item.source
    again = EvidenceBundle.model_validate(json.loads(b.model_dump_json()))
    assert again.causes[0].service == "db" and again.window == b.window


def test_quiet_window_says_nothing_abnormal():
    b = _bundle(False)
    assert b.verdict == "nothing abnormal" and b.summary.startswith("Nothing abnormal in this window for frontend")
    md = report_markdown(b)
    assert "Nothing abnormal in this window" in md
    assert "nan" not in md.lower().split() and "None" not in md


def test_report_is_for_people():
    spans = pd.DataFrame({"trace_id": ["a" * 32], "span_id": ["b" * 16], "service": ["db"], "operation": ["SELECT"],
                          "start": [T0 + pd.Timedelta(minutes=245)], "duration_ms": [41.234567], "status": ["ok"],
                          "critical_ms": [float("nan")]})
    b = _bundle(True, spans=spans_from(spans, None), changes_note="the lake has no events table")
    md = report_markdown(b, links={}, plot="/tmp/p.png", bundle_file="/tmp/b.json")
    for heading in ("What is wrong, since when, where", "Most likely root causes", "Similar past incidents",
                    "Runbook steps to try", "Models and data used", "Recent changes"):
        assert f"## {heading}" in md
    assert "the lake has no events table" in md and "41.2" in md and "41.234567" not in md
    assert " nan " not in md and "None" not in md
    assert (num(None), num(float("nan")), num(1234.6), num(0.12345), num(True)) == ("", "", "1,235", "0.123", "yes")


def test_changes_and_knowledge_items_keep_their_source_and_time():
    events = pd.DataFrame({"event_id": ["e1", "e2", "e3"], "service": ["db", "db", "api"],
                           "timestamp": [T0, T0 + pd.Timedelta(hours=1), T0 + pd.Timedelta(hours=9)],
                           "kind": ["deploy", "config", "deploy"], "version": ["v2", None, "v7"], "detail": ["", "x", ""]})
    found = changes_from(events, ["db"], T0 - pd.Timedelta(minutes=1), T0 + pd.Timedelta(hours=2))
    assert [(c.kind, c.version, c.detail) for c in found] == [("config", None, "x"), ("deploy", "v2", None)]
    assert found[0].at == T0 + pd.Timedelta(hours=1) and found[0].source == "lake:events"
    hits = [{"chunk_id": "c1", "kind": "runbook", "title": "Slow database", "section": "Mitigation",
             "source": "knowledge/runbooks/db.md", "snippet": "Check the slow query log", "score": 0.8},
            {"chunk_id": "c2", "kind": "incident", "title": "INC-1", "source": "lake", "snippet": "db", "score": 0.5}]
    runbooks = knowledge_from(hits, "runbook")
    assert len(runbooks) == 1 and runbooks[0].citation == "knowledge/runbooks/db.md § Mitigation"
    assert runbooks[0].source == "knowledge:c1"


def _fleet_with_incidents():
    """Two slow-database incidents and a quiet stretch, on the hand-built graph, as a long frame."""
    parts = []
    for k, slow in enumerate([True, False, True]):
        inc, base = hand_built(slow, seed=k)
        shift = pd.Timedelta(hours=8 * k)
        parts += [base.assign(timestamp=base["timestamp"] + shift), inc.assign(timestamp=inc["timestamp"] + shift)]
    tel = pd.concat(parts, ignore_index=True)
    starts = [T0 + pd.Timedelta(minutes=240), T0 + pd.Timedelta(hours=16, minutes=240)]
    incidents = pd.DataFrame({"incident_id": ["I1", "I2"], "start": starts,
                              "end": [s + pd.Timedelta(minutes=11) for s in starts], "kind": ["slow_dependency"] * 2,
                              "affected_services": [["db", "api", "frontend"]] * 2, "root_cause_service": ["db", "db"]})
    return tel, incidents


def test_evaluation_scores_without_letting_the_ranking_read_the_root_cause():
    tel, incidents = _fleet_with_incidents()
    result = evaluate(tel, incidents, EDGES, quiet_target="frontend")
    assert result["cases"] == 2 and result["ac@1"] == 1.0 and result["ac@3"] == 1.0
    assert [r["top"][0] for r in result["rows"]] == ["db", "db"]
    # A wrong root-cause field changes the score, never the ranking.
    lied = evaluate(tel, incidents.assign(root_cause_service=["cache", "api"]), EDGES, quiet_target="frontend")
    assert [r["top"] for r in lied["rows"]] == [r["top"] for r in result["rows"]] and lied["ac@1"] == 0.0


def test_quiet_windows_keep_away_from_incidents_and_paged_target():
    starts = [pd.Timestamp("2024-01-01T10:00Z")]
    inc = pd.DataFrame({"start": starts, "end": [starts[0] + pd.Timedelta(minutes=30)]})
    wins = quiet_windows(pd.Timestamp("2024-01-01T00:00Z"), pd.Timestamp("2024-01-02T00:00Z"), inc, limit=100)
    assert wins and all(not (w - pd.Timedelta(minutes=300) < starts[0] + pd.Timedelta(minutes=60)
                             and starts[0] - pd.Timedelta(minutes=30) < w + pd.Timedelta(minutes=15)) for w in wins)
    callers = {"db": ["api", "svc"], "api": ["frontend"]}
    assert paged_target(["db", "api"], lambda s: callers.get(s, [])) == "api"
    assert paged_target(["db", "frontend"], lambda s: []) == "frontend" and paged_target([], lambda s: []) is None
