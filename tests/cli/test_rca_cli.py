"""`cerebro rca` on files: CSV and Parquet, loose headers, JSON and table output, refused input."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from support.rca_data import EDGES, hand_built
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("rca")
    inc, base = hand_built(slow=True)
    names = {"frontend": "web front::v2", "api": "ns/api:8080", "db": "db.primary eu-1", "cache": "cache"}
    inc, base = (f.assign(service=f["service"].map(names)) for f in (inc, base))
    inc.rename(columns={"timestamp": "Time", "service": "Service Name"}).to_csv(d / "incident.csv", index=False)
    base.to_parquet(d / "normal.parquet", index=False)
    pd.DataFrame([(names[a], names[b]) for a, b in EDGES], columns=["caller", "callee"]).to_csv(
        d / "edges.csv", index=False)
    return d


def _run(files, *extra, metrics="incident.csv", baseline="normal.parquet", graph="edges.csv"):
    args = ["rca", "--metrics", str(files / metrics), "--baseline", str(files / baseline),
            "--graph", str(files / graph), *extra]
    return runner.invoke(app, args, terminal_width=200)


def test_json_lists_the_slow_callee_first_with_its_evidence(files):
    res = _run(files, "--target", "web front::v2", "--target-metric", "latency_p90", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert next(iter(doc)) == "causes"
    top = doc["causes"][0]
    assert top["service"] == "db.primary eu-1" and 0 < top["confidence"] <= 1
    assert top["path"] == ["db.primary eu-1", "ns/api:8080", "web front::v2"]
    assert {"metric", "direction", "size", "baseline", "incident", "onset", "path"} <= set(top["evidence"][0])
    assert doc["symptom"]["metric"] == "latency_p90"


def test_table_output_and_top(files):
    res = _run(files, "--target", "web front::v2", "--top", "1")
    assert res.exit_code == 0, res.output
    assert "db.primary eu-1" in res.stdout and "Likely root causes" in res.stdout


def test_at_before_the_window_is_refused(files):
    res = _run(files, "--at", "2024-04-01T00:00Z")
    assert res.exit_code == 2 and "at or before" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("edit, message", [
    (("--target", "web"), "'web' is not in the graph"),
    (("--target", "web front::v2", "--target-metric", "p99"), "target metric 'p99'"),
])
def test_bad_target_exits_2(files, edit, message):
    res = _run(files, *edit)
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


def test_bad_files_exit_2_naming_the_file(files):
    (files / "bad_edges.csv").write_text("from_service,to_service\na,b\n")
    (files / "wide.csv").write_text("timestamp,cpu\n2024-01-01,1\n")
    (files / "empty.csv").write_text("timestamp,service,metric,value\n")
    for kwargs, message in (({"graph": "bad_edges.csv"}, "expected columns caller, callee"),
                            ({"metrics": "wide.csv"}, "no service, metric, value column"),
                            ({"metrics": "empty.csv"}, "no data rows"),
                            ({"baseline": "missing.parquet"}, "no such file")):
        res = _run(files, **kwargs)
        assert res.exit_code == 2, (kwargs, res.output)
        assert message in res.output and "Traceback" not in res.output
        name = next(iter(kwargs.values()))
        assert name in res.output


def test_messy_graph_and_timestamps_are_repaired_and_noted(files):
    edges = pd.read_csv(files / "edges.csv")
    extra = pd.DataFrame([("cache", "cache"), ("db.primary eu-1", "ns/api:8080"), ("ns/api:8080", "search")],
                         columns=["caller", "callee"])
    pd.concat([edges, extra]).to_csv(files / "messy_edges.csv", index=False)
    inc = pd.read_csv(files / "incident.csv")
    pd.concat([inc, inc.head(10)]).sample(frac=1.0, random_state=3).to_csv(files / "messy.csv", index=False)
    res = _run(files, "--target", "web front::v2", "--json", metrics="messy.csv", graph="messy_edges.csv")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["causes"][0]["service"] == "db.primary eu-1"
    notes = " ".join(doc["notes"])
    for word in ("self-loop", "cycle", "search", "out of order", "duplicate"):
        assert word in notes, word


def test_window_without_numbers_or_shared_series_exits_2(files):
    inc = pd.read_csv(files / "incident.csv")
    inc.assign(value="n/a").to_csv(files / "nan.csv", index=False)
    inc.assign(metric="something_else").to_csv(files / "other.csv", index=False)
    inc.assign(Time="yesterday").to_csv(files / "notime.csv", index=False)
    for name, message in (("nan.csv", "nan.csv: no value can be read (values such as 'n/a'); expected plain numbers"),
                          ("notime.csv", "notime.csv: no timestamp can be read (values such as 'yesterday')"),
                          ("other.csv", "no (service, metric) of the incident window is in the baseline")):
        res = _run(files, metrics=name)
        assert res.exit_code == 2, res.output
        assert message in res.output and "Traceback" not in res.output


def test_the_table_says_when_confidence_is_measured_above_the_quiet_baselines_top(tmp_path):
    from support.rca_data import wandering_crowd

    inc, base, edges = wandering_crowd(0, fault=True)
    inc.to_parquet(tmp_path / "incident.parquet", index=False)
    base.to_parquet(tmp_path / "normal.parquet", index=False)
    pd.DataFrame(edges, columns=["caller", "callee"]).to_csv(tmp_path / "edges.csv", index=False)
    res = _run(tmp_path, "--target", "front", "--top", "3", metrics="incident.parquet")
    assert res.exit_code == 0, res.output
    assert "svc-007" in res.stdout and "the largest deviation the baseline's own quiet windows show" in res.stdout
    doc = json.loads(_run(tmp_path, "--target", "front", "--json", metrics="incident.parquet").stdout)
    assert doc["quiet_top"] > doc["threshold"] and doc["causes"][0]["service"] == "svc-007"
