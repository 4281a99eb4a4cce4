"""The zoo's input transforms (``features.detector_inputs.pandas_path``), shared by training (time_split) and
serving (the pyfunc adapter, the scoring service's full path)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from features.detector_inputs.pandas_path import relative_to_baseline, settle_after_deploys
from training.zoo import SeriesScaler

T0 = pd.Timestamp("2026-11-09 10:00", tz="UTC")


def _frame(n=40, deploy_at=10):
    times = T0 + pd.to_timedelta(np.arange(n), unit="min")
    idx = pd.MultiIndex.from_arrays([["svc"] * n, times], names=["service", "timestamp"])
    since = np.where(np.arange(n) >= deploy_at, np.arange(n) - deploy_at, 10080.0)
    return pd.DataFrame({
        "cpu_pct": 40.0, "cpu_pct__mean_15m": 40.0, "cpu_pct__std_15m": 1.0, "cpu_pct__base_24h": 35.0,
        "memory_pct": 60.0, "memory_pct__slope_15m": 0.0, "memory_pct__base_24h": 50.0,
        "error_rate": 0.01, "error_rate__mean_15m": 0.01, "error_rate__base_24h": 0.005,
        "queue_depth": 3.0, "queue_depth__mean_15m": 3.0, "queue_depth__roc_5m": 0.0,
        "minutes_since_deploy": since,
    }, index=idx)


def test_levels_are_measured_against_the_baseline_and_baselines_dropped():
    out = relative_to_baseline(_frame())
    assert not any("__base_" in c for c in out.columns)
    assert (out["cpu_pct"] == 5.0).all() and (out["cpu_pct__mean_15m"] == 5.0).all()
    assert (out["cpu_pct__std_15m"] == 1.0).all()  # a spread is not a level
    assert (out["memory_pct"] == 10.0).all() and np.allclose(out["error_rate"], 0.005)
    assert (out["queue_depth"] == 3.0).all()  # no baseline column: left alone
    no_base = _frame().assign(cpu_pct__base_24h=np.nan)
    assert relative_to_baseline(no_base)["cpu_pct"].isna().all()  # no baseline yet: "at the baseline"


def test_cpu_and_memory_settle_for_one_window_after_a_deploy_errors_do_not():
    f = _frame(deploy_at=10)
    out = settle_after_deploys(f)
    fresh = (f["minutes_since_deploy"] < 15).to_numpy()
    assert fresh.sum() == 15  # minutes 10 .. 24: the deploy minute and the 14 after it
    for col in ("cpu_pct", "cpu_pct__mean_15m", "cpu_pct__std_15m", "memory_pct", "memory_pct__slope_15m"):
        assert out.loc[fresh, col].isna().all() and out.loc[~fresh, col].notna().all(), col
    for col in ("error_rate", "error_rate__mean_15m", "queue_depth", "queue_depth__roc_5m", "cpu_pct__base_24h"):
        assert out[col].equals(f[col]), col  # what callers see, and the baselines, stay
    assert settle_after_deploys(f.drop(columns="minutes_since_deploy")).equals(f.drop(columns="minutes_since_deploy"))


def test_counts_keep_a_spread_of_one_unit_after_de_levelling():
    f = relative_to_baseline(_frame()).assign(queue_depth=lambda d: d["queue_depth"] - 2.75)  # fractional now
    scaler = SeriesScaler().fit(f)
    assert scaler.std_.loc["svc", "queue_depth"] == 1.0  # a count by name: floored at one message
    assert scaler.std_.loc["svc", "queue_depth__roc_5m"] == 1.0


def test_a_routine_deploy_is_no_symptom_for_the_multivariate_members():
    """A service that never deployed in training has no spread in its deploy clock; a later routine deploy
    (metrics unchanged) must not read as an anomaly. The deploy clock is context the detectors do not read."""
    from features.detector_inputs.columns import CONTEXT
    from features.detector_inputs.pandas_path import recent_deploys
    from training.zoo import build_zoo

    rng = np.random.default_rng(0)
    n = 3000
    times = T0 + pd.to_timedelta(np.arange(n), unit="min")
    idx = pd.MultiIndex.from_arrays([["svc"] * n, times], names=["service", "timestamp"])
    metrics = pd.DataFrame({"cpu_pct": 40 + rng.normal(0, 2, n), "latency_p50_ms": 20 + rng.normal(0, 1, n),
                            "error_rate": 0.01 + rng.normal(0, 0.001, n)}, index=idx)
    deployed_at = 2500  # training (the first 2000 minutes) never saw a deploy
    since = np.where(np.arange(n) >= deployed_at, np.arange(n) - deployed_at, 10080.0)
    frame = recent_deploys(metrics.assign(minutes_since_deploy=since))
    scaler = SeriesScaler().fit(frame.iloc[:2000])
    scaled = scaler.transform(frame)
    assert scaled["minutes_since_deploy"].abs().max() > 100  # what a member reading it would see
    zoo = build_zoo(list(scaled.columns), [], include=["isolation_forest", "lof", "pca", "one_class_svm"])
    after = scaled.iloc[deployed_at:deployed_at + 240]
    for name, det in zoo.items():
        det.fit(scaled.iloc[:2000])
        assert not set(CONTEXT) & set(det.feature_names_in_), name
        assert det.predict(after).mean() < 0.05, f"{name} alarms on a routine deploy"
