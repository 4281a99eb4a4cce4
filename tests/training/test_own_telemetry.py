"""The pieces that let the lifecycle run on a user's own telemetry: anomalies planted to choose without labels,
per-series splits, alarm rules at a 5-minute step, resources and limits read from metric names, the training
window over the lake, and the rolling z-score baseline."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.detectors.synthetic import KINDS, noise_scale, plant
from training.evaluation import alarm_events, evaluate, no_incidents, sampling_steps


def _long(services=("a", "b"), days=4, step="5min", seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    times = pd.date_range("2026-10-05", periods=int(days * 288 * 5 / int(step[:-3])), freq=step, tz="UTC")
    rows = []
    for svc in services:
        hours = times.hour + times.minute / 60
        for metric, level in (("cpu_used_percent", 40.0), ("http_requests_per_second", 100.0)):
            values = level * (1 + 0.3 * np.sin(hours / 24 * 2 * np.pi)) + rng.normal(0, level * 0.02, len(times))
            rows.append(pd.DataFrame({"timestamp": times, "service": svc, "metric": metric, "value": values}))
    return pd.concat(rows, ignore_index=True)


def test_planted_anomalies_change_the_window_only_and_are_labelled():
    telemetry = _long()
    start, end = pd.Timestamp("2026-10-07", tz="UTC"), pd.Timestamp("2026-10-09", tz="UTC")
    planted = plant(telemetry, {"a": (start, end), "b": (start, end)}, per_service=5, seed=1)
    changed = planted.telemetry["value"].to_numpy() != telemetry["value"].to_numpy()
    times = planted.telemetry["timestamp"]
    assert changed.any()
    assert not changed[(times < start) | (times >= end)].any()  # the history and the test period are untouched
    inc = planted.incidents
    assert len(inc) == 10 and set(inc["root_cause_service"]) == {"a", "b"} and set(inc["kind"]) <= set(KINDS)
    for row in inc.itertuples():  # every changed sample lies inside a labelled window of its service and metric
        assert start <= row.start <= row.end < end
    for svc, rows in inc.groupby("root_cause_service"):  # windows of one service never overlap
        ordered = rows.sort_values("start")
        assert (ordered["start"].to_numpy()[1:] > ordered["end"].to_numpy()[:-1]).all()
    inside = np.zeros(len(telemetry), dtype=bool)
    for row in inc.itertuples():
        inside |= ((planted.telemetry["service"] == row.root_cause_service) & (planted.telemetry["metric"] == row.metric)
                   & (times >= row.start) & (times <= row.end)).to_numpy()
    assert not (changed & ~inside).any()
    # The same seed plants the same anomalies; another seed, others.
    again = plant(telemetry, {"a": (start, end), "b": (start, end)}, per_service=5, seed=1)
    other = plant(telemetry, {"a": (start, end), "b": (start, end)}, per_service=5, seed=2)
    assert again.incidents["start"].tolist() == inc["start"].tolist()
    assert other.incidents["start"].tolist() != inc["start"].tolist()


def test_noise_scale_reads_the_noise_not_the_daily_cycle():
    t = np.arange(2880)
    x = 100 + 40 * np.sin(t / 288 * 2 * np.pi) + np.random.default_rng(0).normal(0, 1, len(t))
    assert 0.7 < noise_scale(x) < 1.3  # the cycle (40) does not inflate it


def test_alarm_rules_follow_each_series_sampling_step():
    times5 = pd.date_range("2026-10-05", periods=20, freq="5min", tz="UTC")
    times1 = pd.date_range("2026-10-05", periods=20, freq="1min", tz="UTC")
    index = pd.MultiIndex.from_arrays([["slow"] * 20 + ["fast"] * 20, times5.append(times1)])
    assert sampling_steps(index) == {"slow": 5.0, "fast": 1.0}
    alarms = np.zeros(40, dtype=bool)
    alarms[[3, 25]] = True  # one alarmed sample on each
    events = alarm_events(index, alarms, steps=sampling_steps(index))
    # At a 5-minute step one alarmed sample is 5 alarmed minutes (past the 3-minute rule); at 1 minute it is not.
    assert events["service"].tolist() == ["slow"] and events["minutes"].tolist() == [5]
    alarms[:] = False
    alarms[[3, 5]] = True  # one missed sample between two alarms still makes one event at a 5-minute step
    assert len(alarm_events(index, alarms, steps=sampling_steps(index))) == 1
    incidents = pd.DataFrame({"incident_id": ["x"], "kind": ["k"], "start": [times5[3]], "end": [times5[4]],
                              "affected_services": [["slow"]]})
    alarms[:] = False
    alarms[3] = True
    assert evaluate(index, alarms.astype(float), 0.5, incidents)["found"] == 1


def test_the_label_free_choice_puts_forward_what_finds_planted_anomalies(tmp_path):
    """A judge without labels: the zoo trains on unlabelled series, the ensemble's members and the figures come
    from planted anomalies, and the choice never reads the test period."""
    from configs.settings import load_settings
    from features.from_lake import features_of
    from training.detectors.stage import PlantedJudge, TrainingData
    from training.zoo import build_zoo, time_split, train_zoo

    telemetry = _long(days=4)
    frame = features_of(telemetry, None, 15).set_index(["service", "timestamp"]).select_dtypes("number")
    empty = no_incidents()
    data = TrainingData(frame=frame, incidents=empty, edges=[], dataset=None, data_version="t", telemetry=telemetry,
                        events=None)
    settings = load_settings(None, home=str(tmp_path))
    splits = time_split(frame, empty, per_series=True)
    judge = PlantedJudge(settings, data, splits)
    zoo = build_zoo(list(splits.frame.columns), [], include=["zscore", "pca", "isolation_forest", "ewma"])
    result = train_zoo(splits, zoo, ensemble_size=3, judge=judge)
    assert result.chosen_without_labels and set(result.planted) == {"zscore", "pca", "isolation_forest", "ewma",
                                                                    "ensemble"}
    assert result.best == "ensemble" and 1 <= len(result.ensemble_members) <= 3
    best_member = max(result.planted, key=lambda n: (result.planted[n]["f1"], result.planted[n]["auc_pr"] or 0))
    # The ensemble's first member is the best single member on planted anomalies.
    ranked = [n for n in sorted(result.planted, key=lambda n: (-result.planted[n]["f1"], -(result.planted[n]["auc_pr"] or 0)))
              if n != "ensemble"]
    assert result.ensemble_members[0] == ranked[0]
    assert result.planted[best_member]["incidents"] == 10 and result.planted[best_member]["found"] >= 5
    # Planted rows come from the validation period only.
    val = splits.frame.index[splits.masks["validation"]]
    assert judge.X.index.isin(val).all() and len(judge.X) == len(val)


def test_per_series_split_cuts_each_series_at_its_own_fractions():
    from features.from_lake import features_of
    from training.zoo import time_split

    early = _long(services=("old",), days=4)
    late = _long(services=("new",), days=2)
    late["timestamp"] = late["timestamp"] + pd.Timedelta(days=30)
    frame = features_of(pd.concat([early, late]), None, 15).set_index(["service", "timestamp"]).select_dtypes("number")
    splits = time_split(frame, no_incidents(), per_series=True)
    services = splits.frame.index.get_level_values(0)
    for svc in ("old", "new"):
        n = int((services == svc).sum())
        assert abs(int((splits.masks["test"] & (services == svc)).sum()) - 0.3 * n) <= 2
        assert abs(int((splits.masks["train"] & (services == svc)).sum()) - 0.5 * n) <= 2
    fleet = time_split(frame, no_incidents())  # one cut for all: the old series would be training only
    assert not (fleet.masks["test"] & (services == "old")).any()


@pytest.mark.parametrize("metric,role,percent", [
    ("CPUUtilization", "cpu", True), ("mem_used_percent", "memory", True), ("disk_used_percent", "disk", True),
    ("node_filesystem_used_percent", "disk", True), ("http_requests_per_second", "traffic", False),
    ("http_p95_ms", None, False), ("cpu_pct", "cpu", True),
])
def test_roles_and_percentages_are_read_from_names(metric, role, percent):
    from training.forecasting.resources import is_percent, role_of

    assert role_of(metric) == role
    assert is_percent(metric) is percent


def test_series_and_limits_are_picked_from_what_the_lake_holds(tmp_path):
    from configs.settings import load_settings
    from training.forecasting.resources import is_percent, lake_limits, pick_series

    telemetry = pd.DataFrame({
        "timestamp": pd.Timestamp("2026-10-05", tz="UTC"), "service": ["web", "web", "db", "db", "db"],
        "metric": ["http_requests_per_second", "CPUUtilization", "disk_used_percent", "mem_rss", "db_connections"],
        "value": [120.0, 40.0, 70.0, 55.0, 30.0]})
    series, how = pick_series(telemetry, ["frontend/request_rate"])
    assert series == ["web/http_requests_per_second", "db/disk_used_percent"] and how.startswith("picked")
    assert pick_series(telemetry, ["db/mem_rss"])[0] == ["db/mem_rss"]  # configured and present: as configured
    unnamed = pd.DataFrame({"timestamp": pd.date_range("2026-10-05", periods=5, freq="h", tz="UTC").repeat(2)[:9],
                            "service": ["s1", "s2"] * 4 + ["s1"], "metric": "value", "value": 1.0})
    assert pick_series(unnamed, [])[0] == ["s1/value", "s2/value"]  # no role in any name: the longest first
    settings = load_settings(None, **{"home": str(tmp_path), "forecasting.limits": {"db_connections": 100}})
    limits = lake_limits(telemetry, settings)
    # Percentages of CPU and disk get the default limits; memory only when one is set; connections as configured.
    assert limits == {"CPUUtilization": 85.0, "disk_used_percent": 90.0, "db_connections": 100}
    assert is_percent("mem_rss", pd.Series([40.0, 60.0])) and not is_percent("mem_rss", pd.Series([0.4, 0.6]))


def test_training_window_per_service_and_its_spelling(tmp_path):
    from configs.settings import load_settings
    from features.from_lake import parse_window, service_spans
    from telemetry import lake
    from telemetry.schema import canonical

    assert parse_window("14d") == pd.Timedelta(days=14) and parse_window("36h") == pd.Timedelta(hours=36)
    assert parse_window("2w") == pd.Timedelta(weeks=2) and parse_window(3) == pd.Timedelta(days=3)
    for bad in ("soon", "-3d", "0"):
        with pytest.raises(ValueError, match="window"):
            parse_window(bad)
    settings = load_settings(None, home=str(tmp_path))
    early = _long(services=("old",), days=3)
    late = _long(services=("new",), days=3)
    late["timestamp"] = late["timestamp"] + pd.Timedelta(days=20)
    lake.write_telemetry(canonical(pd.concat([early, late])), settings.lake_dir)
    spans = service_spans(settings, "1d")
    for svc, frame in (("old", early), ("new", late)):
        start, end = spans[svc]
        assert end == frame["timestamp"].max() + pd.Timedelta(minutes=1)
        assert end - start == pd.Timedelta(days=1)


def test_rolling_zscore_baseline_scores_a_spike_and_not_the_daily_cycle():
    from training.detectors.baselines import ROLLING_Z_THRESHOLD, rolling_zscore

    telemetry = _long(services=("a",), days=3)
    spike_at = pd.Timestamp("2026-10-07 12:00", tz="UTC")
    hit = (telemetry["timestamp"] == spike_at) & (telemetry["metric"] == "cpu_used_percent")
    telemetry.loc[hit, "value"] += 200
    times = pd.DatetimeIndex(sorted(telemetry["timestamp"].unique()))
    index = pd.MultiIndex.from_arrays([["a"] * len(times), times])
    z = rolling_zscore(telemetry, index)
    assert z[times.get_loc(spike_at)] > ROLLING_Z_THRESHOLD
    assert (z > ROLLING_Z_THRESHOLD).sum() == 1


def test_the_put_forward_models_false_alarm_rate_is_chosen_on_planted_anomalies():
    """The judge's F1 decides the rate; on a tie the stricter rate wins; the threshold follows the rate."""
    from training.detectors.statistical import ZScoreDetector
    from training.zoo import ALPHAS, tune_alpha

    rng = np.random.default_rng(0)
    det = ZScoreDetector().fit(pd.DataFrame({"x": rng.normal(size=5000)}))

    class Judge:
        def __init__(self, best_at):
            self.best_at, self.seen = best_at, []

        def figures(self, scores, threshold):
            self.seen.append(threshold)
            good = threshold >= det.calibrator_.threshold(self.best_at) - 1e-12
            return {"f1": 0.9 if good else 0.5}

    judge = Judge(best_at=1e-4)
    assert tune_alpha(det, np.zeros(10), judge) == 1e-5  # every rate at or past 1e-4 ties: the strictest
    assert det.threshold_ == det.calibrator_.threshold(1e-5) and det.alpha == 1e-5
    assert judge.seen == sorted(judge.seen) and len(judge.seen) == len(ALPHAS)

    class Peak:
        def figures(self, scores, threshold):  # best exactly at 1e-4, worse on either side
            return {"f1": 1.0 if abs(threshold - det.calibrator_.threshold(1e-4)) < 1e-12 else 0.3}

    assert tune_alpha(det, np.zeros(10), Peak()) == 1e-4


