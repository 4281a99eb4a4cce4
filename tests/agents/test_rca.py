"""Root-cause ranking: simulated incidents, a hand-built slow callee, quiet windows and awkward input."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from support.rca_data import EDGES, T0, hand_built, wandering_crowd

from agents.rca import RcaInputError, ServiceGraph, rank_root_causes
from agents.rca.metrics import aspect, classify
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
    # what a metric shows of its service, for a callee that may not export what its caller's symptom shows
    assert [aspect(m) for m in ("availability_Average", "error_rate", "latency_p90", "requests_Sum", "cpu_pct",
                                "frobnication")] == ["errors", "errors", "latency", "load", "resource", "resource"]


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


def test_the_ranking_never_reads_an_incident_record():
    # the incident record's ground truth (root cause, affected services) has no way in: the package never
    # names those fields, and rank_root_causes takes telemetry, a graph and a target only
    from pathlib import Path

    import agents.rca

    source = "".join(p.read_text() for p in Path(agents.rca.__file__).parent.glob("*.py"))
    assert "root_cause_service" not in source and "affected_services" not in source
    import inspect

    assert set(inspect.signature(rank_root_causes).parameters) == {
        "incident", "baseline", "edges", "target", "target_metric", "top", "threshold", "at"}


def _ramp_case(rise: float, seed: int = 5):
    """Three services; ``leaky``'s memory climbs by ``rise`` (baseline sigma 1) over the last 20 minutes."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(320):
        t = T0 + pd.Timedelta(minutes=i)
        for svc in ("web", "leaky", "db"):
            extra = rise * (i - 300) / 19 if svc == "leaky" and i >= 300 else 0.0
            rows.append((t, svc, "memory_pct", 50 + rng.normal(0, 1) + extra))
            rows.append((t, svc, "latency_p90", 20 * np.exp(rng.normal(0, 0.05))))
    df = pd.DataFrame(rows, columns=["timestamp", "service", "metric", "value"])
    cut = T0 + pd.Timedelta(minutes=300)
    return df[df["timestamp"] >= cut], df[df["timestamp"] < cut]


def test_a_slow_ramp_under_the_level_threshold_ranks_on_its_trend():
    inc, base = _ramp_case(rise=6.0)  # its peak stays under 5 robust units: the level alone misses it
    edges = [("web", "leaky"), ("web", "db")]
    plain = rank_root_causes(inc, base, edges, target="web", threshold=5.0)
    assert [c.service for c in plain.causes][:1] == ["leaky"]
    ev = plain.causes[0].evidence[0]
    assert ev.metric == "memory_pct" and ev.trend is not None and ev.trend >= 3
    assert plain.causes[0].confidence < 0.5  # found early, but honestly weak
    flat = rank_root_causes(*_ramp_case(rise=0.0), edges, target="web")
    assert flat.causes == []


def test_a_ramp_between_the_creep_floor_and_threshold_ranks_under_level_anomalies_with_no_confidence():
    from agents.rca import rank as rank_module

    inc, base = _ramp_case(rise=4.5)  # a creep of about 2.1: over CREEP_FLOOR, under CREEP_THRESHOLD
    edges = [("web", "leaky"), ("web", "db")]
    alone = rank_root_causes(inc, base, edges, target="web")
    assert [c.service for c in alone.causes] == ["leaky"]
    trend = alone.causes[0].evidence[0].trend
    assert rank_module.CREEP_FLOOR <= trend < rank_module.CREEP_THRESHOLD
    assert alone.causes[0].confidence == 0.0 and alone.causes[0].score < rank_module.THRESHOLD
    # a level anomaly elsewhere (db's latency three times its usual) ranks above it; the ramp stays listed
    slow_db = (inc["service"] == "db") & (inc["metric"] == "latency_p90")
    both = rank_root_causes(inc.assign(value=inc["value"].where(~slow_db, inc["value"] * 3)), base, edges,
                            target="web")
    assert [c.service for c in both.causes] == ["db", "leaky"]


