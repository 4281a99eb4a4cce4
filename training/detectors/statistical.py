"""Statistical detectors: z-score, MAD, EWMA and Holt-Winters. Each learns per series (per service when
the input is stacked) and also scores one point at a time (``update``).

The score of a row is the largest standardised deviation over its columns, so one broken metric is
enough to raise it. ``min_scale`` is the smallest spread a column may claim: a nearly constant column (a
queue that is almost always empty) must not turn a one-unit change into a hundred-sigma event.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from training.detectors.base import (
    Detector,
    NotEnoughData,
    iter_series,
    series_name,
    series_positions,
    series_runs,
)

_EPS = 1e-9


def _keys(frame: pd.DataFrame) -> np.ndarray:
    if isinstance(frame.index, pd.MultiIndex):
        return frame.index.get_level_values(0).to_numpy()
    return np.full(len(frame), None, dtype=object)


class _PerSeriesLocationScale(Detector):
    """Shared machinery: a (centre, scale) per series and column; unseen series use the pooled values."""

    streaming: ClassVar[bool] = True
    family: ClassVar[str] = "statistical"
    view: ClassVar[str] = "per-metric deviation"

    def _centre_scale(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def _fit(self, frame: pd.DataFrame) -> None:
        self.params_ = {}
        for key, rows in iter_series(frame):
            self.params_[key] = self._centre_scale(rows.to_numpy())
        self.pooled_ = self._centre_scale(frame.to_numpy())

    def _params_for(self, key):
        return self.params_.get(series_name(key), self.pooled_)

    def _score(self, frame: pd.DataFrame) -> np.ndarray:
        values = frame.to_numpy()
        out = np.empty(len(frame))
        keys = _keys(frame)
        for pos in series_positions(frame):
            centre, scale = self._params_for(keys[pos[0]])
            out[pos] = np.abs((values[pos] - centre) / scale).max(axis=1)
        return out

    def score_values(self, values: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """``score`` without pandas, for the scoring service: ``values`` holds the fitted columns in
        ``feature_names_in_`` order with gaps already filled, rows grouped by ``keys`` (the series)."""
        check_is_fitted(self, "threshold_")
        out = np.empty(len(values))
        for a, b in series_runs(keys):
            centre, scale = self._params_for(keys[a])
            out[a:b] = np.abs((values[a:b] - centre) / scale).max(axis=1)
        return out

    def update(self, x, key=None) -> float:
        """Score one point of series ``key`` (the statistics stay those learned in ``fit``)."""
        centre, scale = self._params_for(key)
        return float(np.abs((np.asarray(x, dtype=float) - centre) / scale).max())


class ZScoreDetector(_PerSeriesLocationScale):
    """|x - mean| / std per column, learned per series."""

    def __init__(self, features=None, min_scale=0.0, alpha=1e-3):
        self.features = features
        self.min_scale = min_scale
        self.alpha = alpha

    def _centre_scale(self, values):
        return values.mean(axis=0), np.maximum(values.std(axis=0), max(self.min_scale, _EPS))


class MADDetector(_PerSeriesLocationScale):
    """|x - median| / (1.4826 * MAD) per column: robust to the outliers the training data holds."""

    def __init__(self, features=None, min_scale=0.0, alpha=1e-3):
        self.features = features
        self.min_scale = min_scale
        self.alpha = alpha

    def _centre_scale(self, values):
        med = np.median(values, axis=0)
        mad = 1.4826 * np.median(np.abs(values - med), axis=0)
        fallback = values.std(axis=0)  # a column with MAD 0 (mostly constant) falls back to its std
        return med, np.maximum(np.where(mad > 0, mad, fallback), max(self.min_scale, _EPS))


class EWMADetector(Detector):
    """Deviation from an exponentially weighted moving average, in units of an exponentially weighted std.

    The state (mean, variance) at row t is built from rows before t, so a sudden change scores high on
    arrival and is slowly absorbed. ``span`` is the EWMA span in rows (minutes)."""

    streaming: ClassVar[bool] = True
    family: ClassVar[str] = "statistical"

    def __init__(self, features=None, span=30, min_scale=0.0, alpha=1e-3):
        self.features = features
        self.span = span
        self.min_scale = min_scale
        self.alpha = alpha

    def _fit(self, frame):
        values = frame.to_numpy()
        self.scale_floor_ = np.maximum(values.std(axis=0) * 0.05, max(self.min_scale, _EPS))
        self.state_ = {}

    def _run(self, values: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Scores for consecutive rows of one series and the final (mean, var) state."""
        ewm = pd.DataFrame(values).ewm(span=self.span, adjust=False)
        mean_now, var_now = ewm.mean(), ewm.var(bias=True).fillna(0.0)
        mean = mean_now.shift(1).to_numpy()  # the state before each row
        mean[0] = values[0]
        var = var_now.shift(1).fillna(0.0).to_numpy()
        sd = np.maximum(np.sqrt(var), self.scale_floor_)
        scores = np.abs((values - mean) / sd).max(axis=1)
        return scores, (mean_now.iloc[-1].to_numpy(), var_now.iloc[-1].to_numpy())

    def _score(self, frame):
        values = frame.to_numpy()
        out = np.empty(len(frame))
        keys = _keys(frame)
        for pos in series_positions(frame):
            out[pos], state = self._run(values[pos])
            self.state_[keys[pos[0]]] = state
        return out

    def update(self, x, key=None) -> float:
        x = np.asarray(x, dtype=float)
        a = 2.0 / (self.span + 1)
        if key not in self.state_:
            self.state_[key] = (x.copy(), np.zeros_like(x))
            return 0.0
        mean, var = self.state_[key]
        sd = np.maximum(np.sqrt(var), self.scale_floor_)
        score = float(np.abs((x - mean) / sd).max())
        diff = x - mean
        incr = a * diff
        mean = mean + incr
        var = (1 - a) * (var + diff * incr)
        self.state_[key] = (mean, var)
        return score


