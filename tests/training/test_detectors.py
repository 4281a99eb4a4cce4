"""One conformance test over every member of the zoo, plus the calibrator and the streaming paths."""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from training.detectors.base import NotEnoughData, TailCalibrator
from training.zoo import build_zoo

EDGES = [("a", "b"), ("b", "c")]
COLS = ["cpu_pct", "latency_p50_ms", "error_rate", "f1"]


def _stacked(n=3 * 1440, seed=0, anomaly=True):
    """Three services with daily seasonality and correlated metrics; an anomaly at service b near the end."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2026-11-01", periods=n, freq="min", tz="UTC")
    frames = []
    for k, svc in enumerate(["a", "b", "c"]):
        day = np.sin(2 * np.pi * np.arange(n) / 1440)
        load = 50 + 20 * day + rng.normal(0, 2, n)
        df = pd.DataFrame({"cpu_pct": load, "latency_p50_ms": 10 + 0.2 * load + rng.normal(0, 0.5, n),
                           "error_rate": 0.01 + rng.normal(0, 0.001, n), "f1": rng.normal(0, 1, n)},
                          index=pd.MultiIndex.from_product([[svc], times], names=["service", "timestamp"]))
        frames.append(df)
    frame = pd.concat(frames)
    labels = np.zeros(len(frame), dtype=bool)
    if anomaly:
        sel = (frame.index.get_level_values(0) == "b") & (frame.index.get_level_values(1) >= times[-200]) & \
              (frame.index.get_level_values(1) < times[-140])
        frame.loc[sel, "latency_p50_ms"] += 15
        frame.loc[sel, "error_rate"] += 0.05
        labels = sel
    return frame, np.asarray(labels)


ZOO = build_zoo(COLS, EDGES, own_telemetry=True)  # every member, those for a user's own telemetry too
FAST_DEEP = {"epochs": 1, "max_windows": 1500, "window": 20}


def _fresh(name):
    det = clone(ZOO[name])
    if det.family == "deep":
        det.set_params(**{k: v for k, v in FAST_DEEP.items() if k in det.get_params()})
    return det


@pytest.fixture(scope="module")
def data():
    """Standardised per service with training statistics, as the zoo feeds its members."""
    from training.zoo import SeriesScaler

    frame, labels = _stacked()
    is_train = frame.index.get_level_values(1) < frame.index.get_level_values(1)[0] + pd.Timedelta(days=2)
    scaled = SeriesScaler().fit(frame[is_train]).transform(frame)
    return scaled, labels, scaled[is_train]


def test_the_zoo_has_every_member_the_spec_names():
    assert set(ZOO) >= {"zscore", "mad", "ewma", "holt_winters", "isolation_forest", "one_class_svm", "dbscan", "lof",
                        "random_cut_forest", "pca", "lstm_autoencoder", "transformer_autoencoder", "vae", "graph"}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_conformance(name, data):
    frame, labels, train = data
    det = _fresh(name)
    params = det.get_params()
    assert not [k for k in vars(det) if k.endswith("_")], "__init__ must not learn anything"
    assert set(params) >= {"features", "alpha"}
    assert det.fit(train) is det
    assert hasattr(det, "threshold_") and np.isfinite(det.threshold_)
    scores = det.score(frame)
    assert scores.shape == (len(frame),) and np.isfinite(scores).all()
    pred = det.predict(frame)
    assert set(np.unique(pred)) <= {0, 1}
    cal = det.calibrated(frame)
    assert ((cal >= 0) & (cal <= 1)).all()
    # higher means more anomalous: the injected anomaly outranks normal rows
    from sklearn.metrics import roc_auc_score

    if name == "ewma":  # a change detector: it fires at the onset, then the average absorbs the new level
        assert scores[labels].max() > np.quantile(scores[~labels], 0.999)
    else:
        assert roc_auc_score(labels, scores) > 0.8, name
    # parameters survive cloning, the fitted model survives pickling
    assert clone(det).get_params() == params
    again = pickle.loads(pickle.dumps(det))
    np.testing.assert_allclose(again.score(frame.head(600)), det.score(frame.head(600)), rtol=1e-6, atol=1e-9)
    # the threshold came from training scores: few training rows exceed it
    assert det.predict(train).mean() < 0.02


@pytest.mark.parametrize("name", [n for n in sorted(ZOO) if ZOO[n].streaming])
def test_streaming_members_score_one_point_at_a_time(name, data):
    frame, _labels, train = data
    det = _fresh(name).fit(train)
    cols = list(det.feature_names_in_)
    rows = frame.loc["b"][cols]
    normal = [det.update(x, key="b", **({"hour": int(t.hour)} if name == "holt_winters" else {}))
              for t, x in zip(rows.index[:300], rows.to_numpy()[:300])]
    anomalous = rows.to_numpy()[-190]
    t = rows.index[-190]
    spike = det.update(anomalous, key="b", **({"hour": int(t.hour)} if name == "holt_winters" else {}))
    assert spike > np.quantile(normal, 0.99)


def test_ewma_streaming_matches_batch(data):
    frame, _, train = data
    det = _fresh("ewma").fit(train)
    rows = frame.loc[["a"]].head(200)
    batch = det.score(rows)
    det.state_.pop("a", None)
    stream = [det.update(x, key="a") for x in rows[list(det.feature_names_in_)].to_numpy()]
    np.testing.assert_allclose(stream[1:], batch[1:], rtol=1e-6)


def test_too_little_data_is_refused_with_what_is_needed():
    tiny = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    with pytest.raises(NotEnoughData, match="at least 20 rows"):
        clone(ZOO["zscore"]).set_params(features=None).fit(tiny)


def test_tail_calibrator_extrapolates_past_the_largest_training_score():
    rng = np.random.default_rng(1)
    train = rng.exponential(1.0, 50_000)
    cal = TailCalibrator().fit(train)
    # exponential scores: P(S >= s) = exp(-s); the fitted tail must know it beyond the sample
    for s in (5.0, 8.0, 12.0):
        assert abs(np.log(cal.tail_probability(np.array([s]))[0]) + s) < 0.3
    assert abs(cal.threshold(1e-4) - np.log(1e4)) < 0.4
    assert cal.tail_probability(np.array([0.0]))[0] == pytest.approx(1.0)


def test_ensemble_combines_members_on_a_common_scale(data):
    from training.detectors.ensemble import VotingEnsemble

    frame, labels, train = data
    members = [(n, _fresh(n).fit(train)) for n in ("zscore", "pca", "isolation_forest")]
    ens = VotingEnsemble(members=members, prefit=True).fit(train)
    scores = ens.score(frame)
    by_member = {n: -np.log10(m.calibrator_.tail_probability(m.score(frame))) for n, m in members}
    np.testing.assert_allclose(scores, np.mean([np.minimum(v, 12) for v in by_member.values()], axis=0))
    assert scores[labels].mean() > np.quantile(scores[~labels], 0.99)


def test_the_ensemble_takes_one_member_per_view():
    """The window autoencoders read the same windows, z-score and MAD the same per-metric deviations: each pair
    or triple votes as one model counted several times, so the ensemble takes the best-ranked of each."""
    from training.zoo import ensemble_members, model_views

    views = model_views(ZOO)
    assert views["vae"] == views["lstm_autoencoder"] == views["transformer_autoencoder"] != views["graph"]
    assert views["zscore"] == views["mad"] and views["lof"] == "lof"
    order = ["vae", "lstm_autoencoder", "zscore", "transformer_autoencoder", "mad", "pca", "lof", "dbscan"]
    reports = {n: {"validation": {"f1": 1.0 - k / 100, "auc_pr": 0.5}} for k, n in enumerate(order)}
    assert ensemble_members(reports, 5, views) == ["vae", "zscore", "pca", "lof", "dbscan"]
    assert ensemble_members(reports, 5) == order[:5]  # without views: the five best, as before


def test_an_ensemble_whose_training_rows_reach_the_cap_still_flags_rows_at_it():
    from training.detectors.ensemble import VotingEnsemble

    rng = np.random.default_rng(3)
    member = _fresh("zscore")  # only its calibrator is read: fitted on light-tailed scores
    member.calibrator_ = TailCalibrator().fit(rng.exponential(1.0, 5000))
    train = rng.exponential(1.0, 5000)
    train[:100] = 1e3  # 2 % of the training rows far past the member's tail: their votes sit at the cap
    ens = VotingEnsemble(members=[("m", member)], prefit=True).fit_from_member_scores({"m": train}, ["x"])
    assert ens.calibrator_.threshold(ens.alpha) > ens.cap  # the extrapolated tail lies beyond any score
    assert ens.threshold_ < ens.cap
    assert (ens.combine({"m": np.array([1e3, 1.0])}) > ens.threshold_).tolist() == [True, False]
    assert ens.threshold_at(1e-5) < ens.cap  # the rates the label-free choice tries too


@pytest.mark.parametrize("cls", ["ZScoreDetector", "MADDetector"])
def test_score_values_equals_score_on_stacked_series(cls):
    """The array path the scoring service uses gives the frame path's scores, per series and for an unseen one."""
    import training.detectors.statistical as S

    rng = np.random.default_rng(0)
    idx = pd.MultiIndex.from_product([["a", "b"], pd.date_range("2026-11-20", periods=200, freq="min", tz="UTC")],
                                     names=["service", "timestamp"])
    frame = pd.DataFrame(rng.normal(size=(400, 3)) * [1, 5, 0.1] + [0, 10, 3], index=idx, columns=["x", "y", "z"])
    frame.loc["b", "y"] = frame.loc["b", "y"].to_numpy() * 3  # the two series differ
    det = getattr(S, cls)().fit(frame)
    new = frame.rename(index={"a": "unseen"}, level=0).iloc[150:260]
    keys = new.index.get_level_values(0).to_numpy()
    np.testing.assert_allclose(det.score_values(new[["x", "y", "z"]].to_numpy(), keys), det.score(new), rtol=1e-12)


