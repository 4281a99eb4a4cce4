"""The forecaster contract every model follows (scikit-learn's estimator conventions).

* ``__init__`` stores parameters verbatim, nothing else (so ``get_params``/``set_params``/``clone`` work).
* ``fit(series)`` takes a series with a tz-aware UTC :class:`~pandas.DatetimeIndex` (anything
  :func:`~training.forecasting.prepare.prepare_series` accepts), prepares it, learns, sets attributes
  ending in ``_`` and returns ``self``. ``notes_`` lists what preparation and fitting had to do.
* ``predict(horizon)`` returns a frame indexed by the ``horizon`` future timestamps (``timestamp``,
  UTC, one step apart, starting one step after the last observation) with columns ``yhat``,
  ``yhat_lower``/``yhat_upper`` (the prediction interval at the model's ``level``, default 95) and
  ``yhat_lower_80``/``yhat_upper_80``/``yhat_lower_95``/``yhat_upper_95``. Intervals nest:
  ``lower_95 <= lower_80 <= yhat <= upper_80 <= upper_95`` (a final guard enforces it, so a sampler's
  noise can never produce crossed bands).
* ``fit_many({key: series})`` / ``predict_many(horizon) -> {key: frame}`` fit several related series.
  Local models fit one clone per series; global ones (``global_model = True``: DeepAR) learn one model
  across all of them.

Subclasses implement ``_fit(y)`` (``y`` prepared, not constant; ``season_`` already decided) and
``_predict(horizon, levels) -> (yhat, {level: (lower, upper)})`` in numpy arrays. The input rules
(too few points, seasons, constant series, horizons) live in :mod:`training.forecasting.prepare`.
"""
from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Mapping
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from training.forecasting.prepare import (
    MIN_POINTS,
    check_horizon,
    future_index,
    is_constant,
    prepare_series,
    season_for,
)

LEVELS = (80, 95)
COLUMNS = ["yhat", "yhat_lower", "yhat_upper", "yhat_lower_80", "yhat_upper_80", "yhat_lower_95", "yhat_upper_95"]
Bands = dict[float, tuple[np.ndarray, np.ndarray]]


class Forecaster(BaseEstimator):
    """Base class. Common parameters every subclass accepts (and lists in its own ``__init__``):

      season  points per season (None: from the step, see :func:`~training.forecasting.prepare.season_for`;
              1: no seasonality)
      level   the primary interval's coverage in percent (``yhat_lower``/``yhat_upper``), 0 < level < 100
    """

    name: ClassVar[str] = "base"
    min_points: ClassVar[int] = MIN_POINTS
    global_model: ClassVar[bool] = False

    # ------------------------------------------------------------------ contract
    def fit(self, series: pd.Series) -> Forecaster:
        self._check_level()
        prep = prepare_series(series, min_points=self.min_points)
        y = prep.series
        self.notes_ = list(prep.notes)
        self.step_ = prep.step
        self.calendar_ = prep.calendar
        self.history_ = y
        self.season_ = self._season(len(y), prep.step, self.notes_)
        self.constant_ = is_constant(y.to_numpy())
        if self.constant_:
            self.notes_.append(f"the series is constant ({y.iloc[0]:g}): the forecast is that value with "
                               "zero-width intervals; no model was fitted")
        else:
            self._fit(y)
        return self

    def predict(self, horizon: int) -> pd.DataFrame:
        check_is_fitted(self, "history_")
        y = self.history_
        horizon = check_horizon(horizon, len(y), self.step_)
        index = future_index(y.index[-1], self.step_, horizon, getattr(self, "calendar_", None))
        levels = self._levels()
        if self.constant_:
            flat = np.full(horizon, float(y.iloc[-1]))
            return forecast_frame(index, flat, {lv: (flat, flat) for lv in levels}, self.level)
        mean, bands = self._predict(horizon, levels)
        return forecast_frame(index, mean, bands, self.level)

    def fit_many(self, series: Mapping[str, pd.Series]) -> Forecaster:
        """One clone of this model per series (global models override this to learn across them)."""
        if not series:
            raise ValueError("fit_many needs at least one series")
        self.models_ = {key: clone(self).fit(s) for key, s in series.items()}
        return self

    def predict_many(self, horizon: int) -> dict[str, pd.DataFrame]:
        check_is_fitted(self, "models_")
        return {key: model.predict(horizon) for key, model in self.models_.items()}

    # ------------------------------------------------------------------ helpers
    def _season(self, n: int, step: pd.Timedelta, notes: list[str]) -> int:
        """The season to model: the parameter or the step's, or 1 (with a note) when under two seasons."""
        season = season_for(step) if self.season is None else int(self.season)
        if season < 1:
            raise ValueError(f"season must be >= 1 (points per season), got {self.season!r}")
        if season > 1 and n < 2 * season:
            notes.append(f"{n} points cover less than two seasons of {season} points: fitted without "
                         f"seasonality (give at least {2 * season} points to model it)")
            season = 1
        return season

    def _levels(self) -> list[float]:
        return sorted({*map(float, LEVELS), float(self.level)})

    def _check_level(self) -> None:
        if not 0 < float(self.level) < 100:
            raise ValueError(f"level must be a coverage in percent, 0 < level < 100; got {self.level!r}")

    def _fit(self, y: pd.Series) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict(self, horizon: int, levels: list[float]) -> tuple[np.ndarray, Bands]:  # pragma: no cover
        raise NotImplementedError


def forecast_frame(index: pd.DatetimeIndex, mean: np.ndarray, bands: Bands, level: float) -> pd.DataFrame:
    """The contract's frame; bands are nested around ``yhat`` (narrower levels inside wider ones)."""
    mean = np.asarray(mean, dtype=float)
    lo_prev, hi_prev = mean, mean
    fixed: Bands = {}
    for lv in sorted(bands):
        lo, hi = (np.asarray(b, dtype=float) for b in bands[lv])
        lo_prev, hi_prev = np.minimum(lo, lo_prev), np.maximum(hi, hi_prev)
        fixed[lv] = (lo_prev, hi_prev)
    primary = fixed[float(level)]
    out = pd.DataFrame({"yhat": mean, "yhat_lower": primary[0], "yhat_upper": primary[1]}, index=index)
    for lv in LEVELS:
        out[f"yhat_lower_{lv}"], out[f"yhat_upper_{lv}"] = fixed[float(lv)]
    return out


def sample_bands(samples: np.ndarray, levels: list[float]) -> Bands:
    """Central intervals from sample paths (``samples``: paths x horizon)."""
    out = {}
    for lv in levels:
        lo, hi = np.quantile(samples, [0.5 - lv / 200, 0.5 + lv / 200], axis=0)
        out[lv] = (lo, hi)
    return out


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed Python's and NumPy's global generators (libraries such as Prophet and GluonTS draw from them)
    and put the caller's state back afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """One BLAS/OpenMP thread while inside. Statsmodels' Kalman filter does many tiny matrix products;
    OpenBLAS threads that spin between them made one auto-ARIMA fit ten times slower (26 s against 2.6 s
    on 216 points) on a 2-core machine with another process busy."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@contextlib.contextmanager
def torch_session(seed: int, threads: int = 1) -> Iterator[None]:
    """Seeded torch work on at most ``threads`` threads; the caller's RNG and thread count are restored.

    One thread by default: the networks here are small and recurrent, so a second thread gains little,
    and threads that spin while another process holds the cores cost a lot (DeepAR's default fit took
    9 s on one thread and 23 s on two on a loaded 2-core machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(before, threads)))
    try:
        with torch.random.fork_rng(devices=[]), seeded(seed):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(before)
