"""The file source: both layouts, header variants, quoting, separators, malformed lines."""
from __future__ import annotations

import pytest

from telemetry.sources.files import SchemaError, discover, read_file


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_long_form_with_canonical_headers(tmp_path):
    p = _write(tmp_path, "long.csv", "timestamp,service,metric,value\n"
               "2026-11-20T10:00:00Z,payment,cpu_pct,41.5\n2026-11-20T10:01:00Z,payment,cpu_pct,43\n")
    raw = read_file(p)
    assert list(raw["service"]) == ["payment", "payment"]
    assert list(raw["value"]) == ["41.5", "43"]  # text until validation
    assert list(raw["source_row"]) == [1, 2]
    assert (raw["source"] == str(p)).all()


@pytest.mark.parametrize("header", [
    '"Timestamp","Service","Metric","Value"',
    "TIME;SVC;METRIC_NAME;VAL",
    "\ufeff ts , App , Name , Reading ",
    "@timestamp\tjob\t__name__\tvalue",
])
def test_long_form_header_variants(tmp_path, header):
    sep = ";" if ";" in header else "\t" if "\t" in header else ","
    rows = sep.join(['"2026-11-20 10:00:00"', "cart", "memory_pct", '"55.5"'])
    p = _write(tmp_path, "variant.csv", header + "\n" + rows + "\n")
    raw = read_file(p)
    assert raw.loc[0, "service"] == "cart"
    assert raw.loc[0, "metric"] == "memory_pct"
    assert str(raw.loc[0, "value"]).strip('"') == "55.5"


def test_wide_form_with_and_without_service_column(tmp_path):
    p = _write(tmp_path, "orders-db.csv", "Time,CPU_PCT,Latency P99 MS\n2026-11-20T10:00Z,12.5,80\n2026-11-20T10:01Z,13,82\n")
    raw = read_file(p)
    assert set(raw["metric"]) == {"cpu_pct", "latency_p99_ms"}
    assert set(raw["service"]) == {"orders-db"}  # from the file name
    assert len(raw) == 4 and set(raw["source_row"]) == {1, 2}

    p2 = _write(tmp_path, "fleet.csv", "timestamp,service,cpu_pct\n2026-11-20T10:00Z,a,1\n2026-11-20T10:00Z,b,2\n")
    raw2 = read_file(p2)
    assert list(raw2["service"]) == ["a", "b"]


def test_parquet_long_form(tmp_path, small_fleet):
    p = tmp_path / "t.parquet"
    small_fleet.telemetry.head(500).to_parquet(p)
    raw = read_file(p)
    assert len(raw) == 500
    assert raw["timestamp"].dtype.kind == "M"


def test_malformed_lines_are_kept_and_flagged(tmp_path):
    p = _write(tmp_path, "broken.csv", "timestamp,service,metric,value\n"
               "2026-11-20T10:00:00Z,payment,cpu_pct,41\n2026-11-20T10:01:00Z,payment,cpu_pct,42,extra\n"
               "2026-11-20T10:02:00Z,payment,cpu_pct,43\n")
    raw = read_file(p)
    assert len(raw) == 3
    assert raw["problem"].isna().tolist() == [True, False, True]
    assert "line 3: expected 4 fields, found 5" in raw.loc[1, "problem"]


def test_explicit_columns_and_clear_schema_errors(tmp_path):
    p = _write(tmp_path, "odd.csv", "when,reading\n2026-11-20T10:00Z,1\n")
    with pytest.raises(SchemaError, match="no timestamp column.*when"):
        read_file(p)
    raw = read_file(p, time_col="WHEN", default_service="svc")
    assert raw.loc[0, "metric"] == "reading" and raw.loc[0, "service"] == "svc"
    with pytest.raises(SchemaError, match="not found"):
        read_file(p, time_col="nope")
    with pytest.raises(SchemaError, match="empty"):
        read_file(_write(tmp_path, "empty.csv", ""))
    with pytest.raises(SchemaError, match="unsupported file type"):
        read_file(_write(tmp_path, "x.xml", "<a/>"))
    with pytest.raises(SchemaError, match="not a Prometheus answer"):
        read_file(_write(tmp_path, "x.json", "{}"))


def test_discover_folder(tmp_path):
    _write(tmp_path, "a.csv", "timestamp,value\n")
    _write(tmp_path, "incidents.parquet", "")
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub", "b.csv", "timestamp,value\n")
    assert [p.name for p in discover(tmp_path)] == ["a.csv", "b.csv"]
    with pytest.raises(FileNotFoundError):
        discover(tmp_path / "missing")


