"""Batch and streaming inference benchmark: batch scoring points per second, streaming events per second and
end-to-end lag (stream arrival -> committed score), p50 / p95.

    python benchmarks/streaming.py              # Redis on 127.0.0.1:6379
    python benchmarks/streaming.py --json

Set-up (not timed): a 2-day simulated fleet in a temporary lake and a z-score detector registered and promoted
in a temporary MLflow (the lifecycle tests' lab). A point / event is one service-minute with its nine metrics.
Batch: `run_batch` over the lake's last 24 hours (features with a week of history, champion scores, Parquet),
twice (the second run replaces the first). Streaming: the consumer in this process on a Redis stream, first
draining a backlog (throughput), then with a producer paced below that rate (lag as an operator sees it).
Prints figures; it asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
REDIS = "redis://127.0.0.1:6379/0"


def _consume(lab, scorer, stream: str, batch_size: int, idle_exit: float):
    from serving.checkpoints import CheckpointStore
    from serving.streaming import FeatureWindow, RedisSource, consume

    store = CheckpointStore(Path(tempfile.mkdtemp()) / "bench.sqlite")
    source = RedisSource(REDIS, stream, "bench", "c1", block_ms=200)
    window = FeatureWindow(lab.settings.feast.window_minutes, lab.settings.lifecycle.history_hours)
    stats = consume(source, store, scorer, window, batch_size=batch_size, idle_exit_s=idle_exit)
    store.close()
    return stats.summary()


def measure(hours: float = 6, rate: float = 300, batch_size: int = 200) -> dict:
    """Batch and streaming figures (what ``main`` prints; ``benchmarks/serving.py`` prints them too)."""
    import pandas as pd
    import redis
    from support.lab import make_lab

    from serving import batch, promotion, registry
    from serving.streaming import Scorer, lake_events, publish_redis

    lab = make_lab(Path(tempfile.mkdtemp()) / "home")
    version = lab.register("cerebro-detector-zscore", lab.good)
    promotion.promote(lab.settings, "cerebro-detector-zscore", version)
    figures: dict = {"batch_size": batch_size}

    runs = []
    for _ in range(2):
        t0 = time.perf_counter()
        report = batch.run_batch(lab.settings)
        runs.append((time.perf_counter() - t0, report))
    seconds, report = runs[-1]
    figures["batch"] = {"points": report.rows, "seconds": round(seconds, 2),
                        "points_per_second": round(report.rows / seconds), "stages_s": report.seconds,
                        "replaced_on_rerun": report.replaced}

    detector = registry.load_champion(lab.settings, "cerebro-detector-zscore")
    scorer = Scorer(detector)
    end = pd.Timestamp("2026-11-20T00:00Z")
    events = lake_events(lab.settings, end - pd.Timedelta(hours=hours), end)
    r = redis.Redis.from_url(REDIS)
    for label, pace in (("backlog", None), ("paced", rate)):
        stream = f"cerebro-bench:{uuid.uuid4().hex[:8]}"
        try:
            if pace is None:
                publish_redis(REDIS, stream, events)
                figures[f"stream_{label}"] = _consume(lab, scorer, stream, batch_size, idle_exit=1.0)
            else:
                producer = threading.Thread(target=publish_redis, args=(REDIS, stream, events, pace))
                producer.start()
                figures[f"stream_{label}"] = {**_consume(lab, scorer, stream, batch_size, idle_exit=2.0),
                                              "producer_rate": pace}
                producer.join()
        finally:
            r.delete(stream)
    return figures


def print_figures(figures: dict) -> None:
    b = figures["batch"]
    print(f"Batch: {b['points']:,} points (13 services x 24 h) in {b['seconds']:.2f} s = {b['points_per_second']:,} "
          f"points/s (load models {b['stages_s']['load_models']} s, features {b['stages_s']['features']} s, score "
          f"{b['stages_s']['score']} s, write {b['stages_s']['write']} s); rerun replaced {b['replaced_on_rerun']:,} rows")
    for label in ("backlog", "paced"):
        s = figures[f"stream_{label}"]
        what = "drain a backlog" if label == "backlog" else f"producer paced at {s['producer_rate']:.0f} events/s"
        print(f"Stream ({what}): {s['records']:,} events, {s['events_per_second']:,} events/s, lag p50 "
              f"{s['lag_ms_p50']:,} ms, p95 {s['lag_ms_p95']:,} ms (batch size {figures['batch_size']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=6, help="hours of fleet telemetry streamed (13 events/min)")
    parser.add_argument("--rate", type=float, default=300, help="paced producer, events per second")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = measure(args.hours, args.rate, args.batch_size)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print_figures(figures)


if __name__ == "__main__":
    main()
