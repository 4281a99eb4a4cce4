"""Past incidents from a pager into the lake: each format maps onto the incident schema, bad records are
quarantined with a reason each, a re-import changes nothing, a file that is not incidents is refused by
name, and the lake's incidents become knowledge-base documents."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from telemetry.schema import INCIDENT_COLUMNS
from telemetry.sources.incidents import (
    IncidentFileError,
    load_incidents,
    normalise_severity,
    parse_time,
    read_incidents,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "incidents"
NOW = pd.Timestamp("2026-11-20T00:00:00Z")


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text).tz_convert("UTC") if pd.Timestamp(text).tzinfo else pd.Timestamp(text, tz="UTC")


def by_id(frame: pd.DataFrame) -> dict[str, dict]:
    return {r["incident_id"]: r for r in frame.to_dict("records")}


def test_loose_csv_headers_map_onto_the_schema_and_bad_rows_are_quarantined():
    got = load_incidents(DATA / "pager-loose.csv", now=NOW)
    assert got.fmt == "csv" and got.rows_in == 7
    assert list(got.clean.columns) == INCIDENT_COLUMNS
    assert str(got.clean["start"].dtype) == "datetime64[ns, UTC]"
    rows = by_id(got.clean)
    assert len(rows) == 3
    ops = rows["OPS-101"]  # Ticket, Started At, Resolved_At, Component, Category, Priority, Title, Outage At, Fix
    assert (ops["start"], ops["end"], ops["failed_at"]) == (
        ts("2026-10-03T14:05Z"), ts("2026-10-03T15:10Z"), ts("2026-10-03T14:20Z"))  # naive times are UTC
    assert (ops["root_cause_service"], list(ops["affected_services"]), ops["kind"], ops["severity"]) == (
        "payment", ["payment"], "connection_pool_exhaustion", "critical")
    assert ops["summary"] == "Payment pool exhausted, checkout timing out"
    assert ops["resolution"] == "Raised the pool size to 200" and ops["dataset"] == "incidents-pager-loose"
    epoch = rows["OPS-102"]  # epoch seconds start, epoch milliseconds end; no failure time
    assert epoch["start"] == pd.Timestamp(1759505400, unit="s", tz="UTC")
    assert epoch["end"] - epoch["start"] == pd.Timedelta(hours=1)
    assert pd.isna(epoch["failed_at"]) and epoch["severity"] == "high"
    [hashed] = [r for i, r in rows.items() if i.startswith("INC-")]  # no id in the file: a stable hash
    assert hashed["start"] == ts("2026-10-05T07:00Z")  # +02:00 converted to UTC
    assert hashed["end"] == hashed["start"] + pd.Timedelta(minutes=60) and "Still open" in hashed["resolution"]
    assert got.open_incidents == [hashed["incident_id"]]
    assert by_id(load_incidents(DATA / "pager-loose.csv", now=NOW).clean).keys() == rows.keys()

    q = got.quarantine.set_index("source_row")
    assert list(q.index) == [4, 5, 6, 7] and got.reasons() == {"duplicate": 1, "order": 1, "start": 2}
    assert "row 4 (OPS-104): field `start`: 'yesterday-ish' is not a time" in q.loc[4, "reason"]
    assert "ISO 8601" in q.loc[4, "reason"] and "pager-loose.csv" in q.loc[4, "reason"]
    assert "`end` 2026-10-07T09:00:00+00:00 is before `start`" in q.loc[5, "reason"]
    assert q.loc[6, "rule"] == "start" and "no start time" in q.loc[6, "reason"]
    assert "repeats row 1" in q.loc[7, "reason"]
    assert json.loads(q.loc[5, "raw"])["ticket"] == "OPS-105"  # the record itself travels with its reason


def test_json_array_and_json_lines():
    clean, quarantine = read_incidents(DATA / "incidents.json", now=NOW, open_minutes=30, dataset="team-a")
    rows = by_id(clean)
    assert set(rows) == {"INC-7", "INC-8"} and set(clean["dataset"]) == {"team-a"}
    disk = rows["INC-7"]
    assert list(disk["affected_services"]) == ["inventory", "checkout"] and disk["kind"] == "disk_fill"
    assert disk["failed_at"] == ts("2026-10-10T08:30Z") and disk["severity"] == "high"
    assert disk["summary"] == "Inventory volume full, writes failed"
    slow = rows["INC-8"]  # status open, epoch ms start: end = start + open_minutes
    assert slow["start"] == pd.Timestamp(1760090400000, unit="ms", tz="UTC")
    assert slow["end"] - slow["start"] == pd.Timedelta(minutes=30) and slow["severity"] == "medium"
    assert quarantine["rule"].tolist() == ["start", "record"]
    assert "expected an object of fields, got str" in quarantine["reason"].iloc[1]

    lines = load_incidents(DATA / "incidents.jsonl", now=NOW)
    assert lines.fmt == "json" and lines.rows_in == 3 and len(lines.clean) == 2
    assert lines.quarantine["source_row"].tolist() == [2]
    assert "line 2: not valid JSON" in lines.quarantine["reason"].iloc[0]
    assert lines.clean["severity"].tolist() == ["critical", ""]


def test_pagerduty_api_json():
    got = load_incidents(DATA / "pagerduty.json", now=NOW)
    assert got.fmt == "pagerduty-json" and got.rows_in == 4
    rows = by_id(got.clean)
    fire = rows["PT4KHLK"]
    assert (fire["start"], fire["end"]) == (ts("2015-10-06T21:30:42Z"), ts("2015-10-06T21:38:23Z"))
    assert (fire["root_cause_service"], fire["severity"], fire["summary"]) == (
        "My Mail Service", "high", "The server is on fire.")  # priority P2 wins over urgency high
    slo = rows["Q1R2S3T"]  # resolved, resolved_at null: the last status change ended it
    assert slo["end"] == ts("2015-10-07T10:42Z") and slo["severity"] == "low"
    assert slo["summary"] == "Checkout latency above SLO; p99 over 2 s for 10 minutes"
    ack = rows["Q9OPEN1"]  # acknowledged: still open
    assert ack["end"] == ack["start"] + pd.Timedelta(hours=1) and got.open_incidents == ["Q9OPEN1"]
    assert got.quarantine["source_row"].tolist() == [4]
    assert "(QBADTIME): field `start`: '06/10/2015 25:99' is not a time" in got.quarantine["reason"].iloc[0]


def test_pagerduty_csv_export():
    got = load_incidents(DATA / "pagerduty.csv", now=NOW)
    assert got.fmt == "pagerduty-csv"
    rows = by_id(got.clean)
    assert set(rows) == {"PX1AB2C", "PX1AB2D", "PX1AB2E"}
    pay = rows["PX1AB2C"]
    assert (pay["start"], pay["end"]) == (ts("2026-09-01T17:00Z"), ts("2026-09-01T17:35Z"))  # -07:00 -> UTC
    assert (pay["root_cause_service"], pay["severity"], pay["summary"]) == (
        "payment", "critical", "[FIRING:1] PaymentErrors payment")
    assert rows["PX1AB2D"]["severity"] == "low" and got.open_incidents == ["PX1AB2E"]
    assert got.reasons() == {"order": 1} and got.quarantine["source_row"].tolist() == [4]


def test_alertmanager_api_and_webhook():
    api = load_incidents(DATA / "alertmanager-alerts.json", now=NOW, open_minutes=45)
    assert api.fmt == "alertmanager" and api.quarantine.empty
    rows = by_id(api.clean)
    pay = rows["AM-8a3f0c1d2e4b5a69-20261102100000"]
    assert (pay["root_cause_service"], pay["kind"], pay["severity"]) == ("payment", "PaymentErrorRate", "critical")
    assert pay["summary"] == "High error rate on payment; 5xx ratio above 5% for 10m"
    assert pay["end"] == ts("2026-11-02T10:45Z")  # still active: start + open_minutes, not the projected endsAt
    node = rows["AM-1b2c3d4e5f607182-20261102110000"]
    assert node["root_cause_service"] == "node-exporter" and node["severity"] == "medium"  # job label, warning

    hook = load_incidents(DATA / "alertmanager-webhook.json", now=NOW)
    assert hook.fmt == "alertmanager" and hook.rows_in == 3
    rows = {r["root_cause_service"]: r for r in hook.clean.to_dict("records")}
    assert rows["cart"]["end"] == ts("2026-11-03T09:25Z") and rows["cart"]["severity"] == "medium"
    eu = rows["cart-eu"]  # firing, endsAt is Go's zero time
    assert eu["end"] == ts("2026-11-03T10:10Z") and eu["severity"] == "critical"
    assert eu["summary"] == "Cart EU p99 latency above 800 ms"
    assert hook.reasons() == {"start": 1} and "no start time" in hook.quarantine["reason"].iloc[0]


@pytest.mark.parametrize(("text", "name", "says"), [
    ("", "empty.csv", "the file is empty"),
    ("when,what\nmonday,coffee\n", "notes.csv", "no start time column"),
    ("42", "answer.json", "no incidents in the file"),
    ("{\"alerts\": []}", "quiet.json", "no incidents in the file (read as alertmanager)"),
    ("{\"incidents\": [", "cut.json", "not valid JSON at line 1"),
    ("[{\"title\": \"no times at all\"}]", "untimed.json", "no start time column"),
])
def test_a_file_that_is_not_incidents_is_refused_by_name(tmp_path, text, name, says):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(IncidentFileError) as info:
        load_incidents(path, now=NOW)
    message = str(info.value)
    assert message.startswith(str(path)) and says in message
    assert "expected" in message and "PagerDuty" in message


def test_times_and_severities():
    assert parse_time("1759505400", "x") == pd.Timestamp("2025-10-03T15:30:00Z")
    assert parse_time(1759505400000, "x") == parse_time("2025-10-03 15:30", "x")
    assert parse_time("0001-01-01T00:00:00Z", "x") is None and parse_time("", "x") is None
    for bad in ("now", "soon", "-5", "1e400"):
        with pytest.raises(ValueError, match="is not a time"):
            parse_time(bad, "f.csv: row 3: field `start`")
    with pytest.raises(ValueError, match="outside 1990..2200"):
        parse_time("1970-01-02T00:00:00Z", "x")
    assert [normalise_severity(v) for v in ("P1", "sev 2", "Warning", "info", {"summary": "P3"}, "Blocker")] == [
        "critical", "high", "medium", "low", "medium", "blocker"]


def test_ingest_is_idempotent_and_keeps_other_histories(home, small_fleet):
    from configs.settings import load_settings
    from rag.loaders.incidents import lake_incidents
    from telemetry import lake
    from telemetry.ingest import ingest_incidents

    settings = load_settings()
    sim = small_fleet.incidents.assign(dataset=small_fleet.dataset)
    lake.write_table("incidents", sim, settings.lake_dir)
    first = ingest_incidents(DATA / "pager-loose.csv", settings, now=NOW)
    assert (first.rows_in, first.rows_stored, first.rows_new_in_lake, first.rows_quarantined) == (7, 3, 3, 4)
    assert first.format == "csv" and first.dataset == "incidents-pager-loose" and first.open_incidents == 1
    q = pd.read_parquet(first.quarantine_path)
    assert Path(first.quarantine_path).is_relative_to(settings.quarantine_dir)
    assert q["source_row"].tolist() == [4, 5, 6, 7] and q["reason"].str.contains("row").all()
    table = lake.read_table("incidents", settings.lake_dir)
    assert len(table) == len(sim) + 3

    again = ingest_incidents(DATA / "pager-loose.csv", settings, now=NOW)
    assert (again.rows_new_in_lake, again.rows_replaced_in_lake) == (0, 3)
    after = lake.read_table("incidents", settings.lake_dir)
    pd.testing.assert_frame_equal(after.drop(columns="affected_services"), table.drop(columns="affected_services"))
    assert [list(a) for a in after["affected_services"]] == [list(a) for a in table["affected_services"]]
    mine = lake.read_table("incidents", settings.lake_dir, dataset="incidents-pager-loose")
    assert sorted(mine["incident_id"])[1:] == ["OPS-101", "OPS-102"] and len(mine) == 3

    # The knowledge base's reader of the lake makes a document of every incident, imported or simulated.
    report = lake_incidents(settings.lake_dir)
    assert not report.skipped and len(report.documents) == len(sim) + 3
    doc = next(d for d in report.documents if d.metadata["incident_id"] == "OPS-102")
    assert "Cart pods OOM-killed every hour" in doc.text and doc.services == ("cart",)
    assert doc.metadata["severity"] == "high" and doc.created == "2025-10-03T15:30:00Z"


def test_ingest_of_an_all_bad_file_quarantines_everything_and_refuses(home, tmp_path):
    from configs.settings import load_settings
    from telemetry import lake
    from telemetry.ingest import ingest_incidents

    settings = load_settings()
    path = tmp_path / "broken.csv"
    path.write_text("start,end,service,summary\nsoon,later,a,x\n2026-01-02,2026-01-01,b,y\n")
    with pytest.raises(IncidentFileError) as info:
        ingest_incidents(path, settings, now=NOW)
    message = str(info.value)
    assert "broken.csv: none of its 2 records could be used" in message and "order: 1, start: 1" in message
    qfile = message.rsplit(" in ", 1)[1]
    assert pd.read_parquet(qfile)["source_row"].tolist() == [1, 2]
    assert lake.read_table("incidents", settings.lake_dir).empty


def test_a_start_in_the_future_or_a_failure_outside_the_incident_is_quarantined():
    from telemetry.sources.incidents import map_records

    records = [
        {"start": "2026-11-22T00:00:00Z", "summary": "scheduled maintenance, not an incident yet"},
        {"start": "2026-11-01T00:00:00Z", "end": "2026-11-01T01:00:00Z", "failed_at": "2026-11-01T02:00:00Z"},
        {"start": "2026-11-01T00:00:00Z", "end": "2026-11-01T01:00:00Z", "outage_at": "2026-10-31T23:00:00Z"},
        {"start": "2026-11-21T00:00:00Z", "summary": "within a day of now: kept (clock skew)"},
    ]
    got = map_records(records, "json", "hand.json", dataset="d", now=NOW)
    assert got.quarantine["rule"].tolist() == ["start", "failed_at", "failed_at"]
    assert "is in the future" in got.quarantine["reason"].iloc[0]
    assert "after `end`" in got.quarantine["reason"].iloc[1] and "before `start`" in got.quarantine["reason"].iloc[2]
    assert got.clean["summary"].tolist() == ["within a day of now: kept (clock skew)"]
