"""The pipeline on a user's own labelled export, measured the way a user would: `cerebro run --source`, then
`cerebro batch`, then event-wise F1 on the last 30 % of each series against a rolling z-score.

    python benchmarks/pipeline_own_data.py                                   # examples/shop
    python benchmarks/pipeline_own_data.py --source export.csv --incidents windows.csv
    python benchmarks/pipeline_own_data.py --yahoo      # also sktime's labelled Yahoo S5 sample (pip install '.[bench]')

Each run uses a fresh home folder. Figures:
* the pipeline's own report: the put-forward model's event-wise F1 and AUC-PR on its test period, and the
  rolling z-score baseline's on the same period (``detection.comparison``);
* from ``cerebro batch`` over the whole lake: the champion's event-wise precision, recall and F1 on the last
  30 % of each series (no point adjustment; ``training.evaluation``), AUC-PR of its score, and the same for a
  rolling z-score (one trailing day, z > 5, the largest |z| over a service's metrics) on the same rows.
Target (the own-telemetry issue): the champion beats the rolling z-score on event F1.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CEREBRO = str(Path(sys.executable).with_name("cerebro"))


def yahoo_export(folder: Path) -> tuple[Path, Path]:
    """sktime's labelled Yahoo S5 sample as a long-form export at a 5-minute step, and its labelled points as
    incidents (one window per run of labelled points)."""
    from importlib import metadata

    files = [f for f in (metadata.files("sktime") or []) if str(f).endswith("datasets/data/yahoo/yahoo.csv")]
    if not files:
        raise SystemExit("sktime's Yahoo sample is not installed: pip install '.[bench]'")
    data = pd.read_csv(files[0].locate())
    times = pd.date_range("2026-09-01", periods=len(data), freq="5min", tz="UTC")
    export = pd.DataFrame({"timestamp": times, "service": "yahoo-s5", "metric": "traffic", "value": data["data"]})
    labels = data["label"].to_numpy(bool)
    rows, start = [], None
    for i, flag in enumerate(np.append(labels, False)):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            rows.append({"start": times[start], "end": times[i - 1], "service": "yahoo-s5", "kind": "labelled",
                         "summary": f"labelled anomaly {len(rows) + 1}"})
            start = None
    src, inc = folder / "yahoo.csv", folder / "yahoo-incidents.csv"
    export.to_csv(src, index=False)
    pd.DataFrame(rows).to_csv(inc, index=False)
    return src, inc


def run(cmd: list[str], home: Path) -> dict:
    env = {**os.environ, "CEREBRO_HOME": str(home), "CEREBRO_DEPLOY__AFTER_PIPELINE": "false"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def measure(source: Path, incidents: Path, home: Path) -> dict:
    from telemetry.lake import read_table, read_telemetry
    from training.detectors.baselines import rolling_zscore
    from training.evaluation import auc_pr, evaluate, incident_labels

    summary = run([CEREBRO, "run", "--source", str(source), "--incidents", str(incidents), "--json"], home)
    lake = read_telemetry(home / "lake")
    start, end = lake["timestamp"].min(), lake["timestamp"].max() + pd.Timedelta(minutes=1)
    out = home / "scores.csv"
    run([CEREBRO, "batch", "--from", start.isoformat(), "--to", end.isoformat(), "-o", str(out), "--json"], home)
    scores = pd.read_csv(out, parse_dates=["timestamp"])
    scores["timestamp"] = pd.to_datetime(scores["timestamp"], utc=True)
    # The last 30 % of each series' rows.
    scores = scores.sort_values(["service", "timestamp"])
    rank = scores.groupby("service").cumcount()
    size = scores.groupby("service")["timestamp"].transform("size")
    tail = scores[rank >= (0.7 * size).astype(int)]
    index = pd.MultiIndex.from_arrays([tail["service"].astype(str).to_numpy(), pd.DatetimeIndex(tail["timestamp"])])
    labels = read_table("incidents", home / "lake")
    labels = labels.assign(start=pd.to_datetime(labels["start"], utc=True), end=pd.to_datetime(labels["end"], utc=True),
                           affected_services=[list(a) for a in labels["affected_services"]])
    champion = evaluate(index, tail["is_anomaly"].to_numpy(float), 0.5, labels)
    z = rolling_zscore(lake, index)
    baseline = evaluate(index, z, 5.0, labels)
    truth = incident_labels(index, labels)
    det = summary["detection"]
    report_baseline = next((r for r in det.get("comparison", []) if r["model"] == "rolling_zscore_1d"), {})
    return {
        "source": str(source), "series": int(scores["service"].nunique()), "rows": len(scores),
        "stages": {s["stage"]: s["result"][:60] for s in summary["stages"]},
        "report": {"model": det["best"], "f1": det["test"]["f1"], "auc_pr": det["test"]["auc_pr"],
                   "baseline_f1": report_baseline.get("f1"), "baseline_auc_pr": report_baseline.get("auc_pr")},
        "last_30pct": {
            "incidents": champion["incidents"],
            "champion": {k: champion[k] for k in ("precision", "recall", "f1")} | {
                "auc_pr": auc_pr(truth, tail["score"].to_numpy(float))},
            "rolling_z": {k: baseline[k] for k in ("precision", "recall", "f1")} | {"auc_pr": auc_pr(truth, z)},
        },
    }


def _fmt(v) -> str:
    return "" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, help="a long- or wide-form export (default: examples/shop)")
    ap.add_argument("--incidents", type=Path, help="its labelled windows (start, end, service, ...)")
    ap.add_argument("--yahoo", action="store_true", help="also sktime's labelled Yahoo S5 sample")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    runs = [(args.source, args.incidents)] if args.source else [
        (ROOT / "examples/shop/metrics.csv", ROOT / "examples/shop/incidents.csv")]
    results = []
    with tempfile.TemporaryDirectory(prefix="cerebro-own-data-") as tmp:
        tmp = Path(tmp)
        if args.yahoo:
            runs.append(yahoo_export(tmp))
        for k, (src, inc) in enumerate(runs):
            results.append(measure(src, inc, tmp / f"home-{k}"))
    if args.json:
        print(json.dumps(results, indent=2, default=str))
        return
    print("| export | series | model | report F1 | report AUC-PR | baseline F1 (report) | last 30 %: incidents | "
          "champion P / R / F1 | champion AUC-PR | rolling z P / R / F1 | rolling z AUC-PR | beats rolling z |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        c, z = r["last_30pct"]["champion"], r["last_30pct"]["rolling_z"]
        print(f"| {Path(r['source']).name} | {r['series']} | {r['report']['model']} | {_fmt(r['report']['f1'])} | "
              f"{_fmt(r['report']['auc_pr'])} | {_fmt(r['report']['baseline_f1'])} | {r['last_30pct']['incidents']} | "
              f"{_fmt(c['precision'])} / {_fmt(c['recall'])} / {_fmt(c['f1'])} | {_fmt(c['auc_pr'])} | "
              f"{_fmt(z['precision'])} / {_fmt(z['recall'])} / {_fmt(z['f1'])} | {_fmt(z['auc_pr'])} | "
              f"{'yes' if c['f1'] > z['f1'] else 'no'} |")


if __name__ == "__main__":
    main()
