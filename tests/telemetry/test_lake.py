"""The lake: partition layout, round trip, and idempotent merges."""
from __future__ import annotations

import pandas as pd

from telemetry import lake
from telemetry.schema import canonical


def _frame(small_fleet, services=("payment", "cart"), hours=30):
    t = small_fleet.telemetry
    end = t["timestamp"].min() + pd.Timedelta(hours=hours)
    return canonical(t[t["service"].isin(services) & (t["timestamp"] < end)])


def test_partitioned_by_date_and_service(tmp_path, small_fleet):
    frame = _frame(small_fleet)
    w = lake.write_telemetry(frame, tmp_path)
    assert w.rows_new == len(frame) and w.rows_updated == 0
    parts = sorted(p.relative_to(tmp_path / "telemetry").as_posix() for p in (tmp_path / "telemetry").rglob("*.parquet"))
    assert parts == [
        "date=2026-11-18/service=cart/part.parquet", "date=2026-11-18/service=payment/part.parquet",
        "date=2026-11-19/service=cart/part.parquet", "date=2026-11-19/service=payment/part.parquet",
    ]
    back = lake.read_telemetry(tmp_path)
    pd.testing.assert_frame_equal(back, frame)


def test_reingesting_the_same_window_adds_nothing(tmp_path, small_fleet):
    frame = _frame(small_fleet)
    lake.write_telemetry(frame, tmp_path)
    before = lake.lake_stats(tmp_path)
    again = lake.write_telemetry(frame, tmp_path)
    assert again.rows_new == 0 and again.rows_updated == 0
    assert lake.lake_stats(tmp_path) == before
    assert len(lake.read_telemetry(tmp_path)) == len(frame)


def test_overlapping_window_adds_only_new_rows_and_updates_changed_ones(tmp_path, small_fleet):
    first = _frame(small_fleet, hours=10)
    second = _frame(small_fleet, hours=20)
    lake.write_telemetry(first, tmp_path)
    second.loc[second.index[0], "value"] += 1.0  # a corrected value for a row already stored
    w = lake.write_telemetry(second, tmp_path)
    assert w.rows_new == len(second) - len(first)
    assert w.rows_updated == 1
    back = lake.read_telemetry(tmp_path)
    assert len(back) == len(second)
    row = second.iloc[0]
    stored = back[(back["timestamp"] == row["timestamp"]) & (back["service"] == row["service"])
                  & (back["metric"] == row["metric"])]
    assert stored["value"].item() == row["value"]


def test_read_filters(tmp_path, small_fleet):
    frame = _frame(small_fleet)
    lake.write_telemetry(frame, tmp_path)
    start = frame["timestamp"].min() + pd.Timedelta(hours=2)
    end = start + pd.Timedelta(hours=1)
    sub = lake.read_telemetry(tmp_path, start=start, end=end, services=["cart"], metrics=["cpu_pct"])
    assert len(sub) == 60
    assert sub["timestamp"].min() == start and sub["timestamp"].max() < end
    assert lake.read_telemetry(tmp_path / "nothing").empty


def test_side_tables_merge_by_key(tmp_path, small_fleet):
    assert lake.write_table("incidents", small_fleet.incidents, tmp_path) == len(small_fleet.incidents)
    assert lake.write_table("incidents", small_fleet.incidents, tmp_path) == 0
    assert lake.write_table("events", small_fleet.events, tmp_path) == len(small_fleet.events)
    back = lake.read_table("incidents", tmp_path)
    assert list(back["incident_id"]) == list(small_fleet.incidents.sort_values("start")["incident_id"])
    lake.write_graph(small_fleet.topology.to_dict(), tmp_path)
    assert len(lake.read_graph(tmp_path)["edges"]) == len(small_fleet.topology.edges)


def test_histories_of_different_simulations_never_mix(tmp_path):
    from telemetry.simulator import FleetSimulator

    a = FleetSimulator(days=1, seed=1, end="2026-11-20T00:00Z", incidents_per_day=3).run()
    b = FleetSimulator(days=1, seed=1, end="2026-11-20T06:00Z", incidents_per_day=3).run()
    assert a.dataset != b.dataset
    assert not set(a.incidents["incident_id"]) & set(b.incidents["incident_id"])
    for r in (a, b):
        lake.write_table("incidents", r.incidents, tmp_path)
        lake.write_table("events", r.events, tmp_path)
    assert len(lake.read_table("incidents", tmp_path)) == len(a.incidents) + len(b.incidents)
    mine = lake.read_table("incidents", tmp_path, dataset=a.dataset)
    assert sorted(mine["incident_id"]) == sorted(a.incidents["incident_id"])
    assert set(lake.read_table("events", tmp_path, dataset=b.dataset)["dataset"]) == {b.dataset}