def test_the_seasonal_residual_member_learns_each_services_own_cycle_and_step():
    """Two services, one at 1 minute and one at 5, with training rows missing (incidents left out): each is scored
    against its own daily profile, and a value normal at 06:00 but not at midnight is found."""
    from training.detectors.seasonal import SeasonalResidualDetector

    frames = []
    for svc, step in (("fast", "1min"), ("slow", "5min")):
        times = pd.date_range("2026-10-05", periods=int(4 * 1440 / int(step[:-3])), freq=step, tz="UTC")
        hours = times.hour + times.minute / 60
        x = 10 * np.sin(hours / 24 * 2 * np.pi) + np.random.default_rng(1).normal(0, 0.3, len(times))
        frames.append(pd.DataFrame({"m": x}, index=pd.MultiIndex.from_arrays([[svc] * len(times), times])))
    frame = pd.concat(frames)
    times = pd.DatetimeIndex(frame.index.get_level_values(1))
    train = frame[(times < pd.Timestamp("2026-10-08", tz="UTC")) & ~((times.hour == 3) & (times.day == 6))]
    det = SeasonalResidualDetector(features=["m"]).fit(train)
    assert {k: v[2] for k, v in det.models_.items()} == {"fast": 60.0, "slow": 300.0}
    test = frame[times >= pd.Timestamp("2026-10-08", tz="UTC")].copy()
    t = pd.DatetimeIndex(test.index.get_level_values(1))
    odd = (t.hour == 0) & (t.minute < 30)  # the daily peak's value (06:00) at midnight, where the cycle is at 0
    test.loc[odd, "m"] += 10
    scores = det.score(test)
    for svc in ("fast", "slow"):
        sel = (test.index.get_level_values(0) == svc)
        assert scores[sel & odd].min() > np.quantile(scores[sel & ~odd], 0.99), svc


def test_a_lake_with_nothing_that_has_a_limit_gets_an_empty_capacity_plan(tmp_path):
    """Latencies and request counts only: the capacity plan is empty and says so; the stage does not fail."""
    from configs.settings import load_settings
    from training.forecasting.capacity import capacity_markdown
    from training.forecasting.stage import ForecastingData, capacity, summarise

    telemetry = _long(services=("api",), days=2)
    telemetry["metric"] = telemetry["metric"].replace({"cpu_used_percent": "latency_p90"})
    data = ForecastingData(series={}, telemetry=telemetry, graph=None, data_version="t")
    plan = capacity(data, load_settings(None, home=str(tmp_path)))
    assert plan.table.empty and "0 resources checked" in capacity_markdown(plan)
    assert summarise(type("BT", (), {"aggregate": pd.DataFrame()})(), plan, {})["capacity"] == []
