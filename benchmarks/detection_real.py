"""`cerebro detect` on real series: event-wise precision/recall/F1 (no point adjustment), AUC-PR and VUS-PR.

    python benchmarks/detection_real.py            # every case (a few minutes on 2 cores)
    python benchmarks/detection_real.py --quick    # fewer planted copies per series (well under a minute)
    python benchmarks/detection_real.py --json

Cases, all offline (nothing is fetched at run time):
* labelled real series shipped inside a package's wheel: sktime's Yahoo Webscope S5 sample
  (``sktime/datasets/data/yahoo/yahoo.csv``, real traffic with labelled anomalous points) and its MIT-BIH
  ECG excerpt (``mitdb/mitdb.csv``, labelled abnormal beats); the optional ``bench`` extra installs sktime,
  and without it they are skipped with a note;
* real unlabelled series shipped by installed packages (pmdarima: half-hourly electricity demand, daily
  Microsoft trading volume, heart rate, monthly sunspots; statsmodels: weekly Mauna Loa CO2; matplotlib:
  daily stock prices) with anomalies planted by training/detectors/series/inject.py: spikes, level shifts,
  trend breaks, variance changes and seasonal anomalies (a normal value at the wrong time of day). The
  benchmark plants them larger-or-smaller and longer than the label-free choice does on its own (sizes 3-12
  noise units, lengths from 4 rows to a day), so the choice is not scored on its own distribution only.

The planted cases are also scored against NAB-style label windows (group "planted, NAB windows"): each
planted anomaly labelled with a window of 10 % of the series' length over the number of anomalies, centred
on its start, as the Numenta benchmark and similar real corpora label theirs. Same detector output, other
labels: it shows how each detector's figures move when labels are windows rather than the anomalous rows.

Held out: a case is held out of all tuning when sha1(name) mod 3 == 0 (the list is fixed by the names, set
before any tuning, and printed). Tuning (alpha, min_z of the default) looked only at the other cases.

Each case is scored as `cerebro detect` scores a file: fitted on the leading half, every row scored; the
metrics cover every row. Event-wise: a predicted event is a run of flagged rows, a true event a run of
labelled rows; precision = predicted events touching a true event / predicted events, recall = true events
touched / true events, summed over the cases of a group (micro), F1 from those. AUC-PR: average precision
of ``score`` per case, then the mean. VUS-PR: after TSB-AD's RangeAUC_volume (Paparrizos et al. 2022):
the range-PR AUC with labels extended by a soft buffer of 0..W rows (W: 10% of the median series period,
within 5..50), averaged over buffer sizes.

Baselines in the same run: rolling z-score (trailing 1-day mean and std, z > 5) and robust z-score
(median and MAD of the training part, z > 4); and, without ``--quick``, the zoo's PCA default that
`cerebro detect` used before, Isolation Forest and Random Cut Forest (through ``--model``).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from training.detectors.series import average_precision, infer_step, inject
from training.detectors.series.base import DAY, rows_for

TRAIN_FRACTION = 0.5


# ---------------------------------------------------------------------------------------------- data
def _held_out(name: str) -> bool:
    return int(hashlib.sha1(name.encode()).hexdigest(), 16) % 3 == 0


def labelled_real() -> tuple[list[dict], list[str]]:
    """Labelled real series found inside installed wheels (the package's files, read as shipped)."""
    notes = []
    try:
        files = metadata.files("sktime") or []
    except metadata.PackageNotFoundError:
        return [], ["sktime not installed (pip install '.[bench]'): the labelled Yahoo series is skipped"]
    # (file, case name, step): the files carry no timestamps; Yahoo S5's real series are hourly, the
    # MIT-BIH ECG excerpt is sampled at 360 Hz
    wanted = {"datasets/data/yahoo/yahoo.csv": ("yahoo-s5-sample", "h"),
              "datasets/data/mitdb/mitdb.csv": ("mitbih-ecg-sample", pd.Timedelta(seconds=1 / 360))}
    cases = []
    for f in files:
        path = str(f).replace("\\", "/")
        for suffix, (name, freq) in wanted.items():
            if path.endswith(suffix):
                df = pd.read_csv(f.locate())
                t = pd.date_range("2020-01-01", periods=len(df), freq=freq, tz="UTC")
                cases.append({"name": name, "group": "real, labelled", "t": t,
                              "x": df["data"].to_numpy(float), "y": df["label"].to_numpy(int)})
    return cases, notes


def _base_series() -> list[tuple[str, pd.DatetimeIndex, np.ndarray]]:
    """Real unlabelled series from installed packages, with their real sampling steps."""
    out = []
    import pmdarima.datasets as pmd

    taylor = pmd.load_taylor()
    out.append(("electricity-halfhourly", pd.date_range("2000-06-05", periods=len(taylor), freq="30min", tz="UTC"),
                np.asarray(taylor, float)))
    msft = pmd.load_msft()
    out.append(("msft-volume-daily", pd.DatetimeIndex(pd.to_datetime(msft["Date"]), tz="UTC"),
                np.log1p(msft["Volume"].to_numpy(float))))
    sun = pmd.load_sunspots()
    out.append(("sunspots-monthly", pd.date_range("1749-01-01", periods=len(sun), freq="MS", tz="UTC"),
                np.asarray(sun, float)))
    heart = pmd.load_heartrate()
    out.append(("heartrate-halfsecond", pd.date_range("2020-01-01", periods=len(heart), freq="500ms", tz="UTC"),
                np.asarray(heart, float)))
    from statsmodels.datasets import co2

    c = co2.load_pandas().data["co2"].interpolate(limit_direction="both")
    out.append(("co2-weekly", pd.DatetimeIndex(c.index, tz="UTC"), c.to_numpy(float)))
    from matplotlib import cbook

    stocks = pd.read_csv(cbook.get_sample_data("Stocks.csv"), comment="#", parse_dates=["Date"]).dropna(subset=["Date"])
    for col in ("AAPL", "IBM", "MSFT"):
        s = stocks[["Date", col]].dropna().sort_values("Date")
        out.append((f"stocks-{col.lower()}", pd.DatetimeIndex(s["Date"], tz="UTC"), np.log(s[col].to_numpy(float))))
    return out


def planted(copies: int) -> list[dict]:
    cases = []
    for name, t, x in _base_series():
        step = infer_step(t)
        day = rows_for(DAY, step, fallback=24)
        period = day if 4 <= day <= len(x) // 4 else 0
        for c in range(copies):
            rng = np.random.default_rng(int(hashlib.sha1(f"{name}/{c}".encode()).hexdigest(), 16) % 2**32)
            n_events = int(np.clip(len(x) // 400, 3, 10))
            length = int(rng.integers(4, max(5, min(day, len(x) // 30))))
            xi, y, _ = inject(x, rng, n_events, period=period, length=length, size=(3.0, 12.0))
            cases.append({"name": f"{name}#{c}", "group": "real, planted", "t": t, "x": xi, "y": y})
    return cases


# ---------------------------------------------------------------------------------------------- metrics
def runs(flags: np.ndarray) -> list[tuple[int, int]]:
    f = np.r_[0, np.asarray(flags, dtype=int), 0]
    d = np.diff(f)
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def event_counts(y: np.ndarray, flags: np.ndarray) -> dict:
    true, pred = runs(y), runs(flags)
    cum = np.r_[0, np.cumsum(y)]
    fcum = np.r_[0, np.cumsum(flags)]
    tp_pred = sum(cum[b] - cum[a] > 0 for a, b in pred)
    found = sum(fcum[b] - fcum[a] > 0 for a, b in true)
    return {"pred": len(pred), "tp_pred": int(tp_pred), "true": len(true), "found": int(found)}


def _extend(y: np.ndarray, w: int) -> np.ndarray:
    out = y.astype(float).copy()
    n = len(y)
    for a, b in runs(y):
        after = np.arange(b, min(b + w // 2, n))
        out[after] += np.sqrt(1 - (after - b + 1) / (w + 1))
        before = np.arange(max(a - w // 2, 0), a)
        out[before] += np.sqrt(1 - (a - before) / (w + 1))
    return np.minimum(out, 1.0)


def vus_pr(y: np.ndarray, score: np.ndarray, window: int, thresholds: int = 100) -> float:
    """Volume under the range-PR surface (after TSB-AD's RangeAUC_volume): for buffers 0..window, soft
    labels around each true range, range recall weighted by the share of ranges touched (existence),
    precision = soft true positives / flagged rows; trapezoid AUC per buffer, then the mean."""
    y = np.asarray(y, dtype=int)
    if not y.any():
        return float("nan")
    ths = np.quantile(score, np.linspace(1, 0, thresholds))
    aps = []
    for w in range(0, window + 1, max(1, window // 10)):
        soft = _extend(y, w) if w else y.astype(float)
        ranges = runs(soft > 0)
        p_total = (soft.sum() + y.sum()) / 2
        rec, prec = [0.0], [1.0]
        for th in ths:
            pred = score >= th
            tp = float(soft @ pred)
            pc = np.r_[0, np.cumsum(pred)]
            existence = np.mean([pc[b] - pc[a] > 0 for a, b in ranges])
            rec.append(min(tp / p_total, 1.0) * existence)
            prec.append(tp / max(pred.sum(), 1))
        rec.append(1.0)
        prec.append(prec[-1])
        aps.append(float(np.trapezoid(prec, rec)))
    return float(np.mean(aps))


# ---------------------------------------------------------------------------------------------- detectors
def run_auto(case):
    """Exactly what `cerebro detect` runs on a file holding this series."""
    from training.series_detection import detect_series

    res = detect_series(pd.DataFrame({"value": case["x"]}, index=case["t"]), model="auto",
                        train_fraction=TRAIN_FRACTION)
    return res.frame["score"].to_numpy(), res.frame["is_anomaly"].to_numpy(), res.chosen.get("value", "")


def run_rolling_z(case, z=5.0):
    step = infer_step(case["t"])
    w = max(rows_for(DAY, step, fallback=24), 20)  # a day, or 20 rows on daily and coarser series
    s = pd.Series(case["x"])
    mean = s.rolling(w, min_periods=2).mean().shift(1)
    std = s.rolling(w, min_periods=2).std().shift(1)
    score = ((s - mean).abs() / std.replace(0, np.nan)).fillna(0).to_numpy()
    return score, (score > z).astype(int), ""


def run_robust_z(case, z=4.0):
    x = case["x"]
    train = x[:max(1, round(len(x) * TRAIN_FRACTION))]
    med = np.median(train)
    mad = 1.4826 * np.median(np.abs(train - med)) or 1.0
    score = np.abs(x - med) / mad
    return score, (score > z).astype(int), ""


def run_zoo(name):
    """A zoo member through `cerebro detect --model NAME` (its rolling features, its calibrated score)."""
    def run(case):
        from training.series_detection import detect_series

        wide = pd.DataFrame({"value": case["x"]}, index=case["t"])
        res = detect_series(wide, model=name)
        return res.frame["score"].to_numpy(), res.frame["is_anomaly"].to_numpy(), ""
    return run


def nab_windows(y: np.ndarray) -> np.ndarray:
    """Labels widened as NAB labels its series: each labelled event gets a window of 10 % of the series'
    length divided by the number of events, centred on the event's start (the event itself stays inside).
    Real corpora such as the issue's are labelled with windows like these; a detector that flags an anomaly
    anywhere in its window finds it, and one whose score stays high through the window ranks better."""
    events = runs(y)
    if not events:
        return np.asarray(y)
    half = max(1, int(0.1 * len(y) / len(events))) // 2
    out = np.zeros(len(y), dtype=int)
    for a, b in events:
        out[max(0, a - half):min(len(y), a + half + 1)] = 1
        out[a:b] = 1
    return out


def _label_sets(case) -> list[tuple[str, np.ndarray]]:
    """The case's labels, and for planted cases the same anomalies labelled with NAB-style windows (scored
    as a group of their own from the same detector output)."""
    sets = [(case["group"], case["y"])]
    if case["group"] == "real, planted":
        sets.append(("planted, NAB windows", nab_windows(case["y"])))
    return sets


def evaluate(cases, detectors) -> list[dict]:
    rows = []
    for det_name, fn in detectors.items():
        for held in (False, True):
            tallies: dict[str, dict] = {}
            for c in cases:
                if _held_out(c["name"]) != held:
                    continue
                t0 = time.perf_counter()
                score, flags, choice = fn(c)
                secs = time.perf_counter() - t0
                step = infer_step(c["t"])
                period = rows_for(DAY, step, fallback=24)
                for group, y in _label_sets(c):
                    tot = tallies.setdefault(group, {"pred": 0, "tp_pred": 0, "true": 0, "found": 0, "aps": [],
                                                     "vus": [], "secs": 0.0, "chosen": {}, "cases": 0})
                    tot["cases"] += 1
                    tot["secs"] += secs
                    tot["chosen"][choice] = tot["chosen"].get(choice, 0) + 1
                    for k, v in event_counts(y, flags).items():
                        tot[k] += v
                    tot["aps"].append(average_precision(y, score))
                    tot["vus"].append(vus_pr(y, score, int(np.clip(period // 10, 5, 50))))
            for group in sorted(tallies):
                tot = tallies[group]
                p = tot["tp_pred"] / tot["pred"] if tot["pred"] else 0.0
                r = tot["found"] / tot["true"] if tot["true"] else 0.0
                rows.append({"detector": det_name, "split": "held-out" if held else "tuning", "group": group,
                             "cases": tot["cases"], "events": tot["true"], "precision": round(p, 3),
                             "recall": round(r, 3), "f1": round(2 * p * r / (p + r), 3) if p + r else 0.0,
                             "auc_pr": round(float(np.nanmean(tot["aps"])), 3),
                             "vus_pr": round(float(np.nanmean(tot["vus"])), 3), "seconds": round(tot["secs"], 2),
                             "chosen": ", ".join(f"{k} {v}" for k, v in sorted(tot["chosen"].items()) if k)})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one planted copy per real series, no zoo members")
    ap.add_argument("--copies", type=int, default=5, help="planted copies per real series (default 5)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    copies = 1 if args.quick else args.copies
    real, notes = labelled_real()
    cases = real + planted(copies)
    detectors = {"cerebro detect (auto)": run_auto, "rolling z (1 day, z>5)": run_rolling_z,
                 "robust z (median/MAD, z>4)": run_robust_z}
    if not args.quick:  # the old default and two zoo members the issue named (RCF as the zoo builds it)
        detectors["zoo pca (old default)"] = run_zoo("pca")
        detectors["zoo isolation_forest"] = run_zoo("isolation_forest")
        detectors["zoo random_cut_forest"] = run_zoo("random_cut_forest")
    t0 = time.perf_counter()
    rows = evaluate(cases, detectors)
    if args.json:
        print(json.dumps({"rows": rows, "notes": notes}, indent=2))
        return
    buf = io.StringIO()
    for note in notes:
        print(f"note: {note}", file=buf)
    held = sorted(c["name"] for c in cases if _held_out(c["name"]))
    print(f"{len(cases)} cases; held out of tuning (sha1(name) % 3 == 0): {', '.join(held)}", file=buf)
    print(pd.DataFrame(rows).drop(columns="chosen").to_string(index=False), file=buf)
    auto = [r for r in rows if r["detector"].startswith("cerebro") and r["chosen"]]
    for r in auto:
        print(f"auto's choices, {r['split']} / {r['group']}: {r['chosen']}", file=buf)
    print(f"total {time.perf_counter() - t0:.1f} s", file=buf)
    sys.stdout.write(buf.getvalue())


if __name__ == "__main__":
    main()
