"""Failure prediction: labels, split, SMOTE's reach, calibration, SHAP, skill against a planted precursor and
against noise, bad input, the Feast path and the serving adapter."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from support.failure_fleet import incidents_frame as _incidents
from support.failure_fleet import synthetic_fleet

from features.transforms import failure_feature_names
from training.failure import (
    FailureData,
    FailureDataError,
    FailurePredictor,
    failure_bundle,
    failure_labels,
    report_markdown,
    split_by_time,
    train_failure_predictor,
)
from training.failure.bundle import predict as predict_failure
from training.failure.evaluation import lead_summary, lead_times, recall_at_precision
from training.failure.labels import INCIDENT, LABEL, LABEL_COLUMNS, ONGOING, TTF, UNDERWAY
from training.failure.relative import CAP_MINUTES, monotone_signs, relative_columns, relative_view

FEATURES = failure_feature_names()
# Enough trees for these data, and fast. The synthetic fleet below plants its precursor in raw columns and its
# baselines are noise like every other column, so the tests of the machinery (split, SMOTE, calibration, SHAP,
# skill against a planted precursor and against noise) feed the columns as they are; the relative view (the
# default) has its own tests further down, on fleets with real baselines and on the simulator.
SMALL = {"n_estimators": 60, "max_depth": 3, "inputs": "raw"}
SMALL_RELATIVE = {"n_estimators": 60, "max_depth": 3}


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture(scope="module")
def fleet() -> FailureData:
    return synthetic_fleet()


@pytest.fixture(scope="module")
def trained(fleet):
    return train_failure_predictor(fleet, **SMALL)


# ----------------------------------------------------------------------------------------------- labels
def test_labels_on_a_hand_made_incident_table():
    incidents = _incidents([
        ("I1", "db", ["api", "web"], "slow_dependency", "2026-11-02 12:00", "2026-11-02 12:30"),
        ("I2", "cache", ["api"], "memory_leak", "2026-11-02 14:00", "2026-11-02 15:00"),  # root not in affected
    ])
    rows = [  # service, time, failure, ttf, ongoing
        ("db", "2026-11-02 10:59", 0, None, False),  # 61 minutes before: outside the horizon
        ("db", "2026-11-02 11:00", 1, 60.0, False),  # exactly H before: (t, t + H] includes the start
        ("api", "2026-11-02 11:45", 1, 15.0, False),
        ("web", "2026-11-02 11:59:30", 1, 0.5, False),
        ("db", "2026-11-02 12:00", 0, None, True),  # the start itself: the failure is not in (t, t + H]
        ("api", "2026-11-02 12:30", 0, None, True),  # the end is still inside
        ("api", "2026-11-02 12:31", 0, None, False),
        ("api", "2026-11-02 13:30", 1, 30.0, False),  # I2 affects api
        ("cache", "2026-11-02 13:10", 1, 50.0, False),  # I2's root, although not listed as affected
        ("web", "2026-11-02 13:30", 0, None, False),  # web is not in I2
        ("cache", "2026-11-02 14:59", 0, None, True),
        ("queue", "2026-11-02 11:30", 0, None, False),  # never in an incident
    ]
    times = pd.to_datetime([r[1] for r in rows], utc=True, format="ISO8601")
    out = failure_labels([r[0] for r in rows], times, incidents, horizon_minutes=60)
    assert out[LABEL].tolist() == [r[2] for r in rows]
    np.testing.assert_array_equal(out[TTF].to_numpy(), np.array([np.nan if r[3] is None else r[3] for r in rows]))
    assert out[ONGOING].tolist() == [r[4] for r in rows]
    assert out[INCIDENT].tolist()[1:4] == ["I1", "I1", "I1"] and out[INCIDENT].iloc[8] == "I2"
    assert out["failure_kind"].iloc[8] == "memory_leak"
    # A shorter horizon: api at 11:45 (15 minutes ahead) stays positive, db at 11:00 does not.
    short = failure_labels([r[0] for r in rows], times, incidents, horizon_minutes=15)
    assert short[LABEL].iloc[1] == 0 and short[LABEL].iloc[2] == 1
    with pytest.raises(ValueError, match="horizon"):
        failure_labels(["db"], ["2026-11-02 10:00"], incidents, horizon_minutes=0)


def test_labels_depend_only_on_later_incidents_brute_force():
    rng = np.random.default_rng(3)
    base = _ts("2026-11-02")
    starts = np.sort(rng.choice(np.arange(0, 3000, 5), 25, replace=False))
    incidents = _incidents([(f"I{k}", str(rng.choice(["a", "b"])), [str(rng.choice(["a", "b", "c"]))], "cpu_saturation",
                             str(base + pd.Timedelta(minutes=int(s))), str(base + pd.Timedelta(minutes=int(s) + 20)))
                            for k, s in enumerate(starts)])
    services = rng.choice(["a", "b", "c", "d"], 800)
    times = base + pd.to_timedelta(rng.integers(0, 3100, 800), unit="min")
    out = failure_labels(services, times, incidents, horizon_minutes=45)
    for i in range(len(services)):
        own = incidents[[services[i] == r or services[i] in a for r, a in
                         zip(incidents["root_cause_service"], incidents["affected_services"])]]
        ahead = own[(own["start"] > times[i]) & (own["start"] <= times[i] + pd.Timedelta(minutes=45))]
        assert out[LABEL].iloc[i] == int(len(ahead) > 0)
        if len(ahead):
            assert out[TTF].iloc[i] == (ahead["start"].min() - times[i]).total_seconds() / 60
        inside = ((own["start"] <= times[i]) & (own["end"] >= times[i])).any()
        assert out[ONGOING].iloc[i] == inside
    # Incidents that start after t + H, or end before t, change nothing at t.
    cutoff = base + pd.Timedelta(minutes=1500)
    early = times <= cutoff
    kept = incidents[incidents["start"] <= cutoff + pd.Timedelta(minutes=45)]
    again = failure_labels(services[early], times[early], kept, horizon_minutes=45)
    pd.testing.assert_frame_equal(again, out[early].reset_index(drop=True))


def test_labels_with_a_failure_moment_mark_the_precursor_window():
    """``at="failed_at"``: only the root cause fails, at that moment; [start, failed_at) of the root cause is under
    way (foreseeable when positive, early when the failure is beyond H), [failed_at, end] ongoing, and the
    services the incident affected are ongoing over the whole incident. An abrupt incident has no window."""
    incidents = _incidents([
        ("I1", "db", ["db", "api"], "memory_leak", "2026-11-02 10:00", "2026-11-02 12:10"),
        ("I2", "cache", ["cache", "web"], "error_burst", "2026-11-02 14:00", "2026-11-02 14:30"),
        ("I3", "db", ["db"], "connection_pool_exhaustion", "2026-11-02 20:00", "2026-11-02 20:30"),
    ]).assign(failed_at=pd.to_datetime(["2026-11-02 12:00", "2026-11-02 14:00", "2026-11-02 20:10"], utc=True))
    rows = [  # service, time, failure, ttf, ongoing, underway
        ("db", "2026-11-02 09:59", 0, None, False, False),
        ("db", "2026-11-02 10:00", 0, None, False, True),  # the leak has begun; the OOM is 120 min away: early
        ("db", "2026-11-02 11:00", 1, 60.0, False, True),  # foreseeable: under way and within H
        ("db", "2026-11-02 11:59", 1, 1.0, False, True),
        ("db", "2026-11-02 12:00", 0, None, True, False),  # the failure moment: ongoing from here
        ("db", "2026-11-02 12:10", 0, None, True, False),
        ("db", "2026-11-02 12:11", 0, None, False, False),
        ("api", "2026-11-02 09:59", 0, None, False, False),
        ("api", "2026-11-02 11:00", 0, None, True, False),  # affected, does not fail: inside the incident
        ("api", "2026-11-02 12:11", 0, None, False, False),
        ("cache", "2026-11-02 13:30", 1, 30.0, False, False),  # abrupt: positive, nothing under way
        ("cache", "2026-11-02 14:00", 0, None, True, False),
        ("web", "2026-11-02 13:30", 0, None, False, False),
        ("web", "2026-11-02 14:15", 0, None, True, False),
        ("db", "2026-11-02 19:30", 1, 40.0, False, False),  # before the pool fault began: not foreseeable
        ("db", "2026-11-02 20:05", 1, 5.0, False, True),
    ]
    times = pd.to_datetime([r[1] for r in rows], utc=True)
    out = failure_labels([r[0] for r in rows], times, incidents, horizon_minutes=60, at="failed_at")
    assert out[LABEL].tolist() == [r[2] for r in rows]
    np.testing.assert_array_equal(out[TTF].to_numpy(), np.array([np.nan if r[3] is None else r[3] for r in rows]))
    assert out[ONGOING].tolist() == [r[4] for r in rows]
    assert out[UNDERWAY].tolist() == [r[5] for r in rows]
    assert out[INCIDENT].iloc[2] == "I1" and out[INCIDENT].iloc[10] == "I2" and out[INCIDENT].iloc[14] == "I3"
    # At the incident start nothing is under way, and every service the incident touched fails at its start.
    start = failure_labels([r[0] for r in rows], times, incidents, horizon_minutes=60, at="start")
    assert not start[UNDERWAY].any()
    assert start[LABEL].iloc[7] == 1 and start[ONGOING].iloc[2]  # api before I1; db inside I1


# ----------------------------------------------------------------------------------------------- split
def test_time_split_is_ordered_without_overlap_and_purged(fleet):
    splits = split_by_time(fleet.frame, fleet.horizon_minutes)
    times = pd.DatetimeIndex(fleet.frame.index.get_level_values(1))
    m = splits.masks
    assert not (m["train"] & m["validation"]).any() and not (m["validation"] & m["test"]).any()
    assert times[m["train"]].max() < times[m["validation"]].min() <= times[m["validation"]].max() < times[m["test"]].min()
    assert not (fleet.frame[ONGOING].to_numpy() & (m["train"] | m["validation"] | m["test"])).any()
    # Purge: no training row's label window reaches into validation, nor validation's into test.
    horizon = pd.Timedelta(minutes=60)
    assert times[m["train"]].max() + horizon < splits.bounds["validation"][0]
    assert times[m["validation"]].max() + horizon < splits.bounds["test"][0]
    assert splits.purged["train"] > 0 and splits.purged["test"] == 0
    used = m["train"].sum() + m["validation"].sum() + m["test"].sum()
    assert used + splits.ongoing + sum(splits.purged.values()) == len(fleet.frame)
    with pytest.raises(ValueError, match="fractions"):
        split_by_time(fleet.frame, 60, (0.5, 0.5, 0.5))


# ----------------------------------------------------------------------------------------------- model
def _parts(data: FailureData):
    splits = split_by_time(data.frame, data.horizon_minutes)
    return [data.frame[splits.masks[k]] for k in ("train", "validation", "test")]


def test_smote_resamples_training_rows_only(fleet):
    train, val, _ = _parts(fleet)
    before = val.copy()
    model = FailurePredictor(**SMALL).fit(train, train[LABEL], X_val=val, y_val=val[LABEL])
    smote = model.pipeline_.named_steps["smote"]
    y = train[LABEL].to_numpy()
    assert smote.calls_ == 1
    assert smote.counts_in_ == {0: int((y == 0).sum()), 1: int((y == 1).sum())}  # exactly the training rows
    assert smote.counts_out_[0] == smote.counts_in_[0]  # majority untouched
    assert smote.counts_out_[1] == int(0.25 * smote.counts_in_[0])  # the 1:4 ratio, synthetic rows added
    # Predicting never resamples: one output per row, SMOTE not called again, the rows not modified.
    proba = model.pipeline_.predict_proba(val[FEATURES].to_numpy())
    assert proba.shape == (len(val), 2) and len(model.predict_proba(val)) == len(val)
    assert smote.calls_ == 1
    pd.testing.assert_frame_equal(val, before)

    # With no validation part given, fit holds out the newest rows; SMOTE sees only the older ones.
    both = pd.concat([train, val])
    inner = FailurePredictor(validation_fraction=0.3, **SMALL).fit(both, both[LABEL])
    cut = np.sort(pd.DatetimeIndex(both.index.get_level_values(1)).unique())
    cut = cut[int(len(cut) * 0.7)]
    stamps = both.index.get_level_values(1)
    older = both[stamps < cut - pd.Timedelta(minutes=60)]  # purged: no training label looks past the cut
    seen = inner.pipeline_.named_steps["smote"].counts_in_
    assert seen == {0: int((older[LABEL] == 0).sum()), 1: int((older[LABEL] == 1).sum())}
    assert inner.fit_report_["validation_rows"] == int((stamps >= cut).sum())


def test_calibration_maps_into_unit_interval_and_is_monotone(trained, fleet):
    model, _ = trained
    _, _, test = _parts(fleet)
    margin = model.decision_function(test)
    proba = model.predict_proba(test)
    assert proba.shape == (len(test), 2) and np.allclose(proba.sum(axis=1), 1)
    np.testing.assert_allclose(proba, model.calibrator_.predict_proba(test[FEATURES]), atol=1e-12)  # the fast path
    assert (proba >= 0).all() and (proba <= 1).all()
    order = np.argsort(margin, kind="stable")
    assert (np.diff(proba[order, 1]) >= -1e-12).all()  # a higher margin never gets a lower probability
    assert proba[:, 1].max() > proba[:, 1].min()  # and it is not a constant
    # The stored threshold comes from validation; predict applies it.
    assert 0 < model.threshold_ < 1 and "validation" in model.threshold_rule_
    np.testing.assert_array_equal(model.predict(test), (proba[:, 1] >= model.threshold_).astype(int))


def test_explain_is_additive_and_ranks_factors(trained, fleet):
    model, _ = trained
    _, _, test = _parts(fleet)
    rows = test.iloc[::37]
    ex = model.explain(rows, top_k=4)
    np.testing.assert_allclose(ex.base_value + ex.contributions.sum(axis=1).to_numpy(), model.decision_function(rows),
                               atol=1e-4)
    np.testing.assert_allclose(ex.margin, model.decision_function(rows), atol=1e-6)
    assert len(ex.top) == len(rows) and all(len(t) == 4 for t in ex.top)
    for i, factors in enumerate(ex.top):
        sizes = [abs(f["contribution"]) for f in factors]
        assert sizes == sorted(sizes, reverse=True)
        assert sizes[0] == pytest.approx(np.abs(ex.contributions.iloc[i]).max())
        for f in factors:
            assert f["value"] == pytest.approx(rows[f["feature"]].iloc[i])
            assert f["contribution"] == pytest.approx(ex.contributions[f["feature"]].iloc[i])
    # The planted precursor is what explains the most alarmed row.
    top = ex.top[int(np.argmax(ex.margin))]
    assert {f["feature"] for f in top[:2]} & {"memory_pct__slope_15m", "queue_depth"}


def test_predictor_finds_a_planted_precursor(trained):
    """Skill where there is something to learn. Bars fixed before looking at the test period: a ranking worth
    having is several times the positive rate (what knowing nothing scores), and half of the failures seen
    coming with a useful lead (the precursor starts an hour ahead, rises linearly)."""
    _, report = trained
    test = report["test"]
    assert test["pr_auc"] > max(0.4, 5 * test["positive_rate"])
    assert test["recall_at_precision_0.9"] > 0.1
    assert test["lead"]["failure_recall"] >= 0.5 and test["lead"]["median_lead_minutes"] >= 10
    assert test["precision"] > 0.5  # a threshold chosen on validation carries over
    assert report["fit"]["ttf_model"] and test["ttf_mae_minutes"] < 30  # better than guessing the midpoint
    md = report_markdown(report)
    assert "## Test period" in md and "PR-AUC" in md and "Per fault kind" in md


def test_no_skill_without_a_precursor():
    """The control: the same labels, features that know nothing. If labels leaked into the features (split,
    SMOTE, calibration), this would score like the planted case; it must score like a coin."""
    data = synthetic_fleet(signal=False, seed=1)
    _, report = train_failure_predictor(data, **SMALL)
    test = report["test"]
    assert test["pr_auc"] < 2.5 * test["positive_rate"]
    assert test["recall_at_precision_0.9"] < 0.1


def test_bad_input_is_refused_with_reasons(fleet):
    train, val, _ = _parts(fleet)
    with pytest.raises(FailureDataError, match=r"lacks the feature columns \['queue_depth', 'hour'\]"):
        FailurePredictor(**SMALL).fit(train.drop(columns=["queue_depth", "hour"]), train[LABEL])
    with pytest.raises(FailureDataError, match="no failures"):
        FailurePredictor(**SMALL).fit(train, np.zeros(len(train), dtype=int), X_val=val, y_val=val[LABEL])
    with pytest.raises(FailureDataError, match="validation rows"):
        FailurePredictor(**SMALL).fit(train, train[LABEL], X_val=val, y_val=np.zeros(len(val), dtype=int))
    with pytest.raises(FailureDataError, match="labels must be 0 or 1"):
        FailurePredictor(**SMALL).fit(train, train[LABEL] * 2, X_val=val, y_val=val[LABEL])
    with pytest.raises(FailureDataError, match="5 labels"):
        FailurePredictor(**SMALL).fit(train, train[LABEL].to_numpy()[:5])
    model = FailurePredictor(**SMALL).fit(train, train[LABEL], X_val=val, y_val=val[LABEL])
    with pytest.raises(FailureDataError, match=r"\['error_rate'\]"):
        model.predict_proba(val.drop(columns=["error_rate"]))
    with pytest.raises(FailureDataError, match="infinite"):
        model.predict_proba(val.assign(error_rate=np.inf))


def test_nan_features_are_imputed_before_smote():
    data = synthetic_fleet(seed=2, days=4, nan_share=0.2)
    train, val, test = _parts(data)
    assert train["cpu_pct__slope_15m"].isna().mean() > 0.15
    model = FailurePredictor(**SMALL).fit(train, train[LABEL], X_val=val, y_val=val[LABEL])
    assert model.pipeline_.steps[0][0] == "impute" and model.pipeline_.steps[1][0] == "smote"
    assert np.isfinite(model.predict_proba(test)).all()
    ex = model.explain(test.head(20), top_k=len(FEATURES))
    nan_row = int(np.flatnonzero(test.head(20)["cpu_pct__slope_15m"].isna())[0])
    factor = next(f for f in ex.top[nan_row] if f["feature"] == "cpu_pct__slope_15m")
    assert factor["value"] is None  # the row's own value is reported, not the imputed median


def test_estimator_contract(trained, fleet):
    model, _ = trained
    params = model.get_params()
    assert params["horizon_minutes"] == 60 and params["features"] == FEATURES
    fresh = clone(model)
    assert not hasattr(fresh, "pipeline_") and fresh.get_params() == params
    _, _, test = _parts(fleet)
    frame = model.predict_frame(test.head(30).reset_index(), top_k=2)
    assert list(frame.columns) == ["service", "timestamp", "failure_probability", "alarm",
                                   "time_to_failure_minutes", "top_factors"]
    assert frame["service"].tolist() == test.head(30).index.get_level_values(0).tolist()
    alarm = frame["alarm"] == 1
    assert frame.loc[alarm, "time_to_failure_minutes"].between(1, 60).all()
    assert frame.loc[~alarm, "time_to_failure_minutes"].isna().all()
    assert all(len(f) == 2 for f in frame["top_factors"])


# ----------------------------------------------------------------------------------------------- evaluation
def test_lead_times_and_misses_on_a_hand_made_case():
    incidents = _incidents([("I1", "a", ["a", "b"], "memory_leak", "2026-11-02 12:00", "2026-11-02 12:30"),
                            ("I2", "a", ["a"], "disk_fill", "2026-11-02 10:30", "2026-11-02 10:40")])
    times = pd.date_range("2026-11-02 10:00", "2026-11-02 13:00", freq="5min", tz="UTC")
    services = np.array(["a"] * len(times) + ["b"] * len(times))
    stamps = pd.DatetimeIndex(list(times) * 2)
    alarm = np.zeros(len(stamps), dtype=bool)
    alarm[(services == "a") & (stamps == _ts("2026-11-02 11:20"))] = True  # 40 minutes ahead of I1
    alarm[(services == "a") & (stamps == _ts("2026-11-02 11:40"))] = True
    alarm[(services == "b") & (stamps == _ts("2026-11-02 10:55"))] = True  # 65 minutes ahead: too early
    alarm[(services == "b") & (stamps == _ts("2026-11-02 12:10"))] = True  # during the incident: not a lead
    leads = lead_times(services, stamps, alarm, incidents, 60)
    by = leads.set_index(["incident_id", "service"])
    assert by.loc[("I1", "a"), "lead_minutes"] == 40 and by.loc[("I1", "a"), "caught"]
    assert not by.loc[("I1", "b"), "caught"] and np.isnan(by.loc[("I1", "b"), "lead_minutes"])
    assert ("I2", "a") not in by.index  # its hour before starts before the rows do: not counted
    assert lead_summary(leads) == {"failures": 2, "caught": 1, "missed": 1, "failure_recall": 0.5,
                                   "median_lead_minutes": 40.0}
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.2, 0.9, 0.8, 0.85, 0.3])
    assert recall_at_precision(y, p, 0.9) == pytest.approx(1 / 3)  # 0.9 alone; adding 0.85 drops precision
    assert recall_at_precision(y, p, 0.7) == 1.0  # down to 0.3: 3 of 4 alarms right, every failure


# ----------------------------------------------------------------------------------------------- the relative view
def creeping_fleet(days: float = 6, step: int = 5, seed: int = 0, shift_roots: bool = False) -> FailureData:
    """A fleet of six services at memory levels from 20 to 75 %, one incident every ~4 hours: every other one a
    memory leak (memory climbs from the service's level to 100 % over the 2 hours before ``failed_at``, its slope
    noisy), the others abrupt (``failed_at`` = start, nothing before). ``memory_pct__base_24h`` is the service's
    level; every other column is noise with a per-service offset. ``shift_roots``: the incidents of the first 65 %
    of the window hit the three low-memory services, the later ones the three high-memory services."""
    rng = np.random.default_rng(seed)
    services = [f"svc-{k}" for k in range(6)]
    level = dict(zip(services, [20.0, 30.0, 40.0, 55.0, 65.0, 75.0]))
    times = pd.date_range("2026-11-02", periods=int(days * 1440 / step), freq=f"{step}min", tz="UTC")
    grid = np.arange(180, days * 1440 - 240, 240)
    offsets = grid + rng.integers(-40, 40, size=len(grid))
    rows = []
    for k, o in enumerate(offsets):
        pool = (services[:3] if o < 0.65 * days * 1440 else services[3:]) if shift_roots else services
        root = str(rng.choice(pool))
        start = times[0] + pd.Timedelta(minutes=int(o))
        failed = start + pd.Timedelta(minutes=120 if k % 2 == 0 else 0)
        rows.append((f"INC-{k}", root, [root], "memory_leak" if k % 2 == 0 else "error_burst", start, failed,
                     failed + pd.Timedelta(minutes=20)))
    incidents = pd.DataFrame(rows, columns=["incident_id", "root_cause_service", "affected_services", "kind",
                                            "start", "failed_at", "end"])
    svc = np.repeat(services, len(times))
    ts = pd.DatetimeIndex(np.tile(times, len(services)))
    n = len(svc)
    shift = {s: rng.normal(0, 2, len(FEATURES)) for s in services}
    frame = pd.DataFrame(rng.normal(0, 1, (n, len(FEATURES))) + np.vstack([shift[s] for s in svc]),
                         columns=FEATURES)
    lv = np.array([level[s] for s in svc])
    rise, slope = np.zeros(n), np.zeros(n)
    for r in incidents[incidents["failed_at"] > incidents["start"]].itertuples():
        m = (svc == r.root_cause_service) & (ts >= r.start) & (ts < r.failed_at)
        rise[m] = (100 - lv[m]) * ((ts[m] - r.start) / (r.failed_at - r.start)).to_numpy(dtype=float)
        slope[m] = (100 - lv[m]) / 120
    frame["memory_pct"] = lv + rise + rng.normal(0, 1.5, n)
    frame["memory_pct__base_24h"] = lv + rng.normal(0, 0.3, n)
    frame["memory_pct__slope_15m"] = slope + rng.normal(0, 0.5, n)
    frame["hour"] = ts.hour
    frame["weekday"] = ts.weekday
    frame["minutes_since_deploy"] = rng.uniform(0, 600, n)
    frame.index = pd.MultiIndex.from_arrays([svc, ts], names=["service", "timestamp"])
    labels = failure_labels(svc, ts, incidents, horizon_minutes=60, at="failed_at")
    for col in LABEL_COLUMNS:
        frame[col] = labels[col].to_numpy()
    return FailureData(frame.sort_index(), FEATURES, incidents, 60, step, failure_at="failed_at")


@pytest.fixture(scope="module")
def creeping():
    data = creeping_fleet()
    return data, *train_failure_predictor(data, **SMALL_RELATIVE)


def test_relative_view_by_hand():
    names = relative_columns(FEATURES)
    assert names == ["cpu_pct__slope_15m", "memory_pct__slope_15m", "disk_pct__slope_15m", "memory_pct__vs_base",
                     "disk_pct__vs_base", "error_rate__x_base", "latency_p99_ms__x_base", "connections__x_base",
                     "queue_depth__x_base", "memory_pct__minutes_to_limit", "disk_pct__minutes_to_limit"]
    assert monotone_signs(names) == [0, 0, 0, 1, 1, 1, 1, 1, 1, -1, -1]
    rows = pd.DataFrame(0.0, index=range(6), columns=FEATURES)
    rows["memory_pct"] = [80.0, 99.8, 60.0, 60.0, np.nan, 50.0]
    rows["memory_pct__base_24h"] = 50.0
    rows["memory_pct__slope_15m"] = [2.0, 0.0, -1.0, np.nan, 1.0, 0.5]
    rows["connections"] = [40.0, 30.0, 5000.0, 0.0, 1.0, 2.0]
    rows["connections__base_24h"] = [0.2, 10.0, 0.0, 5.0, np.nan, 1.0]
    rows["error_rate"] = [0.05, 0.05, 0.0, 0.0, 0.0, 0.0]
    rows["error_rate__base_24h"] = [0.0001, 0.01, 0.001, 0.001, 0.001, 0.001]
    view = relative_view(rows, FEATURES)
    assert list(view.columns) == names
    np.testing.assert_allclose(view["memory_pct__vs_base"], [30, 49.8, 10, 10, np.nan, 0])
    # 20 points at 2/min; at the limit (within 0.5 %); falling; no slope; no level; 50 points at 0.5/min
    np.testing.assert_allclose(view["memory_pct__minutes_to_limit"], [10, 0, CAP_MINUTES, np.nan, np.nan, 100])
    # Counts floored at one connection, clipped at 1000 times; rates floored at 0.1 %.
    np.testing.assert_allclose(view["connections__x_base"], [40, 3, 1000, 0, np.nan, 2])
    np.testing.assert_allclose(view["error_rate__x_base"], [50, 5, 0, 0, 0, 0])
    # Row by row (what serving computes for one request) = the whole frame at once (what training computed).
    one_by_one = pd.concat([relative_view(rows.iloc[[i]], FEATURES) for i in range(len(rows))])
    pd.testing.assert_frame_equal(one_by_one, view)


def test_relative_view_is_computed_the_same_in_training_and_serving(creeping):
    data, model, _ = creeping
    assert model.inputs == "relative" and model.features_ == FEATURES
    assert model.model_features_ == relative_columns(FEATURES)
    xgb = model.pipeline_.named_steps["xgb"]
    assert xgb.get_params()["monotone_constraints"] == "(" + ",".join(map(str, monotone_signs(
        model.model_features_))) + ")"
    rows = data.frame.iloc[::97].head(40)
    batch = model.predict_proba(rows)[:, 1]
    # One row at a time, in another order, through the serving adapter with the failure_v1 columns only.
    single = [model.predict_proba(rows.iloc[[i]])[0, 1] for i in range(len(rows))[::-1]][::-1]
    np.testing.assert_allclose(single, batch, atol=1e-12)
    request = rows[FEATURES].reset_index()
    request["timestamp"] = request["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    served = predict_failure(failure_bundle(model), request, {"top_k": 2})
    np.testing.assert_allclose(served["failure_probability"].to_numpy(), batch, atol=1e-12)
    # SHAP explains the columns the trees saw, with the row's own derived values.
    ex = model.explain(rows, top_k=3)
    assert list(ex.contributions.columns) == model.model_features_
    pd.testing.assert_frame_equal(ex.values, relative_view(rows, FEATURES))
    np.testing.assert_allclose(ex.base_value + ex.contributions.sum(axis=1).to_numpy(), model.decision_function(rows),
                               atol=1e-4)
    for i, factors in enumerate(ex.top):
        for f in factors:
            value = ex.values[f["feature"]].iloc[i]
            assert (f["value"] is None and np.isnan(value)) or f["value"] == pytest.approx(value)


def test_foreseeable_target_leaves_failures_without_a_precursor_out_of_fitting(creeping):
    data, _, report = creeping
    assert report["target"] == "foreseeable" and not report["target_note"]
    splits = split_by_time(data.frame, 60)
    y = data.frame[LABEL].to_numpy() == 1
    underway = data.frame[UNDERWAY].to_numpy()
    for name in ("train", "validation"):
        m = splits.masks[name]
        assert report["split"]["unforeseeable_rows_left_out_of_fitting"][name] == int((m & y & ~underway).sum()) > 0
    assert report["fit"]["train_failures"] == int((splits.masks["train"] & y & underway).sum())
    assert "early rows not counted" in report["threshold_rule"]
    test = report["test"]
    # Every failure counts in the overall figures; the foreseeable ones (the leaks) apart.
    kinds = {k["kind"]: k for k in test["per_kind"]}
    assert kinds["memory_leak"]["with_precursor"] == kinds["memory_leak"]["failures"] > 0
    assert kinds["error_burst"]["with_precursor"] == 0
    assert test["lead"]["failures"] == kinds["memory_leak"]["failures"] + kinds["error_burst"]["failures"]
    assert test["foreseeable"]["lead"]["failures"] == kinds["memory_leak"]["failures"]
    assert test["foreseeable"]["lead"]["failure_recall"] >= 0.8
    assert test["foreseeable"]["pr_auc"] > 0.8 > test["pr_auc"]  # the abrupt half cannot be foreseen
    assert 0 <= test["early_alarms"] <= test["false_alarms"]
    md = report_markdown(report)
    assert "Foreseeable failures (test)" in md and "with_precursor" in md
    # Fitted on every failure instead: the abrupt failures' rows are training positives too.
    _, every = train_failure_predictor(data, target="all", **SMALL_RELATIVE)
    assert every["target"] == "all"
    assert every["fit"]["train_failures"] == int((splits.masks["train"] & y).sum())
    with pytest.raises(ValueError, match="target"):
        train_failure_predictor(data, target="some", **SMALL_RELATIVE)


def test_relative_view_carries_a_precursor_to_services_training_never_saw_fail():
    """Training failures on low-memory services only, test failures on high-memory ones: on raw levels the trees
    learn the low services' levels and miss the leaks; against each service's baseline the same leak looks the
    same everywhere."""
    data = creeping_fleet(shift_roots=True)
    _, relative = train_failure_predictor(data, **SMALL_RELATIVE)
    _, raw = train_failure_predictor(data, **SMALL)
    rel, plain = relative["test"]["foreseeable"], raw["test"]["foreseeable"]
    assert rel["lead"]["failures"] >= 4
    assert rel["lead"]["failure_recall"] >= 0.8 and rel["pr_auc"] > 0.6
    assert plain["pr_auc"] < rel["pr_auc"] - 0.3 and plain["lead"]["failure_recall"] <= 0.4


# ----------------------------------------------------------------------------------------------- Feast and serving
@pytest.fixture(scope="module")
def feast_data(small_fleet, tmp_path_factory):
    from configs.settings import load_settings
    from training.failure import failure_data_from_frames

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CEREBRO_HOME", str(tmp_path_factory.mktemp("failure") / "home"))
        settings = load_settings()
        data = failure_data_from_frames(settings, small_fleet.telemetry, small_fleet.events, small_fleet.incidents,
                                        horizon_minutes=60, step_minutes=5, dataset=small_fleet.dataset)
        yield settings, data


def test_training_rows_come_through_feasts_point_in_time_join(feast_data, small_fleet):
    from features.transforms import compute_features

    _, data = feast_data
    f = compute_features(small_fleet.telemetry, small_fleet.events).set_index(["service", "event_timestamp"])
    assert sorted(data.features) == sorted(FEATURES)
    assert data.feature_report["join"]["feature_service"] == "failure_v1"
    assert data.feature_report["join"]["rows_dropped_ttl"] == 0
    assert len(data.frame) == 2 * 1440 // 5 * 13
    times = pd.DatetimeIndex(data.frame.index.get_level_values(1))
    assert (times.minute % 5 == 0).all()
    # Entity rows sit on feature minutes: the join must return exactly that minute's row, never a later one.
    expected = f.loc[data.frame.index, FEATURES]
    np.testing.assert_allclose(data.frame[FEATURES].to_numpy(dtype=float), expected.to_numpy(dtype=float))
    labels = failure_labels(data.frame.index.get_level_values(0), times, small_fleet.incidents, 60)
    np.testing.assert_array_equal(data.frame[LABEL].to_numpy(), labels[LABEL].to_numpy())
    assert data.data_version.startswith(small_fleet.dataset + "@")


def test_training_data_from_the_lake_reuses_the_store(feast_data, small_fleet):
    from telemetry import lake
    from training.failure import failure_training_data

    settings, data = feast_data
    lake.write_telemetry(small_fleet.telemetry, settings.lake_dir)
    for name in ("events", "incidents"):
        lake.write_table(name, getattr(small_fleet, name), settings.lake_dir)
    again = failure_training_data(settings, small_fleet.dataset, small_fleet.start, small_fleet.end,
                                  build_store=False)  # the store the fixture built from the same window
    pd.testing.assert_frame_equal(again.frame, data.frame)
    assert again.data_version == data.data_version and "build" not in again.feature_report
    with pytest.raises(ValueError, match="no incidents for dataset 'other'"):
        failure_training_data(settings, "other", small_fleet.start, small_fleet.end, build_store=False)


def test_end_to_end_on_the_simulated_fleet_and_the_serving_adapter(feast_data, tmp_path):
    """The simulated fleet through the whole path. Skill is not asserted here: the simulator starts every fault
    abruptly at its labelled start, so nothing in the telemetry before an incident announces it (the planted
    precursor tests measure skill). What must hold is that the path runs and reports coherent figures."""
    import joblib

    from training.failure import predict_online

    settings, data = feast_data
    model, report = train_failure_predictor(data, settings, **SMALL_RELATIVE)
    test = report["test"]
    assert 0 <= test["pr_auc"] <= 1 and 0 < test["positive_rate"] < 0.5
    assert test["lead"]["failures"] == test["lead"]["caught"] + test["lead"]["missed"] > 0
    assert len(test["misses"]) == test["lead"]["missed"]
    assert sum(k["failures"] for k in test["per_kind"]) == test["lead"]["failures"]
    assert report["split"]["rows"]["train"] > report["split"]["rows"]["test"] > 0
    assert "Failure prediction" in report_markdown(report)

    bundle = failure_bundle(model, data.data_version)
    model.explain(data.frame.head(3))  # a built SHAP explainer must not stop the bundle from pickling
    path = tmp_path / "bundle.joblib"
    joblib.dump(bundle, path)
    bundle = joblib.load(path)  # what the pyfunc adapter's load_context does
    assert bundle["kind"] == "failure" and bundle["columns"] == data.features
    assert model.explainer_ is not None and bundle["model"].explainer_ is None
    rows = data.frame.head(50)
    np.testing.assert_allclose(bundle["model"].predict_proba(rows), model.predict_proba(rows))
    request = data.frame[FEATURES].head(6).reset_index()
    request["timestamp"] = request["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out = predict_failure(bundle, request, {"top_k": 2})
    assert len(out) == 6 and out["timestamp"].tolist() == request["timestamp"].tolist()
    # The request carries the failure_v1 columns only; the relative view is computed as in training.
    np.testing.assert_allclose(out["failure_probability"].to_numpy(),
                               model.predict_proba(data.frame.head(6))[:, 1], atol=1e-12)
    assert all(len(json.loads(f)) == 2 for f in out["top_factors"])
    forced = predict_failure(bundle, request, {"top_k": 0, "threshold": 0.0})
    assert (forced["alarm"] == 1).all() and forced["time_to_failure_minutes"].notna().all()
    with pytest.raises(ValueError, match=r"lacks columns \['connections'\]"):
        predict_failure(bundle, request.drop(columns=["connections"]), {})

    online = predict_online(settings, model, ["payment", "auth", "no-such-service"], top_k=1,
                            as_of=_ts("2026-11-20 00:00"))
    assert online["service"].tolist() == ["payment", "auth"]
    assert online.attrs["unknown_services"] == ["no-such-service"]
    assert online["failure_probability"].between(0, 1).all()