def _evening(fall: float, caller_holds: bool = False, seed: int = 3):
    """web -> api -> db and web -> leaky: in the window web's requests fall by ``fall`` (its noise is a tenth of
    its level, so the fall stays under 5 robust units) and api's and db's fall with it (quiet, so over 5), unless
    ``caller_holds``: then web's hold and only api's and db's fall. leaky's memory rises to about 4 robust units:
    a fault, under the threshold."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(330):
        t = T0 + pd.Timedelta(minutes=i)
        drop = 1 - fall if i >= 300 else 1.0
        web = 100 * drop * (1 + rng.normal(0, 0.1)) if not caller_holds else 100 * (1 + rng.normal(0, 0.1))
        rows += [(t, "web", "requests", web),
                 (t, "api", "requests", 100 * drop * (1 + rng.normal(0, 0.01))),
                 (t, "db", "requests", 200 * drop * (1 + rng.normal(0, 0.01))),
                 (t, "leaky", "memory_pct", 50 + rng.normal(0, 1) + (4.5 if i >= 300 else 0.0))]
    df = pd.DataFrame(rows, columns=["timestamp", "service", "metric", "value"])
    cut = T0 + pd.Timedelta(minutes=300)
    return df[df["timestamp"] >= cut], df[df["timestamp"] < cut]


def test_traffic_that_falls_with_its_callers_is_theirs_even_when_their_fall_is_under_the_threshold(monkeypatch):
    from agents.rca import rank as rank_module

    edges = [("web", "api"), ("api", "db"), ("web", "leaky")]
    inc, base = _evening(fall=0.2)
    result = rank_root_causes(inc, base, edges, target="web")
    scores = {c.service: c.score for c in result.causes}
    assert [c.service for c in result.causes][:1] == ["leaky"], scores
    assert scores["api"] < rank_module.THRESHOLD and scores["db"] < rank_module.THRESHOLD  # ranked, explained
    # the same fall in api and db with web's traffic holding is theirs: api, the largest, ranks first
    held = rank_root_causes(*_evening(fall=0.2, caller_holds=True), edges, target="web")
    assert [c.service for c in held.causes][:1] == ["api"]
    # what the relative share adds: web's fall alone (under the threshold) explains nothing
    monkeypatch.setattr(rank_module, "LOAD_SHARE", False)
    blind = rank_root_causes(inc, base, edges, target="web")
    assert [c.service for c in blind.causes][:1] == ["api"]


def _failing_through(pay_exports_availability: bool, seed: int = 4):
    """web -> pay, web -> search: in the window web's availability falls from 99.9 % to 90 % (pay's errors).
    pay exports its requests and, when asked, its availability, which stays flat (as if web's errors were its
    own)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(312):
        t = T0 + pd.Timedelta(minutes=5 * i)
        rows += [(t, "web", "availability_Average", 99.9 - (9.9 if i >= 300 else 0.0) + rng.normal(0, 0.05)),
                 (t, "web", "latency_p90", 120 + rng.normal(0, 3)),
                 (t, "pay", "requests_Sum", 500 + rng.normal(0, 10)),
                 (t, "search", "availability_Average", 99.9 + rng.normal(0, 0.05)),
                 (t, "search", "latency_p90", 80 + rng.normal(0, 3))]
        if pay_exports_availability:
            rows.append((t, "pay", "availability_Average", 99.9 + rng.normal(0, 0.05)))
    df = pd.DataFrame(rows, columns=["timestamp", "service", "metric", "value"])
    cut = T0 + pd.Timedelta(minutes=5 * 300)
    return df[df["timestamp"] >= cut], df[df["timestamp"] < cut]


