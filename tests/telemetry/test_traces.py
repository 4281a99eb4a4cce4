"""Traces, the third signal: simulated spans that agree with the metrics, the lake, the queries, OTLP files."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from telemetry import lake
from telemetry.dataset import read_side_tables, write_simulation
from telemetry.ingest import ingest_side_tables
from telemetry.schema import SPAN_COLUMNS, spans_frame
from telemetry.simulator import FleetSimulator
from telemetry.traces import critical_path, failing_spans, slowest_spans

END = "2026-11-20T00:00Z"


@pytest.fixture(scope="module")
def fleet():
    # Seed 2 over two days holds a slow dependency and an error burst, both at payment, which only
    # checkout calls (8 % of requests): enough traces a minute that its spans are many in each incident.
    return FleetSimulator(days=2, seed=2, end=END, incidents_per_day=4, traces_per_minute=6).run()


def _incident(result, kind):
    inc = result.incidents[result.incidents["kind"] == kind]
    assert len(inc), f"the fixture's seed no longer yields a {kind}"
    return inc.iloc[0]


def _during_and_before(spans, service, inc):
    s = spans[spans["service"] == service]
    during = s[(s["start"] >= inc["start"]) & (s["start"] < inc["end"])]
    before = s[(s["start"] >= inc["start"] - pd.Timedelta(hours=2)) & (s["start"] < inc["start"])]
    return during, before


def _digest(result) -> str:
    h = hashlib.sha256()
    for frame in (result.telemetry, result.events, result.incidents.astype({"affected_services": str}), result.logs):
        h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------- simulated spans


def test_schema_and_keys(fleet):
    t = fleet.traces
    assert list(t.columns) == SPAN_COLUMNS
    assert str(t["start"].dtype) == "datetime64[ns, UTC]"
    assert t["duration_ms"].dtype == "float64" and (t["duration_ms"] > 0).all()
    assert set(t["status"]) <= {"ok", "error"}
    assert (t["dataset"] == fleet.dataset).all()
    assert not t.duplicated(["dataset", "trace_id", "span_id"]).any()
    assert t["trace_id"].str.fullmatch(r"[0-9a-f]{32}").all() and t["span_id"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert set(t["service"]) <= set(fleet.topology.names)
    assert (t["start"] >= fleet.start).all() and (t["start"] < fleet.end).all()
    # a few traces a minute on average: a small table next to the metrics
    assert 4 < t["trace_id"].nunique() / (2 * 1440) < 8


def test_every_parent_exists_and_contains_its_children(fleet):
    t = fleet.traces
    roots = t[t["parent_span_id"].isna()]
    assert roots["trace_id"].is_unique and len(roots) == t["trace_id"].nunique()
    assert set(roots["service"]) <= {"frontend", "notification"}  # the services nobody calls
    kids = t[t["parent_span_id"].notna()]
    both = kids.merge(t, left_on=["trace_id", "parent_span_id"], right_on=["trace_id", "span_id"],
                      suffixes=("", "_parent"), how="left")
    assert both["service_parent"].notna().all(), "a parent span is missing from its trace"
    graph = fleet.topology.graph
    assert all(graph.has_edge(p, c) for p, c in zip(both["service_parent"], both["service"], strict=True))
    end = both["start"] + pd.to_timedelta(both["duration_ms"], unit="ms")
    parent_end = both["start_parent"] + pd.to_timedelta(both["duration_ms_parent"], unit="ms")
    assert (both["start"] >= both["start_parent"]).all()
    assert (end <= parent_end).all()
    assert (both["duration_ms"] <= both["duration_ms_parent"]).all()


def test_critical_path_of_simulated_traces(fleet):
    t = fleet.traces
    big = t.groupby("trace_id").size().sort_values().index[-20:]  # the largest traces: checkouts
    for trace_id in big:
        path = critical_path(t, trace_id)
        root = path[path["parent_span_id"].isna()].iloc[0]
        assert path["critical_ms"].sum() == pytest.approx(root["duration_ms"], abs=1e-3)
        assert (path["critical_ms"] >= 0).all()
        on_path = set(path["span_id"])
        # every span on the path but the root hangs from a span on the path, and lasts no longer than it
        for row in path[path["parent_span_id"].notna()].itertuples():
            assert row.parent_span_id in on_path
            assert row.duration_ms <= path.loc[path["span_id"] == row.parent_span_id, "duration_ms"].iloc[0]


def test_leaf_span_durations_agree_with_the_metrics(fleet):
    """A service that calls nobody spends its p50 in the metrics: the spans' median must be close to it."""
    tel = fleet.telemetry
    for service in ("database", "cache"):
        p50 = tel[(tel["service"] == service) & (tel["metric"] == "latency_p50_ms")]["value"].median()
        spans = fleet.traces[fleet.traces["service"] == service]["duration_ms"].median()
        assert 0.75 < spans / p50 < 1.33, service


