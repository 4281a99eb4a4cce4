"""`cerebro detect` on stationary synthetic series labelled with NAB-style windows: a development check.

    python benchmarks/detection_plateaus.py            # 12 series, about 20 s

Why: benchmarks/detection_real.py plants anomalies in real series that mostly wander (prices, volumes,
sunspots), where a global robust z-score is weak. Cloud monitoring series often hold a steady level, and
their labelled windows cover whole incidents, where a plain robust z-score ranks well (the issue's
corpus: AUC-PR 0.410 for it). This check has no real data in it and tunes nothing: it shows how each
detector behaves on that other kind of series. Each series: two weeks of 5-minute rows, AR(1) noise
(phi 0.5, 0.9, 0.98, 0.995) scaled to 2 units, no daily cycle or one of 5 or 15 units; in the second
half a 3-row spike of 12-24 units, a plateau of 6-24 hours shifted by 6-12 units, and 20 rows dropped to
a fifth of their value. Labels: NAB windows (benchmarks/detection_real.py's ``nab_windows``). Printed:
AUC-PR (mean over series) and event-wise precision, recall and F1 with no point adjustment (micro).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import detection_real as dr

from training.detectors.series.choose import average_precision


def series(seed: int) -> dict:
    rng = np.random.default_rng(100 + seed)
    n = 4032
    phi = [0.5, 0.9, 0.98, 0.995][seed % 4]
    e = np.zeros(n)
    for i in range(1, n):
        e[i] = phi * e[i - 1] + rng.normal(0, 1)
    x = 30 + 2 * e / np.std(e) + [0, 5, 15][(seed // 4) % 3] * np.sin(2 * np.pi * np.arange(n) / 288)
    y = np.zeros(n, int)
    a = int(rng.integers(2200, 2600))
    x[a:a + 3] += rng.uniform(6, 12) * 2
    y[a:a + 3] = 1
    b, length = int(rng.integers(2900, 3300)), int(rng.integers(72, 288))
    x[b:b + length] += rng.uniform(3, 6) * 2 * rng.choice([-1, 1])
    y[b:b + length] = 1
    c = int(rng.integers(3600, 3900))
    x[c:c + 20] *= 0.2
    y[c:c + 20] = 1
    return {"name": f"ar{phi}-daily{(seed // 4) % 3}", "t": pd.date_range("2026-01-01", periods=n, freq="5min",
            tz="UTC"), "x": x, "y": y}


def main() -> None:
    cases = [series(s) for s in range(12)]
    detectors = {"cerebro detect (auto)": dr.run_auto, "rolling z (1 day, z>5)": dr.run_rolling_z,
                 "robust z (median/MAD, z>4)": dr.run_robust_z}
    rows = []
    for name, fn in detectors.items():
        tot = {"pred": 0, "tp_pred": 0, "true": 0, "found": 0}
        aps, chosen = [], {}
        for case in cases:
            score, flags, choice = fn(case)
            windows = dr.nab_windows(case["y"])
            for k, v in dr.event_counts(windows, flags).items():
                tot[k] += v
            aps.append(average_precision(windows, score))
            if choice:
                chosen[choice] = chosen.get(choice, 0) + 1
        p = tot["tp_pred"] / tot["pred"] if tot["pred"] else 0.0
        r = tot["found"] / tot["true"]
        rows.append({"detector": name, "series": len(cases), "events": tot["true"], "precision": round(p, 3),
                     "recall": round(r, 3), "f1": round(2 * p * r / (p + r), 3) if p + r else 0.0,
                     "auc_pr": round(float(np.mean(aps)), 3),
                     "chosen": ", ".join(f"{k} {v}" for k, v in sorted(chosen.items()))})
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