def test_a_callee_that_exports_no_error_metric_ranks_under_the_caller_whose_errors_may_be_its_own():
    edges = [("web", "pay"), ("web", "search")]
    blind = rank_root_causes(*_failing_through(False), edges, target="web", target_metric="availability_Average")
    assert [c.service for c in blind.causes] == ["web", "pay"]
    seen = blind.causes[1].evidence[0]
    assert seen.seen_at == "web" and seen.metric == "availability_Average" and seen.direction == "down"
    assert blind.causes[1].score == pytest.approx(0.5 * blind.causes[0].score, rel=1e-3)
    # search exports an error metric that stayed flat; pay, once it exports one that stays flat, is cleared too
    seeing = rank_root_causes(*_failing_through(True), edges, target="web", target_metric="availability_Average")
    assert [c.service for c in seeing.causes] == ["web"]


def _slowed(inc, service: str, factor: float, last: int | None = None):
    """``service``'s latency times ``factor`` (in the last ``last`` minutes only, if given), and the added
    time added to its callers' latency too, as a call graph would (hand_built: frontend -> api -> db|cache)."""
    callers = {"db": ["api", "frontend"], "cache": ["api", "frontend"], "api": ["frontend"], "frontend": []}
    lat = inc["metric"] == "latency_p90"
    when = inc["timestamp"] >= inc["timestamp"].max() - pd.Timedelta(minutes=last - 1) if last else True
    own = inc[lat & (inc["service"] == service) & when].set_index("timestamp")["value"]
    added = own * (factor - 1)
    out = inc.copy()
    for svc in [service, *callers[service]]:
        rows = lat & (out["service"] == svc) & out["timestamp"].isin(added.index)
        out.loc[rows, "value"] += out.loc[rows, "timestamp"].map(added).to_numpy()
    return out


def test_target_metric_keeps_causes_that_can_explain_the_symptom():
    # api is slow because db is slow; frontend, api's caller, burns CPU at the same time. frontend's CPU is
    # the largest anomaly, but a caller's CPU cannot slow its callee down: with the symptom named, db leads.
    inc, base = hand_built(slow=False, seed=2)
    inc = _slowed(inc, "db", 1.2)  # enough to slow api, too little to slow frontend
    rng = np.random.default_rng(9)
    cpu = lambda f, hot: f[(f["service"] == "frontend") & (f["metric"] == "latency_p90")].assign(
        metric="cpu_pct", value=lambda d: 30 + rng.normal(0, 1, len(d)) + (40 if hot else 0))
    inc, base = pd.concat([inc, cpu(inc, True)]), pd.concat([base, cpu(base, False)])
    blind = rank_root_causes(inc, base, EDGES, target="api")
    assert blind.causes[0].service == "frontend"
    steered = rank_root_causes(inc, base, EDGES, target="api", target_metric="latency_p90")
    assert [c.service for c in steered.causes][:1] == ["db"]
    assert steered.symptom.metric == "latency_p90" and steered.symptom.direction == "up"
    assert "frontend" in [c.service for c in steered.causes]  # demoted, not hidden


def test_target_metric_demotes_anomalies_that_began_after_the_symptom():
    # db slows from the start; cache's latency jumps far more, but only in the window's last 5 minutes
    inc, base = hand_built(slow=False, seed=6)
    inc = _slowed(_slowed(inc, "db", 2.0), "cache", 30.0, last=5)
    assert rank_root_causes(inc, base, EDGES, target="frontend").causes[0].service == "cache"
    steered = rank_root_causes(inc, base, EDGES, target="frontend", target_metric="latency_p90")
    assert [c.service for c in steered.causes][:2] == ["db", "cache"]


