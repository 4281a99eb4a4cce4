"""Shared set-up for the lifecycle tests (registry, batch, streaming): a small simulated fleet in a lake,
a good and a deliberately weak z-score detector trained on its features, and registration into the
home folder's MLflow (SQLite). Imported by the test modules; it holds no tests itself."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass
class Lab:
    settings: object
    sim: object
    features: pd.DataFrame  # request rows: service, timestamp, feature columns (every minute of the fleet)
    frame: pd.DataFrame  # the same, indexed (service, timestamp), numeric: what the detectors train on
    splits: object
    good: object  # z-score over every raw metric
    weak: object  # z-score over disk_pct alone: blind to most fault kinds

    def heldout(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The test period's request rows and the incidents: the gate's held-out data."""
        start = self.splits.bounds["test"][0]
        return self.features[self.features["timestamp"] >= start].reset_index(drop=True), self.sim.incidents

    def bundle(self, detector, name: str = "zscore") -> dict:
        return {"kind": "detector", "name": name, "model": detector, "scaler": self.splits.scaler,
                "columns": list(self.splits.frame.columns), "inputs": list(self.frame.columns),
                "data_version": f"{self.sim.dataset}@test"}

    def register(self, name: str, detector) -> str:
        """Log ``detector`` through the project's pyfunc adapter and register it as a new version of ``name``."""
        import mlflow

        from training.tracking import log_bundle, use_experiment

        use_experiment(self.settings)
        example = self.features[self.features["service"] == "cart"].tail(20).reset_index(drop=True)
        example["timestamp"] = example["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        example = example.astype({c: "float64" for c in example.columns if c not in ("service", "timestamp")})
        with mlflow.start_run(run_name=f"test-{name}"):
            return log_bundle(self.bundle(detector), name, example, {"detector": type(detector).__name__},
                              {"test_f1": 0.0}, {"cerebro.test": "1"})


def make_lab(home: Path, days: float = 2, seed: int = 11) -> Lab:
    from configs.runtime import configure_environment
    from configs.settings import load_settings

    settings = load_settings(None, home=str(home))
    # The engines read their environment while the lab is built; the session's own values come back after,
    # so later tests (and the processes they start) do not inherit this lab's home.
    saved = dict(os.environ)
    try:
        configure_environment(settings)
        return _build_lab(settings, days, seed)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _build_lab(settings, days: float, seed: int) -> Lab:
    from features.from_lake import read_features
    from telemetry import lake
    from telemetry.simulator import FleetSimulator
    from training.detectors.statistical import ZScoreDetector
    from training.zoo import build_zoo, time_split

    sim = FleetSimulator(days=days, seed=seed, end="2026-11-20T00:00:00Z", incidents_per_day=4).run()
    lake.write_telemetry(sim.telemetry, settings.lake_dir)
    lake.write_table("events", sim.events, settings.lake_dir)
    lake.write_table("incidents", sim.incidents, settings.lake_dir)
    features = read_features(settings, sim.telemetry["timestamp"].min(), sim.telemetry["timestamp"].max()
                             + pd.Timedelta(minutes=1))
    frame = features.set_index(["service", "timestamp"]).select_dtypes("number")
    splits = time_split(frame, sim.incidents)
    train = splits.frame[splits.train_clean]
    good = build_zoo(list(splits.frame.columns), [], include=["zscore"])["zscore"].fit(train)
    weak = ZScoreDetector(features=["disk_pct"], min_scale=0.5).fit(train)
    return Lab(settings, sim, features, frame, splits, good, weak)


def champion_lab(home: Path) -> Lab:
    """A lab whose good z-score detector is registered as ``cerebro-detector-zscore`` v1 and is its champion
    (the configured detector, the ensemble, has none: batch and streaming use the configured fallback)."""
    from serving.promotion import promote

    lab = make_lab(home)
    promote(lab.settings, "cerebro-detector-zscore", lab.register("cerebro-detector-zscore", lab.good))
    return lab


def investigation_lab(home: Path) -> Lab:
    """A champion lab whose lake also holds the service graph, the traces and the logs: what ``cerebro rca``,
    ``cerebro investigate`` and the read-only tools read."""
    from telemetry import lake

    lab = champion_lab(home)
    lake.write_graph(lab.sim.topology.to_dict(), lab.settings.lake_dir)
    lake.write_table("traces", lab.sim.traces, lab.settings.lake_dir)
    lake.write_table("logs", lab.sim.logs, lab.settings.lake_dir)
    return lab


def isolate_engine_env(monkeypatch, settings) -> None:
    """Point the engines (PREFECT_HOME, MLFLOW_TRACKING_URI ...) at ``settings``' home for this test, as the CLI
    would, before code that reads them from the environment runs (tests/conftest.py undoes it afterwards)."""
    from configs.runtime import engine_environment

    for key, value in engine_environment(settings).items():
        monkeypatch.setenv(key, value)


CEREBRO = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "cerebro")


