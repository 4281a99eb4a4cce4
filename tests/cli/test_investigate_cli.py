"""`cerebro rca --service/--incident` and `cerebro investigate` on a small lake with a registered detector."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from support.lab import isolate_engine_env
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()
CEREBRO = str(Path(sys.executable).parent / "cerebro")


@pytest.fixture
def lab(investigation_lab):
    return investigation_lab  # shared with the read-only tools' tests (tests/conftest.py)


@pytest.fixture
def on_lab(lab, monkeypatch):
    monkeypatch.setenv("CEREBRO_HOME", str(lab.settings.home))
    isolate_engine_env(monkeypatch, lab.settings)
    return lab


def _slow_database(lab):
    inc = lab.sim.incidents
    return inc[(inc["kind"] == "slow_dependency") & (inc["root_cause_service"] == "database")].iloc[0]


def _invoke(*args):
    result = runner.invoke(app, list(args), terminal_width=200)
    return result, (json.loads(result.stdout) if result.exit_code == 0 and "--json" in args else None)


def test_rca_over_the_lake_for_a_service_and_a_time(on_lab):
    inc = _slow_database(on_lab)
    at = (inc["start"] + pd.Timedelta(minutes=15)).isoformat()
    res, doc = _invoke("rca", "--service", "frontend", "--at", at, "--window", "15m", "--json")
    assert res.exit_code == 0, res.output
    assert next(iter(doc)) == "causes" and doc["verdict"] == "abnormal" and doc["target"] == "frontend"
    assert "database" in [c["service"] for c in doc["causes"][:3]]
    assert {"service", "score", "confidence", "evidence"} <= set(doc["causes"][0])
    assert [(m["role"], m["name"], m["version"]) for m in doc["models"]] == [("detector", "cerebro-detector-zscore", "1")]
    assert pd.Timestamp(doc["window"]["start"]) == inc["start"] and pd.Timestamp(doc["window"]["end"]) == pd.Timestamp(at)
    assert doc["data"]["first_date"] == "2026-11-18" and doc["data"]["rows"] > 0
    assert any(d["flagged_minutes"] for d in doc["detector"])
    table, _ = _invoke("rca", "--service", "frontend", "--at", at, "--window", "15m")
    assert table.exit_code == 0 and "Likely root causes for frontend" in table.output


def test_rca_replays_a_recorded_incident_without_its_root_cause(on_lab):
    inc = _slow_database(on_lab)
    res, doc = _invoke("rca", "--incident", inc["incident_id"], "--json")
    assert res.exit_code == 0, res.output
    assert pd.Timestamp(doc["window"]["start"]) == inc["start"]
    assert doc["causes"][0]["service"] == "database"
    assert any("its recorded root cause is not read" in n for n in doc["notes"])


def test_rca_lake_modes_refuse_what_they_cannot_do(on_lab):
    for args, message in [(["rca", "--incident", "INC-nope"], "no incident 'INC-nope'"),
                          (["rca", "--service", "frontnd"], "did you mean frontend"),
                          (["rca", "--service", "frontend", "--window", "soon"], "expected a duration"),
                          (["rca"], "missing --metrics, --baseline, --graph"),
                          (["rca", "--service", "cart", "--metrics", "x.csv"], "give one or the other")]:
        res, _ = _invoke(*args)
        assert res.exit_code == 2 and message in " ".join(res.output.split()), (args, res.output)


def test_a_quiet_window_is_nothing_abnormal(on_lab):
    from agents.investigation.evaluation import quiet_windows

    # a window whose baseline and itself keep half an hour from every incident
    first = on_lab.sim.start + pd.Timedelta(minutes=300)  # a full baseline in the lake before it
    at = quiet_windows(first, on_lab.sim.end, on_lab.sim.incidents)[0] + pd.Timedelta(minutes=15)
    res, doc = _invoke("rca", "--service", "checkout", "--at", at.isoformat(), "--window", "15m", "--json")
    assert res.exit_code == 0, res.output
    assert doc["verdict"] == "nothing abnormal" and doc["summary"].startswith("Nothing abnormal in this window")
    assert doc["data"]["rows"] > 0 and not any("not ranked" in n for n in doc["notes"])  # it did look


def test_investigate_runs_the_flow_and_leaves_report_plot_and_bundle(prefect_server, lab):
    """The flow end to end, with an LLM configured the way a user does it (environment variables; the default
    profile's route and prices) against the local Messages API server."""
    import mlflow
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL
    from support.llm_server import LlmServer

    inc = _slow_database(lab)
    at = (inc["start"] + pd.Timedelta(minutes=20)).isoformat()
    key = "sk-ant-cli-test-0123456789abcdef"
    reply = {"summary": "The database slowed down; the frontend waits on it.",
             "root_cause": {"service": "database", "metric": "latency_p99_ms", "confidence": 0.8},
             "citations": ["agents.rca over lake:telemetry"], "next_steps": [{"action": "compare the database's "
                                                                             "metrics", "tool": "metrics_query"}]}
    with LlmServer() as llm:
        llm.answer("/v1/messages", text=json.dumps(reply))
        env = {**os.environ, "CEREBRO_HOME": str(lab.settings.home), "PREFECT_API_URL": PREFECT_API_URL.value(),
               "COLUMNS": "200", "CEREBRO_LLM__PROVIDERS__ANTHROPIC__BASE_URL": llm.url,
               "CEREBRO_LLM__PROVIDERS__ANTHROPIC__API_KEY": key, "CEREBRO_LLM__CACHE": "none"}
        env.pop("ANTHROPIC_API_KEY", None)
        proc = subprocess.run([CEREBRO, "investigate", "why is the frontend slow?", "--at", at, "--window", "30m",
                               "--json"], capture_output=True, text=True, env=env, timeout=300, check=False)
        sent = [r["path"] for r in llm.requests]
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["question"]["service"] == "frontend" and doc["question"]["aspect"] == "latency"
    assert doc["target_metric"] == "latency_p99_ms" and doc["verdict"] == "abnormal"
    assert doc["causes"][0]["service"] == "database"
    assert all(Path(doc[k]).is_file() for k in ("report", "json", "plot"))
    assert json.loads(Path(doc["json"]).read_text())["causes"][0]["service"] == "database"
    report = Path(doc["report"]).read_text()
    assert "## Most likely root causes" in report and "cerebro-detector-zscore" in report and " nan " not in report
    assert Path(doc["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The analysis: the token counter, then one call; priced from the default profile's table (3 / 15 USD).
    assert sent == ["/v1/messages/count_tokens", "/v1/messages"]
    analysis = doc["analysis"]
    assert analysis["status"] == "analysed" and analysis["answer"]["root_cause"]["service"] == "database"
    assert analysis["route"] == "anthropic:claude-sonnet-4-5" and len(analysis["calls"]) == 1
    call, total = analysis["calls"][0], analysis["total"]
    cost = (call["input_tokens"] * 3 + call["output_tokens"] * 15) / 1e6
    assert call["cost_usd"] == pytest.approx(cost, abs=1e-6) and total["cost_usd"] == pytest.approx(cost, abs=1e-6)
    assert "## Analysis (LLM)" in report and "| database | latency_p99_ms | 0.8 |" in report
    assert f"| anthropic | claude-sonnet-4-5 | {call['input_tokens']:,} | {call['output_tokens']:,} | no | " \
           f"{cost:.4f} |" in report
    run = mlflow.MlflowClient(lab.settings.mlflow_tracking_uri).get_run(analysis["mlflow_run"])
    assert run.data.metrics["llm_calls"] == 1 and run.data.metrics["llm_cost_usd"] == pytest.approx(cost, abs=1e-6)
    assert key not in proc.stdout + proc.stderr + report

    async def artifacts():
        async with get_client() as client:
            return await client.read_artifacts()

    found = asyncio.run(artifacts())
    assert {"investigation-report", "investigation-plot", "investigation-bundle"} <= {a.key for a in found}
    newest = max((a for a in found if a.key == "investigation-report"), key=lambda a: a.created)
    assert "## Analysis (LLM)" in newest.data and "### LLM calls and cost" in newest.data and key not in newest.data
