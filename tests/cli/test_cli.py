"""The `cerebro` command line as a user meets it: help, simulate, ingest of a messy file, JSON output."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()
CEREBRO = str(Path(sys.executable).parent / "cerebro")


def cerebro(*args, home) -> subprocess.CompletedProcess:
    """Run the installed console script in its own process, against the test session's Prefect server."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "CEREBRO_HOME": str(home), "PREFECT_API_URL": PREFECT_API_URL.value(),
           "COLUMNS": "200"}
    return subprocess.run([CEREBRO, *args], capture_output=True, text=True, env=env, timeout=300, check=False)


@pytest.mark.parametrize("command", ["run", "simulate", "ingest", "detect", "forecast", "predict-failure", "drift", "ui", "investigate",
                                     "env"])
def test_every_command_explains_itself_with_an_example(command):
    result = runner.invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "Example" in result.output and f"cerebro {command}" in result.output


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_simulate_writes_every_file_and_is_deterministic(tmp_path):
    args = ["simulate", "--days", "3", "--seed", "7", "--end", "2026-11-20T00:00:00Z", "--json"]
    a = runner.invoke(app, args + ["--out", str(tmp_path / "a")])
    b = runner.invoke(app, args + ["--out", str(tmp_path / "b")])
    assert a.exit_code == 0, a.output
    assert b.exit_code == 0, b.output
    info = json.loads(a.stdout)
    assert info["services"] == 13 and info["telemetry_rows"] == 3 * 1440 * 13 * 9 and info["incidents"] >= 3
    files = _digest(tmp_path / "a")
    assert set(files) == {"telemetry.parquet", "events.parquet", "incidents.parquet", "incidents.json",
                          "logs.parquet", "traces.parquet", "graph.json", "manifest.json"}
    assert files == _digest(tmp_path / "b")
    c = runner.invoke(app, ["simulate", "--days", "3", "--seed", "8", "--end", "2026-11-20T00:00:00Z",
                            "--out", str(tmp_path / "c")])
    assert c.exit_code == 0
    assert _digest(tmp_path / "c")["telemetry.parquet"] != files["telemetry.parquet"]


def test_simulate_csv_and_bad_arguments(tmp_path):
    ok = runner.invoke(app, ["simulate", "--days", "0.5", "--format", "csv", "--out", str(tmp_path),
                             "--plot", str(tmp_path / "fleet.png")])
    assert ok.exit_code == 0
    png = (tmp_path / "fleet.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    head = (tmp_path / "telemetry.csv").read_text().splitlines()[:2]
    assert head[0] == "timestamp,service,metric,value" and head[1].endswith(tuple("0123456789"))
    bad = runner.invoke(app, ["simulate", "--days", "1", "--format", "xml", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "expected parquet or csv" in bad.output


@pytest.mark.e2e
def test_ingest_messy_csv_reports_and_quarantines(prefect_server, home, tmp_path):
    now = pd.Timestamp.now(tz="UTC").floor("min")
    t = [(now - pd.Timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S") for m in range(10, 0, -1)]
    lines = ['"TIMESTAMP","Service","Metric","Value"']
    lines += [f'"{t[i]}","payment","latency_p99_ms","{100 + i}"' for i in range(6)]
    lines += [
        '"not-a-time","payment","latency_p99_ms","5"',
        f'"{t[6]}","payment","latency_p99_ms","fast"',
        f'"{t[7]}","payment","request_rate","-12"',
        f'"{t[0]}","payment","latency_p99_ms","100"',  # duplicate of the first row
    ]
    path = tmp_path / "Payment Export.csv"
    path.write_text("\n".join(lines) + "\n")
    result = cerebro("ingest", "--source", str(path), "--json", home=home)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["rows_in"] == 10 and summary["rows_clean"] == 6 and summary["rows_quarantined"] == 4
    assert summary["quarantine_reasons"] == {"timestamp": 1, "value": 1, "range": 1, "duplicate": 1}
    q = pd.read_parquet(summary["quarantine_files"][0]).sort_values("source_row")
    assert list(q["source_row"]) == [7, 8, 9, 10]
    assert "not a time" in q.iloc[0]["reason"] and "'fast'" in q.iloc[1]["reason"]
    assert "out of range" in q.iloc[2]["reason"] and "duplicate of row 1" in q.iloc[3]["reason"]

    again = cerebro("ingest", "--source", str(path), home=home)
    assert again.returncode == 0, again.stderr
    assert "0 new in the lake" in again.stdout and "duplicate: 1" in again.stdout  # idempotent, and says why


@pytest.mark.e2e
def test_ingest_unusable_file_fails_naming_it(prefect_server, home, tmp_path):
    path = tmp_path / "garbage.csv"
    path.write_text("time,service,metric,value\nsoon,a,cpu_pct,1\nlater,a,cpu_pct,x\n")
    result = cerebro("ingest", "--source", str(path), home=home)
    assert result.returncode == 2  # the input was refused
    assert "Traceback" not in result.stderr
    assert "garbage.csv: unusable batch: 2 of 2 rows rejected" in result.stderr
    assert "row 1: timestamp 'soon' is not a time" in result.stderr


def test_ingest_missing_file_and_bad_config(tmp_path, monkeypatch):
    missing = runner.invoke(app, ["ingest", "--source", str(tmp_path / "nope.csv")], terminal_width=300)
    assert missing.exit_code == 2 and "nope.csv: no such file or folder" in missing.output
    monkeypatch.setenv("CEREBRO_PREFECT__TASK_RUNNER", "ray")
    bad = runner.invoke(app, ["ingest", "--source", str(tmp_path)], terminal_width=200)
    assert bad.exit_code == 2 and "prefect.task_runner" in bad.output


def test_env_prints_exports(home):
    result = runner.invoke(app, ["env"])
    assert result.exit_code == 0
    assert f'export PREFECT_HOME="{home}/prefect"' in result.output
    assert f'export MLFLOW_TRACKING_URI="sqlite:///{home}/mlflow.db"' in result.output


def test_predict_failure_before_any_pipeline_run_says_what_to_do(home):
    result = runner.invoke(app, ["predict-failure"], terminal_width=200)
    assert result.exit_code == 2
    assert "cerebro run" in result.output and "cerebro-failure-predictor" in result.output


def test_drift_names_a_bad_end_time_before_running_anything(home):
    result = runner.invoke(app, ["drift", "--end", "yesterday"])
    assert result.exit_code == 2
    assert "--end 'yesterday' is not a time" in result.output and "ISO 8601" in result.output


def test_command_modules_share_common_and_never_import_each_other():
    """flows/cli/__init__.py registers every command; a command module imports flows.cli.common and the domain
    packages only, so the command line has no import loop."""
    import ast

    folder = Path(__file__).resolve().parents[2] / "flows" / "cli"
    modules = sorted(p for p in folder.glob("*.py") if p.name not in ("__init__.py", "__main__.py", "common.py"))
    assert len(modules) >= 10
    for path in [*modules, folder / "common.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom) else
                     [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if name == "flows.cli" or name.startswith("flows.cli."):
                    assert path.name != "common.py" and name == "flows.cli.common", f"{path.name} imports {name}"
                assert not (isinstance(node, ast.ImportFrom) and name == "flows" and
                            any(a.name == "cli" for a in node.names)), f"{path.name} imports flows.cli"