def stream_case(lab: Lab, minutes: int = 150, n_services: int = 3) -> tuple[list[dict], pd.DataFrame]:
    """Stream events for a few services over ``minutes`` (deploys included), and the scores batch inference gives
    the same events with the same history: what an exactly-once consumer must end up with."""
    from features.from_lake import deploy_events, features_of
    from serving.batch import score_features
    from serving.registry import LoadedModel
    from serving.streaming import telemetry_events

    tel = lab.sim.telemetry
    t0 = tel["timestamp"].min() + pd.Timedelta(hours=20)
    t1 = t0 + pd.Timedelta(minutes=minutes)
    deploys = deploy_events(lab.settings)
    deploys = deploys[(deploys["timestamp"] >= t0) & (deploys["timestamp"] < t1)]
    services = list(dict.fromkeys(list(deploys["service"]) + ["cart", "payment", "database"]))[:n_services]
    sub = tel[tel["service"].astype(str).isin(services) & (tel["timestamp"] >= t0) & (tel["timestamp"] < t1)]
    deploys = deploys[deploys["service"].isin(services)]
    feats = features_of(sub, deploys, lab.settings.feast.window_minutes)
    expected = score_features(feats, LoadedModel("cerebro-detector-zscore", "1", "", lab.bundle(lab.good)))
    expected["event_id"] = expected["service"] + "@" + expected["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return telemetry_events(sub, deploys), expected.set_index("event_id")


def start_consumer(lab: Lab, *args: str):
    import os
    import subprocess

    env = {**os.environ, "CEREBRO_HOME": str(lab.settings.home)}
    return subprocess.Popen([CEREBRO, "stream", "--model", "cerebro-detector-zscore", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_results(path: Path, at_least: int, proc, timeout: float = 60) -> int:
    """Poll the consumer's SQLite results until ``at_least`` rows (or the process ends)."""
    import sqlite3
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            try:
                with sqlite3.connect(path, timeout=5) as db:
                    n = db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
            except sqlite3.OperationalError:  # the consumer is creating the schema
                n = 0
            if n >= at_least:
                return n
        if proc.poll() is not None:
            raise AssertionError(f"consumer exited {proc.returncode}: {proc.stderr.read()[-3000:]}")
        time.sleep(0.02)
    raise AssertionError(f"fewer than {at_least} results after {timeout} s")


def check_exactly_once(store_path: Path, events: list[dict], expected: pd.DataFrame) -> pd.DataFrame:
    """Every telemetry event scored once, with the score batch inference gives it; returns the results."""
    import numpy as np

    from serving.checkpoints import CheckpointStore

    store = CheckpointStore(store_path)
    results = store.results()
    store.close()
    wanted = [e["event_id"] for e in events if "metrics" in e]
    assert len(results) == len(wanted) and set(results["event_id"]) == set(wanted)
    got = results.set_index("event_id").loc[wanted]
    np.testing.assert_allclose(got["score"], expected.loc[wanted, "score"], rtol=1e-6, atol=1e-9)
    assert (got["is_anomaly"].to_numpy() == expected.loc[wanted, "is_anomaly"].to_numpy()).all()
    return results
