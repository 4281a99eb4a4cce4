"""Event-wise scoring without point adjustment, checked on hand-made alarms and incidents."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.evaluation import alarm_events, auc_pr, evaluate, incident_labels, score_events

T0 = pd.Timestamp("2026-11-20T00:00Z")


def _index(services=("a", "b"), minutes=600):
    times = pd.date_range(T0, periods=minutes, freq="min")
    return pd.MultiIndex.from_product([list(services), times], names=["service", "timestamp"])


def _incidents(*rows):
    return pd.DataFrame([{"incident_id": f"I{k}", "affected_services": aff, "kind": kind,
                          "start": T0 + pd.Timedelta(minutes=s), "end": T0 + pd.Timedelta(minutes=e)}
                         for k, (aff, kind, s, e) in enumerate(rows)])


def _alarms(index, spans):
    """spans: (service, first minute, last minute) alarmed."""
    svc = index.get_level_values(0)
    t = (index.get_level_values(1) - T0).total_seconds() / 60
    out = np.zeros(len(index), dtype=bool)
    for s, a, b in spans:
        out |= (svc == s) & (t >= a) & (t <= b)
    return out


def test_merging_and_the_persistence_rule():
    idx = _index()
    alarms = _alarms(idx, [("a", 10, 14), ("a", 20, 22), ("a", 40, 40), ("b", 100, 101)])
    ev = alarm_events(idx, alarms, merge_gap=10, min_minutes=3)
    # a:10-14 and a:20-22 are 6 minutes apart: one event; a:40 alone and b's 2 minutes are too short
    assert len(ev) == 1
    assert ev.iloc[0]["service"] == "a" and ev.iloc[0]["minutes"] == 8
    assert ev.iloc[0]["start"] == T0 + pd.Timedelta(minutes=10) and ev.iloc[0]["end"] == T0 + pd.Timedelta(minutes=22)


def test_one_incident_counts_once_and_outside_alarms_are_false_positives():
    idx = _index()
    inc = _incidents((["a", "b"], "slow_dependency", 100, 160), (["b"], "cpu_saturation", 400, 450))
    alarms = _alarms(idx, [("a", 95, 120), ("b", 110, 130), ("a", 300, 310), ("b", 500, 505)])
    ev = alarm_events(idx, alarms)
    score = score_events(ev, inc, lead_minutes=10)
    assert score.alarm_events == 4 and score.false_alarm_events == 2
    assert score.precision == pytest.approx(0.5) and score.recall == pytest.approx(0.5)
    assert score.f1 == pytest.approx(0.5)
    assert score.found == 1 and score.mttd_minutes == 0  # the alarm at 95 came within the 10-minute lead
    assert score.per_kind["cpu_saturation"]["found"] == 0


def test_an_alarm_on_an_unaffected_service_is_a_false_positive():
    idx = _index()
    inc = _incidents((["a"], "error_burst", 100, 130))
    ev = alarm_events(idx, _alarms(idx, [("b", 100, 130)]))
    score = score_events(ev, inc)
    assert (score.found, score.false_alarm_events, score.precision) == (0, 1, 0.0)


def test_time_to_detect_and_no_point_adjustment():
    idx = _index()
    inc = _incidents((["a"], "memory_leak", 100, 400))
    labels = incident_labels(idx, inc)
    alarms = _alarms(idx, [("a", 380, 400)])  # found late: 280 minutes after the start
    result = evaluate(idx, alarms.astype(float), 0.5, inc)
    assert result["recall"] == 1.0 and result["mttd_minutes"] == pytest.approx(280)
    # point-wise, the same alarms cover only a small part of the incident's rows
    assert labels.sum() == 301 and alarms[labels].mean() < 0.1


def test_auc_pr_is_threshold_free_and_honest_about_chance():
    rng = np.random.default_rng(0)
    labels = rng.random(10_000) < 0.05
    assert auc_pr(labels, labels.astype(float)) == pytest.approx(1.0)
    assert auc_pr(labels, rng.random(10_000)) < 0.1  # random scores score near the base rate
    assert auc_pr(np.zeros(5, dtype=bool), np.arange(5.0)) is None


def test_the_model_put_forward_comes_from_validation_only():
    from training.zoo import choose

    def reports(**f1):
        return {n: {"validation": {"f1": v, "auc_pr": 0.5}, "test": {"f1": 0.0}} for n, v in f1.items()}

    assert choose(reports(ensemble=0.90, lof=0.98, pca=0.95), "ensemble") == "ensemble"
    assert choose(reports(ensemble=0.90, lof=0.98, pca=0.95), "best") == "lof"
    assert choose(reports(ensemble=0.8, lof=0.9)) == "ensemble"  # the default
    assert choose(reports(dbscan=0.8, lof=0.9), "dbscan") == "dbscan"  # a named member
    assert choose(reports(lof=0.9, pca=0.95)) == "pca"  # the named member was not trained: the best one
    r = reports(ensemble=0.90, lof=0.98)
    r["ensemble"]["test"]["f1"] = 1.0  # the test period never takes part in the choice
    assert choose(r, "best") == "lof"


def test_the_recovery_tail_belongs_to_the_incident_but_never_finds_it():
    idx = _index()
    inc = _incidents((["a"], "cpu_saturation", 100, 160))
    # only an alarm starting 5 minutes after the end, as window features do when the level snaps back
    ev = alarm_events(idx, _alarms(idx, [("a", 165, 180)]))
    strict = score_events(ev, inc)
    tail = score_events(ev, inc, recovery_minutes=15)
    assert (strict.false_alarm_events, strict.found) == (1, 0)
    assert (tail.false_alarm_events, tail.found) == (0, 0)  # not false, yet the incident is still missed
    # past the tail, or on a service the incident did not affect, it is a false alarm again
    late = alarm_events(idx, _alarms(idx, [("a", 180, 190), ("b", 165, 180)]))
    assert score_events(late, inc, recovery_minutes=15).false_alarm_events == 2
    # evaluate() passes the tail through, incidents ending just before the period included
    result = evaluate(idx[idx.get_level_values(1) >= T0 + pd.Timedelta(minutes=162)],
                      _alarms(idx, [("a", 165, 180)])[idx.get_level_values(1) >= T0 + pd.Timedelta(minutes=162)]
                      .astype(float), 0.5, inc, recovery_minutes=15)
    assert result["false_alarm_events"] == 0 and result["incidents"] == 0


def test_an_alarm_that_outlasts_its_incident_is_reported_as_overrun():
    """A true alarm event is still true when it runs on after the service recovered, so precision does not see
    it; the overrun past the incidents' end plus the recovery tail is reported beside it."""
    idx = _index(services=("a", "b", "c"))
    inc = _incidents((["a", "b", "c"], "memory_leak", 100, 160), (["a"], "cpu_saturation", 200, 230))
    # a: one event over both incidents, 20 min past the second's end + 15; b: 70 min past; c: inside the tail
    ev = alarm_events(idx, _alarms(idx, [("a", 110, 265), ("b", 120, 245), ("c", 130, 170)]))
    score = score_events(ev, inc, recovery_minutes=15)
    assert score.false_alarm_events == 0 and score.precision == 1.0
    assert score.overrun_p50_minutes == pytest.approx(20.0)
    assert score.overrun_p90_minutes == pytest.approx(20 + 0.8 * (70 - 20))
    false = score_events(alarm_events(idx, _alarms(idx, [("b", 500, 520), ("c", 400, 409)])), inc)
    assert false.overrun_p50_minutes is None and false.false_alarm_minutes == 21 + 10
