"""Anomaly detection on a user's own exported series, with no labels: what ``cerebro detect`` runs.

The detector is fitted on the series itself (its leading ``train_fraction``), scores every row, and
reports a score in [0, 1] and whether the row is over the threshold learned from the training part
(reported in the summary, separate from the score).

The default, ``auto`` (training/detectors/series/), is built for real monitoring series: per column it
chooses, with no labels, among robust residual detectors (a trailing level over an hour or a day, with no
profile or a daily or weekly one) by planting synthetic anomalies in the series' own training part and
keeping the simplest that finds them about as well as the best. Windows are set in time (an hour, a day, a
week) and turned into rows with the step read from the timestamps. Its score is -log10 of the tail
probability of the row's evidence mapped to [0, 1) with no cap, so a larger anomaly always scores higher
(the zoo members' calibrated score stops at 1 for every row beyond the training maximum). It imports numpy and pandas only, so the command starts fast.
Any zoo member can still be asked for by name (``model``); they score on the zoo's calibrated scale.

How awkward input is handled (each case is tested):
* unsorted or irregular timestamps: rows are scored in time order, written back in input order;
* duplicate timestamps: the values at one timestamp are averaged and every duplicate row gets that
  time's score (``cerebro detect`` does this before calling :func:`detect_series`);
* gaps (empty or non-numeric values): filled from the previous value (the first from the next one) for
  scoring and counted in the summary; a column with no numbers at all is an error;
* a constant series: nothing can be anomalous, every score is 0 and the summary says why;
* numeric times are epoch seconds; where every one falls in 1970 (row numbers 1..n), the rows are scored one
  second apart (windows of an hour or a day in rows, no daily profile) and the summary says so;
* too short: fewer rows than the model needs (``min_rows``, or ``window`` for windowed models) is an error
  naming both numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# The default for an unlabelled series: on real series (benchmarks/detection_real.py) the zoo's PCA,
# chosen on the simulator, fell behind plain z-score baselines; ``auto`` is measured there against them.
DEFAULT_MODEL = "auto"
ROLLING = 15
# What auto's threshold was tuned to on the benchmark's tuning cases (never its held-out ones).
AUTO_ALPHA = 3e-3
AUTO_MIN_Z = 4.0


class NotEnoughHistory(ValueError):
    """Too few training rows for the model; the message names both numbers."""


@dataclass
class SeriesResult:
    frame: pd.DataFrame  # timestamp, score, is_anomaly, in input order
    windows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    model: str = DEFAULT_MODEL
    train_rows: int = 0
    threshold: float | None = None
    chosen: dict = field(default_factory=dict)  # auto: column -> detector it chose
    step_seconds: float | None = None


def series_features(wide: pd.DataFrame, window: int = ROLLING) -> pd.DataFrame:
    """Raw values plus trailing rolling mean, std and first difference per column (in rows, so any
    sampling interval works)."""
    out = {}
    for col in wide.columns:
        x = wide[col]
        out[col] = x
        out[f"{col}__mean"] = x.rolling(window, min_periods=1).mean()
        out[f"{col}__std"] = x.rolling(window, min_periods=2).std().fillna(0.0)
        out[f"{col}__diff"] = x.diff().fillna(0.0)
    return pd.DataFrame(out, index=wide.index)


def _model(name: str, raw: list[str], engineered: list[str]):
    from training.zoo import build_zoo

    zoo = build_zoo(raw + engineered, edges=[], include=[name])
    det = zoo[name]
    if det.family in ("statistical", "deep") or name == "random_cut_forest":
        det.set_params(features=raw)  # members that model raw values see only the series' own columns
    return det


def detect_series(wide: pd.DataFrame, model: str = DEFAULT_MODEL, train_fraction: float = 0.5,
                  key: str = "series") -> SeriesResult:
    """Score a wide series (index: timestamps, columns: numeric metrics) in the index order given."""
    if not 0 < train_fraction <= 1:
        raise ValueError(f"--train-fraction {train_fraction}: expected a number in (0, 1]")
    notes: list[str] = []
    order = np.argsort(wide.index.to_numpy(), kind="stable")
    if not (order == np.arange(len(order))).all():
        notes.append("timestamps were not in order: rows were scored in time order and written back in input order")
    data = wide.iloc[order]
    empty = [c for c in data.columns if data[c].notna().sum() == 0]
    if empty:
        raise ValueError(f"columns {empty} hold no numbers; choose value columns with --value-col")
    gaps = int(data.isna().sum().sum())
    if gaps:
        notes.append(f"{gaps} missing or non-numeric value(s) were filled from the previous value for scoring")
        data = data.ffill().bfill()
    if data.index.duplicated().any():
        notes.append(f"{int(data.index.duplicated().sum())} duplicate timestamp(s): scored row by row")
    n_train = max(1, round(len(data) * train_fraction))
    if (data.nunique() <= 1).all():
        notes.append("the series is constant: nothing can be anomalous, every score is 0")
        return _result(wide, order, np.zeros(len(data)), np.zeros(len(data), dtype=int), notes, model, n_train, None)
    if model == "auto":
        return _detect_auto(wide, order, data, notes, n_train, train_fraction)
    return _detect_zoo(wide, order, data, notes, n_train, train_fraction, model, key)


def _too_short(model: str, need: int, n_train: int, train_fraction: float, rows: int) -> NotEnoughHistory:
    return NotEnoughHistory(f"model {model!r} needs at least {need} training rows; the leading {train_fraction:g} "
                            f"of {rows} rows is {n_train}. Give more history or a larger --train-fraction")


def _detect_auto(wide, order, data, notes, n_train, train_fraction) -> SeriesResult:
    from training.detectors.series import AutoSeries, infer_step
    from training.detectors.series.base import calendar_positions

    det = AutoSeries(alpha=AUTO_ALPHA, min_z=AUTO_MIN_Z, calendar=True)
    if n_train < det.min_rows:
        raise _too_short("auto", det.min_rows, n_train, train_fraction, len(data))
    step = infer_step(data.index)
    t = None
    if step:
        t = calendar_positions(data.index.asi8, step)  # positions in steps: gaps keep the phase and the weekday
    X = data.to_numpy(dtype=float)
    det.fit(X[:n_train], t=None if t is None else t[:n_train], step=step)
    score = det.score(X, t=t)
    flags = (score > det.threshold_).astype(int)
    res = _result(wide, order, score, flags, notes, "auto", n_train, float(det.threshold_))
    res.chosen = {str(c): name for c, name in zip(data.columns, det.choices_, strict=True)}
    res.step_seconds = step
    return res


def _detect_zoo(wide, order, data, notes, n_train, train_fraction, model, key) -> SeriesResult:
    from training.zoo import SeriesScaler

    feats = series_features(data)
    stacked = feats.set_axis(pd.MultiIndex.from_arrays([[key] * len(feats), data.index],
                                                       names=["service", "timestamp"]))
    scaler = SeriesScaler().fit(stacked.iloc[:n_train])
    X = scaler.transform(stacked)
    raw = list(data.columns)
    det = _model(model, raw, [c for c in X.columns if c not in raw])
    need = max(getattr(det, "min_rows", 20), getattr(det, "window", 0) or 0)
    if n_train < need:
        raise _too_short(model, need, n_train, train_fraction, len(data))
    det.fit(X.iloc[:n_train])
    raw_scores = det.score(X)
    score = det.calibrated(scores=raw_scores)
    flags = (raw_scores > det.threshold_).astype(int)
    return _result(wide, order, score, flags, notes, model, n_train, float(det.threshold_))


def _result(wide, order, score, flags, notes, model, n_train, threshold) -> SeriesResult:
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    frame = pd.DataFrame({"timestamp": wide.index, "score": np.round(score[back], 6), "is_anomaly": flags[back]})
    windows = anomalous_windows(wide.index[order], score, flags)
    return SeriesResult(frame=frame, windows=windows, notes=notes, model=model, train_rows=n_train,
                        threshold=None if threshold is None else round(threshold, 6))


def anomalous_windows(times: pd.Index, score: np.ndarray, flags: np.ndarray) -> list[dict]:
    """Runs of consecutive anomalous rows (in time order): start, end, rows, peak score."""
    windows, start = [], None
    for i, flag in enumerate(np.append(flags, 0)):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            windows.append({"start": str(times[start]), "end": str(times[i - 1]), "rows": i - start,
                            "peak_score": float(np.max(score[start:i]))})
            start = None
    return windows


# Before this, times read as epoch seconds are small numbers: row numbers more likely than clock times.
EPOCH_YEAR_END = pd.Timestamp("1971-01-01", tz="UTC")


class SeriesDetectionError(ValueError):
    """One series of a user's file cannot be scored; the message names it and says why."""