def test_slow_dependency_lengthens_its_spans_and_its_callers(fleet):
    inc = _incident(fleet, "slow_dependency")
    root = inc["root_cause_service"]
    during, before = _during_and_before(fleet.traces, root, inc)
    assert len(during) >= 5 and len(before) >= 20
    assert during["duration_ms"].median() > 2.5 * before["duration_ms"].median()
    for caller in fleet.topology.callers(root):
        d, b = _during_and_before(fleet.traces, caller, inc)
        assert d["duration_ms"].median() > 1.3 * b["duration_ms"].median(), caller
    # up to the front door: the whole request is slower when it passed through the slow service
    through = fleet.traces[fleet.traces["trace_id"].isin(set(fleet.traces.loc[fleet.traces["service"] == root,
                                                                                  "trace_id"]))]
    d, b = _during_and_before(through[through["parent_span_id"].isna()], "frontend", inc)
    assert d["duration_ms"].median() > 1.5 * b["duration_ms"].median()
    top = slowest_spans(fleet.traces, service=root, start=inc["start"] - pd.Timedelta(hours=2), end=inc["end"], k=5)
    assert ((top["start"] >= inc["start"]) & (top["start"] < inc["end"])).all()


def test_error_burst_produces_error_spans(fleet):
    inc = _incident(fleet, "error_burst")
    root = inc["root_cause_service"]
    during, before = _during_and_before(fleet.traces, root, inc)
    share_during = (during["status"] == "error").mean()
    share_before = (before["status"] == "error").mean()
    assert share_during > 0.04 and share_during > 5 * share_before
    failing = failing_spans(fleet.traces, service=root, start=inc["start"], end=inc["end"])
    assert len(failing) == int((during["status"] == "error").sum())
    assert failing["start"].is_monotonic_increasing
    # callers fail with it: an error travels up the trace
    callers = fleet.traces[fleet.traces["span_id"].isin(set(failing["parent_span_id"]))]
    assert (callers["status"] == "error").any()


def test_traces_do_not_change_the_rest_of_the_simulation():
    kwargs = {"days": 0.5, "seed": 11, "end": END, "incidents_per_day": 4}
    off = FleetSimulator(**kwargs, traces_per_minute=0).run()
    on = FleetSimulator(**kwargs, traces_per_minute=3).run()
    assert off.traces.empty and list(off.traces.columns) == SPAN_COLUMNS
    assert len(on.traces) > 0
    assert _digest(on) == _digest(off)
    again = FleetSimulator(**kwargs, traces_per_minute=3).run()
    pd.testing.assert_frame_equal(on.traces, again.traces)  # traces are reproducible too


def test_dataset_folder_and_lake_round_trip(fleet, tmp_path):
    paths = write_simulation(fleet, tmp_path / "ds")
    assert paths["traces"].name == "traces.parquet"
    side = read_side_tables(tmp_path / "ds")
    pd.testing.assert_frame_equal(spans_frame(side["traces"]), fleet.traces)
    lake_dir = tmp_path / "lake"
    first = ingest_side_tables(tmp_path / "ds", lake_dir)
    assert first["traces"] == len(fleet.traces)
    stored = lake.read_table("traces", lake_dir)
    again = ingest_side_tables(tmp_path / "ds", lake_dir)
    assert again["traces"] == 0
    pd.testing.assert_frame_equal(lake.read_table("traces", lake_dir), stored)
    back = spans_frame(lake.read_table("traces", lake_dir, dataset=fleet.dataset))
    key = ["trace_id", "span_id"]
    pd.testing.assert_frame_equal(back.sort_values(key).reset_index(drop=True),
                                  fleet.traces.sort_values(key).reset_index(drop=True))


# ---------------------------------------------------------------- queries on a hand-built trace


