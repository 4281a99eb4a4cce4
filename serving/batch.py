"""Batch inference over the lake: features for a window, the champion's scores, Parquet partitioned by date.

    report = run_batch(settings, start, end, failure=True)      # read -> features -> score -> write

Features come from ``features.from_lake.read_features``: ``compute_features`` over the window plus
``lifecycle.history_hours`` of history before it (rolling windows, the 24-hour baseline and week-over-week need
the past), so a minute scores the same here as in training and in the streaming consumer. Scores go to
``<batch_output_dir>/date=YYYY-MM-DD/part.parquet``; a rerun of a window replaces that window's rows of the
scored services (key: service, timestamp) and leaves the rest of the day, so reruns never duplicate.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.from_lake import lake_window, read_features, utc

SCORE_COLUMNS = ["service", "timestamp", "score", "calibrated", "is_anomaly", "detector_model", "detector_version"]
FAILURE_COLUMNS = ["failure_probability", "failure_alarm", "time_to_failure_minutes", "failure_version"]


def output_dir(settings) -> Path:
    return Path(settings.lifecycle.batch_output_dir or settings.home / "scores")


def score_features(features: pd.DataFrame, detector, failure=None) -> pd.DataFrame:
    """Scores per feature row with a :class:`serving.registry.LoadedModel` detector (and failure predictor)."""
    from training.kinds import predict_bundle

    out = predict_bundle(detector.bundle, features, {})
    scores = pd.DataFrame({"service": features["service"].astype(str).to_numpy(),
                           "timestamp": pd.to_datetime(features["timestamp"], utc=True).to_numpy(),
                           "score": out["score"].to_numpy(dtype=float),
                           "calibrated": out["calibrated"].to_numpy(dtype=float),
                           "is_anomaly": out["is_anomaly"].to_numpy(dtype=np.int64),
                           "detector_model": detector.name, "detector_version": detector.version})
    scores["timestamp"] = pd.to_datetime(scores["timestamp"], utc=True)
    if failure is not None:
        pred = predict_bundle(failure.bundle, features, {"top_k": 0})  # SHAP is for explaining one row, not bulk
        scores["failure_probability"] = pred["failure_probability"].to_numpy(dtype=float)
        scores["failure_alarm"] = pred["alarm"].to_numpy(dtype=np.int64)
        scores["time_to_failure_minutes"] = pred["time_to_failure_minutes"].to_numpy(dtype=float)
        scores["failure_version"] = failure.version
    return scores


@dataclass
class ScoreWrite:
    rows: int
    replaced: int  # rows of an earlier run of the same window that this one replaced
    partitions: list[str] = field(default_factory=list)


def _atomic_parquet(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False, compression="zstd")
    os.replace(tmp, path)  # readers see the old file or the new one, never half of one


def write_scores(scores: pd.DataFrame, out_dir: Path, start, end) -> ScoreWrite:
    """Merge into ``date=`` partitions: the window's rows of the scored services are replaced, never appended."""
    start, end = utc(start), utc(end)
    out_dir = Path(out_dir)
    written = ScoreWrite(len(scores), 0)
    scored = set(scores["service"].astype(str))
    first, last = start.floor("D"), (end - pd.Timedelta(microseconds=1)).floor("D")
    for day in pd.date_range(first, last, freq="D"):
        part = scores[scores["timestamp"].dt.floor("D") == day]
        path = out_dir / f"date={day:%Y-%m-%d}" / "part.parquet"
        if path.exists():
            old = pd.read_parquet(path)
            stale = (old["timestamp"] >= start) & (old["timestamp"] < end) & old["service"].isin(scored)
            written.replaced += int(stale.sum())
            part = pd.concat([old[~stale], part], ignore_index=True)
        if part.empty:
            continue
        part = part.drop_duplicates(["service", "timestamp"], keep="last").sort_values(["timestamp", "service"])
        _atomic_parquet(part, path)
        written.partitions.append(str(path))
    return written


