"""Measure the drift check's verdict with a seasonal and a preceding reference on steady and shifted lakes.

    PYTHONPATH=. python scripts/drift_seasonality.py            # the make-run fleet, other ends and seeds, the shop
    PYTHONPATH=. python scripts/drift_seasonality.py --quick    # the make-run fleet and its injected shift only

Each case is written to a temporary lake with the ingest functions, then read back and compared as the drift
check does (``serving.drift_io.read_windows``), on the inputs of a small live detector (PCA and EWMA trained on
the lake's first days, as the drift tests train theirs). Prints the verdict and the per-metric table per case
and reference.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import pandas as pd


def _settings(home: Path, reference: str):
    os.environ["CEREBRO_HOME"] = str(home)
    os.environ["CEREBRO_DRIFT__REFERENCE"] = reference
    from configs.settings import load_settings

    return load_settings()


def _detector(telemetry: pd.DataFrame, events: pd.DataFrame | None, incidents: pd.DataFrame, until: pd.Timestamp):
    from features.transforms import compute_features
    from serving.drift_io import LiveModel
    from training.zoo import build_zoo, time_split, train_zoo

    feats = compute_features(telemetry[telemetry["timestamp"] < until], events)
    frame = (feats.drop(columns=["created"]).rename(columns={"event_timestamp": "timestamp"})
             .set_index(["service", "timestamp"]).select_dtypes("number"))
    splits = time_split(frame, incidents, fractions=(0.8, 0.1, 0.1))
    result = train_zoo(splits, build_zoo(list(splits.frame.columns), [], include=["pca", "ewma"]), ensemble_size=2)
    bundle = {"kind": "detector", "name": "measure", "model": result.models["ensemble"], "scaler": splits.scaler,
              "columns": list(splits.frame.columns), "inputs": list(frame.columns)}
    return LiveModel(name="measure", version="1", alias="champion", model=bundle, registered_f1=None)


def check(home: Path, end: pd.Timestamp, reference: str, live) -> dict:
    """The data drift of the detector's inputs, as ``run_drift_check`` computes it, without MLflow."""
    from features.from_lake import deploy_events, features_of
    from serving import drift_io
    from serving.drift import data_drift, decide

    settings = _settings(home, reference)
    cfg = settings.drift
    telemetry, _, _, _, windows = drift_io.read_windows(settings, str(end))
    events = deploy_events(settings)
    feats = features_of(telemetry, events if len(events) else None, settings.feast.window_minutes)
    feats = feats[pd.to_datetime(feats["timestamp"], utc=True) >= windows.start]
    ref, cur, used = drift_io.input_windows(live, feats, windows)
    result = data_drift(ref, cur, used, ks_pvalue=cfg.ks_pvalue, psi=cfg.psi, drift_share=cfg.drift_share,
                        clip=cfg.clip_quantile, compared="inputs")
    return {"action": decide(result).action, "share": result.share_drifted, "reference": windows.describe(),
            "note": windows.note,
            "groups": {m: f"{len(g['drifted'])}/{g['inputs']}" + ("*" if g["drift"] else "")
                       for m, g in result.groups.items()}}


def fleet_lake(home: Path, seed: int, end: pd.Timestamp, shift: bool = False):
    from telemetry import lake
    from telemetry.simulator import FleetSimulator

    sim = FleetSimulator(days=14, seed=seed, end=end).run()
    telemetry = sim.telemetry
    if shift:  # the drift tests' capacity regression: CPU a third higher, latency doubled, in the last day
        late = telemetry["timestamp"] >= end - pd.Timedelta(hours=24)
        telemetry = telemetry.copy()
        cpu = late & (telemetry["metric"] == "cpu_pct")
        telemetry.loc[cpu, "value"] = (telemetry.loc[cpu, "value"] * 1.35).clip(upper=100)
        telemetry.loc[late & telemetry["metric"].isin(["latency_p50_ms", "latency_p99_ms"]), "value"] *= 2.0
    settings = _settings(home, "seasonal")
    lake.write_telemetry(telemetry, settings.lake_dir)
    lake.write_table("events", sim.events, settings.lake_dir)
    return telemetry, sim.events, sim.incidents


def shop_lake(home: Path):
    from telemetry import lake
    from telemetry.ingest import ingest_batch
    from telemetry.sources import resolve

    settings = _settings(home, "seasonal")
    for batch in resolve(str(Path("examples/shop/metrics.csv").resolve()), settings):
        ingest_batch(batch, settings)
    telemetry = lake.read_telemetry(settings.lake_dir)
    from telemetry.simulator import FleetSimulator

    no_incidents = FleetSimulator(days=1, seed=1, incidents_per_day=0).run().incidents.iloc[:0]
    return telemetry, None, no_incidents, telemetry["timestamp"].max()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    now = pd.Timestamp.now(tz="UTC").floor("h")
    monday = now.normalize() - pd.Timedelta(days=now.weekday()) + pd.Timedelta(days=1)  # current window: a Monday
    saturday = monday + pd.Timedelta(days=5)  # current window: a Saturday
    if saturday > now:
        saturday -= pd.Timedelta(days=7)
    if monday > now:
        monday -= pd.Timedelta(days=7)
    cases = [("fleet seed 42, make run", 42, now, False), ("fleet seed 42, injected shift", 42, now, True)]
    if not args.quick:
        cases += [("fleet seed 42, Monday", 42, monday, False), ("fleet seed 42, Saturday", 42, saturday, False),
                  ("fleet seed 7, Monday", 7, monday, False), ("fleet seed 7, Saturday", 7, saturday, False),
                  ("shop", None, None, False)]
    detectors = {}
    for name, seed, end, shift in cases:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            if seed is None:
                telemetry, events, incidents, end = shop_lake(home)
            else:
                telemetry, events, incidents = fleet_lake(home, seed, end, shift)
            key = (seed, end)
            if key not in detectors:  # trained on the first five days: before either reference
                detectors[key] = _detector(telemetry, events, incidents, telemetry["timestamp"].min() + pd.Timedelta(days=5))
            for reference in ("preceding", "seasonal"):
                out = check(home, end, reference, detectors[key])
                groups = ", ".join(f"{m} {v}" for m, v in out["groups"].items())
                print(f"{name} (end {end:%a %Y-%m-%d %H:%M}) | {reference}: {out['action']} "
                      f"({out['share']:.0%} of metrics) vs {out['reference']} | {groups}"
                      + (f" | note: {out['note']}" if out["note"] else ""), flush=True)


if __name__ == "__main__":
    main()
