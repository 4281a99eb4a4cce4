"""Features: hand-computable transforms, causality, Feast's point-in-time join and TTL, online store builds."""
from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from configs.settings import load_settings
from features import repo
from features.store import build_feature_store, online_features, publish_features, training_frame
from features.transforms import (
    CREATED,
    ENTITY,
    TIMESTAMP,
    compute_features,
    failure_feature_names,
    feature_names,
    latest_rows,
    view_columns,
)
from telemetry.schema import FLEET_METRICS

UTC = "UTC"


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


def _times(texts) -> pd.DatetimeIndex:
    return pd.to_datetime(list(texts), utc=True, format="ISO8601")


def _long(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": _times(r[0] for r in rows),
            "service": [r[1] for r in rows],
            "metric": [r[2] for r in rows],
            "value": [float(r[3]) for r in rows],
        }
    )


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("CEREBRO_HOME", str(tmp_path / "home"))
    return load_settings()


# ----------------------------------------------------------------------------------------------- transforms
DAY0 = "2026-11-02 10:00"  # a Monday
DAY7 = "2026-11-09 10:00"  # the Monday after


@pytest.fixture(scope="module")
def hand_features():
    rows = [(_ts(DAY0) + pd.Timedelta(minutes=i), "svc", "cpu_pct", i) for i in range(60)]  # mean 29.5
    for i in range(20):
        if i == 17:
            continue  # a gap: no sample at 10:17
        at = _ts(DAY7) + pd.Timedelta(minutes=i)
        rows.append((at, "svc", "cpu_pct", 10 + 2 * i))
        rows.append((at, "svc", "queue_depth", 5 if i == 19 else 0))
    rows += [(_ts("2026-11-09 11:00"), "svc", "cpu_pct", 1.0), (_ts("2026-11-09 11:00"), "svc", "queue_depth", 0)]
    telemetry = _long([(str(r[0]), r[1], r[2], r[3]) for r in rows])
    events = pd.DataFrame(
        {
            "timestamp": _times(["2026-11-09 10:03:30", "2026-11-09 10:15:00", "2026-11-09 10:16", "2026-11-09 10:18"]),
            "service": ["svc", "svc", "other", "svc"],
            "kind": ["deploy", "rollback", "deploy", "incident"],
        }
    )
    return compute_features(telemetry, events, window=15).set_index(TIMESTAMP)


def test_window_statistics_on_a_hand_computable_series(hand_features):
    f = hand_features
    assert len(f) == 60 + 19 + 1  # one row per minute with a sample; none for the gap or between the days
    assert _ts("2026-11-09 10:17") not in f.index
    row = f.loc[_ts("2026-11-09 10:19")]
    # Trailing 15 minutes = 10:05 .. 10:19 by the clock, 10:17 missing: 14 samples of 10 + 2i.
    window = np.array([10 + 2 * i for i in range(5, 20) if i != 17], dtype=float)
    assert row["cpu_pct"] == 48.0
    assert row["cpu_pct__mean_15m"] == pytest.approx(window.mean())
    assert row["cpu_pct__std_15m"] == pytest.approx(window.std(ddof=1))
    assert row["cpu_pct__min_15m"] == 20.0
    assert row["cpu_pct__max_15m"] == 48.0
    assert row["cpu_pct__p95_15m"] == pytest.approx(np.percentile(window, 95))
    # The slope is per clock minute: the gap does not bend a straight line.
    assert row["cpu_pct__slope_15m"] == pytest.approx(2.0)
    assert row["cpu_pct__roc_5m"] == pytest.approx((48 - 38) / 38)
    assert f.loc[_ts("2026-11-09 10:18"), "cpu_pct__roc_5m"] == pytest.approx((46 - 36) / 36)
    # Rate of change from zero is finite; zero to zero is zero. queue_depth is a count, so its denominator is
    # floored at one message: 0 -> 5 waiting is +5, not the +1000 % cap.
    assert row["queue_depth__roc_5m"] == 5.0
    assert f.loc[_ts("2026-11-09 10:18"), "queue_depth__roc_5m"] == 0.0
    # Week over week: 48 against the mean of Monday 10:00-10:59 a week earlier (0..59 -> 29.5).
    assert row["cpu_pct__wow"] == pytest.approx(48 - 29.5)
    assert np.isnan(row["queue_depth__wow"])  # no queue_depth a week earlier
    assert np.isnan(f.loc[_ts("2026-11-09 11:00"), "cpu_pct__wow"])  # no samples at 11:00 a week earlier
    assert row["hour"] == 10 and row["weekday"] == 0


