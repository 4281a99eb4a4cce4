"""`cerebro ingest --incidents FILE` as a user meets it: the summary, the quarantine, a second import that
changes nothing, a file that is not incidents (exit 2, no traceback), and the same import through the ingest
flow that a Prefect deployment runs."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app

DATA = Path(__file__).resolve().parents[1] / "data" / "incidents"
runner = CliRunner()


def test_import_prints_a_summary_and_a_second_import_changes_nothing(home):
    path = str(DATA / "pagerduty.csv")
    first = runner.invoke(app, ["ingest", "--incidents", path, "--json"])
    assert first.exit_code == 0, first.output
    doc = json.loads(first.stdout)["incidents"]
    assert (doc["format"], doc["rows_in"], doc["rows_stored"], doc["rows_new_in_lake"]) == ("pagerduty-csv", 4, 3, 3)
    assert doc["rows_quarantined"] == 1 and doc["reasons"] == {"order": 1} and doc["dataset"] == "incidents-pagerduty"
    q = pd.read_parquet(doc["quarantine_path"])
    assert q["source_row"].tolist() == [4] and "before `start`" in q["reason"].iloc[0]

    again = runner.invoke(app, ["ingest", "--incidents", path, "--open-minutes", "90"], terminal_width=300)
    assert again.exit_code == 0, again.output
    out = again.stdout
    assert "4 records read, 3 stored as dataset 'incidents-pagerduty' (0 new, 3 replaced), 1 quarantined" in out
    assert "1 still open in the file: stored with end = start + 90 min" in out
    assert "Quarantined (order: 1)" in out and "look at them: python -c" in out
    lake = pd.read_parquet(home / "lake" / "incidents.parquet")
    assert len(lake) == 3  # replaced, not added again
    auth = lake.set_index("incident_id").loc["PX1AB2E"]
    assert auth["end"] - auth["start"] == pd.Timedelta(minutes=90)  # the second import's rule replaced the first's

    other = runner.invoke(app, ["ingest", "--incidents", path, "--dataset", "pager-2026", "--json"])
    assert json.loads(other.stdout)["incidents"]["rows_new_in_lake"] == 3  # another history: kept apart
    assert len(pd.read_parquet(home / "lake" / "incidents.parquet")) == 6


@pytest.mark.parametrize(("content", "says"), [
    ("start,end,service,summary\nsoon,later,a,x\n", "none of its 1 records could be used"),
    ("when,what\nmonday,coffee\n", "no start time column"),
    ("{\"incidents\": [", "not valid JSON at line 1"),
])
def test_a_file_that_cannot_be_used_exits_2_naming_it(home, tmp_path, content, says):
    path = tmp_path / "pager.json"
    path.write_text(content)
    result = runner.invoke(app, ["ingest", "--incidents", str(path)], terminal_width=400)
    assert result.exit_code == 2, result.output
    assert f"error: {path}" in result.output and says in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)  # a clean exit, no crash
    assert not (home / "lake" / "incidents.parquet").exists()


def test_missing_file_and_nothing_to_do(home, tmp_path):
    missing = runner.invoke(app, ["ingest", "--incidents", str(tmp_path / "nope.json")], terminal_width=300)
    assert missing.exit_code == 2 and "nope.json: no such file" in missing.output
    nothing = runner.invoke(app, ["ingest"], terminal_width=300)
    assert nothing.exit_code == 2 and "give --source (telemetry), --incidents FILE" in nothing.output
    helped = runner.invoke(app, ["ingest", "--help"], terminal_width=200)
    assert "--incidents" in helped.output and "cerebro ingest --incidents" in helped.output


@pytest.mark.e2e
def test_the_ingest_flow_imports_incidents(prefect_server, home, tmp_path):
    from flows.ingest import ingest_flow
    from telemetry import lake
    from telemetry.sources.incidents import IncidentFileError

    summary = ingest_flow(incidents=str(DATA / "alertmanager-webhook.json"), dataset="am-hooks")
    assert summary["incidents"]["rows_stored"] == 2 and summary["incidents"]["reasons"] == {"start": 1}
    stored = lake.read_table("incidents", home / "lake", dataset="am-hooks")
    assert sorted(stored["root_cause_service"]) == ["cart", "cart-eu"]
    # Both options in one command: the incidents, then the telemetry through the same flow.
    now = pd.Timestamp.now(tz="UTC").floor("min")
    telemetry = tmp_path / "payment.csv"
    telemetry.write_text("timestamp,service,metric,value\n" + "".join(
        f"{(now - pd.Timedelta(minutes=m)).isoformat()},payment,cpu_pct,{40 + m}\n" for m in range(5, 0, -1)))
    both = runner.invoke(app, ["ingest", "--source", str(telemetry), "--incidents", str(DATA / "pagerduty.json"),
                               "--json"])
    assert both.exit_code == 0, both.output
    doc = json.loads(both.stdout)
    assert doc["rows_clean"] == 5 and doc["incidents"]["format"] == "pagerduty-json"
    assert doc["incidents"]["rows_stored"] == 3

    notes = tmp_path / "notes.csv"
    notes.write_text("when,what\nmonday,coffee\n")
    with pytest.raises(IncidentFileError, match="no start time column"):
        ingest_flow(incidents=str(notes))
