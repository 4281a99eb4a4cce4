"""Forecasting benchmark: accuracy, calibration and speed of every forecaster, and the fleet's capacity plan.

    python benchmarks/forecasting.py                      # 14 days of the fleet, hourly, 3 origins (~3 min on 2 cores)
    python benchmarks/forecasting.py --days 7 --origins 2
    python benchmarks/forecasting.py --models seasonal_naive arima --origins 20 --stride 7 --seed 7
    python benchmarks/forecasting.py --quarter-hourly     # also the same series every 15 minutes (slower)
    python benchmarks/forecasting.py --plots out/ --json
    python benchmarks/forecasting.py --skip-backtest --cpu-limit 60   # the capacity plan alone

Prints figures; it asserts nothing. The fleet simulator (with its injected faults left in, as real history
would have them) gives a few services' metrics, averaged per hour. Every model is backtested at rolling
origins (training on everything before each origin, horizons of 1, 6 and 24 hours scored on the same
forecast; origins a day apart by default, so all at midnight, or ``--stride`` hours apart: 7 spreads them
over the hours of the day, which a 1-hour horizon needs to be scored on more than one hour) with MASE
(against the in-sample seasonal-naive error of each training window), sMAPE, and the
share of actuals inside the 80 % and 95 % intervals (well calibrated: 0.80 and 0.95). ``mase_vs_naive``
below 1 means better than the seasonal-naive baseline at that horizon. DeepAR is fitted once per origin on
all the series together (a global model); its seconds are per series. Then the capacity plan: when each
service's disk, CPU and connections reach their limits, from hourly means, with the default model.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import pandas as pd

SERIES = ["frontend/request_rate", "database/cpu_pct", "catalog/latency_p50_ms", "api-gateway/connections"]


def fleet_series(telemetry: pd.DataFrame, names: list[str], freq: str) -> dict[str, pd.Series]:
    out = {}
    for name in names:
        service, metric = name.split("/")
        rows = telemetry[(telemetry["service"] == service) & (telemetry["metric"] == metric)]
        out[name] = rows.set_index("timestamp")["value"].resample(freq).mean().rename(name)
    return out


def run_backtest(series: dict[str, pd.Series], args, horizons: list[int], label: str, per_hour: int = 1) -> dict:
    from training.forecasting.backtest import backtest

    n = len(next(iter(series.values())))
    print(f"\nBacktest, {label}: {len(series)} series x {n} points, {args.origins} origins "
          f"{args.stride or max(horizons) // per_hour} h apart, horizons {horizons} steps, profile {args.profile}",
          flush=True)
    t0 = time.perf_counter()
    stride = args.stride * per_hour if args.stride else None
    result = backtest(series, args.models, horizons=horizons, n_origins=args.origins, stride=stride,
                      profile=args.profile,
                      errors="record", on_progress=lambda msg: print(f"  {msg}", flush=True) if args.verbose else None)
    took = time.perf_counter() - t0
    agg = result.aggregate.copy()
    shown = agg.assign(**{c: agg[c].round(3) for c in ["mase", "mase_vs_naive", "smape", "coverage_80",
                                                       "coverage_95", "fit_s", "predict_s"]})
    print(shown.to_string(index=False))
    failures = result.frame[result.frame["error"].notna()]
    for (model, err), rows in failures.groupby(["model", "error"]):
        print(f"  {model} failed {len(rows)} time(s): {err}")
    per_series = (result.frame[result.frame["error"].isna()].groupby(["series", "model"])["mase"].mean()
                  .unstack("model").round(2))
    print("\nMASE per series (mean over horizons and origins):")
    print(per_series.to_string())
    print(f"({took:.0f} s)")
    if args.plots:
        from training.forecasting.plots import plot_forecast

        for (key, model), fc in result.forecasts.items():
            hist = result.histories[key]
            path = Path(args.plots) / f"{label.split()[0]}-{key.replace('/', '-')}-{model}.png"
            plot_forecast(hist.loc[: fc.index[0] - (fc.index[1] - fc.index[0])], fc, path,
                          title=f"{key}: {model} (last origin)", last=5 * 24 * (len(hist) // (24 * args.days)))
        print(f"plots of the last origin's forecasts in {args.plots}")
    return {"aggregate": agg.to_dict("records"), "seconds": round(took, 1)}


def run_capacity(sim, args) -> dict:
    from training.forecasting.capacity import capacity_markdown, fleet_limits, plan_capacity, runs_out_first

    limits = fleet_limits(sim.topology, disk_pct=args.disk_limit, cpu_pct=args.cpu_limit)
    t0 = time.perf_counter()
    plan = plan_capacity(sim.telemetry, limits, horizon=args.capacity_horizon, freq="1h", model=args.capacity_model)
    took = time.perf_counter() - t0
    ranked = runs_out_first(plan)
    print(f"\nCapacity plan: {len(ranked)} (service, resource) pairs, model {plan.model}, horizon "
          f"{args.capacity_horizon}, {took:.1f} s ({took / len(ranked):.2f} s per pair)")
    cols = ["service", "metric", "limit", "last_value", "peak_upper_95", "hours_to_upper", "hours_to_expected",
            "hours_to_lower", "probability", "status"]
    print(ranked[cols].head(args.top).round(2).to_string(index=False))
    print()
    print(capacity_markdown(plan, top=args.top))
    return {"seconds": round(took, 1), "plan": ranked[cols].to_dict("records")}


def main() -> dict:
    from training.forecasting import FORECASTERS
    from training.forecasting.capacity import DEFAULT_MODEL

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--incidents-per-day", type=float, default=1.5, help="faults injected (the simulator's default)")
    ap.add_argument("--series", nargs="*", default=SERIES, help="service/metric pairs to backtest")
    ap.add_argument("--models", nargs="*", default=FORECASTERS)
    ap.add_argument("--origins", type=int, default=3)
    ap.add_argument("--stride", type=int, default=None,
                    help="hours between origins (default: the longest horizon, 24 hours, so every origin is at "
                         "midnight); one that does not divide 24 spreads the origins over the hours of the day")
    ap.add_argument("--profile", default="default", choices=["default", "large"])
    ap.add_argument("--quarter-hourly", action="store_true", help="also backtest the series every 15 minutes")
    ap.add_argument("--capacity-horizon", default="7D")
    ap.add_argument("--capacity-model", default=DEFAULT_MODEL, help=f"forecaster of the plan (default {DEFAULT_MODEL})")
    ap.add_argument("--disk-limit", type=float, default=90.0)
    ap.add_argument("--cpu-limit", type=float, default=85.0)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--skip-backtest", action="store_true")
    ap.add_argument("--skip-capacity", action="store_true")
    ap.add_argument("--plots", help="folder for PNGs of the last origin's forecasts")
    ap.add_argument("--verbose", action="store_true", help="print each fit as it starts")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from telemetry.simulator import FleetSimulator

    t0 = time.perf_counter()
    sim = FleetSimulator(days=args.days, seed=args.seed, end="2026-11-26T00:00Z",
                         incidents_per_day=args.incidents_per_day).run()
    print(f"Fleet: {args.days} days, seed {args.seed}, {len(sim.incidents)} incidents left in the history, "
          f"simulated in {time.perf_counter() - t0:.1f} s; {os.cpu_count()} CPUs")
    out = {"days": args.days, "seed": args.seed, "cpus": os.cpu_count()}
    if not args.skip_backtest:
        hourly = fleet_series(sim.telemetry, args.series, "1h")
        out["hourly"] = run_backtest(hourly, args, [1, 6, 24], "hourly means")
    if args.quarter_hourly and not args.skip_backtest:
        quarter = fleet_series(sim.telemetry, args.series, "15min")
        out["quarter_hourly"] = run_backtest(quarter, args, [4, 24, 96], "15-minute means (1 h, 6 h, 24 h)",
                                               per_hour=4)
    if not args.skip_capacity:
        out["capacity"] = run_capacity(sim, args)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