def test_windows_start_blank_after_a_long_gap(hand_features):
    first = hand_features.loc[_ts(DAY7)]
    assert first["cpu_pct__mean_15m"] == 10.0 and first["cpu_pct__min_15m"] == 10.0
    assert np.isnan(first["cpu_pct__std_15m"]) and np.isnan(first["cpu_pct__slope_15m"])
    assert np.isnan(first["cpu_pct__roc_5m"])


def test_minutes_since_deploy_counts_deploys_and_rollbacks_of_the_service_only(hand_features):
    since = hand_features["minutes_since_deploy"]
    assert since[_ts("2026-11-02 10:30")] == 10080.0  # no deploy yet: the one-week cap
    assert since[_ts("2026-11-09 10:03")] == 10080.0  # the deploy at 10:03:30 is still in the future
    assert since[_ts("2026-11-09 10:04")] == 0.5
    assert since[_ts("2026-11-09 10:14")] == 10.5
    assert since[_ts("2026-11-09 10:15")] == 0.0  # the rollback at exactly 10:15 counts
    assert since[_ts("2026-11-09 10:19")] == 4.0  # other's deploy and the incident event do not
    assert since[_ts("2026-11-09 11:00")] == 45.0


def test_samples_off_the_minute_move_to_the_next_minute_and_the_latest_wins():
    telemetry = _long(
        [
            ("2026-11-09 10:00:00", "a", "cpu_pct", 1),
            ("2026-11-09 10:00:30", "a", "cpu_pct", 2),
            ("2026-11-09 10:00:50", "a", "cpu_pct", 3),
            ("2026-11-09 10:02:00", "a", "cpu_pct", 4),
        ]
    )
    f = compute_features(telemetry, window=5)
    assert f[TIMESTAMP].tolist() == [_ts("2026-11-09 10:00"), _ts("2026-11-09 10:01"), _ts("2026-11-09 10:02")]
    assert f["cpu_pct"].tolist() == [1.0, 3.0, 4.0]
    assert f["cpu_pct__mean_5m"].tolist() == [1.0, 2.0, pytest.approx(8 / 3)]
    assert list(f.columns) == [ENTITY, TIMESTAMP, CREATED] + feature_names(["cpu_pct"], 5)
    assert (f[CREATED] == f[TIMESTAMP]).all() and str(f[TIMESTAMP].dtype) == "datetime64[ns, UTC]"


def _random_fleet(seed: int = 7, days: int = 8) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    times = pd.date_range("2026-11-01", periods=days * 1440, freq="min", tz=UTC)
    frames = []
    for service in ("a", "b"):
        for metric in ("cpu_pct", "error_rate", "queue_depth"):
            values = np.abs(np.cumsum(rng.normal(0, 1, len(times)))) + (metric == "cpu_pct") * 20
            values[rng.random(len(times)) < 0.05] = 0.0
            keep = rng.random(len(times)) > 0.03  # gaps
            frames.append(pd.DataFrame({"timestamp": times[keep], "service": service, "metric": metric,
                                        "value": values[keep]}))
    telemetry = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=seed)  # any order
    deploys = pd.DataFrame({"timestamp": times[rng.choice(len(times), 12, replace=False)],
                            "service": rng.choice(["a", "b"], 12), "kind": "deploy"})
    return telemetry.reset_index(drop=True), deploys


