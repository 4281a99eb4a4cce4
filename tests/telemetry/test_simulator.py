"""The fleet simulator's ground truth: structure, determinism, and faults visible where they should be."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from telemetry.schema import FLEET_METRICS, physical_range
from telemetry.simulator import FAULT_KINDS, PRIMARY_METRIC, FleetSimulator


def _series(result, service, metric):
    t = result.telemetry
    sel = t[(t["service"] == service) & (t["metric"] == metric)]
    return sel.set_index("timestamp")["value"]


def test_shape_services_and_metrics(small_fleet):
    t = small_fleet.telemetry
    services = small_fleet.topology.names
    assert len(services) >= 12
    assert {"frontend", "api-gateway", "checkout", "payment", "database", "cache", "queue"} <= set(services)
    minutes = 2 * 1440
    assert len(t) == minutes * len(services) * len(FLEET_METRICS)
    assert set(t["metric"].astype(str)) == set(FLEET_METRICS)
    assert t["timestamp"].dt.tz is not None
    steps = np.diff(np.sort(t["timestamp"].unique()))
    assert (steps == np.timedelta64(60, "s")).all()
    assert not t.duplicated(["timestamp", "service", "metric"]).any()
    assert small_fleet.end == pd.Timestamp("2026-11-20T00:00:00Z")


def test_values_stay_in_physical_ranges(small_fleet):
    t = small_fleet.telemetry
    for metric, group in t.groupby("metric", observed=True):
        lo, hi = physical_range(str(metric))
        assert group["value"].notna().all()
        if lo is not None:
            assert group["value"].min() >= lo, metric
        if hi is not None:
            assert group["value"].max() <= hi, metric


def test_same_seed_same_data_other_seed_other_data():
    a = FleetSimulator(days=0.5, seed=3, end="2026-11-20T00:00Z").run()
    b = FleetSimulator(days=0.5, seed=3, end="2026-11-20T00:00Z").run()
    c = FleetSimulator(days=0.5, seed=4, end="2026-11-20T00:00Z").run()
    pd.testing.assert_frame_equal(a.telemetry, b.telemetry)
    pd.testing.assert_frame_equal(a.incidents, b.incidents)
    pd.testing.assert_frame_equal(a.events, b.events)
    assert not np.allclose(a.telemetry["value"], c.telemetry["value"])


def test_daily_seasonality_in_traffic():
    r = FleetSimulator(days=7, seed=5, end="2026-11-23T00:00Z", incidents_per_day=0).run()
    rps = _series(r, "frontend", "request_rate")
    by_hour = rps.groupby(rps.index.hour).mean()
    assert by_hour.loc[13:15].mean() > 2.5 * by_hour.loc[3:5].mean()
    weekday = rps[rps.index.weekday < 5].mean()
    weekend = rps[rps.index.weekday >= 5].mean()
    assert weekend < 0.85 * weekday


def test_every_fault_kind_appears_with_a_complete_record():
    r = FleetSimulator(days=6, seed=21, end="2026-11-20T00:00Z", incidents_per_day=2).run()
    inc = r.incidents
    assert set(inc["kind"]) == set(FAULT_KINDS)
    for row in inc.itertuples():
        assert row.start < row.end
        assert row.root_cause_service in row.affected_services
        assert row.severity in {"low", "medium", "high", "critical"}
        assert row.summary and row.resolution and row.root_cause_service in row.summary
    # incidents never overlap, and the ids are unique
    ordered = inc.sort_values("start")
    assert (ordered["start"].iloc[1:].to_numpy() > ordered["end"].iloc[:-1].to_numpy()).all()
    assert inc["incident_id"].is_unique


@pytest.fixture(scope="module")
def week():
    return FleetSimulator(days=7, seed=8, end="2026-11-20T00:00Z", incidents_per_day=2).run()


def test_every_incident_is_visible_in_its_root_cause_metrics(week):
    """The kind's primary metric at the root moves far outside its own recent normal range."""
    for inc in week.incidents.itertuples():
        s = _series(week, inc.root_cause_service, PRIMARY_METRIC[inc.kind])
        before = s[(s.index >= inc.start - pd.Timedelta(hours=3)) & (s.index < inc.start)]
        during = s[(s.index >= inc.start) & (s.index <= inc.end)]
        mad = max(np.median(np.abs(before - before.median())) * 1.4826, 1e-3 * max(abs(before.median()), 1))
        peak = (during - before.median()).abs().max() / mad
        assert peak > 6, f"{inc.incident_id} {inc.kind} at {inc.root_cause_service}: peak only {peak:.1f} MADs"


