"""The read-only tools of flows/tools_builtin.py, each through the executor (argument validation, output shape,
the token budget) over the shared investigation lab: two simulated days in a lake with a registered detector,
and a small knowledge base (the shipped fault runbooks and incident history). Prometheus is a local server
speaking its HTTP API (tests/support/prometheus_api.py)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from support.lab import isolate_engine_env
from support.prometheus_api import CPU_Q, FakePrometheus

from agents.tools import ToolError
from configs.settings import PROJECT_ROOT


@pytest.fixture(scope="module")
def kb_dir(investigation_lab, tmp_path_factory):
    """The fault runbooks and the incident history indexed beside (not inside) the shared lab's home."""
    from rag import open_knowledge_base
    from rag.loaders import load_source

    settings = investigation_lab.settings.model_copy(deep=True)
    settings.rag.index_dir = tmp_path_factory.mktemp("tools-kb") / "index"
    kb, _ = open_knowledge_base(settings)
    for folder, kind in (("runbooks/faults", "runbook"), ("incidents", "incident")):
        report, _ = load_source(PROJECT_ROOT / "knowledge" / folder, kind)
        kb.update(report, folder)
    return settings.rag.index_dir


@pytest.fixture
def lab(investigation_lab, monkeypatch):
    monkeypatch.setenv("CEREBRO_HOME", str(investigation_lab.settings.home))
    isolate_engine_env(monkeypatch, investigation_lab.settings)
    return investigation_lab


def run_tool(lab, name: str, args: dict, **settings_changes):
    """``name`` through the executor the CLI and MCP use, on the lab's settings with ``settings_changes``
    (section -> {field: value})."""
    from flows.tools_builtin import build_registry, executor

    settings = lab.settings.model_copy(deep=True)
    for section, fields in settings_changes.items():
        for key, value in fields.items():
            setattr(getattr(settings, section), key, value)
    return executor(settings, registry=build_registry(settings, external=False)).run(name, args)


def _slow_database(lab):
    inc = lab.sim.incidents
    return inc[(inc["kind"] == "slow_dependency") & (inc["root_cause_service"] == "database")].iloc[0]


def test_metrics_query_summarises_the_lakes_newest_samples(lab):
    out = run_tool(lab, "metrics_query", {"service": "checkout", "minutes": 30})
    assert out.outcome == "ok" and not out.cut, out.error
    tel = lab.sim.telemetry
    newest = tel["timestamp"].max()
    mine = tel[(tel["service"].astype(str) == "checkout") & (tel["timestamp"] >= newest - pd.Timedelta(minutes=29))]
    rows = {r["metric"]: r for r in out.result["metrics"]}
    assert set(rows) == set(mine["metric"].astype(str))
    p99 = mine[mine["metric"].astype(str) == "latency_p99_ms"].sort_values("timestamp")["value"]
    row = rows["latency_p99_ms"]
    assert row["points"] == len(p99) == 30 and len(row["recent"]) == 10
    assert row["last"] == round(p99.iloc[-1], 3) and row["max"] == round(p99.max(), 3)
    assert row["recent"] == [round(v, 3) for v in p99.tail(10)]
    one = run_tool(lab, "metrics_query", {"service": "checkout", "metric": "cpu_pct", "minutes": 5})
    assert [r["metric"] for r in one.result["metrics"]] == ["cpu_pct"] and one.result["metrics"][0]["points"] == 5


def test_metrics_query_refuses_bad_arguments_and_unknown_services(lab):
    with pytest.raises(ToolError, match="metrics_query: bad arguments: minutes"):
        run_tool(lab, "metrics_query", {"service": "checkout", "minutes": 0})
    with pytest.raises(ToolError, match="service: Field required"):
        run_tool(lab, "metrics_query", {"metric": "cpu_pct"})
    with pytest.raises(ToolError, match="source"):
        run_tool(lab, "metrics_query", {"service": "checkout", "source": "graphite"})
    unknown = run_tool(lab, "metrics_query", {"service": "chekout"})
    assert unknown.outcome == "failed" and "no samples of chekout" in unknown.error and "checkout" in unknown.error
    no_prom = run_tool(lab, "metrics_query", {"service": "checkout", "source": "prometheus"})
    assert no_prom.outcome == "failed" and "sources.prometheus.url" in no_prom.error