def test_features_are_causal():
    telemetry, events = _random_fleet()
    cutoff = _ts("2026-11-08 13:07")
    before = compute_features(telemetry, events)

    future = telemetry["timestamp"] > cutoff
    rng = np.random.default_rng(1)
    changed = telemetry.copy()
    changed.loc[future, "value"] = changed.loc[future, "value"] * rng.uniform(0.1, 10.0, future.sum()) + 3.0
    changed = changed.drop(changed[future].sample(frac=0.2, random_state=2).index)  # and new gaps
    more_events = pd.concat([events, pd.DataFrame({"timestamp": [cutoff + pd.Timedelta(seconds=1)],
                                                   "service": ["a"], "kind": ["rollback"]})])
    after = compute_features(changed, more_events)

    past = before[TIMESTAMP] <= cutoff
    assert past.sum() == 2 * (7 * 1440 + 13 * 60 + 8)  # every minute has a sample of some metric
    assert before.loc[past, "cpu_pct__wow"].notna().sum() > 1400  # 13 h x 2 services of week-over-week compared
    pd.testing.assert_frame_equal(
        before[past].reset_index(drop=True), after[after[TIMESTAMP] <= cutoff].reset_index(drop=True)
    )
    assert not before[~past].reset_index(drop=True).equals(after[after[TIMESTAMP] > cutoff].reset_index(drop=True))

    # The comparison is sensitive: a change *at* the cutoff shows in the cutoff's row.
    at = (telemetry["timestamp"] == cutoff) & (telemetry["service"] == "a") & (telemetry["metric"] == "cpu_pct")
    assert at.sum() == 1
    nudged = telemetry.copy()
    nudged.loc[at, "value"] += 1.0
    third = compute_features(nudged, events)
    row = (before[TIMESTAMP] == cutoff) & (before[ENTITY] == "a")
    assert third.loc[row, "cpu_pct"].item() == before.loc[row, "cpu_pct"].item() + 1.0
    assert third.loc[row, "cpu_pct__mean_15m"].item() != before.loc[row, "cpu_pct__mean_15m"].item()