def test_gap_filling_is_the_same_with_and_without_pandas():
    """``fill_gaps`` (what every detector does to its inputs) and the service's numpy copy of it: carried
    forward within a series, never across, then 0 where a series starts with a gap."""
    from serving.scoring import _ffill_per_service as fill_gaps_values
    from training.detectors.base import fill_gaps

    rng = np.random.default_rng(3)
    keys = np.repeat(np.array(["a", "b", "c"], dtype=object), [5, 4, 6])
    idx = pd.MultiIndex.from_arrays([keys, pd.date_range("2026-11-01", periods=15, freq="min", tz="UTC")])
    values = rng.normal(size=(15, 3))
    values[rng.uniform(size=values.shape) < 0.4] = np.nan
    values[5, :] = np.nan  # series b starts with a gap: 0, not a's last value
    frame = pd.DataFrame(values, index=idx, columns=["x", "y", "z"])
    filled = fill_gaps(frame)
    assert not filled.isna().any().any() and (filled.iloc[5] == 0).all()
    np.testing.assert_array_equal(fill_gaps_values(values, keys), filled.to_numpy())


@pytest.mark.parametrize("block", [4096, 7])
def test_the_one_class_svm_scores_as_libsvm_does(data, block):
    """The RBF decision function in matrix products (``classical.rbf_decision``) is libsvm's own, row for row, on
    rows near the support vectors and far from them, in one block or many."""
    from training.detectors.classical import rbf_decision

    scaled, _, train = data
    det = clone(ZOO["one_class_svm"]).fit(train)
    Z = det._standardise(scaled[det.feature_names_in_])
    Z = np.vstack([Z[:500], Z[-500:] * 3.0, det.model_.support_vectors_[:20]])
    np.testing.assert_allclose(rbf_decision(det.model_, Z, block=block), det.model_.decision_function(Z),
                               rtol=1e-9, atol=1e-12)
    assert np.array_equal(det.score(scaled), -rbf_decision(det.model_, det._standardise(scaled[det.feature_names_in_])))