def test_slow_dependency_propagates_to_callers(week):
    slow = week.incidents[week.incidents["kind"] == "slow_dependency"]
    assert len(slow)
    topo = week.topology
    for inc in slow.itertuples():
        callers = [c for c in topo.callers(inc.root_cause_service) if c in inc.affected_services]
        heaviest = max(topo.callers(inc.root_cause_service),
                       key=lambda c: topo.graph.edges[c, inc.root_cause_service]["ratio"])
        assert heaviest in callers  # the caller that leans on it most always suffers
        for caller in callers:
            lat = _series(week, caller, "latency_p50_ms")
            before = lat[(lat.index >= inc.start - pd.Timedelta(hours=2)) & (lat.index < inc.start)].median()
            during = lat[(lat.index >= inc.start) & (lat.index <= inc.end)].median()
            assert during > 1.1 * before, f"{caller} did not slow down with {inc.root_cause_service}"


def test_services_left_out_of_an_incident_did_not_feel_it():
    """Ground truth names everyone the fault moved: a service left out of ``affected_services`` keeps its
    latency near the two hours before. A surge at the front door loads the database, which slows
    notification (it only shares the database and queue with the front door's path): it must be named."""
    fleet = FleetSimulator(days=14, seed=42, end="2026-11-20T00:00Z", incidents_per_day=3).run()
    assert (fleet.incidents["kind"] == "traffic_surge").any()
    t = fleet.telemetry
    lat = t[t["metric"] == "latency_p50_ms"].pivot(index="timestamp", columns="service", values="value")
    medians = lat.rolling(3).median()
    for inc in fleet.incidents.itertuples():
        before = lat[(lat.index >= inc.start - pd.Timedelta(hours=2)) & (lat.index < inc.start)].median()
        during = medians[(medians.index >= inc.start) & (medians.index <= inc.end)].max()
        left_out = [s for s in lat.columns if s not in inc.affected_services]
        ratio = (during / before)[left_out]
        assert (ratio < 1.35).all(), f"{inc.incident_id} {inc.kind}: {ratio.idxmax()} slowed {ratio.max():.2f}x unlabelled"


def test_bad_deploy_has_deploy_and_rollback_events(week):
    bursts = week.incidents[week.incidents["kind"] == "error_burst"]
    ev = week.events
    assert len(bursts)
    for inc in bursts.itertuples():
        mine = ev[ev["service"] == inc.root_cause_service]
        assert ((mine["kind"] == "deploy") & (mine["timestamp"] == inc.start)).any()
        assert ((mine["kind"] == "rollback") & (mine["timestamp"] >= inc.end - pd.Timedelta(minutes=1))).any()


def test_memory_leak_ends_in_oom_restart(week):
    leaks = week.incidents[week.incidents["kind"] == "memory_leak"]
    assert len(leaks)
    for inc in leaks.itertuples():
        mem = _series(week, inc.root_cause_service, "memory_pct")
        during = mem[(mem.index >= inc.start) & (mem.index <= inc.end)]
        assert during.max() > 97
        assert during.iloc[-1] < during.max() - 20  # restarted: memory dropped back
        logs = week.logs[(week.logs["incident_id"] == inc.incident_id)]
        assert logs["message"].str.contains("OOMKilled").any()


def test_routine_deploys_and_incident_logs(week):
    deploys = week.events[week.events["kind"] == "deploy"]
    assert deploys["service"].nunique() >= 8
    hours = deploys["timestamp"].dt.hour
    assert ((hours >= 9) & (hours < 18)).mean() > 0.7  # mostly working hours
    assert set(week.incidents["incident_id"]) <= set(week.logs["incident_id"].dropna())