def read_scores(out_dir: Path, start=None, end=None) -> pd.DataFrame:
    """Scores written by :func:`write_scores`, optionally for [start, end)."""
    files = sorted(Path(out_dir).glob("date=*/part.parquet"))
    if not files:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    if start is not None:
        frame = frame[frame["timestamp"] >= utc(start)]
    if end is not None:
        frame = frame[frame["timestamp"] < utc(end)]
    return frame.reset_index(drop=True)


@dataclass
class BatchReport:
    start: str
    end: str
    rows: int
    replaced: int
    anomalies: int
    detector: str
    failure: str | None
    output: str
    partitions: list[str]
    seconds: dict[str, float]
    per_service: list[dict]

    def as_dict(self) -> dict:
        return asdict(self)


def summary_by_service(scores: pd.DataFrame) -> list[dict]:
    rows = []
    for service, g in scores.groupby("service", sort=True):
        row = {"service": service, "minutes": len(g), "anomalies": int(g["is_anomaly"].sum()),
               "max_calibrated": round(float(g["calibrated"].max()), 4)}
        if "failure_alarm" in g:
            row.update(failure_alarms=int(g["failure_alarm"].sum()),
                       max_failure_probability=round(float(g["failure_probability"].max()), 4))
        rows.append(row)
    return rows


def run_batch(settings, start=None, end=None, failure: bool = False, services: list[str] | None = None,
              detector=None, failure_model=None) -> BatchReport:
    """Score [start, end) of the lake (default: its last day) with the champions and write the scores."""
    return _score_and_write(settings, start, end, failure, services, detector, failure_model)[0]


def _score_and_write(settings, start, end, failure: bool, services: list[str] | None, detector=None,
                     failure_model=None) -> tuple[BatchReport, pd.DataFrame]:
    from serving.registry import load_champion

    cfg = settings.lifecycle
    start, end = lake_window(settings, start, end, hours=24)
    t0 = time.perf_counter()
    detector = detector or load_champion(settings, cfg.detector_model, fallback=cfg.fallback_model)
    if failure and failure_model is None:
        failure_model = load_champion(settings, cfg.failure_model)
    t1 = time.perf_counter()
    feats = read_features(settings, start, end, services)
    t2 = time.perf_counter()
    scores = score_features(feats, detector, failure_model if failure else None)
    t3 = time.perf_counter()
    written = write_scores(scores, output_dir(settings), start, end)
    t4 = time.perf_counter()
    report = BatchReport(
        start=start.isoformat(), end=end.isoformat(), rows=written.rows, replaced=written.replaced,
        anomalies=int(scores["is_anomaly"].sum()), detector=f"{detector.name} v{detector.version}",
        failure=f"{failure_model.name} v{failure_model.version}" if failure else None,
        output=str(output_dir(settings)), partitions=written.partitions,
        seconds={"load_models": round(t1 - t0, 3), "features": round(t2 - t1, 3), "score": round(t3 - t2, 3),
                 "write": round(t4 - t3, 3)},
        per_service=summary_by_service(scores))
    return report, scores


EXPORT_COLUMNS = ["timestamp", "service", "score", "is_anomaly"]
EXPORT_SUFFIXES = (".csv", ".parquet")


def export_scores(settings, output: Path, start=None, end=None, services: list[str] | None = None,
                  failure: bool = False) -> BatchReport:
    """:func:`run_batch` for [start, end), and the same scores (held in memory, not read back from the date
    partitions) written to ``output``: one row per (timestamp, service), ``timestamp, service, score, is_anomaly`` (and the failure columns with ``failure``), CSV or
    Parquet by the file's extension. What `cerebro batch` writes; the date partitions are updated as the
    ``batch-inference`` flow updates them."""
    output = Path(output)
    if output.suffix.lower() not in EXPORT_SUFFIXES:
        raise ValueError(f"output {output}: expected a file name ending in .csv or .parquet")
    report, scores = _score_and_write(settings, start, end, failure, services)
    columns = EXPORT_COLUMNS + (["failure_probability", "failure_alarm"] if failure else [])
    table = scores.sort_values(["timestamp", "service"], kind="stable")[columns].reset_index(drop=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix.lower() == ".csv":
        table.assign(timestamp=table["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(output, index=False)
    else:
        table.to_parquet(output, index=False)
    report.output = str(output)
    return report
