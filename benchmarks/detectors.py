"""Detector benchmark: speed, memory and quality of every member of the zoo.

    python benchmarks/detectors.py                 # everything (several minutes on 2 cores)
    python benchmarks/detectors.py --skip-quality  # speed and memory only
    python benchmarks/detectors.py --json
    python benchmarks/detectors.py --fleets 123 7 2025   # the put-forward model's test figures per fleet
    python benchmarks/detectors.py --fleets 42 --end 2026-12-04T13:00Z   # make run's fleet at that hour

Speed: each member is fitted on a simulated fleet (13 services, standardised per service like the
pipeline does) and then scores a batch; a *point* is one row (one service at one minute, its metrics
together). The fast members score at least ``--points`` rows (default 1,000,000); the slow ones a smaller
batch, said in the table. Streaming members also take points one at a time through ``update``: p50 and
p99 latency per point and points per second on one core. Peak memory is what ``tracemalloc`` saw during
fit + score (Python and NumPy allocations; torch's own buffers are not counted).

Quality: the zoo on the simulator's test period (event-wise precision, recall, F1 without point
adjustment, AUC-PR, mean time to detect), the chosen model per fault kind, and a "single series" table
(each service's metrics scored on their own, as `cerebro detect` does, which picks its default model).
Targets: statistical members > 1,000,000 points/s batch; Random Cut Forest streaming > 20,000 points/s
per core; best model precision > 0.90, recall > 0.95, F1 > 0.92.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import numpy as np
import pandas as pd

FAST = {"zscore", "mad", "ewma", "holt_winters", "pca", "isolation_forest"}


END = "2026-11-26T00:00Z"  # where the README's fleets end; `make run`'s ends at the current hour (--end)


def _fleet(days: float, seed: int, incidents_per_day: float = 3.0, end: str = END):
    from features.transforms import compute_features
    from telemetry.simulator import FleetSimulator

    sim = FleetSimulator(days=days, seed=seed, end=end, incidents_per_day=incidents_per_day).run()
    feats = compute_features(sim.telemetry, sim.events)
    frame = feats.drop(columns=["created"]).set_index(["service", "event_timestamp"])
    frame = frame.rename_axis(["service", "timestamp"]).select_dtypes("number")
    return sim, frame


def _tile(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    """At least ``rows`` rows: the frame repeated under new series names (so windows stay per series)."""
    reps = int(np.ceil(rows / len(frame)))
    parts = []
    for r in range(reps):
        part = frame.copy()
        part.index = part.index.set_levels([f"{s}-{r}" for s in part.index.levels[0]], level=0)
        parts.append(part)
    return pd.concat(parts)


def speed(args) -> list[dict]:
    from features.detector_inputs.pandas_path import with_time_of_day
    from training.zoo import SeriesScaler, build_zoo

    sim, frame = _fleet(args.days, args.seed, incidents_per_day=0)
    frame = with_time_of_day(frame)
    scaled = SeriesScaler().fit(frame).transform(frame)
    zoo = build_zoo(list(scaled.columns), [(e.caller, e.callee) for e in sim.topology.edges])
    rows = []
    big = _tile(scaled, args.points)
    for name, det in zoo.items():
        tracemalloc.start()
        t0 = time.perf_counter()
        det.fit(scaled)
        fit_s = time.perf_counter() - t0
        batch = big if name in FAST else scaled
        t0 = time.perf_counter()
        det.score(batch)
        score_s = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        row = {"model": name, "family": det.family, "fit_s": round(fit_s, 2), "batch_points": len(batch),
               "batch_points_per_s": round(len(batch) / score_s), "peak_mb": round(peak)}
        if det.streaming:
            cols = list(det.feature_names_in_)
            pts = scaled.loc[scaled.index.get_level_values(0)[0]][cols].to_numpy()[: args.stream]
            hours = scaled.loc[scaled.index.get_level_values(0)[0]].index.hour[: args.stream]
            lat = np.empty(len(pts))
            for i, x in enumerate(pts):
                t = time.perf_counter()
                if name == "holt_winters":
                    det.update(x, key="bench", hour=int(hours[i]))
                else:
                    det.update(x, key="bench")
                lat[i] = time.perf_counter() - t
            row.update({"stream_p50_us": round(np.percentile(lat, 50) * 1e6, 1),
                        "stream_p99_us": round(np.percentile(lat, 99) * 1e6, 1),
                        "stream_points_per_s": round(len(lat) / lat.sum())})
        rows.append(row)
        print(f"  {name:24s} fit {fit_s:6.2f} s   batch {row['batch_points_per_s']:>12,} points/s "
              f"({len(batch):,} points)" + (f"   stream p50 {row['stream_p50_us']:.1f} us p99 {row['stream_p99_us']:.1f}"
                                          f" us ({row['stream_points_per_s']:,}/s)" if det.streaming else "")
              + f"   peak {row['peak_mb']} MB", flush=True)
    return rows


def quality(args) -> dict:
    from training.detectors.stage import TrainingData
    from training.evaluation import alarm_events, incidents_in, score_events
    from training.series_detection import detect_series
    from training.zoo import build_zoo, time_split, train_zoo, verdict

    sim, frame = _fleet(args.days, args.seed)
    data = TrainingData(frame=frame, incidents=sim.incidents, edges=[(e.caller, e.callee) for e in sim.topology.edges],
                        dataset=sim.dataset, data_version=sim.dataset)
    splits = time_split(data.frame, data.incidents)
    zoo = build_zoo(list(splits.frame.columns), data.edges, random_state=args.seed)  # as the pipeline seeds it
    # Alarms in the rolling-feature window after an incident's end belong to it (_fleet's features use the
    # default 15-minute window), as in the pipeline.
    result = train_zoo(splits, zoo, recovery_minutes=15)
    table = result.comparison("test")
    print(verdict(result))
    cols = ["model", "precision", "recall", "f1", "auc_pr", "mttd_min", "found", "incidents", "false_alarms",
            "false_alarm_min", "overrun_p50_min", "overrun_p90_min"]
    print(pd.DataFrame(table)[cols].to_string(index=False))
    print(f"\n{result.best} per fault kind (test):")
    print(pd.DataFrame(result.per_kind(result.best)).to_string(index=False))

    # Single series, no labels, as `cerebro detect` works: each service's raw metrics on their own.
    wide = sim.telemetry.pivot_table(index=["service", "timestamp"], columns="metric", values="value", observed=True)
    single = []
    for name in args.single_models:
        events = []
        for svc in wide.index.get_level_values(0).unique():
            series = wide.loc[svc]
            res = detect_series(series, model=name, train_fraction=0.5)
            idx = pd.MultiIndex.from_arrays([[str(svc)] * len(series), series.index])
            half = len(series) // 2
            ev = alarm_events(idx[half:], res.frame["is_anomaly"].to_numpy()[half:].astype(bool),
                              res.frame["score"].to_numpy()[half:])
            if len(ev):
                events.append(ev)
        start = wide.index.get_level_values(1)[len(wide.loc[wide.index.get_level_values(0)[0]]) // 2]
        period = incidents_in(sim.incidents, start, wide.index.get_level_values(1).max())
        found = pd.concat(events, ignore_index=True) if events else alarm_events(idx[:0], np.zeros(0, bool))
        s = score_events(found, period)
        single.append({"model": name, "precision": round(s.precision, 3), "recall": round(s.recall, 3),
                       "f1": round(s.f1, 3), "false_alarms": s.false_alarm_events, "incidents": s.incidents})
    print("\nSingle series (each service alone, fitted on its first half, scored on the second):")
    print(pd.DataFrame(single).sort_values("f1", ascending=False).to_string(index=False))
    return {"zoo_test": table, "best": result.best, "per_kind": result.per_kind(result.best), "single_series": single}


def fleets(seeds: list[int], days: float, end: str = END) -> list[dict]:
    """The put-forward ensemble on several fleets: one line each, then the mean (how the README's table of
    fleets was measured)."""
    from training.zoo import build_zoo, time_split, train_zoo

    rows = []
    for seed in seeds:
        sim, frame = _fleet(days, seed, end=end)
        splits = time_split(frame, sim.incidents)
        zoo = build_zoo(list(splits.frame.columns), [(e.caller, e.callee) for e in sim.topology.edges],
                        random_state=seed)
        result = train_zoo(splits, zoo, recovery_minutes=15)
        r = result.reports[result.best]["test"]
        rows.append({"seed": seed, "model": result.best, "precision": round(r["precision"], 3),
                     "recall": round(r["recall"], 3), "f1": round(r["f1"], 3), "false_alarms": r["false_alarm_events"],
                     "mttd_min": None if r["mttd_minutes"] is None else round(r["mttd_minutes"], 1),
                     "false_alarm_min": r["false_alarm_minutes"], "overrun_p50_min": r["overrun_p50_minutes"],
                     "overrun_p90_min": r["overrun_p90_minutes"],
                     "meets_targets": r["meets_targets"], "members": ",".join(result.ensemble_members)})
        print(" ".join(f"{k}={v}" for k, v in rows[-1].items()), flush=True)
    table = pd.DataFrame(rows)
    print(f"\n{int(table['meets_targets'].sum())} of {len(table)} fleets meet the targets; mean precision "
          f"{table['precision'].mean():.3f}, recall {table['recall'].mean():.3f}, F1 {table['f1'].mean():.3f}")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=float, default=14)
    ap.add_argument("--end", default=END, help="where --fleets' fleets end, e.g. 2026-12-04T13:00Z (make run's fleet "
                                              "is seed 42 ending at the current hour)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--stream", type=int, default=20_000, help="points pushed one at a time through update()")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--single-models", nargs="*", default=["zscore", "mad", "ewma", "isolation_forest", "pca",
                                                            "random_cut_forest"])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--fleets", type=int, nargs="+", metavar="SEED",
                    help="only the put-forward model's test figures on these fleets (about a minute each)")
    args = ap.parse_args()
    if args.fleets:
        out = fleets(args.fleets, args.days, args.end)
        if args.json:
            print(json.dumps(out, indent=2, default=str))
        return
    print(f"Speed and memory (fleet of {args.days:g} days, {os.cpu_count()} CPUs):")
    out = {"speed": speed(args)}
    if not args.skip_quality:
        print("\nQuality (simulator test period):")
        out["quality"] = quality(args)
    if args.json:
        print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
