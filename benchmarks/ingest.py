"""Ingest benchmark: simulator generation time, and rows per second through validation into the lake.

    python benchmarks/ingest.py                 # 14 days of the fleet (the default profile's size)
    python benchmarks/ingest.py --days 30 --json

Prints figures; it asserts nothing. Each stage is timed separately on a fresh temporary lake:
parse + Great Expectations validation, the first lake write, a re-ingest of the same window (idempotent,
nothing new), and a CSV round trip (the text path users' exports take). Peak memory is the process's
maximum resident set size.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def _timed(fn):
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=float, default=14)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--csv-days", type=float, default=2, help="days for the CSV text-path measurement")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import pandas as pd

    from telemetry import lake
    from telemetry.simulator import FleetSimulator
    from telemetry.sources.files import read_file
    from telemetry.validation import validate_telemetry

    end = pd.Timestamp.now(tz="UTC").floor("D")
    now = end + pd.Timedelta(minutes=1)
    validate_telemetry(FleetSimulator(days=0.1, seed=1, end=end).run().telemetry.assign(
        source="warmup", source_row=1, problem=None), now=now)  # pay GX's import and context set-up once

    sim, t_sim = _timed(lambda: FleetSimulator(days=args.days, seed=args.seed, end=end).run())
    rows = len(sim.telemetry)
    raw = sim.telemetry.assign(source="simulator", source_row=range(1, rows + 1), problem=None)
    result, t_val = _timed(lambda: validate_telemetry(raw, now=now))
    with tempfile.TemporaryDirectory() as tmp:
        first, t_lake = _timed(lambda: lake.write_telemetry(result.clean, Path(tmp)))
        again, t_again = _timed(lambda: lake.write_telemetry(result.clean, Path(tmp)))
        csv_sim = FleetSimulator(days=args.csv_days, seed=args.seed, end=end).run()
        csv_path = Path(tmp) / "export.csv"
        csv_sim.telemetry.to_csv(csv_path, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
        csv_raw, t_read = _timed(lambda: read_file(csv_path))
        csv_result, t_csv_val = _timed(lambda: validate_telemetry(csv_raw, now=now))

    figures = {
        "days": args.days,
        "services": len(sim.topology.services),
        "rows": rows,
        "simulate_seconds": round(t_sim, 2),
        "simulate_rows_per_second": round(rows / t_sim),
        "validate_seconds": round(t_val, 2),
        "validate_rows_per_second": round(rows / t_val),
        "lake_write_seconds": round(t_lake, 2),
        "lake_rows_new": first.rows_new,
        "reingest_seconds": round(t_again, 2),
        "reingest_rows_new": again.rows_new,
        "validate_plus_lake_rows_per_second": round(rows / (t_val + t_lake)),
        "csv_rows": len(csv_raw),
        "csv_read_rows_per_second": round(len(csv_raw) / t_read),
        "csv_validate_rows_per_second": round(len(csv_raw) / t_csv_val),
        "csv_rows_clean": csv_result.rows_clean,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return figures
    target = "well under a minute"
    print(f"Fleet simulator: {figures['days']:g} days x {figures['services']} services = {rows:,} rows "
          f"in {t_sim:.2f} s ({figures['simulate_rows_per_second']:,} rows/s; target: {target})")
    print(f"Validation (parse + Great Expectations): {t_val:.2f} s, {figures['validate_rows_per_second']:,} rows/s")
    print(f"Lake write (first ingest): {t_lake:.2f} s, {first.rows_new:,} new rows, {first.partitions} partitions")
    print(f"Re-ingest of the same window: {t_again:.2f} s, {again.rows_new} new rows (idempotent)")
    print(f"Through validation into the lake: {figures['validate_plus_lake_rows_per_second']:,} rows/s")
    print(f"CSV text path ({len(csv_raw):,} rows): read {figures['csv_read_rows_per_second']:,} rows/s, "
          f"validate {figures['csv_validate_rows_per_second']:,} rows/s")
    print(f"Peak memory: {figures['peak_rss_mb']} MB (max RSS); CPUs: {figures['cpus']}")
    return figures


if __name__ == "__main__":
    main()
