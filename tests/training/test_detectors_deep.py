"""The torch members of the detector zoo (training/detectors/deep.py), on small synthetic fleets."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

# On a busy runner (more runnable processes than cores) OpenMP threads that spin while waiting make small
# torch ops 10-50x slower; waiting passively keeps this file fast there. Read when torch loads OpenMP, so
# it only takes effect if nothing imported torch earlier in this process.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from training.detectors.base import NotEnoughData
from training.detectors.deep import (
    GraphDetector,
    LSTMAutoencoder,
    TransformerAutoencoder,
    VAEDetector,
    normalised_adjacency,
)

SERVICES = ["api", "auth", "db", "cache"]
EDGES = [("api", "auth"), ("api", "db"), ("auth", "db"), ("api", "cache")]
N_ROWS, N_TRAIN, WINDOW = 900, 600, 12
ANOMALY = slice(720, 770)  # rows of the anomalous service (beyond the training part)
ANOMALOUS_SERVICE = "db"

SMALL = {"window": WINDOW, "hidden": 16, "epochs": 4, "batch_size": 64, "max_windows": 1200, "device": "cpu", "random_state": 0}
MAKERS = {
    "lstm": lambda **kw: LSTMAutoencoder(latent=4, **{**SMALL, **kw}),
    "transformer": lambda **kw: TransformerAutoencoder(latent=4, n_heads=2, n_layers=1, **{**SMALL, **kw}),
    "vae": lambda **kw: VAEDetector(latent=4, **{**SMALL, **kw}),
    "graph": lambda **kw: GraphDetector(edges=EDGES, latent=4, **{**SMALL, **kw}),
}
SEQUENCE = ["lstm", "transformer", "vae"]


def fleet(n_rows: int = N_ROWS, seed: int = 0, services=SERVICES) -> pd.DataFrame:
    """Stacked (service, timestamp) series: shared daily traffic, correlated metrics, noise, per-service levels."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_rows)
    stamps = pd.date_range("2026-01-01", periods=n_rows, freq="5min")
    traffic = np.sin(2 * np.pi * t / 48) + 0.3 * np.sin(2 * np.pi * t / 12)
    parts = []
    for k, svc in enumerate(services):
        load = traffic + 0.1 * rng.normal(size=n_rows)
        latency = 0.8 * load + 0.1 * rng.normal(size=n_rows)
        errors = 0.5 * np.cos(2 * np.pi * t / 48 + k) + 0.1 * rng.normal(size=n_rows)
        cpu = 0.6 * load - 0.4 * errors + 0.1 * rng.normal(size=n_rows)
        values = np.c_[load, latency, errors, cpu] * (1 + k) + 10 * k
        index = pd.MultiIndex.from_arrays([[svc] * n_rows, stamps], names=["service", "timestamp"])
        parts.append(pd.DataFrame(values, index=index, columns=["load", "latency", "errors", "cpu"]))
    frame = pd.concat(parts)
    frame["constant"] = 1.0  # a constant column must not break the standardisation
    return frame