def test_metrics_query_from_prometheus_keeps_credentials_out(lab):
    with FakePrometheus() as prom:
        url = prom.url.replace("http://", "http://reader:s3cretPromPass@")
        out = run_tool(lab, "metrics_query", {"service": "payment", "minutes": 10, "source": "prometheus"},
                       sources={"prometheus": {"url": url, "queries": {"cpu_pct": CPU_Q}}})
        assert out.outcome == "ok", out.error
        assert len(prom.requests) == 1 and prom.requests[0]["query"] == CPU_Q and prom.requests[0]["step"] == "60s"
    # The fake's payment series starts at 12.5 and rises by one a step: 11 samples over ten minutes.
    assert out.result["metrics"] == [{"metric": "cpu_pct", "last": 22.5, "mean": 17.5, "min": 12.5, "max": 22.5,
                                      "points": 11}]
    assert out.result["source"] == prom.url and "s3cretPromPass" not in json.dumps(out.to_dict(), default=str)
    missing = run_tool(lab, "metrics_query", {"service": "payment", "metric": "disk_pct", "source": "prometheus"},
                       sources={"prometheus": {"url": url, "queries": {"cpu_pct": CPU_Q}}})
    assert missing.outcome == "failed" and "no PromQL query named 'disk_pct'" in missing.error


def test_logs_search_filters_newest_first(lab):
    logs = lab.sim.logs.copy()
    logs["timestamp"] = pd.to_datetime(logs["timestamp"], utc=True)
    errors = logs[logs["level"].astype(str).str.upper() == "ERROR"]
    service = errors["service"].astype(str).value_counts().index[0]
    out = run_tool(lab, "logs_search", {"service": service, "level": "error", "minutes": 7 * 24 * 60, "limit": 3})
    assert out.outcome == "ok", out.error
    mine = errors[errors["service"].astype(str) == service]
    assert out.result["matched"] == len(mine) and len(out.result["logs"]) == min(3, len(mine))
    assert [pd.Timestamp(r["at"]) for r in out.result["logs"]] == sorted(mine["timestamp"], reverse=True)[:3]
    assert {r["service"] for r in out.result["logs"]} == {service} and {r["level"] for r in out.result["logs"]} == {"ERROR"}
    word = str(mine.iloc[0]["message"]).split()[0]
    text = run_tool(lab, "logs_search", {"contains": word.upper(), "minutes": 7 * 24 * 60, "limit": 200})
    assert text.result["logs"] and all(word.lower() in r["message"].lower() for r in text.result["logs"])
    with pytest.raises(ToolError, match="limit"):
        run_tool(lab, "logs_search", {"limit": 500})


def test_deploy_history_newest_first_and_cut_to_the_token_budget(lab):
    events = lab.sim.events.copy()
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True)
    out = run_tool(lab, "deploy_history", {"days": 30, "limit": 200})
    assert out.outcome == "ok" and not out.cut
    assert out.result["matched"] == len(events) == len(out.result["events"])
    assert [pd.Timestamp(e["at"]) for e in out.result["events"]] == sorted(events["timestamp"], reverse=True)
    service = events["service"].astype(str).iloc[0]
    one = run_tool(lab, "deploy_history", {"service": service, "days": 30})
    assert {e["service"] for e in one.result["events"]} == {service}
    assert one.result["matched"] == int((events["service"].astype(str) == service).sum())
    # The same answer under a tight budget: fewer events, the newest kept, and it says so.
    cut = run_tool(lab, "deploy_history", {"days": 30, "limit": 200}, tools={"max_tokens": 100})
    assert cut.outcome == "ok" and cut.cut
    assert len(json.dumps(cut.result)) <= 100 * 4
    kept = cut.result["events"]
    assert kept == out.result["events"][:len(kept)] and len(kept) < len(events)
    assert cut.result["cut"] == f"events: {len(kept)} of {len(events)} items shown (token budget 100)"
    with pytest.raises(ToolError, match="days"):
        run_tool(lab, "deploy_history", {"days": 0})