def test_real_data_shape_five_minute_samples_sparse_metrics_and_free_names():
    """A dozen 5-minute points against 200, metrics on only some services, gaps, names with punctuation:
    ``pay::v1`` loses availability, and ``web front`` (its caller's caller) is what the operator sees."""
    rng = np.random.default_rng(11)
    edges = [("web front", "api/gw:443"), ("api/gw:443", "pay::v1"), ("api/gw:443", "search.svc"),
             ("pay::v1", "db eu-1")]
    rows = []
    for i in range(212):
        t = T0 + pd.Timedelta(minutes=5 * i)
        broken = i >= 200
        avail = {"pay::v1": 0.999 - (0.08 if broken else 0), "search.svc": 0.999, "db eu-1": 0.9995}
        avail["api/gw:443"] = 0.9995 * avail["pay::v1"] ** 0.5
        avail["web front"] = avail["api/gw:443"]
        for svc, a in avail.items():
            if svc == "db eu-1" and i % 7 == 0:
                continue  # gaps
            rows.append((t, svc, "availability_Average", min(1.0, a + rng.normal(0, 0.0005))))
            if svc != "db eu-1":  # no request counts on the database
                rows.append((t, svc, "requests_Sum", rng.poisson(900)))
            if svc in ("web front", "api/gw:443", "search.svc"):
                rows.append((t, svc, "latency_p90", 120 * np.exp(rng.normal(0, 0.05))))
    df = pd.DataFrame(rows, columns=["timestamp", "service", "metric", "value"])
    cut = T0 + pd.Timedelta(minutes=5 * 200)
    inc, base = df[df["timestamp"] >= cut], df[df["timestamp"] < cut]
    result = rank_root_causes(inc, base, edges, target="web front", target_metric="availability_Average")
    assert [c.service for c in result.causes][:1] == ["pay::v1"]
    assert result.causes[0].path == ["pay::v1", "api/gw:443", "web front"]
    assert result.symptom.direction == "down" and result.window["points"] == 12


def test_a_baseline_that_shares_no_series_with_the_window_is_refused():
    inc, base = hand_built(slow=True)
    with pytest.raises(RcaInputError, match="no \\(service, metric\\) of the incident window is in the baseline"):
        rank_root_causes(inc, base.assign(metric="other"), EDGES)
    with pytest.raises(RcaInputError, match="baseline has no rows"):
        rank_root_causes(inc, base.iloc[0:0], EDGES)


def test_only_constant_series_give_no_cause_and_an_all_empty_window_is_refused():
    inc, base = hand_built(slow=False)
    result = rank_root_causes(inc.assign(value=1.0), base.assign(value=1.0), EDGES, target="frontend")
    assert result.causes == [] and result.window["points"] == inc["timestamp"].nunique()
    with pytest.raises(RcaInputError, match="incident window has no rows with a timestamp and a numeric value"):
        rank_root_causes(inc.assign(value=np.nan), base, EDGES)


def test_a_wandering_crowd_is_measured_against_its_own_quiet_windows():
    # Among 400 heavy-tailed wandering series the largest excursion of a quiet half hour often clears the
    # threshold by far: against the threshold alone 5 of these 8 quiet windows had a cause with confidence
    # >= 0.5. Measured against the largest excursion of the baseline's own quiet windows, 2 do (the steps
    # are Student-t with 3 degrees of freedom: some windows hold a shock larger than any before them).
    confident = 0
    for seed in range(8):
        inc, base, edges = wandering_crowd(seed, fault=False)
        quiet = rank_root_causes(inc, base, edges, target="front")
        assert quiet.quiet_top is not None and quiet.quiet_top > quiet.threshold
        confident += bool(quiet.causes) and quiet.causes[0].confidence >= 0.5
    assert confident <= 2
    for seed in (0, 5):  # the two quiet windows with the largest excursions: a real fault still stands out
        inc, base, edges = wandering_crowd(seed, fault=True)
        faulty = rank_root_causes(inc, base, edges, target="front")
        assert faulty.causes[0].service == "svc-007" and faulty.causes[0].confidence >= 0.5


def test_a_baseline_too_short_to_replay_falls_back_to_the_threshold():
    inc, base, edges = wandering_crowd(0, fault=True, services=20)
    short = base[base["timestamp"] >= base["timestamp"].max() - pd.Timedelta(minutes=40)]
    result = rank_root_causes(inc, short, edges, target="front")
    assert result.quiet_top is None
    assert result.causes[0].service == "svc-007" and result.causes[0].confidence >= 0.5