def train_part(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.groupby(level=0, sort=False).head(N_TRAIN)


def with_anomaly(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """A level shift on two metrics of one service (beyond the training part); returns the row labels."""
    out = frame.copy()
    svc = out.index.get_level_values(0).to_numpy()
    pos = np.flatnonzero(svc == ANOMALOUS_SERVICE)[ANOMALY]
    scale = (1 + SERVICES.index(ANOMALOUS_SERVICE))
    out.iloc[pos, out.columns.get_loc("latency")] += 4.0 * scale
    out.iloc[pos, out.columns.get_loc("cpu")] -= 3.0 * scale
    labels = np.zeros(len(out), dtype=int)
    labels[pos] = 1
    return out, labels


@pytest.fixture(scope="module")
def data():
    frame = fleet()
    test, labels = with_anomaly(frame)
    return frame, train_part(frame), test, labels


@pytest.fixture(scope="module")
def fitted(data):
    _, train, _, _ = data
    return {name: make().fit(train) for name, make in MAKERS.items()}


def test_family_and_contract():
    for make in MAKERS.values():
        det = make()
        assert det.family == "deep" and not det.streaming
        params = det.get_params()
        for name in ("features", "window", "hidden", "epochs", "batch_size", "lr", "max_windows", "stride",
                     "alpha", "device", "random_state"):
            assert name in params


@pytest.mark.parametrize("name", list(MAKERS))
def test_injected_anomaly_scores_high(name, fitted, data):
    _, _, test, labels = data
    det = fitted[name]
    scores = det.score(test)
    assert scores.shape == (len(test),) and np.isfinite(scores).all()
    svc = test.index.get_level_values(0).to_numpy()
    in_test = np.zeros(len(test), dtype=bool)
    for s in SERVICES:
        in_test[np.flatnonzero(svc == s)[N_TRAIN:]] = True
    # windows ending just after the segment still hold anomalous rows: leave them out of the comparison
    spill = np.zeros(len(test), dtype=bool)
    spill[np.flatnonzero(svc == ANOMALOUS_SERVICE)[ANOMALY.stop: ANOMALY.stop + WINDOW]] = True
    keep = in_test & ~spill
    auc = roc_auc_score(labels[keep], scores[keep])
    assert auc > 0.95, f"{name}: ROC-AUC {auc:.3f}"
    normal = scores[keep & (labels == 0)]
    assert scores[labels == 1].mean() > np.quantile(normal, 0.99)
    flagged = det.predict(test)
    assert flagged[labels == 1].sum() > 0
    assert flagged[keep & (labels == 0)].mean() < 0.05


@pytest.mark.parametrize("name", list(MAKERS))
def test_order_is_preserved(name, fitted, data):
    frame, _, _, _ = data
    det = fitted[name]
    base = pd.Series(det.score(frame), index=frame.index)
    # series stacked in another order
    reordered = pd.concat([frame.xs(s, level=0, drop_level=False) for s in SERVICES[::-1]])
    got = pd.Series(det.score(reordered), index=reordered.index)
    assert len(got) == len(reordered)
    np.testing.assert_allclose(got.to_numpy(), base.loc[reordered.index].to_numpy(), rtol=1e-5, atol=1e-7)
    # series interleaved (sorted by time), each still in time order
    interleaved = frame.sort_index(level=1, kind="stable")
    got = det.score(interleaved)
    np.testing.assert_allclose(got, base.loc[interleaved.index].to_numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", SEQUENCE)
def test_windows_never_cross_series(name, fitted, data):
    frame, _, _, _ = data
    det = fitted[name]
    two = frame.loc[["api", "auth"]]
    before = det.score(two)
    spiked = two.copy()
    spiked.iloc[len(frame.loc["api"]) - 1, :] = 1e6  # the very last row of the first series
    after = det.score(spiked)
    is_auth = two.index.get_level_values(0) == "auth"
    np.testing.assert_array_equal(after[is_auth], before[is_auth])
    assert after[~is_auth][-1] > 1e3 * before[~is_auth][-1]


@pytest.mark.parametrize("name", SEQUENCE)
def test_plain_frame_and_array(name, data):
    frame, _, _, _ = data
    one = frame.loc["api"].iloc[:300]
    det = MAKERS[name](epochs=1, max_windows=200).fit(one)
    scores = det.score(one)
    assert scores.shape == (300,)
    # the first window - 1 rows reuse the first full window's error
    np.testing.assert_array_equal(scores[: WINDOW - 1], scores[WINDOW - 1])
    arr = MAKERS[name](epochs=1, max_windows=200).fit(one.to_numpy())
    assert arr.score(one.to_numpy()).shape == (300,)


@pytest.mark.parametrize("patch", [1, 4, 5])
def test_transformer_patches(patch, data):
    frame, _, _, _ = data
    one = frame.loc[["api"]].iloc[:200]
    det = MAKERS["transformer"](patch=patch, epochs=1, max_windows=100).fit(one)  # 12 steps: 5 pads to 15
    scores = det.score(one)
    assert scores.shape == (200,) and np.isfinite(scores).all()


@pytest.mark.parametrize("name", list(MAKERS))
def test_pickle_clone_and_seed(name, fitted, data):
    frame, train, _, _ = data
    det = fitted[name]
    scores = det.score(frame)
    again = pickle.loads(pickle.dumps(det))
    np.testing.assert_array_equal(again.score(frame), scores)
    assert again.threshold_ == det.threshold_

    twin = clone(det)
    assert twin.get_params() == det.get_params()
    assert not hasattr(twin, "state_")
    np.testing.assert_array_equal(twin.fit(train).score(frame), scores)  # same random_state, same scores

    small = train.groupby(level=0, sort=False).head(100)
    quick = {"epochs": 1, "max_windows": 100}
    one, two = (clone(det).set_params(random_state=rs, **quick).fit(small).score(small) for rs in (0, 1))
    assert not np.array_equal(one, two)  # the seed matters


def test_loads_in_another_process(fitted, data, tmp_path: Path):
    frame, _, _, _ = data
    sample = frame.groupby(level=0, sort=False).head(200)
    pickle_path, frame_path, out_path = tmp_path / "dets.pkl", tmp_path / "x.pkl", tmp_path / "out.npy"
    pickle_path.write_bytes(pickle.dumps(fitted))
    sample.to_pickle(frame_path)
    code = (
        "import pickle, numpy as np, pandas as pd\n"
        f"dets = pickle.load(open({str(pickle_path)!r}, 'rb'))\n"
        f"x = pd.read_pickle({str(frame_path)!r})\n"
        f"np.save({str(out_path)!r}, np.stack([dets[k].score(x) for k in sorted(dets)]))\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=120)
    expected = np.stack([fitted[k].score(sample) for k in sorted(fitted)])
    np.testing.assert_array_equal(np.load(out_path), expected)


def test_global_torch_rng_untouched(data):
    _, train, _, _ = data
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    MAKERS["vae"](epochs=1, max_windows=100).fit(train)
    np.testing.assert_array_equal(torch.rand(3).numpy(), expected.numpy())


@pytest.mark.parametrize("name", SEQUENCE)
def test_short_series_raise_not_enough_data(name, data):
    frame, _, _, _ = data
    short = pd.concat([frame.loc[["api"]].iloc[:200], frame.loc[["auth"]].iloc[: WINDOW - 1]])
    with pytest.raises(NotEnoughData, match=f"window={WINDOW}"):
        MAKERS[name](epochs=1).fit(short)
    det = MAKERS[name](epochs=1, max_windows=100).fit(frame.loc[["api"]].iloc[:200])
    with pytest.raises(NotEnoughData, match="'auth' has 11"):
        det.score(short)


def test_graph_localises_the_anomalous_service(fitted, data):
    _, _, test, labels = data
    det = fitted["graph"]
    scores = pd.Series(det.score(test), index=test.index)
    stamps = test.index.get_level_values(1)[labels == 1]
    during = scores[scores.index.get_level_values(1).isin(stamps)].groupby(level=0).mean()
    assert during.idxmax() == ANOMALOUS_SERVICE
    table = scores[scores.index.get_level_values(1).isin(stamps)].unstack(level=0)
    assert (table.idxmax(axis=1) == ANOMALOUS_SERVICE).mean() > 0.9


def test_graph_requires_stacked_input(data):
    frame, _, _, _ = data
    with pytest.raises(ValueError, match="stacked by service"):
        MAKERS["graph"]().fit(frame.loc["api"])
    with pytest.raises(ValueError, match="stacked by service"):
        MAKERS["graph"]().fit(frame.to_numpy())


def test_graph_alignment_and_new_services(fitted, data):
    frame, _, _, _ = data
    det = fitted["graph"]
    # a service missing some timestamps (forward filled) and one never seen in fit (isolated, pooled stats)
    gappy = frame.drop(index=frame.loc[["cache"]].index[100:150])
    newcomer = fleet(seed=5, services=["api", "search"]).loc[["search"]]
    mixed = pd.concat([gappy, newcomer])
    scores = det.score(mixed)
    assert scores.shape == (len(mixed),) and np.isfinite(scores).all()
    # fitted services absent from the frame stay in the graph at their training mean
    part = det.score(frame.loc[["api", "db"]])
    assert part.shape == (2 * N_ROWS,) and np.isfinite(part).all()


def test_graph_adjacency():
    adj = normalised_adjacency(["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("x", "a"), ("c", "c")])
    np.testing.assert_allclose(adj, adj.T)
    assert adj[0, 1] == pytest.approx(1 / np.sqrt(2 * 3)) and adj[0, 2] == 0
    assert adj[3, 3] == 1.0  # an isolated service keeps only its self-loop


def test_graph_too_few_timestamps(data):
    frame, _, _, _ = data
    short = frame.groupby(level=0, sort=False).head(WINDOW + 20)
    with pytest.raises(NotEnoughData, match=f"window={WINDOW + 30}"):
        MAKERS["graph"](window=WINDOW + 30).fit(short)


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here; these run on a GPU machine")


@CUDA
@pytest.mark.parametrize("name", list(MAKERS))
def test_trained_on_cuda_then_served_where_there_is_none(name, data, tmp_path):
    """The zoo trains with ``device="auto"``: on a GPU machine that is CUDA. The pickled model must then load and
    score on a CPU-only scoring host (here: a subprocess that cannot see the GPU) as it scored on the GPU."""
    _, train, test, labels = data
    det = MAKERS[name](device="cuda").fit(train)
    assert det._net_cache[0].startswith("cuda")
    on_gpu = det.score(test)
    assert np.isfinite(on_gpu).all()
    svc = test.index.get_level_values(0).to_numpy()
    keep = np.zeros(len(test), dtype=bool)
    for s in SERVICES:
        keep[np.flatnonzero(svc == s)[N_TRAIN:]] = True
    assert roc_auc_score(labels[keep], on_gpu[keep]) > 0.95

    (tmp_path / "model.pkl").write_bytes(pickle.dumps(det))
    test.to_pickle(tmp_path / "test.pkl")
    code = ("import pickle, sys, numpy as np, pandas as pd, torch\n"
            "assert not torch.cuda.is_available()\n"
            "det = pickle.loads(open(sys.argv[1], 'rb').read())\n"
            "test = pd.read_pickle(sys.argv[2])\n"
            "np.save(sys.argv[3], det.score(test))\n"
            "assert det._net_cache[0] == 'cpu'\n")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "model.pkl"), str(tmp_path / "test.pkl"),
                           str(tmp_path / "cpu.npy")], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    on_cpu = np.load(tmp_path / "cpu.npy")
    # float32 kernels differ between the devices (cuDNN's LSTM, TF32 where torch allows it): close, not equal
    np.testing.assert_allclose(on_cpu, on_gpu, rtol=1e-2, atol=1e-4 * float(np.abs(on_gpu).max()))
    assert ((on_cpu > det.threshold_) == (on_gpu > det.threshold_)).mean() > 0.999
