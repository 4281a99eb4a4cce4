"""What a detector reads (``features.detector_inputs``): the numpy path equals the pandas path on every column.

The pandas path is what training and the MLflow adapter run: ``compute_features`` on the window (with the
baselines the request sent), then the zoo's transforms. The numpy path is the scoring service's fast one, from
the same request's samples. Both are held equal column by column on simulated windows with gaps, samples off
the minute, missing samples, deploys and rollbacks, sent baselines and a week of history; and the check is shown
to name the column when one path changes alone.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.detector_inputs import numpy_path, pandas_path
from features.detector_inputs.columns import BASE_SUFFIX, detector_columns
from features.transforms import ROLLING, RollingStat, feature_names
from telemetry.schema import FLEET_METRICS

WINDOW = 15
METRICS = sorted(FLEET_METRICS)
COLUMNS = detector_columns(METRICS, WINDOW)  # every column a detector can read
INPUTS = feature_names(METRICS, WINDOW)  # what a request's feature rows carry, baselines included
NO_BASELINES = [c for c in INPUTS if not c.endswith(BASE_SUFFIX)]
# pandas' rolling sums run along the whole stacked grid, numpy's over each window: they differ by up to ~1e-11.
TOLERANCE = {"rtol": 1e-9, "atol": 1e-9}


@pytest.fixture(scope="module")
def fleet():
    from telemetry.simulator import FleetSimulator

    # Nine days: a window of a week and more still has a day of history before it.
    return FleetSimulator(days=9, seed=7, end="2026-11-20T00:00:00Z", incidents_per_day=2).run()


def _samples(tel: pd.DataFrame, services: list[str], end: pd.Timestamp, minutes: int, seed: int) -> pd.DataFrame:
    """``services``' last ``minutes`` before ``end``: a tenth of the samples dropped (gaps), one in fifty sent as
    missing (null), 20 seconds off the minute (the features ceil them), and one in twenty sent twice in the same
    minute with a later, different value (the latest wins)."""
    rng = np.random.default_rng(seed)
    rows = tel[tel["service"].astype(str).isin(services) & (tel["timestamp"] > end - pd.Timedelta(minutes=minutes))
               & (tel["timestamp"] <= end)]
    rows = rows[rng.random(len(rows)) > 0.1].assign(timestamp=lambda d: d["timestamp"] + pd.Timedelta(seconds=20))
    rows = rows.assign(value=rows["value"].where(rng.random(len(rows)) > 0.02))
    again = rows[rng.random(len(rows)) < 0.05].assign(timestamp=lambda d: d["timestamp"] + pd.Timedelta(seconds=30),
                                                      value=lambda d: d["value"] * 1.1 + 1)
    return pd.concat([rows, again]).sample(frac=1.0, random_state=seed)  # any order


def _points(rows: pd.DataFrame) -> list[dict]:
    return [{"timestamp": t.isoformat(), "service": str(s), "metric": str(m), "value": None if np.isnan(v) else float(v)}
            for t, s, m, v in zip(rows["timestamp"], rows["service"], rows["metric"], rows["value"])]


def _series(rows: pd.DataFrame) -> list[dict]:
    return [{"service": str(s), "metric": str(m), "timestamps": [t.isoformat() for t in g["timestamp"]],
             "values": [None if np.isnan(v) else float(v) for v in g["value"]]}
            for (s, m), g in rows.groupby(["service", "metric"], observed=True)]


def _event(at: pd.Timestamp, service: str, kind: str) -> dict:
    return {"timestamp": at.isoformat(), "service": service, "kind": kind}


def _cases(fleet) -> dict[str, tuple[dict, list[str]]]:
    """Request bodies, each with the feature columns its detector was trained from."""
    tel = fleet.telemetry
    end = tel["timestamp"].max() - pd.Timedelta(hours=3)
    two = _samples(tel, ["cart", "auth"], end, 150, seed=1)
    deploys = {"events": [
        _event(end - pd.Timedelta(minutes=40), "cart", "deploy"),
        _event(end - pd.Timedelta(minutes=8), "cart", "rollback"),  # CPU and memory settle: the last minutes
        _event(end - pd.Timedelta(minutes=200), "auth", "deploy"),  # before the window
        _event(end - pd.Timedelta(minutes=30), "auth", "config_change"),  # no deploy: the clock runs on
        _event(end - pd.Timedelta(minutes=20), "payment", "deploy"),  # another service
    ]}
    one = _samples(tel, ["cart"], end, 150, seed=2)
    one = one[one["metric"] != "queue_depth"]  # a metric the window does not carry
    sent = {"baselines": {"cart": {"cpu_pct": 35.0, "latency_p99_ms": 120.0, "queue_depth": 3.0},
                          "auth": {"cpu_pct": 50.0}}}  # the first hour has none of its own
    week = _samples(tel, ["cart"], end, 10080 + 90, seed=3)  # week over week has values
    since = tel["timestamp"].min()
    events = [_event(t, s, k) for t, s, k in zip(fleet.events["timestamp"], fleet.events["service"],
                                                  fleet.events["kind"]) if s == "cart" and since <= t <= end]
    events.append(_event(end - pd.Timedelta(minutes=5), "cart", "deploy"))  # settling where week over week has values
    return {
        "two services, gaps, deploys and a rollback": ({"telemetry": _points(two), **deploys}, INPUTS),
        "baselines sent, a metric missing": ({"series": _series(one), **sent}, INPUTS),
        "a week and more of one service": ({"series": _series(week), "events": events}, INPUTS),
        "inputs without baselines": ({"telemetry": _points(two), **deploys}, NO_BASELINES),
    }


def pandas_frame(req, inputs: list[str]) -> pd.DataFrame:
    """``compute_features`` of the window with the sent baselines, then the zoo's transforms: the full path."""
    from serving.scoring import window_features

    feats = window_features(req, WINDOW)
    lacking = [c for c in inputs if c not in feats.columns]  # NaN: "at the baseline", as the service does
    feats = pd.concat([feats, pd.DataFrame(np.nan, index=feats.index, columns=lacking)], axis=1)
    return pandas_path.zoo_transforms(pandas_path.by_service_and_time(feats)[inputs].astype(float))