def test_baseline_is_the_median_of_the_24_completed_hours_before():
    # Hour k of the series holds the value k all hour long, so each hourly mean is k.
    start = _ts("2026-11-09 00:00")
    stamps = pd.date_range(start, periods=30 * 60, freq="min")
    tele = pd.DataFrame({"timestamp": stamps, "service": "svc", "metric": "cpu_pct",
                         "value": (np.arange(len(stamps)) // 60).astype(float)})
    f = compute_features(tele).set_index(TIMESTAMP)["cpu_pct__base_24h"]
    assert np.isnan(f[start + pd.Timedelta(minutes=59)])  # no completed hour yet
    assert f[start + pd.Timedelta(hours=1)] == 0.0  # one completed hour: 0
    assert f[start + pd.Timedelta(hours=3, minutes=30)] == 1.0  # hours 0, 1, 2: median 1; hour 3 not yet done
    assert f[start + pd.Timedelta(hours=26, minutes=59)] == 13.5  # hours 2 .. 25: median 13.5
    # Causal: changing the current hour and what follows leaves the baseline at that time alone.
    later = tele.assign(value=np.where(tele["timestamp"] >= start + pd.Timedelta(hours=26), 999.0, tele["value"]))
    g = compute_features(later).set_index(TIMESTAMP)["cpu_pct__base_24h"]
    assert g[start + pd.Timedelta(hours=26, minutes=59)] == 13.5


def test_feature_names_and_views():
    metrics = ["cpu_pct", "memory_pct"]
    views = view_columns(metrics, 10)
    assert views["service_metrics"] == ["cpu_pct", "memory_pct"]
    assert views["service_rolling"][:7] == [
        "cpu_pct__mean_10m", "cpu_pct__std_10m", "cpu_pct__min_10m", "cpu_pct__max_10m", "cpu_pct__p95_10m",
        "cpu_pct__slope_10m", "cpu_pct__roc_5m",
    ]
    assert views["service_context"] == ["hour", "weekday", "minutes_since_deploy", "cpu_pct__wow", "memory_pct__wow",
                                        "cpu_pct__base_24h", "memory_pct__base_24h"]
    assert len(feature_names(FLEET_METRICS)) == 9 + 9 * 7 + 3 + 9 + 9
    assert failure_feature_names(15) == [
        "cpu_pct__slope_15m", "memory_pct", "memory_pct__slope_15m", "disk_pct", "disk_pct__slope_15m",
        "error_rate", "latency_p99_ms", "connections", "queue_depth", "minutes_since_deploy", "hour", "weekday",
        "memory_pct__base_24h", "disk_pct__base_24h", "error_rate__base_24h", "latency_p99_ms__base_24h",
        "connections__base_24h", "queue_depth__base_24h",
    ]


def test_compute_features_on_the_fleet_is_fast():
    from telemetry.simulator import FleetSimulator

    sim = FleetSimulator(days=3, seed=5, end="2026-11-20T00:00Z").run()
    t0 = time.perf_counter()
    f = compute_features(sim.telemetry, sim.events)
    elapsed = time.perf_counter() - t0
    assert len(f) == 3 * 1440 * 13 and f[ENTITY].nunique() == 13
    assert elapsed < 6.0  # 14 days x 13 services measured at about 4 s on 2 cores


# ----------------------------------------------------------------------------------------------- Feast repo
def test_repo_config_follows_the_settings(settings, monkeypatch):
    config = repo.repo_config(settings)
    assert config.provider == "local" and config.project == "cerebro"
    assert config.online_store.type == "sqlite"
    assert config.online_store.path == str(settings.feast_dir / "online_store.db")
    assert config.registry.path == str(settings.feast_dir / "registry.db")
    assert config.offline_store.type == "file"

    monkeypatch.setenv("CEREBRO_FEAST__ONLINE_STORE", "redis")
    monkeypatch.setenv("CEREBRO_FEAST__REDIS_URL", "redis.internal:6380")
    monkeypatch.setenv("CEREBRO_FEAST__REGISTRY_URL", "postgresql+psycopg://u@pg:5432/feast")
    monkeypatch.setenv("CEREBRO_FEAST__TTL_MINUTES", "30")
    scale = load_settings()
    config = repo.repo_config(scale)
    assert config.online_store.type == "redis"
    assert config.online_store.connection_string == "redis.internal:6380"
    assert config.registry.registry_type == "sql"
    assert config.registry.path == "postgresql+psycopg://u@pg:5432/feast"
    objects = repo.definitions(scale)
    assert {objects[v].ttl for v in repo.VIEWS} == {timedelta(minutes=30)}
    assert objects["service_features_source"].path == str(settings.feast_dir / "data/service_features.parquet")
    assert [p.name for p in objects["detection_v1"].feature_view_projections] == list(repo.VIEWS)
    failure = {f.name for p in objects["failure_v1"].feature_view_projections for f in p.features}
    assert failure == set(failure_feature_names(15))


# ----------------------------------------------------------------------------------------------- point in time
T0 = "2026-11-09 10:00"


def _hand_rows(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    """Feature rows whose every feature is ``marker``, so a joined value names the row it came from."""
    names = feature_names(FLEET_METRICS)
    stamps = _times(r[1] for r in rows).astype("datetime64[ns, UTC]")
    frame = pd.DataFrame({ENTITY: [r[0] for r in rows], TIMESTAMP: stamps, CREATED: stamps})
    for name in names:
        frame[name] = [float(r[2]) for r in rows]
    frame["hour"] = frame["hour"].astype("int64")
    frame["weekday"] = frame["weekday"].astype("int64")
    return frame


@pytest.fixture(scope="module")
def hand_store(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CEREBRO_HOME", str(tmp_path_factory.mktemp("pit") / "home"))
        settings = load_settings()  # ttl_minutes: 60
        features = _hand_rows(
            [("a", "2026-11-09 10:00", 1), ("a", "2026-11-09 10:10", 2), ("a", "2026-11-09 10:20", 3),
             ("b", "2026-11-09 10:05", 10), ("b", "2026-11-09 10:15", 20)]
        )
        build = publish_features(settings, features)
        yield settings, build


# (service, entity time, label, the marker it must get: None = no feature row at or before it within the TTL)
ENTITY_ROWS = [
    ("a", "2026-11-09 10:00:00", "L0", 1),  # exactly at a feature row: that row
    ("a", "2026-11-09 10:09:59", "L1", 1),  # one second before the next row: still the older one
    ("a", "2026-11-09 10:10:00", "L2", 2),
    ("b", "2026-11-09 10:14:59", "L3", 10),
    ("b", "2026-11-09 10:15:00", "L4", 20),
    ("a", "2026-11-09 10:25:00", "L5", 3),
    ("a", "2026-11-09 11:20:00", "L6", 3),  # 60 minutes after the last row: the TTL's edge, kept
    ("zzz", "2026-11-09 10:12:00", "L7", np.nan),  # an unknown service: kept, no features
    ("b", "2026-11-09 10:14:59", "L8", 10),  # the same key twice, with another label: both kept
    ("a", "2026-11-09 09:59:00", "L9", None),  # before the first row: only future rows, dropped
    ("a", "2026-11-09 11:21:00", "L10", None),  # 61 minutes after the last row: outside the TTL, dropped
    ("b", "2026-11-09 12:00:00", "L11", None),  # outside the TTL, dropped
]


def _entity_df(order: list[int] | None = None) -> pd.DataFrame:
    rows = ENTITY_ROWS if order is None else [ENTITY_ROWS[i] for i in order]
    return pd.DataFrame(
        {
            ENTITY: [r[0] for r in rows],
            TIMESTAMP: _times(r[1] for r in rows),
            "label": [r[2] for r in rows],
        },
        index=[100 + ENTITY_ROWS.index(r) for r in rows],
    )


def test_point_in_time_join_takes_the_latest_row_at_or_before_and_counts_ttl_drops(hand_store):
    settings, build = hand_store
    assert build.rows_in_source == 5 and build.materialized["mode"] == "backfill"
    order = [5, 0, 9, 3, 7, 1, 10, 2, 8, 4, 11, 6]  # shuffled: the output keeps this order
    entity = _entity_df(order)
    frame, report = training_frame(settings, entity)

    expected = [ENTITY_ROWS[i] for i in order if ENTITY_ROWS[i][3] is not None]
    assert frame["label"].tolist() == [r[2] for r in expected]
    assert frame.index.tolist() == [100 + ENTITY_ROWS.index(r) for r in expected]
    np.testing.assert_array_equal(frame["cpu_pct"].to_numpy(), np.array([r[3] for r in expected], dtype=float))
    # Every feature of every view came from the same (right) row.
    for name in feature_names(FLEET_METRICS):
        np.testing.assert_array_equal(frame[name].to_numpy(dtype=float), frame["cpu_pct"].to_numpy())
    # Never a future value: the row used is at or before the entity time.
    used = {1: "10:00", 2: "10:10", 3: "10:20", 10: "10:05", 20: "10:15"}
    for _, r in frame.dropna(subset=["cpu_pct"]).iterrows():
        assert _ts(f"2026-11-09 {used[int(r['cpu_pct'])]}") <= r[TIMESTAMP]
    assert list(frame.columns[:3]) == [ENTITY, TIMESTAMP, "label"]

    assert report.rows_in == 12 and report.rows_out == 9 and report.rows_dropped_ttl == 3
    assert sorted(report.dropped_index) == [109, 110, 111]
    assert report.rows_without_features == 1  # zzz
    assert "3 dropped" in report.summary()


def test_chunked_join_equals_feasts_plain_join(hand_store):
    settings, _ = hand_store
    entity = _entity_df()
    plain, plain_report = training_frame(settings, entity, chunk_minutes=None)
    assert plain_report.rows_dropped_ttl == 3
    for minutes in (1, 2, 7, 60):
        chunked, report = training_frame(settings, entity, chunk_minutes=minutes)
        pd.testing.assert_frame_equal(chunked, plain)
        assert report.dropped_index == plain_report.dropped_index


def test_ttl_is_read_from_the_settings_with_a_sql_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("CEREBRO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CEREBRO_FEAST__TTL_MINUTES", "5")
    monkeypatch.setenv("CEREBRO_FEAST__REGISTRY_URL", f"sqlite:///{tmp_path / 'registry.db'}")  # SQL registry
    settings = load_settings()
    publish_features(settings, _hand_rows([("a", "2026-11-09 10:00", 1), ("a", "2026-11-09 10:10", 2)]))
    assert (tmp_path / "registry.db").exists() and not (settings.feast_dir / "registry.db").exists()
    entity = pd.DataFrame({ENTITY: ["a", "a", "a", "a"], TIMESTAMP: _times(
        ["2026-11-09 10:05", "2026-11-09 10:05:01", "2026-11-09 10:14", "2026-11-09 10:16"])})
    frame, report = training_frame(settings, entity, feature_service="failure_v1")
    assert frame["error_rate"].tolist() == [1.0, 2.0]
    assert frame.index.tolist() == [0, 2]
    assert report.rows_dropped_ttl == 2 and report.dropped_index == [1, 3] and report.ttl_minutes == 5
    assert list(frame.columns[2:]) == ["connections", "disk_pct", "error_rate", "latency_p99_ms", "memory_pct",
                                       "queue_depth", "cpu_pct__slope_15m", "disk_pct__slope_15m",
                                       "memory_pct__slope_15m", "hour", "weekday", "minutes_since_deploy",
                                       "connections__base_24h", "disk_pct__base_24h", "error_rate__base_24h",
                                       "latency_p99_ms__base_24h", "memory_pct__base_24h", "queue_depth__base_24h"]


# ----------------------------------------------------------------------------------------------- builds
def test_build_then_online_features_then_an_incremental_build(settings):
    from telemetry.simulator import FleetSimulator

    sim = FleetSimulator(days=8, seed=3, end="2026-11-20T00:00Z").run()
    first = build_feature_store(settings, sim.telemetry, sim.events)
    assert first.rows_computed == first.rows_appended == first.rows_in_source == 8 * 1440 * 13
    assert first.materialized == {"mode": "backfill", "start": "2026-11-12T00:00:00+00:00",
                                  "end": "2026-11-19T23:59:00+00:00"}
    assert first.parquet == settings.feast_dir / "data" / "service_features.parquet" and first.parquet.exists()
    assert len(first.feature_names) == 93 and set(first.timings) >= {"compute_features_s", "materialize_s"}

    source = pd.read_parquet(first.parquet)
    last_day = source[source[TIMESTAMP] >= _ts("2026-11-19")]
    assert last_day["cpu_pct__wow"].notna().all()  # a week of history behind the last day

    services = sorted(sim.topology.names)
    online = online_features(settings, services + ["no-such-service"])
    expected = latest_rows(source).set_index(ENTITY).loc[services]
    assert online[ENTITY].tolist() == services + ["no-such-service"]
    columns = feature_names(first.metrics)
    assert list(online.columns) == [ENTITY] + columns
    np.testing.assert_allclose(online[columns].iloc[:-1].to_numpy(dtype=float),
                               expected[columns].to_numpy(dtype=float), rtol=0, atol=1e-9)
    assert online[columns].iloc[-1].isna().all()

    # Training rows at feature rows (and 30 s later) get exactly those rows.
    sample = source.sample(200, random_state=4)
    entity = sample[[ENTITY, TIMESTAMP]].copy()
    entity[TIMESTAMP] = entity[TIMESTAMP] + pd.to_timedelta(np.where(np.arange(200) % 2, 30, 0), unit="s")
    entity["y"] = np.arange(200)
    frame, report = training_frame(settings, entity, "failure_v1")
    assert report.rows_out == 200 and report.rows_dropped_ttl == 0
    wanted = failure_feature_names(15)
    np.testing.assert_allclose(frame[wanted].to_numpy(dtype=float), sample[wanted].to_numpy(dtype=float))
    assert frame["y"].tolist() == list(range(200))

    # Two hours later: the new rows are appended and materialised from the watermark on.
    later = FleetSimulator(days=8, seed=3, end="2026-11-20T02:00Z").run()
    second = build_feature_store(settings, later.telemetry, later.events)
    assert second.rows_appended == 120 * 13
    assert second.rows_kept_existing == 8 * 1440 * 13 - 120 * 13
    assert second.rows_in_source == 8 * 1440 * 13 + 120 * 13
    assert second.materialized == {"mode": "incremental", "start": "2026-11-19T23:59:00+00:00",
                                   "end": "2026-11-20T01:59:00+00:00"}
    newest = latest_rows(compute_features(later.telemetry, later.events)).set_index(ENTITY).loc[services]
    assert (newest[TIMESTAMP] == _ts("2026-11-20 01:59")).all()
    online = online_features(settings, services, feature_service="failure_v1")
    np.testing.assert_allclose(online[wanted].to_numpy(dtype=float), newest[wanted].to_numpy(dtype=float),
                               rtol=0, atol=1e-9)


@pytest.mark.services
def test_online_store_on_redis(tmp_path, monkeypatch):
    """The scale profile's online store, on the Redis that runs on this machine (127.0.0.1:6379)."""
    import uuid

    import redis

    monkeypatch.setenv("CEREBRO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CEREBRO_FEAST__ONLINE_STORE", "redis")
    monkeypatch.setenv("CEREBRO_FEAST__REDIS_URL", "127.0.0.1:6379")
    monkeypatch.setenv("CEREBRO_FEAST__PROJECT", f"cerebro_test_{uuid.uuid4().hex[:8]}")  # keys never collide
    settings = load_settings()
    client = redis.Redis(host="127.0.0.1", port=6379)
    before = client.dbsize()
    publish_features(settings, _hand_rows([("a", "2026-11-09 10:00", 1), ("a", "2026-11-09 10:10", 2),
                                           ("b", "2026-11-09 10:05", 7)]))
    assert client.dbsize() > before  # the rows really went to Redis
    online = online_features(settings, ["b", "a", "c"], feature_service="failure_v1")
    assert online[ENTITY].tolist() == ["b", "a", "c"]
    assert online["error_rate"].tolist()[:2] == [7.0, 2.0] and np.isnan(online["error_rate"].iloc[2])
    assert not (settings.feast_dir / "online_store.db").exists()


def test_feast_loads_without_typeguard_instrumentation_and_typeguard_is_left_as_it_was(tmp_path):
    """``repo.load_feast`` imports Feast's local-store modules with ``@typechecked`` a no-op (its import cost), in a
    fresh interpreter; afterwards typeguard is the original and still checks code decorated later."""
    import subprocess
    import sys

    code = (
        "import sys, typeguard\n"
        "original = typeguard.typechecked\n"
        "from features.repo import FEAST_MODULES, load_feast\n"
        "load_feast()\n"
        "assert all(m in sys.modules for m in FEAST_MODULES), [m for m in FEAST_MODULES if m not in sys.modules]\n"
        "assert typeguard.typechecked is original\n"
        "@typeguard.typechecked\n"
        "def f(x: int) -> int:\n"
        "    return x\n"
        "try:\n"
        "    f('text')\n"
        "except typeguard.TypeCheckError:\n"
        "    print('checked')\n"
    )
    script = tmp_path / "load.py"  # a file: typeguard reads the decorated function's source
    script.write_text(code)
    root = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=120,
                         cwd=root,
                         env={**os.environ, "PYTHONPATH": root})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("checked")
