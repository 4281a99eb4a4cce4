"""`cerebro ingest --traces` and `cerebro simulate --traces-per-minute` as a user meets them."""
from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()
NS = 1_763_632_800_000_000_000


def _doc(service, span_id, parent="", code=0):
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": span_id, "parentSpanId": parent, "name": "op",
            "startTimeUnixNano": str(NS), "endTimeUnixNano": str(NS + 5_000_000), "status": {"code": code}}
    return {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                               "scopeSpans": [{"spans": [span]}]}]}


def test_ingest_traces_prints_a_summary_and_refuses_a_file_that_is_not_traces(home, tmp_path):
    path = tmp_path / "traces.jsonl"
    path.write_text(json.dumps(_doc("frontend", "00000000000000a1")) + "\n"
                    + json.dumps(_doc("auth", "00000000000000a2", "00000000000000a1", code=2)) + "\n"
                    + json.dumps(_doc("auth", "bad")) + "\n")
    first = runner.invoke(app, ["ingest", "--traces", str(path), "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)["traces"]
    assert (report["spans_in"], report["spans_stored"], report["spans_quarantined"]) == (3, 2, 1)
    assert report["dataset"] == "otlp-traces" and report["reasons"] == {"bad spanId": 1}
    again = runner.invoke(app, ["ingest", "--traces", str(path)], terminal_width=300)
    assert again.exit_code == 0, again.output
    assert "2 stored as dataset 'otlp-traces' (0 new)" in again.output and "Quarantined (bad spanId: 1)" in again.output
    assert len(pd.read_parquet(home / "lake" / "traces.parquet")) == 2

    other = tmp_path / "metrics.json"
    other.write_text('{"resourceMetrics": []}')
    refused = runner.invoke(app, ["ingest", "--traces", str(other)])
    assert refused.exit_code == 2
    assert "metrics.json: not OpenTelemetry traces" in refused.output and "Traceback" not in refused.output


def test_simulate_traces_per_minute(tmp_path):
    args = ["simulate", "--days", "0.1", "--seed", "3", "--end", "2026-11-20T00:00:00Z", "--json"]
    none = runner.invoke(app, args + ["--out", str(tmp_path / "a"), "--traces-per-minute", "0"])
    some = runner.invoke(app, args + ["--out", str(tmp_path / "b"), "--traces-per-minute", "4"])
    assert none.exit_code == 0 and some.exit_code == 0, some.output
    assert json.loads(none.stdout)["spans"] == 0 and json.loads(some.stdout)["spans"] > 4 * 144
    assert (tmp_path / "a" / "telemetry.parquet").read_bytes() == (tmp_path / "b" / "telemetry.parquet").read_bytes()
    assert len(pd.read_parquet(tmp_path / "b" / "traces.parquet")) == json.loads(some.stdout)["spans"]


def test_the_ingest_flow_imports_traces(prefect_server, home, tmp_path):
    from flows.ingest import ingest_flow
    from telemetry import lake

    path = tmp_path / "export.json"
    path.write_text(json.dumps(_doc("checkout", "00000000000000c1", code=2)))
    summary = ingest_flow(traces=str(path), dataset="otel-prod")
    assert summary["traces"]["spans_stored"] == 1 and "incidents" not in summary
    stored = lake.read_table("traces", home / "lake", dataset="otel-prod")
    assert stored["status"].tolist() == ["error"] and stored["service"].tolist() == ["checkout"]
