"""Root-cause ranking: simulated incidents, a hand-built slow callee, quiet windows and awkward input."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from support.rca_data import EDGES, T0, hand_built

from agents.rca import RcaInputError, ServiceGraph, rank_root_causes
from agents.rca.metrics import classify
from telemetry.simulator import FleetSimulator


@pytest.fixture(scope="module")
def fleet():
    # seed 42 is neither a tuning seed (7, 8, 9) nor a benchmark seed (101, 202, 303)
    return FleetSimulator(days=1.5, seed=42, end="2024-03-01", incidents_per_day=6).run()


def _case(tel, start, window=15, baseline=300):
    t = tel["timestamp"]
    base = tel[(t >= start - pd.Timedelta(minutes=baseline)) & (t < start)]
    inc = tel[(t >= start) & (t < start + pd.Timedelta(minutes=window))]
    return inc, base


def test_injected_root_ranks_first_on_simulated_incidents(fleet):
    graph = ServiceGraph([(e.caller, e.callee) for e in fleet.topology.edges])
    visible = fleet.incidents[fleet.incidents["kind"] != "memory_leak"]  # a leak is invisible in its first minutes
    assert len(visible) >= 5
    first = 0
    for inc in visible.itertuples():
        window, base = _case(fleet.telemetry, inc.start)
        # the target is the front door the operator was paged for, never the root cause itself
        result = rank_root_causes(window, base, graph, target="frontend")
        ranked = [c.service for c in result.causes]
        first += ranked[:1] == [inc.root_cause_service]
        assert inc.root_cause_service in ranked[:3], (inc.kind, inc.root_cause_service, ranked)
    assert first >= len(visible) - 1


def test_slow_callee_that_slows_its_callers_ranks_first_with_evidence():
    inc, base = hand_built(slow=True)
    result = rank_root_causes(inc, base, EDGES, target="frontend", target_metric="latency_p90")
    assert [c.service for c in result.causes][:1] == ["db"]
    top = result.causes[0]
    assert top.path == ["db", "api", "frontend"]
    assert top.confidence > 0.5 and top.confidence >= result.causes[-1].confidence
    ev = top.evidence[0]
    assert ev.metric == "latency_p90" and ev.direction == "up" and ev.size >= result.threshold
    assert ev.incident > 3 * ev.baseline and ev.onset == inc["timestamp"].min()
    assert result.symptom.direction == "up" and result.symptom.size >= result.threshold
    json.dumps(result.model_dump(mode="json"))  # serialisable as it is


def test_nothing_abnormal_gives_no_cause():
    inc, base = hand_built(slow=False, seed=3)
    result = rank_root_causes(inc, base, EDGES, target="frontend")
    assert result.causes == []


def test_quiet_simulated_windows_give_no_confident_cause():
    quiet = FleetSimulator(days=1, seed=42, end="2024-03-01", incidents_per_day=0).run()
    graph = ServiceGraph([(e.caller, e.callee) for e in quiet.topology.edges])
    confident = 0
    for hours in (6, 10, 14, 18, 22):
        window, base = _case(quiet.telemetry, quiet.start + pd.Timedelta(hours=hours))
        result = rank_root_causes(window, base, graph, target="frontend")
        confident += bool(result.causes) and result.causes[0].confidence >= 0.5
    assert confident <= 1


def test_metric_names_are_classified_by_their_words():
    assert classify("latency_p90") == ("symptom", "up")
    assert classify("availability_Average") == ("symptom", "down")
    assert classify("requests_Sum") == ("load", "both")
    assert classify("error_rate") == ("symptom", "up")
    assert classify("cpu_pct") == ("resource", "up")
    assert classify("frobnication") == ("resource", "both")


def test_availability_falling_is_abnormal_and_rising_is_not():
    rng = np.random.default_rng(1)
    stamps = [T0 + pd.Timedelta(minutes=5 * i) for i in range(212)]
    rows = []
    for i, t in enumerate(stamps):
        drop = 0.2 if i >= 200 else 0.0
        rows.append((t, "svc a", "availability_Average", 0.99 - drop + rng.normal(0, 0.002)))
        rows.append((t, "svc b", "availability_Average", min(1.0, 0.9 + (0.09 if i >= 200 else 0) +
                                                                 rng.normal(0, 0.002))))
    df = pd.DataFrame(rows, columns=["timestamp", "service", "metric", "value"])
    inc, base = df[df["timestamp"] >= stamps[200]], df[df["timestamp"] < stamps[200]]
    result = rank_root_causes(inc, base, [("svc a", "svc b")])
    assert [c.service for c in result.causes] == ["svc a"]
    assert result.causes[0].evidence[0].direction == "down"


# ---- awkward input: a clear error or a documented, noted repair


def test_service_names_with_punctuation_cycles_and_self_loops():
    inc, base = hand_built(slow=True)
    names = {"frontend": "web front::v2", "api": "ns/api:8080", "db": "db.primary eu-1", "cache": "cache"}
    inc, base = (f.assign(service=f["service"].map(names)) for f in (inc, base))
    edges = [(names[a], names[b]) for a, b in EDGES] + [("cache", "cache"), ("db.primary eu-1", "ns/api:8080")]
    result = rank_root_causes(inc, base, edges, target="web front::v2")
    assert result.causes[0].service == "db.primary eu-1"
    assert any("self-loop" in n for n in result.notes) and any("cycle" in n for n in result.notes)


def test_unknown_graph_services_are_noted_and_unknown_target_refused():
    inc, base = hand_built(slow=True)
    result = rank_root_causes(inc, base, [*EDGES, ("api", "search")], target="frontend")
    assert result.causes[0].service == "db"
    assert any("no metrics" in n and "search" in n for n in result.notes)
    with pytest.raises(RcaInputError, match="'frontnd' is not in the graph; did you mean 'frontend'"):
        rank_root_causes(inc, base, EDGES, target="frontnd")


def test_empty_window_and_missing_columns_are_refused():
    inc, base = hand_built(slow=True)
    with pytest.raises(RcaInputError, match="incident window has no rows"):
        rank_root_causes(inc.iloc[0:0], base, EDGES)
    with pytest.raises(RcaInputError, match="at or before"):
        rank_root_causes(inc, base, EDGES, at=T0)
    with pytest.raises(RcaInputError, match=r"baseline lacks column\(s\) \['value'\]"):
        rank_root_causes(inc, base.drop(columns="value"), EDGES)
    with pytest.raises(RcaInputError, match="target metric 'p99'"):
        rank_root_causes(inc, base, EDGES, target="frontend", target_metric="p99")


def test_metric_missing_from_baseline_is_skipped_and_noted():
    inc, base = hand_built(slow=True)
    base = base[~((base["service"] == "db") & (base["metric"] == "latency_p90"))]
    result = rank_root_causes(inc, base, EDGES, target="frontend")
    assert any("no baseline" in n and "db/latency_p90" in n for n in result.notes)
    # db's own latency cannot be judged; api, whose callee is no longer seen abnormal, takes the blame
    assert result.causes[0].service == "api"


def test_all_nan_and_constant_series():
    inc, base = hand_built(slow=False, seed=4)
    nan_rows = inc[inc["service"] == "cache"].assign(metric="gc_pause", value=np.nan)
    const = lambda f, v: f[f["service"] == "cache"].assign(metric="queue_depth", value=v)
    result = rank_root_causes(pd.concat([inc, nan_rows, const(inc, 0.0)]),
                              pd.concat([base, const(base, 0.0)]), EDGES)
    assert result.causes == []  # a constant series that stays constant is normal; all-NaN is skipped
    assert any("gc_pause" in n for n in result.notes)
    moved = rank_root_causes(pd.concat([inc, const(inc, 40.0)]), pd.concat([base, const(base, 0.0)]), EDGES)
    assert moved.causes[0].service == "cache" and moved.causes[0].evidence[0].metric == "queue_depth"


def test_duplicate_and_unsorted_timestamps_give_the_same_ranking():
    inc, base = hand_built(slow=True)
    clean = rank_root_causes(inc, base, EDGES, target="frontend")
    shuffled = pd.concat([inc, inc.iloc[:20]]).sample(frac=1.0, random_state=0)
    messy = rank_root_causes(shuffled, base.sample(frac=1.0, random_state=1), EDGES, target="frontend")
    assert [c.service for c in messy.causes] == [c.service for c in clean.causes]
    assert any("out of order" in n for n in messy.notes) and any("duplicate" in n for n in messy.notes)