def _hand_trace() -> pd.DataFrame:
    t0 = pd.Timestamp("2026-11-20T10:00:00Z")
    rows = [  # span, parent, service, start ms, end ms, status
        ("a", None, "frontend", 0, 100, "ok"),
        ("b", "a", "auth", 10, 40, "ok"),  # overlaps c, so it delays nothing
        ("c", "a", "checkout", 30, 90, "error"),
        ("d", "c", "payment", 35, 50, "ok"),
        ("e", "c", "inventory", 60, 80, "error"),
    ]
    return spans_frame(pd.DataFrame({
        "trace_id": "t1", "span_id": [r[0] for r in rows], "parent_span_id": [r[1] for r in rows],
        "service": [r[2] for r in rows], "operation": "op",
        "start": [t0 + pd.Timedelta(milliseconds=r[3]) for r in rows],
        "duration_ms": [float(r[4] - r[3]) for r in rows], "status": [r[5] for r in rows], "dataset": "hand",
    }))


def test_critical_path_on_a_hand_built_trace():
    path = critical_path(_hand_trace(), "t1")
    assert path["span_id"].tolist() == ["a", "c", "d", "e"]
    # a: 0-30 and 90-100; c: 30-35, 50-60, 80-90; d: 35-50; e: 60-80
    assert path["critical_ms"].tolist() == [40.0, 25.0, 15.0, 20.0]
    assert path["critical_ms"].sum() == 100.0
    with pytest.raises(KeyError):
        critical_path(_hand_trace(), "nope")


def test_slowest_and_failing_spans():
    spans = _hand_trace()
    t0 = pd.Timestamp("2026-11-20T10:00:00Z")
    assert slowest_spans(spans, k=2)["span_id"].tolist() == ["a", "c"]
    assert slowest_spans(spans, service="payment")["span_id"].tolist() == ["d"]
    assert slowest_spans(spans, start=t0 + pd.Timedelta(milliseconds=20), k=10)["span_id"].tolist() == ["c", "e", "d"]
    assert failing_spans(spans)["span_id"].tolist() == ["c", "e"]
    assert failing_spans(spans, end="2026-11-20T10:00:00.050").squeeze()["span_id"] == "c"
    assert np.array_equal(failing_spans(spans, service="auth").columns, spans.columns)


# ---------------------------------------------------------------- OTLP/JSON files

NS = 1_763_632_800_000_000_000  # 2025-11-20T10:00:00Z in nanoseconds
TRACE = "5b8efff798038103d269b633813fc60c"


def _otlp_span(span_id, parent="", name="op", start_ms=0, end_ms=10, code=0, trace=TRACE, **extra):
    span = {"traceId": trace, "spanId": span_id, "parentSpanId": parent, "name": name, "kind": 2,
            "startTimeUnixNano": str(NS + start_ms * 1_000_000), "endTimeUnixNano": str(NS + end_ms * 1_000_000),
            "status": {"code": code} if code else {}}
    span.update(extra)
    return span


def _otlp_doc(service, *spans):
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]} if service else {}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "lib"}, "spans": list(spans)}]}]}


def _b64(hex_id: str) -> str:
    import base64

    return base64.b64encode(bytes.fromhex(hex_id)).decode()


def _settings(home):
    from configs.settings import load_settings

    return load_settings()


def test_otlp_one_document_maps_onto_the_span_schema(home, tmp_path):
    import json

    from telemetry.ingest import ingest_traces

    doc = _otlp_doc("frontend", _otlp_span("EEE19B7EC3C1B174", name="GET /", end_ms=120))
    doc["resourceSpans"].append(_otlp_doc("checkout", _otlp_span("eee19b7ec3c1b175", "EEE19B7EC3C1B174",
                                                                 name="PlaceOrder", start_ms=5, end_ms=100,
                                                                 code=2))["resourceSpans"][0])
    path = tmp_path / "export.json"
    path.write_text(json.dumps(doc, indent=2))
    settings = _settings(home)
    report = ingest_traces(path, settings)
    assert (report.spans_in, report.spans_stored, report.spans_quarantined, report.traces) == (2, 2, 0, 1)
    assert report.dataset == "otlp-export" and report.services == ["checkout", "frontend"]
    spans = lake.read_table("traces", settings.lake_dir, dataset="otlp-export")
    assert list(spans.columns) == SPAN_COLUMNS
    root = spans[spans["service"] == "frontend"].iloc[0]
    child = spans[spans["service"] == "checkout"].iloc[0]
    assert root["trace_id"] == TRACE and root["span_id"] == "eee19b7ec3c1b174" and pd.isna(root["parent_span_id"])
    assert child["parent_span_id"] == "eee19b7ec3c1b174" and child["operation"] == "PlaceOrder"
    assert root["start"] == pd.Timestamp(NS, unit="ns", tz="UTC") and root["duration_ms"] == 120.0
    assert (root["status"], child["status"]) == ("ok", "error")
    assert critical_path(spans, TRACE)["span_id"].tolist() == ["eee19b7ec3c1b174", "eee19b7ec3c1b175"]
    again = ingest_traces(path, settings)  # the same file again: nothing new
    assert again.spans_new_in_lake == 0 and len(lake.read_table("traces", settings.lake_dir)) == 2