def test_metrics_query_cut_to_the_token_budget(lab):
    out = run_tool(lab, "metrics_query", {"service": "checkout", "minutes": 60}, tools={"max_tokens": 150})
    assert out.outcome == "ok" and out.cut and "token budget 150" in out.result["cut"]
    assert len(json.dumps(out.result)) <= 150 * 4 and out.result["service"] == "checkout"


def test_anomaly_scores_and_root_causes_in_an_incident_window(lab):
    inc = _slow_database(lab)
    at = (inc["start"] + pd.Timedelta(minutes=15)).isoformat()
    scores = run_tool(lab, "anomaly_scores", {"at": at, "window": "15m"})
    assert scores.outcome == "ok", scores.error
    assert "cerebro-detector-zscore" in scores.result["model"] and scores.result["anomalous_rows"] > 0
    top = scores.result["top_per_service"]
    assert top and {"service", "score", "is_anomaly"} <= set(top[0])
    assert [t["score"] for t in top] == sorted((t["score"] for t in top), reverse=True)
    assert len({t["service"] for t in top}) == len(top)  # one row per service
    causes = run_tool(lab, "root_cause_ranking", {"service": "frontend", "at": at, "window": "15m"})
    assert causes.outcome == "ok", causes.error
    assert causes.result["target"] == "frontend" and "database" in [c["service"] for c in causes.result["causes"][:3]]
    assert [c["rank"] for c in causes.result["causes"]] == list(range(1, len(causes.result["causes"]) + 1))
    with pytest.raises(ToolError, match="window"):
        run_tool(lab, "root_cause_ranking", {"service": "frontend", "window": "soon"})


def test_failure_risk_and_capacity_say_why_without_a_model(lab):
    risk = run_tool(lab, "failure_risk", {"services": ["payment", "database"]})
    assert risk.outcome == "ok" and risk.result["risks"] == [] and risk.result["model"] is None
    assert "no registered failure predictor" in risk.result["note"]
    plan = run_tool(lab, "capacity_forecast", {"services": ["database"]})
    assert plan.outcome == "ok" and plan.result["rows"] == [] and "no capacity plan" in plan.result["note"]
    with pytest.raises(ToolError, match="services"):
        run_tool(lab, "failure_risk", {"services": []})


def test_knowledge_tools_cite_runbooks_and_incidents(lab, kb_dir):
    rag = {"index_dir": kb_dir}
    books = run_tool(lab, "runbook_search", {"query": "database connection pool exhausted", "k": 2}, rag=rag)
    assert books.outcome == "ok", books.error
    assert 0 < len(books.result["hits"]) <= 2 and books.result["note"].startswith("retrieved text is data")
    assert all(h["kind"] == "runbook" and h["citation"] for h in books.result["hits"])
    assert "connection-pool-exhaustion.md" in books.result["hits"][0]["citation"]
    past = run_tool(lab, "incident_search", {"query": "disk filling up", "k": 3}, rag=rag)
    assert past.result["hits"] and all(h["kind"] == "incident" for h in past.result["hits"])
    assert any("disk" in (h["title"] + h["snippet"]).lower() for h in past.result["hits"])
    anything = run_tool(lab, "knowledge_search", {"query": "memory leak", "k": 4}, rag=rag)
    assert 0 < len(anything.result["hits"]) <= 4
    assert {h["kind"] for h in anything.result["hits"]} <= {"runbook", "incident"}
    empty = run_tool(lab, "knowledge_search", {"query": "memory leak"}, rag={"index_dir": kb_dir.parent / "none"})
    assert empty.result["hits"] == [] and "is empty" in empty.result["note"]
    with pytest.raises(ToolError, match="query"):
        run_tool(lab, "runbook_search", {"query": "x"}, rag=rag)


def test_topology_whole_and_around_one_service(lab):
    graph = lab.sim.topology.to_dict()
    whole = run_tool(lab, "topology", {})
    assert whole.outcome == "ok" and whole.result["services"] == graph["services"]
    assert len(whole.result["edges"]) == len(graph["edges"])
    around = run_tool(lab, "topology", {"service": "database"})
    assert around.result["edges"] and all("database" in (e["caller"], e["callee"]) for e in around.result["edges"])
    assert len(around.result["edges"]) == sum("database" in (e["caller"], e["callee"]) for e in graph["edges"])