def test_a_saved_prometheus_range_query_is_read_as_long_form(tmp_path):
    """`curl .../api/v1/query_range?... > cpu.json`: one metric per __name__, the labels that tell the series
    apart as the service, Prometheus' NaN a gap at validation."""
    import json

    answer = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"__name__": "cpu", "instance": "a:9100", "job": "node"},
         "values": [[1795168800, "0.5"], [1795168860, "NaN"]]},
        {"metric": {"__name__": "cpu", "instance": "b:9100", "job": "node"},
         "values": [[1795168800.5, "0.7"]]}]}}
    raw = read_file(_write(tmp_path, "cpu.json", json.dumps(answer)))
    assert list(raw["service"]) == ["a:9100"] * 2 + ["b:9100"]
    assert list(raw["metric"]) == ["cpu"] * 3 and list(raw["value"]) == ["0.5", "NaN", "0.7"]
    assert list(raw["source_row"]) == [1, 2, 3]
    # the data object alone, or the result list, read the same; one series takes the default service
    alone = read_file(_write(tmp_path, "one.json", json.dumps(answer["data"]["result"][:1])), default_service="svc")
    assert list(alone["service"]) == ["svc", "svc"]
    for body, words in [({"status": "success", "data": {"resultType": "vector", "result": []}}, "query_range"),
                        ({"status": "error", "errorType": "bad_data", "error": "parse error"}, "parse error"),
                        ({"data": {"resultType": "matrix", "result": [{"metric": {}}]}}, r"result\[0\]")]:
        with pytest.raises(SchemaError, match=words):
            read_file(_write(tmp_path, "bad.json", json.dumps(body)))
    with pytest.raises(SchemaError, match="not JSON"):
        read_file(_write(tmp_path, "broken.json", "{"))


def test_numbers_with_one_unit_or_a_decimal_comma_are_read_and_the_unit_kept_in_the_name(tmp_path):
    units = read_file(_write(tmp_path, "grafana.csv", "Time,latency,cpu\n2026-11-20 10:00:00,49.3 ms,12.5%\n"
                             "2026-11-20 10:01:00,1021 ms,\n"))
    assert sorted(units["metric"].unique()) == ["cpu_percent", "latency_ms"]
    assert units.loc[units["metric"] == "latency_ms", "value"].tolist() == ["49.3", "1021"]
    mixed = read_file(_write(tmp_path, "mixed.csv", "Time,latency\n2026-11-20 10:00:00,980 ms\n"
                             "2026-11-20 10:01:00,1.2 s\n"))
    assert mixed["metric"].unique().tolist() == ["latency"]  # not scaled by a guess: refused later, by name
    assert mixed["value"].tolist() == ["980 ms", "1.2 s"]
    europe = read_file(_write(tmp_path, "eu.csv", "time;load\n01.03.2024 00:00;50,12\n01.03.2024 00:01;1.250,5\n"))
    assert europe["value"].tolist() == ["50.12", "1250.5"]
    zeros_first = read_file(_write(tmp_path, "late.csv", "time;err\n" + "01.03.2024 00:00;0\n" * 250
                                   + "01.03.2024 00:01;0,5\n"))
    assert zeros_first["value"].iloc[-1] == "0.5"  # decimal commas after 250 rows of whole numbers
    long = read_file(_write(tmp_path, "long.csv", "timestamp,service,metric,value\n2026-11-20 10:00:00,api,5xx,3\n"))
    assert long["metric"].tolist() == ["5xx"]  # a name is not a number with a unit
    # with commas between fields a comma in a quoted number is a thousands separator: left as text
    us = read_file(_write(tmp_path, "us.csv", 'time,load\n2026-11-20 10:00:00,"1,250"\n'))
    assert us["value"].tolist() == ["1,250"]


def test_grafana_columns_of_prometheus_series_become_metric_and_service(tmp_path):
    raw = read_file(_write(tmp_path, "panel.csv", '"Time","cpu{instance=""a:9100"", job=""node""}",'
                           '"cpu{instance=""b:9100"", job=""node""}"\n2026-11-20 10:00:00,0.5,0.7\n'))
    assert sorted(zip(raw["service"], raw["metric"], raw["value"])) == [("a:9100", "cpu", "0.5"),
                                                                        ("b:9100", "cpu", "0.7")]
    plain = read_file(_write(tmp_path, "plain.csv", "time,cpu,mem\n2026-11-20 10:00:00,1,2\n"), default_service="s")
    assert sorted(plain["metric"]) == ["cpu", "mem"] and set(plain["service"]) == {"s"}