def test_otlp_json_lines_with_bad_spans_quarantined(home, tmp_path):
    import json

    from telemetry.ingest import ingest_traces

    lines = [
        _otlp_doc("payment", _otlp_span("00000000000000a1", end_ms=30), _otlp_span("00000000000000a2", "00000000000000a1",
                                                                                 start_ms=1, end_ms=20)),
        _otlp_doc("payment", _otlp_span("00000000000000a3", start_ms=50, end_ms=40),  # ends before it starts
                  _otlp_span("xyz"),  # not an id
                  _otlp_span("00000000000000a4", trace="0" * 32),  # the invalid all-zero trace id
                  _otlp_span("00000000000000a5", endTimeUnixNano=None)),
        _otlp_doc(None, _otlp_span("00000000000000a6")),  # no service.name
        # base64 ids, as a plain protobuf JSON mapping writes them
        _otlp_doc("cart", _otlp_span(_b64("00000000000000b7"), trace=_b64(TRACE), end_ms=5)),
    ]
    text = "\n".join(json.dumps(d) for d in lines) + "\n{not json\n"
    path = tmp_path / "collector.jsonl"
    path.write_text(text)
    settings = _settings(home)
    report = ingest_traces(path, settings, dataset="prod-traces")
    assert report.spans_in == 8 and report.spans_stored == 3
    assert report.spans_quarantined == 6  # five bad spans and the broken line: none dropped silently
    assert report.reasons == {"bad times": 1, "bad spanId": 1, "bad traceId": 1, "bad endTimeUnixNano": 1,
                              "no service": 1, "not JSON": 1}
    q = pd.read_parquet(report.quarantine_path)
    assert {"source", "source_row", "reason", "raw"} <= set(q.columns)
    assert q["source_row"].str.startswith("line ").all() and (q["source"] == str(path)).all()
    stored = lake.read_table("traces", settings.lake_dir, dataset="prod-traces")
    cart = stored[stored["service"] == "cart"].iloc[0]
    assert (cart["trace_id"], cart["span_id"]) == (TRACE, "00000000000000b7")


@pytest.mark.parametrize("text", ["name,value\na,1\n", '{"resourceMetrics": []}', ""])
def test_a_file_that_is_not_traces_is_refused_by_name(home, tmp_path, text):
    from telemetry.ingest import ingest_traces
    from telemetry.sources.otlp import TraceFileError

    path = tmp_path / "metrics.json"
    path.write_text(text)
    with pytest.raises(TraceFileError, match="metrics.json: not OpenTelemetry traces"):
        ingest_traces(path, _settings(home))


def test_a_file_of_only_bad_spans_is_quarantined_and_refused(home, tmp_path):
    import json

    from telemetry.ingest import ingest_traces
    from telemetry.sources.otlp import TraceFileError

    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_otlp_doc("auth", _otlp_span("nothex"), _otlp_span("00000000000000a1", end_ms=-5))))
    settings = _settings(home)
    with pytest.raises(TraceFileError, match=r"bad.json: none of its 2 spans could be used .* quarantine") as err:
        ingest_traces(path, settings)
    assert "bad spanId: 1" in str(err.value) and "bad times: 1" in str(err.value)
    assert lake.read_table("traces", settings.lake_dir).empty
    assert len(list(settings.quarantine_dir.rglob("*.parquet"))) == 1


def test_a_folder_of_otlp_files(home, tmp_path):
    import json

    from telemetry.ingest import ingest_traces

    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(_otlp_doc("frontend", _otlp_span("00000000000000a1", end_ms=9))))
    (folder / "b.jsonl").write_text(json.dumps(_otlp_doc("auth", _otlp_span("00000000000000a2", "00000000000000a1",
                                                                            start_ms=1, end_ms=4))) + "\n")
    (folder / "notes.txt").write_text("ignored: not a .json/.jsonl file")
    report = ingest_traces(folder, _settings(home))
    assert (report.files, report.spans_stored, report.traces, report.dataset) == (2, 2, 1, "otlp-exports")


def test_a_dataset_folder_s_traces_are_not_read_as_telemetry(fleet, tmp_path):
    from telemetry.sources.files import discover

    write_simulation(fleet, tmp_path / "ds")
    assert [p.name for p in discover(tmp_path / "ds")] == ["telemetry.parquet"]
