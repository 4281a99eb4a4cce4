"""The real-series benchmark's measures (benchmarks/detection_real.py) on cases worked out by hand."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from training.detectors.series import average_precision

_spec = importlib.util.spec_from_file_location(
    "detection_real", Path(__file__).resolve().parents[2] / "benchmarks" / "detection_real.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _labels():
    y = np.zeros(400, int)
    y[100:120] = 1
    y[200:203] = 1
    y[300] = 1
    return y


def test_event_counts_are_event_wise_without_point_adjustment():
    y = _labels()
    flags = np.zeros(400, int)
    flags[118:125] = 1  # touches the first event late: it counts once, not as 20 found rows
    flags[250] = 1  # a false alarm
    flags[300] = 1
    assert bench.event_counts(y, flags) == {"pred": 3, "tp_pred": 2, "true": 3, "found": 2}
    assert bench.event_counts(y, np.zeros(400, int)) == {"pred": 0, "tp_pred": 0, "true": 3, "found": 0}


def test_average_precision_matches_the_definition():
    y = np.array([0, 1, 0, 1, 0])
    s = np.array([0.1, 0.9, 0.8, 0.3, 0.2])
    # ranked: 1 (hit, P=1), 0.8 (miss), 0.3 (hit, P=2/3): AP = 0.5 * 1 + 0.5 * 2/3
    assert np.isclose(average_precision(y, s), 0.5 + 1 / 3)
    assert np.isclose(average_precision(y, y + 0.0), 1.0)


def test_vus_pr_orders_perfect_late_and_random_detectors():
    y = _labels()
    rng = np.random.default_rng(0)
    jitter = rng.uniform(0, 1e-3, len(y))
    late = np.zeros(len(y))
    late[118:125] = 1
    perfect = bench.vus_pr(y, y + jitter, 20)
    assert perfect > bench.vus_pr(y, late + jitter, 20) > bench.vus_pr(y, rng.uniform(size=len(y)), 20)
    assert 0 < perfect <= 1


def test_the_held_out_list_stays_what_it_was_before_tuning():
    # the split the published figures used: changing the rule would mix tuned and held-out cases
    held = {"mitbih-ecg-sample", "electricity-halfhourly#0", "co2-weekly#2", "sunspots-monthly#1"}
    tuned = {"yahoo-s5-sample", "electricity-halfhourly#1", "co2-weekly#0", "sunspots-monthly#0"}
    assert all(bench._held_out(n) for n in held) and not any(bench._held_out(n) for n in tuned)


def test_nab_windows_widen_each_event_around_its_start_and_keep_the_event_inside():
    y = np.zeros(1000, dtype=int)
    y[300:303] = 1   # a short event
    y[700:760] = 1   # a long one: its tail stays labelled past the window
    w = bench.nab_windows(y)
    # 10 % of 1000 rows over 2 events: 50 rows each, centred on the start
    assert w[275:326].all() and not w[274] and not w[326]
    assert w[675:760].all() and not w[674] and not w[760]
    assert bench.event_counts(w, y)["found"] == 2
    assert (bench.nab_windows(np.zeros(10, dtype=int)) == 0).all()