def test_too_short_window_is_refused():
    with pytest.raises(ValueError, match="at least one hour"):
        FleetSimulator(days=0.01).run()


def test_a_services_second_memory_leak_grows_like_its_first():
    # Four weeks at six incidents a day: memory leaks land on the same service more than once.
    sim = FleetSimulator(days=28, seed=42, end="2026-11-26T00:00Z", incidents_per_day=6).run()
    leaks = sim.incidents[sim.incidents["kind"] == "memory_leak"]
    repeated = leaks[leaks.duplicated("root_cause_service", keep="first")]
    assert len(repeated), "the window should hold a repeated leak"
    for inc in repeated.itertuples():
        mem = _series(sim, inc.root_cause_service, "memory_pct")
        before_oom = mem[(mem.index >= inc.start) & (mem.index < inc.failed_at)]
        assert before_oom.max() > 97  # it climbs to the OOM kill, as the first one did
        assert before_oom.iloc[-1] - before_oom.iloc[0] > 20


def _metrics(rng, n=200, **overrides):
    """One service's four golden signals as the simulator keeps them (metric -> array[service, minute])."""
    base = {"latency_p50_ms": 10 + rng.normal(0, 1.0, n), "error_rate": np.full(n, 0.003),
            "request_rate": 100 + rng.normal(0, 3, n), "cpu_pct": 40 + rng.normal(0, 2, n)}
    base.update(overrides)
    return {k: np.asarray(v, dtype=float)[None, :] for k, v in base.items()}


def test_a_sustained_shift_counts_as_moved_and_noise_does_not():
    from telemetry.simulator import _moved

    rng = np.random.default_rng(3)
    quiet = _metrics(rng)
    assert not _moved(quiet, 0, (120, 200), (0, 120))
    # latency half as high again for 80 minutes: 5 ms against minute noise of 1 ms (3-minute medians vary less)
    lat = quiet["latency_p50_ms"][0].copy()
    lat[120:] += 5
    assert _moved(_metrics(rng, latency_p50_ms=lat), 0, (120, 200), (0, 120))
    # the error rate doubling from 0.3 % is impact; from 0.05 % to 0.1 % is below the 0.2-point floor
    err = np.full(200, 0.003)
    err[120:] = 0.006
    assert _moved(_metrics(rng, error_rate=err), 0, (120, 200), (0, 120))
    tiny = np.full(200, 0.0005)
    tiny[120:] = 0.001
    assert not _moved(_metrics(rng, error_rate=tiny), 0, (120, 200), (0, 120))


def test_a_surge_on_an_evenings_falling_traffic_counts_as_moved_and_the_fall_alone_does_not():
    from telemetry.simulator import _moved

    rng = np.random.default_rng(5)
    # traffic falling from 60 to 32 rps over the two hours before (seed 42's catalog on 2026-12-01 at 23:10),
    # then tripled by a 20-minute surge from the front door: the fall's spread once hid it
    falling = np.r_[np.linspace(60, 32, 120), np.linspace(32, 27, 80)] + rng.normal(0, 1.5, 200)
    quiet = _metrics(rng, request_rate=falling, cpu_pct=np.full(200, 20.0) + rng.normal(0, 0.5, 200))
    assert not _moved(quiet, 0, (120, 140), (0, 120))
    surged = falling.copy()
    surged[122:140] *= 3
    assert _moved(_metrics(rng, request_rate=surged, cpu_pct=quiet["cpu_pct"][0]), 0, (120, 140), (0, 120))
    # the fall carried on for hours is not an effect either (the line is carried half an hour only)
    night = np.r_[np.linspace(60, 32, 120), np.linspace(32, 10, 80)] + rng.normal(0, 1.5, 200)
    assert not _moved(_metrics(rng, request_rate=night, cpu_pct=quiet["cpu_pct"][0]), 0, (120, 200), (0, 120))