def detect_user_series(raw: pd.DataFrame, model: str = DEFAULT_MODEL, train_fraction: float = 0.5,
                       label: str = "") -> tuple[pd.DataFrame, dict]:
    """Score every series of a user's file (``telemetry.sources.user_series.read_user_series``): one answer row per
    input row, in input order (``timestamp`` as ISO 8601 text, ``score``, ``is_anomaly``), and a summary per
    series (rows, training rows, anomalous rows, anomalous windows, notes). ``label`` names the file in errors.
    Columns the reader left out as anomaly labels (``raw.attrs["label_columns"]``,
    ``telemetry.sources.files.to_raw_telemetry``) get a note."""
    from telemetry.sources.user_series import service_frames

    if raw.empty:
        raise SeriesDetectionError(f"{label}: no data rows under the header; expected one row per timestamp")
    from telemetry.validation import ambiguous_dates

    skipped = raw.attrs.get("label_columns", [])
    ambiguous = ambiguous_dates(raw["timestamp"])
    outputs, series = [], []
    for service, rows, wide in service_frames(raw):
        try:
            res = detect_series(wide, model=model, train_fraction=train_fraction, key=service)
        except ValueError as exc:  # NotEnoughHistory and the zoo's NotEnoughData are ValueErrors too
            raise SeriesDetectionError(f"{label}: series {service!r}: {exc}") from None
        if len(wide) and wide.index.max() < EPOCH_YEAR_END:
            res.notes.append("every timestamp falls in 1970: numbers read as epoch seconds, but these look like row "
                             "numbers. Windows and seasons are set in time (an hour, a day), so the series was scored "
                             "as one row a second, without daily or weekly profiles; give real times (ISO 8601 or "
                             "epoch seconds) for those")
        if ambiguous:
            res.notes.append(f"dates such as 03/01/2024 read either way; they were read {ambiguous}, the order "
                             "that puts the rows in the shorter span of time. If that is wrong, write them as ISO "
                             "8601 (2024-01-03)")
        if skipped:
            res.notes.append(f"column(s) {', '.join(skipped)} look like anomaly labels and were not scored; name "
                             "them with --value-col to score them as metrics")
        scored = res.frame.set_index("timestamp")
        outputs.append(rows[["source_row", "ts"]].join(scored, on="ts"))
        series.append({"series": service, "rows": len(wide), "train_rows": res.train_rows,
                       "model": res.model, "chosen": res.chosen, "threshold": res.threshold,
                       "step_seconds": res.step_seconds,
                       "anomalous_rows": int(res.frame["is_anomaly"].sum()), "windows": res.windows,
                       "notes": res.notes})
    result = pd.concat(outputs).drop_duplicates("source_row").sort_values("source_row")
    result = pd.DataFrame({"timestamp": result["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"), "score": result["score"],
                           "is_anomaly": result["is_anomaly"].astype(int)})
    return result, {"series": series, "rows": len(result), "anomalous_rows": int(result["is_anomaly"].sum())}