class HoltWintersDetector(Detector):
    """Holt-Winters (statsmodels, additive daily season) per series and column, on hourly means.

    The fitted model gives each series a level and a seasonal profile by hour of day; a row's residual is
    its value minus level + season for its hour, in units of the residual std on the training rows. The level
    keeps following the series with ``smoothing`` per row (0.002 a minute: a time constant of about 8
    hours), in batch scoring as in ``update``.
    Minute data with a 1,440-point season is slow to fit; hourly means keep the daily shape at 1/60 of the
    cost. Needs timestamps (the second index level, or a DatetimeIndex) and two days of history."""

    streaming: ClassVar[bool] = True
    family: ClassVar[str] = "statistical"

    def __init__(self, features=None, seasonal_periods=24, smoothing=0.002, min_scale=0.0, alpha=1e-3):
        self.features = features
        self.seasonal_periods = seasonal_periods
        self.smoothing = smoothing
        self.min_scale = min_scale
        self.alpha = alpha

    @staticmethod
    def _hours(frame: pd.DataFrame) -> np.ndarray:
        idx = frame.index.get_level_values(-1) if isinstance(frame.index, pd.MultiIndex) else frame.index
        if not isinstance(idx, pd.DatetimeIndex):
            idx = pd.DatetimeIndex(idx) if np.issubdtype(np.asarray(idx).dtype, np.datetime64) else None
        if idx is None:
            raise ValueError("HoltWintersDetector needs timestamps: a DatetimeIndex or a (series, timestamp) index")
        return idx.hour.to_numpy()

    def _fit(self, frame):
        import warnings

        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        self.models_ = {}
        for key, rows in iter_series(frame):
            idx = rows.index.get_level_values(-1) if isinstance(rows.index, pd.MultiIndex) else rows.index
            hourly = rows.set_axis(pd.DatetimeIndex(idx)).resample("1h").mean().interpolate(limit_direction="both")
            if len(hourly) < 2 * self.seasonal_periods:
                raise NotEnoughData(f"HoltWintersDetector needs {2 * self.seasonal_periods} hours of history per "
                                    f"series for a daily season, got {len(hourly)} for {key!r}")
            levels, seasons = [], []
            for col in hourly.columns:
                y = hourly[col].to_numpy()
                if np.ptp(y) == 0:
                    levels.append(y[-1])
                    seasons.append(np.zeros(24))
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fit = ExponentialSmoothing(y, trend=None, seasonal="add",
                                               seasonal_periods=self.seasonal_periods).fit()
                season = np.asarray(fit.season)[-self.seasonal_periods:]
                last_hour = hourly.index[-1].hour
                # season[k] belongs to the k-th hour of the last cycle, ending at last_hour
                by_hour = np.empty(24)
                for k in range(self.seasonal_periods):
                    by_hour[(last_hour - (self.seasonal_periods - 1 - k)) % 24] = season[k]
                levels.append(float(np.asarray(fit.level)[-1]))
                seasons.append(by_hour)
            level = np.array(levels)
            season = np.stack(seasons, axis=1)  # (24, columns)
            hours = self._hours(rows)
            resid = rows.to_numpy() - level - season[hours]
            scale = np.maximum(resid.std(axis=0), max(self.min_scale, _EPS))
            self.models_[key] = {"level": level, "season": season, "scale": scale}
        self.pooled_key_ = next(iter(self.models_))
        self.state_ = {k: v["level"].copy() for k, v in self.models_.items()}

    def _model(self, key):
        return self.models_.get(series_name(key), self.models_[self.pooled_key_])

    def _score(self, frame):
        values = frame.to_numpy()
        hours = self._hours(frame)
        out = np.empty(len(frame))
        keys = _keys(frame)
        for pos in series_positions(frame):
            m = self._model(keys[pos[0]])
            deseasoned = values[pos] - m["season"][hours[pos]]
            # Holt-Winters' level recursion, l_t = l_{t-1} + smoothing * (x_t - s_t - l_{t-1}), run from the
            # fitted level: slow drift (growth, disks filling) is followed, an incident is not absorbed.
            level = pd.DataFrame(np.vstack([m["level"], deseasoned])).ewm(alpha=self.smoothing, adjust=False)
            prior = level.mean().to_numpy()[:-1]
            out[pos] = np.abs((deseasoned - prior) / m["scale"]).max(axis=1)
        return out

    def update(self, x, key=None, hour: int = 0) -> float:
        """Score one point at clock ``hour``; the level follows the stream by exponential smoothing."""
        m = self._model(key)
        x = np.asarray(x, dtype=float)
        level = self.state_.get(key, m["level"])
        resid = x - level - m["season"][hour]
        self.state_[key] = level + self.smoothing * resid
        return float(np.abs(resid / m["scale"]).max())
