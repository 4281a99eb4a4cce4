"""Failure-prediction benchmark: quality on the simulator's test period, and speed.

    python benchmarks/failure.py                      # 14-day fleet, H = 60 minutes, through Feast
    python benchmarks/failure.py --days 7 --horizon 30
    python benchmarks/failure.py --no-feast           # features straight from compute_features (same rows)
    python benchmarks/failure.py --json

The fleet is simulated (13 services, 3 incidents a day), its features built into a throw-away Feast store and
joined point-in-time (``failure_v1``) on every ``--step``-th minute, labelled with "this service fails within H
minutes" (``--at failed_at``: the OOM kill, the full disk, the exhausted pool; the abrupt kinds fail at their
start), split 50/20/30 % by time, trained (the relative view -> imputer -> SMOTE -> monotone XGBoost, sigmoid
calibration and the alarm threshold on validation; by default on the foreseeable failures only, ``--target``)
and measured on the test period.

Quality, over every failure and over the foreseeable ones (a precursor: the fault was under way before the
failure) apart: PR-AUC against the positive rate (what knowing nothing scores), recall at precision 0.9,
precision and recall at the stored threshold (alarm rows split into true, early: the fault under way but the
failure beyond H, and false), failures foreseen and the median lead time, per fault kind. Speed: the time of
each stage, prediction latency for one row (p50/p99, a loop of single-row calls) and rows per second for a
batch, SHAP time per row (batch and single row).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import numpy as np
import pandas as pd


def _data(args, timings: dict):
    from features.transforms import compute_features
    from telemetry.simulator import FleetSimulator
    from training.failure import failure_data_from_features, failure_data_from_frames

    t0 = time.perf_counter()
    sim = FleetSimulator(days=args.days, seed=args.seed, end="2026-11-26T00:00Z",
                         incidents_per_day=args.incidents_per_day).run()
    timings["simulate_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if args.no_feast:
        features = compute_features(sim.telemetry, sim.events)
        data = failure_data_from_features(features, sim.incidents, args.horizon, args.step, dataset=sim.dataset,
                                          at=args.at)
        timings["features_s"] = time.perf_counter() - t0
        return data
    from configs.settings import load_settings

    home = tempfile.mkdtemp(prefix="cerebro-failure-bench-")
    os.environ["CEREBRO_HOME"] = home
    settings = load_settings()
    data = failure_data_from_frames(settings, sim.telemetry, sim.events, sim.incidents, args.horizon, args.step,
                                    dataset=sim.dataset, at=args.at)
    timings["features_s"] = time.perf_counter() - t0
    build = data.feature_report["build"]["timings"]
    timings["  compute_features_s"] = build["compute_features_s"]
    timings["  write_apply_materialize_s"] = build["write_parquet_s"] + build["apply_s"] + build["materialize_s"]
    timings["  feast_join_s"] = data.feature_report["join"]["seconds"]
    return data


def _speed(model, data, args) -> dict:
    rows = data.frame[data.features]
    batch = rows.iloc[: min(len(rows), args.batch)]
    model.predict_proba(batch.head(10))  # warm
    t0 = time.perf_counter()
    model.predict_proba(batch)
    batch_s = time.perf_counter() - t0
    single = []
    for i in range(args.single):
        one = rows.iloc[[i * 7 % len(rows)]]
        t = time.perf_counter()
        model.predict_proba(one)
        single.append(time.perf_counter() - t)
    shap_rows = batch.head(1000)
    model.explain(shap_rows.head(5))  # builds the explainer once
    t0 = time.perf_counter()
    model.explain(shap_rows, top_k=5)
    shap_batch = (time.perf_counter() - t0) / len(shap_rows)
    one_shap = []
    for i in range(50):
        t = time.perf_counter()
        model.explain(rows.iloc[[i]], top_k=5)
        one_shap.append(time.perf_counter() - t)
    frame = data.frame.head(1000)
    t0 = time.perf_counter()
    model.predict_frame(frame, top_k=3)
    frame_s = time.perf_counter() - t0
    return {
        "batch_rows": len(batch), "batch_rows_per_s": round(len(batch) / batch_s),
        "single_row_p50_ms": round(1000 * float(np.percentile(single, 50)), 2),
        "single_row_p99_ms": round(1000 * float(np.percentile(single, 99)), 2),
        "shap_per_row_batch_ms": round(1000 * shap_batch, 3),
        "shap_single_row_p50_ms": round(1000 * float(np.percentile(one_shap, 50)), 2),
        "predict_frame_1000_rows_s": round(frame_s, 3),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=float, default=14)
    ap.add_argument("--horizon", type=float, default=60, help="minutes ahead a failure counts (H)")
    ap.add_argument("--step", type=int, default=5, help="one entity row per service every STEP minutes")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--incidents-per-day", type=float, default=3.0)
    ap.add_argument("--no-feast", action="store_true", help="features from compute_features, no store or join")
    ap.add_argument("--batch", type=int, default=50_000, help="rows in the batch-prediction timing")
    ap.add_argument("--single", type=int, default=300, help="single-row predictions timed")
    ap.add_argument("--at", default="failed_at", choices=["failed_at", "start"],
                    help="failure moment: when the root cause gave out (failed_at) or when the incident began")
    ap.add_argument("--target", default=None, choices=["foreseeable", "all"],
                    help="failures the classifier is fitted on (default: foreseeable, or all with --at start)")
    ap.add_argument("--inputs", default="relative", choices=["relative", "raw"],
                    help="what the trees see: levels against each service's baseline, or the columns as they are")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from training.failure import train_failure_predictor

    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    data = _data(args, timings)
    t0 = time.perf_counter()
    model, report = train_failure_predictor(data, random_state=args.seed, target=args.target,
                                            inputs=args.inputs)
    timings["train_and_evaluate_s"] = time.perf_counter() - t0
    timings["  fit_s"] = report["timings"]["fit_s"]
    timings["total_s"] = time.perf_counter() - t_all

    s = data.summary()
    test, lead = report["test"], report["test"]["lead"]
    fore = test["foreseeable"]
    print(f"Failure prediction on a simulated fleet: {args.days:g} days, seed {args.seed}, H = {args.horizon:g} min, "
          f"one row per service every {args.step} min, {os.cpu_count()} CPUs, "
          f"{'compute_features (no Feast)' if args.no_feast else 'Feast failure_v1 point-in-time join'}")
    print(f"  rows {s['rows']:,} ({s['ongoing_rows_left_out']:,} inside incidents, left out), failure rows "
          f"{s['failure_rows']:,} (positive rate {s['positive_rate']:.3f}; {s['foreseeable_failure_rows']:,} of "
          f"them foreseeable: the fault under way), incidents {s['incidents']}")
    split = report["split"]
    print(f"  train {split['rows']['train']:,} rows / validation {split['rows']['validation']:,} / test "
          f"{split['rows']['test']:,} (purged {sum(split['purged_rows'].values())} rows at the cuts); "
          f"SMOTE in training: {report['fit']['smote']}")
    left = split["unforeseeable_rows_left_out_of_fitting"]
    print(f"  target {report['target']}{' (' + report['target_note'] + ')' if report['target_note'] else ''}: "
          f"{left['train']} train / {left['validation']} validation failure rows without a precursor left out of "
          f"fitting; inputs {model.inputs} ({len(report['model_features'])} columns)")
    print(f"  threshold {report['threshold']:.3f} ({report['threshold_rule']})")

    def block(title: str, m: dict, lead: dict) -> None:
        print(f"\n{title}")
        print(f"  PR-AUC                      {m['pr_auc']:.3f}   (positive rate {m['positive_rate']:.4f}: what "
              "knowing nothing scores)")
        print(f"  recall at precision 0.9     {m['recall_at_precision_0.9']:.3f}   (best threshold in hindsight)")
        print(f"  at the threshold            precision {m['precision']:.3f}, recall {m['recall']:.3f} "
              f"({m['true_alarms']} true / {m['false_alarms']} false alarm rows)")
        med = lead["median_lead_minutes"]
        print(f"  failures foreseen           {lead['caught']} of {lead['failures']} (missed {lead['missed']}); "
              f"median lead {'-' if med is None else f'{med:.0f} min'}")

    block("Test period, every failure (what an operator gets):", test, lead)
    print(f"  false alarm rows            {test['false_alarms']}, of which {test['early_alarms']} early (the "
          "service's fault under way, its failure more than H ahead)")
    print(f"  rows inside incidents       {test['ongoing_rows']} (not scored: the failed service after its failure, "
          f"and the services the incident affected), {test['ongoing_alarms']} of them alarmed")
    block("Test period, foreseeable failures (a precursor: the fault under way before the failure):", fore,
          fore["lead"])
    if not report["threshold_rule"].startswith("lowest"):
        print("  (the threshold fell back to the best validation F1: with alarms this imprecise, failures foreseen "
              "and lead times say little)")
    mae = test["ttf_mae_minutes"]
    print(f"  time-to-failure error       {'-' if mae is None else f'{mae:.1f} min'} (mean absolute, alarmed "
          "failure rows)")
    print("\nPer fault kind (test; with_precursor: failures whose fault was under way before they failed):")
    print(pd.DataFrame(test["per_kind"]).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if test["misses"]:
        print("\nMissed failures (test):")
        print(pd.DataFrame(test["misses"]).to_string(index=False))
    v = report["validation"]
    vf = v["foreseeable"]
    print(f"\nValidation: PR-AUC {v['pr_auc']:.3f} (positive rate {v['positive_rate']:.3f}), recall at precision "
          f"0.9 {v['recall_at_precision_0.9']:.3f}; foreseeable PR-AUC {vf['pr_auc']:.3f} (positive rate "
          f"{vf['positive_rate']:.4f}), foreseeable failures caught {vf['lead']['caught']} of {vf['lead']['failures']}")

    speed = _speed(model, data, args)
    print("\nTimings (s):")
    for k, val in timings.items():
        print(f"  {k:30s} {val:7.2f}")
    print("\nPrediction speed:")
    print(f"  batch                        {speed['batch_rows_per_s']:,} rows/s ({speed['batch_rows']:,} rows)")
    print(f"  one row                      p50 {speed['single_row_p50_ms']} ms, p99 {speed['single_row_p99_ms']} ms")
    print(f"  SHAP                         {speed['shap_per_row_batch_ms']} ms/row in a batch of 1,000; "
          f"{speed['shap_single_row_p50_ms']} ms for a single row (p50)")
    print(f"  predict_frame (1,000 rows, top 3 factors)  {speed['predict_frame_1000_rows_s']} s")
    if args.json:
        out = {"args": vars(args), "summary": s, "timings": timings, "speed": speed,
               "test": {k: v for k, v in test.items() if k != "misses"}, "threshold": report["threshold"]}
        print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
