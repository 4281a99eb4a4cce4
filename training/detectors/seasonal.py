"""``cerebro detect``'s label-free series detector as a member of the zoo, for a user's own telemetry.

Each service's metrics get their own :class:`training.detectors.series.AutoSeries` (a robust seasonal residual
with a trailing level, its form chosen per column on anomalies planted into that column's training part), fitted
on the service's training rows. A row's score is the largest -log10 tail probability over its metrics (the
columns rescaled so that all cross their thresholds together); the zoo's tail calibrator and threshold then
apply as for any member. Phase positions come from the timestamps and each service's own sampling step, so gaps
(training rows left out around incidents, missed samples) keep daily profiles in place.

A row's level is a trailing median, so a score needs the rows before it: batch scoring, the drift check and the
promotion gate read a week of history; a request to the scoring service carries its own window.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from training.detectors.base import Detector, iter_series, series_name, series_positions, series_runs


class SeasonalResidualDetector(Detector):
    """features: the metrics' own columns; alpha: the zoo's false-alarm rate; ``min_z`` and ``series_alpha`` set
    each column's own threshold inside AutoSeries (where columns are rescaled to cross together)."""

    family: ClassVar[str] = "series"
    min_rows: ClassVar[int] = 40
    # ``score_values`` needs each row's time (the phase of the daily profile): the scoring service passes it
    reads_times: ClassVar[bool] = True

    def __init__(self, features=None, alpha: float = 1e-3, series_alpha: float = 3e-3, min_z: float = 4.0,
                 random_state: int = 0):
        self.features = features
        self.alpha = alpha
        self.series_alpha = series_alpha
        self.min_z = min_z
        self.random_state = random_state

    @staticmethod
    def _times(rows: pd.DataFrame) -> pd.DatetimeIndex | None:
        if isinstance(rows.index, pd.MultiIndex):
            return pd.DatetimeIndex(rows.index.get_level_values(-1))
        return rows.index if isinstance(rows.index, pd.DatetimeIndex) else None

    @staticmethod
    def _steps(ns: np.ndarray | None, t0: pd.Timestamp | None, step: float | None) -> np.ndarray | None:
        """Positions in steps of ``step`` seconds from ``t0`` (epoch nanoseconds in); None without them. A model
        keeps its own ``t0``: a Monday midnight now, its first training time in earlier versions."""
        if ns is None or t0 is None or step is None:
            return None
        return (np.asarray(ns, dtype=np.int64) - t0.value) / (step * 1e9)

    def _fit(self, frame: pd.DataFrame) -> None:
        from training.detectors.series import AutoSeries
        from training.detectors.series.base import CALENDAR_EPOCH_NS, NotEnoughRows, infer_step

        self.models_ = {}
        # positions from a Monday midnight (UTC): the phase of the day and the day of the week
        t0 = pd.Timestamp(CALENDAR_EPOCH_NS, tz="UTC")
        for key, rows in iter_series(frame):
            times = self._times(rows)
            step = infer_step(times) if times is not None else None
            t = self._steps(None if times is None else times.asi8, t0, step)
            try:
                det = AutoSeries(alpha=self.series_alpha, min_z=self.min_z, random_state=self.random_state,
                                 calendar=t is not None).fit(rows.to_numpy(dtype=float), t=t, step=step)
            except NotEnoughRows:
                continue  # a service with too little history: scored 0, as a service never seen
            self.models_[str(key)] = (det, t0, step)

    def _score(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.zeros(len(frame))
        for pos, (key, rows) in zip(series_positions(frame), iter_series(frame)):
            fitted = self.models_.get(str(series_name(key)))
            if fitted is None:
                continue
            det, t0, step = fitted
            times = self._times(rows)
            out[pos] = det.log_p(rows.to_numpy(dtype=float), self._steps(None if times is None else times.asi8, t0, step))
        return out

    def score_values(self, values: np.ndarray, keys: np.ndarray, stamps: np.ndarray | None = None) -> np.ndarray:
        """``score`` without pandas, for the scoring service: ``values`` holds the fitted columns in
        ``feature_names_in_`` order with gaps filled, rows grouped by ``keys`` (the series) and in time order
        within one; ``stamps`` the rows' times (datetime64[ns] or epoch ns), which place the daily profile."""
        if stamps is None:
            raise ValueError(f"{type(self).__name__}.score_values needs the rows' times (stamps)")
        ns = np.asarray(stamps).astype("datetime64[ns]").astype(np.int64)
        values = np.asarray(values, dtype=float)
        out = np.zeros(len(values))
        for a, b in series_runs(np.asarray(keys)):
            fitted = self.models_.get(str(series_name(keys[a])))
            if fitted is None:
                continue
            det, t0, step = fitted
            out[a:b] = det.log_p(values[a:b], self._steps(ns[a:b], t0, step))
        return out
