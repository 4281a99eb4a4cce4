"""Every validation rule: what it rejects, the reason it gives, and that nothing is lost."""
from __future__ import annotations

import pandas as pd
import pytest

from telemetry.sources.files import read_file
from telemetry.validation import UnusableBatchError, parse_timestamps, validate_telemetry

NOW = pd.Timestamp("2026-11-20T12:00:00Z")
GOOD = [
    ("2026-11-20T10:00:00Z", "payment", "cpu_pct", "41.5"),
    ("2026-11-20T10:01:00Z", "payment", "cpu_pct", "42"),
    ("2026-11-20T10:02:00Z", "payment", "cpu_pct", "43"),
    ("2026-11-20T10:00:00Z", "payment", "request_rate", "120"),
    ("2026-11-20T10:01:00Z", "payment", "request_rate", "121"),
    ("2026-11-20T10:02:00Z", "payment", "request_rate", "119"),
]


def _csv(tmp_path, rows, name="batch.csv"):
    path = tmp_path / name
    lines = ["timestamp,service,metric,value"] + [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return read_file(path)


def _validate(raw, **kw):
    kw.setdefault("now", NOW)
    kw.setdefault("max_quarantine_share", 0.9)
    return validate_telemetry(raw, **kw)


def test_clean_batch_passes_every_rule(tmp_path):
    res = _validate(_csv(tmp_path, GOOD))
    assert res.rows_clean == 6 and res.rows_quarantined == 0
    assert {r.rule for r in res.rules} >= {"timestamp", "service", "metric", "value", "range", "future", "duplicate",
                                           "freshness", "line"}
    assert all(r.passed for r in res.rules)
    assert str(res.clean["timestamp"].dt.tz) == "UTC"
    assert res.clean["value"].dtype == "float64"


@pytest.mark.parametrize("row, rule, words", [
    (("yesterday-ish", "payment", "cpu_pct", "40"), "timestamp", "'yesterday-ish' is not a time"),
    (("", "payment", "cpu_pct", "40"), "timestamp", "timestamp is missing"),
    (("2026-11-20T10:03:00Z", "payment", "cpu_pct", "abc"), "value", "'abc' of cpu_pct is not a number"),
    (("2026-11-20T10:03:00Z", "payment", "cpu_pct", ""), "value", "value of cpu_pct is missing"),
    (("2026-11-20T10:03:00Z", "payment", "cpu_pct", "inf"), "value", "infinite"),
    (("2026-11-20T10:03:00Z", "payment", "request_rate", "-5"), "range", "-5 of request_rate is out of range (expected >= 0)"),
    (("2026-11-20T10:03:00Z", "payment", "cpu_pct", "140"), "range", "between 0 and 100"),
    (("2026-11-20T10:03:00Z", "payment", "error_rate", "1.5"), "range", "between 0 and 1"),
    (("2026-11-20T10:03:00Z", "", "cpu_pct", "40"), "service", "service is missing"),
    (("2026-11-20T10:03:00Z", "pay ment!", "cpu_pct", "40"), "service", "not a valid name"),
    (("2026-11-20T10:03:00Z", "payment", "9cpu", "40"), "metric", "not a valid name"),
    (("2026-11-21T10:03:00Z", "payment", "cpu_pct", "40"), "future", "is in the future"),
])
def test_each_rule_quarantines_with_a_reason(tmp_path, row, rule, words):
    res = _validate(_csv(tmp_path, GOOD + [row]))
    assert res.rows_clean == 6
    assert res.rows_quarantined == 1
    q = res.quarantine.iloc[0]
    assert q["rules"] == rule
    assert words in q["reason"]
    assert q["source_row"] == 7 and q["source"].endswith("batch.csv")
    outcome = next(r for r in res.rules if r.rule == rule)
    assert outcome.failed == 1 and words in outcome.example


def test_duplicates_keep_the_first_and_name_it(tmp_path):
    res = _validate(_csv(tmp_path, GOOD + [GOOD[1], ("2026-11-20T10:01:00Z", "payment", "cpu_pct", "99")]))
    assert res.rows_clean == 6
    assert list(res.quarantine["source_row"]) == [7, 8]
    assert (res.quarantine["rules"] == "duplicate").all()
    assert res.quarantine["reason"].str.contains("duplicate of row 2").all()
    kept = res.clean[(res.clean["metric"] == "cpu_pct") & (res.clean["timestamp"] == "2026-11-20T10:01:00Z")]
    assert kept["value"].tolist() == [42.0]


def test_a_bad_row_does_not_shadow_a_good_duplicate(tmp_path):
    bad_first = ("2026-11-20T10:03:00Z", "payment", "cpu_pct", "-1")
    good_second = ("2026-11-20T10:03:00Z", "payment", "cpu_pct", "44")
    res = _validate(_csv(tmp_path, GOOD + [bad_first, good_second]))
    assert res.rows_clean == 7 and res.rows_quarantined == 1
    assert res.quarantine.iloc[0]["rules"] == "range"


def test_several_broken_rules_on_one_row_are_all_named(tmp_path):
    res = _validate(_csv(tmp_path, GOOD + [("nonsense", "", "cpu_pct", "x")]))
    assert set(res.quarantine.iloc[0]["rules"].split(",")) == {"timestamp", "service", "value"}
    assert res.reasons() == {"timestamp": 1, "service": 1, "value": 1}


def test_freshness_warns_or_fails(tmp_path):
    raw = _csv(tmp_path, GOOD)
    later = NOW + pd.Timedelta(hours=72)
    res = _validate(raw, now=later, freshness_hours=48)
    assert res.stale and "stale data" in res.warnings[0] and res.rows_clean == 6
    assert next(r for r in res.rules if r.rule == "freshness").failed == 1
    with pytest.raises(UnusableBatchError, match=r"batch.csv: stale data: the newest row is 74.0 h old.*on_stale is .fail."):
        _validate(raw, now=later, freshness_hours=48, on_stale="fail")
    assert not _validate(raw, now=later, freshness_hours=None).stale


def test_unusable_batch_names_the_file_and_first_problems(tmp_path):
    rows = GOOD[:1] + [("bad", "payment", "cpu_pct", "1")] * 5
    raw = _csv(tmp_path, rows, name="mostly-bad.csv")
    with pytest.raises(UnusableBatchError) as info:
        validate_telemetry(raw, now=NOW, max_quarantine_share=0.5)
    msg = str(info.value)
    assert "mostly-bad.csv" in msg and "5 of 6 rows rejected" in msg and "row 2: timestamp 'bad'" in msg
    assert info.value.result.rows_quarantined == 5  # the caller can still keep the quarantine


def test_malformed_csv_line_is_quarantined(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_text("timestamp,service,metric,value\n" + "\n".join(",".join(r) for r in GOOD)
                    + "\n2026-11-20T10:05:00Z,payment,cpu_pct,4,2\n")
    res = _validate(read_file(path))
    assert res.rows_quarantined == 1
    assert "malformed line (line 8: expected 4 fields, found 5)" in res.quarantine.iloc[0]["reason"]


def test_timestamp_formats():
    raw = pd.Series(["2026-11-20T10:00:00Z", "2026-11-20 10:00:00", "2026-11-20T11:00:00+01:00",
                     "1795168800", "1795168800000", "20/11/2026 10:00", "not a time", ""])
    ts = parse_timestamps(raw)
    expected = pd.Timestamp("2026-11-20T10:00:00Z")
    assert (ts.iloc[:3] == expected).all()
    assert ts.iloc[3] == pd.Timestamp(1795168800, unit="s", tz="UTC")
    assert ts.iloc[4] == ts.iloc[3]
    assert ts.iloc[5] == expected  # day-first text is still parsed, per row
    assert ts.iloc[6:].isna().all()


def test_user_metrics_get_sensible_ranges(tmp_path):
    rows = [("2026-11-20T10:00:00Z", "svc", "disk_used_pct", "101"),
            ("2026-11-20T10:00:00Z", "svc", "http_requests_total", "-1"),
            ("2026-11-20T10:00:00Z", "svc", "temperature", "-40"),
            ("2026-11-20T10:00:00Z", "svc", "gc_pause_ms", "12")]
    res = _validate(_csv(tmp_path, rows))
    assert set(res.quarantine["metric"]) == {"disk_used_pct", "http_requests_total"}
    assert set(res.clean["metric"]) == {"temperature", "gc_pause_ms"}


@pytest.mark.parametrize(("values", "expected"), [
    # dotted dates put the day first: per row, dateutil read 01.03 as January 3 and 13.03 as March 13
    (["01.03.2024 00:00", "02.03.2024 00:00", "13.03.2024 00:00"], ["2024-03-01", "2024-03-02", "2024-03-13"]),
    # slashes: a first part over 12 anywhere in the column makes the whole column day-first
    (["03/01/2024 10:00", "13/01/2024 10:00"], ["2024-01-03 10:00", "2024-01-13 10:00"]),
    # ... and with none over 12, the order that puts the rows in the shorter span of time
    (["03/01/2024 10:00", "03/02/2024 10:00"], ["2024-03-01 10:00", "2024-03-02 10:00"]),
    (["01/01/2024 00:00", "02/01/2024 00:00", "03/01/2024 00:00"], ["2024-01-01", "2024-01-02", "2024-01-03"]),
])
def test_day_and_month_are_read_in_one_order_for_the_whole_column(values, expected):
    ts = parse_timestamps(pd.Series(values))
    assert ts.tolist() == [pd.Timestamp(e, tz="UTC") for e in expected]


def test_dates_that_read_both_ways_are_named_with_the_order_chosen():
    from telemetry.validation import ambiguous_dates

    assert ambiguous_dates(pd.Series(["01/01/2024 00:00", "02/01/2024 00:00"])) == "day first"
    assert ambiguous_dates(pd.Series(["01/01/2024 00:00", "01/02/2024 00:00"])) == "month first"
    assert ambiguous_dates(pd.Series(["13/01/2024 00:00", "01/01/2024 00:00"])) is None  # not ambiguous
    assert ambiguous_dates(pd.Series(["2024-01-02T00:00Z"])) is None
    assert ambiguous_dates(pd.Series(["01-01-2024 00:00", "02-01-2024 00:00"])) == "day first"  # dashes read alike


def test_a_label_column_beside_the_values_is_not_ingested_and_the_batch_says_so(tmp_path):
    """An exported benchmark carries its labels: ingested as a metric, they would be the detectors' input."""
    p = tmp_path / "labelled.csv"
    p.write_text("timestamp,cpu,is_anomaly\n2026-11-20T10:00:00Z,41,0\n2026-11-20T10:01:00Z,97,1\n")
    result = validate_telemetry(read_file(p, default_service="web"), now=pd.Timestamp("2026-11-20T11:00Z"))
    assert set(result.clean["metric"]) == {"cpu"} and result.rows_quarantined == 0
    assert any("is_anomaly look like anomaly labels" in w and "--value-col" in w for w in result.warnings)
    named = read_file(p, default_service="web", value_cols=["cpu", "is_anomaly"])
    assert set(named["metric"]) == {"cpu", "is_anomaly"} and "label_columns" not in named.attrs