def numpy_columns(req, inputs: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same columns from the request's samples: the scoring service's numpy path."""
    from serving.scoring import window_samples

    path = numpy_path.WindowInputs(COLUMNS, inputs, WINDOW)
    return path.compute(window_samples(req, path.levels))


def both_paths(fleet) -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
    """Per case, (the pandas path's frame, the numpy path's values), their rows checked to be the same."""
    from serving.schemas import ScoreRequest

    out = {}
    for name, (body, inputs) in _cases(fleet).items():
        req = ScoreRequest(**body)
        full = pandas_frame(req, inputs)[COLUMNS]
        services, stamps, values = numpy_columns(req, inputs)
        assert list(services) == list(full.index.get_level_values(0)), name
        assert (stamps == full.index.get_level_values(1).asi8).all(), name
        out[name] = (full, values)
    return out


def differing(paths: dict[str, tuple[pd.DataFrame, np.ndarray]]) -> dict[str, list[str]]:
    """Column -> the cases where the two paths disagree on it (NaN only where the other has NaN too)."""
    bad: dict[str, list[str]] = {}
    for name, (full, values) in paths.items():
        for k, col in enumerate(COLUMNS):
            if not np.allclose(values[:, k], full[col].to_numpy(), equal_nan=True, **TOLERANCE):
                bad.setdefault(col, []).append(name)
    return bad


@pytest.fixture(scope="module")
def paths(fleet):
    return both_paths(fleet)


def test_every_column_a_detector_can_read_is_checked(fleet):
    """The columns checked are what the pandas path gives (so a new feature joins the check by itself), and the
    numpy path computes each one."""
    from serving.schemas import ScoreRequest

    body, inputs = next(iter(_cases(fleet).values()))
    assert sorted(pandas_frame(ScoreRequest(**body), inputs).columns) == sorted(COLUMNS)
    assert numpy_path.WindowInputs.supports(COLUMNS, WINDOW)
    for stat in ROLLING:
        assert f"cpu_pct__{stat}_{WINDOW}m" in COLUMNS


@pytest.mark.parametrize("column", COLUMNS)
def test_the_numpy_path_equals_the_pandas_path(paths, column):
    k = COLUMNS.index(column)
    for name, (full, values) in paths.items():
        expected = full[column].to_numpy()
        np.testing.assert_allclose(values[:, k], expected, equal_nan=True, err_msg=f"{column}: {name}", **TOLERANCE)
    # Not NaN on both sides throughout: the column was computed somewhere.
    assert any(np.isfinite(full[column].to_numpy()).any() for full, _ in paths.values()), column


def _with_stat(name: str, on_grid=None, on_windows=None) -> RollingStat:
    stat = ROLLING[name]
    return RollingStat(on_grid or stat.on_grid, on_windows or stat.on_windows)


def _nudged(fn, by=1e-3):
    def inner(*args):
        out = fn(*args)
        return tuple(v + by for v in out) if isinstance(out, tuple) else out + by
    return inner


# A feature changed in one path only, and the columns the check must then name.
MUTATIONS = {
    "numpy p95 kernel": (lambda mp: mp.setitem(ROLLING, "p95", _with_stat("p95", on_windows=_nudged(ROLLING["p95"].on_windows))),
                         [f"{m}__p95_{WINDOW}m" for m in METRICS]),
    "pandas std needs 3 samples": (
        lambda mp: mp.setitem(ROLLING, "std", _with_stat("std", on_grid=lambda g, w: g.rolling(w, min_periods=3).std())),
        [f"{m}__std_{WINDOW}m" for m in METRICS]),
    "pandas deploy horizon": (lambda mp: mp.setattr(pandas_path, "DEPLOY_HORIZON_MINUTES", 120),
                              ["minutes_since_deploy"]),
    "numpy level statistics": (lambda mp: mp.setattr(numpy_path, "LEVEL_STATS", ("mean", "min", "max")),
                               [f"{m}__p95_{WINDOW}m" for m in METRICS]),
    "numpy restarted metrics": (lambda mp: mp.setattr(numpy_path, "RESTARTED_BY_DEPLOYS", ("cpu_pct",)),
                                [c for c in COLUMNS if c.startswith("memory_pct") and not c.endswith("__wow")]),
    "numpy time of day": (lambda mp: mp.setattr(numpy_path, "time_of_day", _nudged(numpy_path.time_of_day)),
                          ["tod_sin", "tod_cos"]),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_a_feature_changed_in_one_path_only_is_named(fleet, paths, monkeypatch, mutation):
    assert differing(paths) == {}
    apply, expected = MUTATIONS[mutation]
    apply(monkeypatch)
    assert sorted(differing(both_paths(fleet))) == sorted(expected)
