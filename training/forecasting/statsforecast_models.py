"""Statistical forecasters on StatsForecast (Nixtla): AutoARIMA, AutoETS, AutoTheta, and last value.

Each forecasts the seasonally adjusted series and adds the seasons back (the STLF method, Hyndman and
Athanasopoulos, *Forecasting: Principles and Practice*, "Forecasting with decomposition"): seasons are
found in the data (:func:`~training.forecasting.seasons.detect_seasons`, a day and a week at sub-daily steps, the year at calendar steps, or
the ``season`` given) and removed by MSTL (:func:`~training.forecasting.seasons.decompose`); so the day
and the week of minute data are both modelled. The statistical model then sees only the last
``trend_points`` adjusted points: the level and trend of the next steps come from the recent past, and
the fit cost grows with the length (AutoTheta took 14 s on 4,500 points and 0.08 s on 500).

Why StatsForecast: its AutoARIMA is compiled (no JIT to warm up) and several times faster than
pmdarima's, and it adds AutoETS and AutoTheta, whose combinations were among the strongest in the M4
competition. A seasonal ARIMA with a long period is not fitted at all (AutoARIMA with ``m = 60`` ran for
more than 40 s); the decomposition carries the seasons instead.

The prediction intervals here are the models' own (Gaussian); ``auto``
(:mod:`training.forecasting.auto`) replaces them with conformal intervals from its backtest.
"""
from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pandas as pd

from training.forecasting.base import Bands, Forecaster
from training.forecasting.seasons import Decomposition, decompose, detect_seasons

METHODS = ("naive", "ets", "theta", "arima")
CLEAN_MADS = 6.0
# Points in a row back near the level after which an outlying run at the end counts as a spike, not a new level.
RETURNED = 2
RETURN_SHARE = 0.1
# A spike at the end must stand out further to be cleaned: there the latest points carry the level and trend.
TAIL_MADS = 20.0
ARIMA_APPROXIMATE_FROM = 150


_NOT_NEEDED = ("dask.dataframe", "numba")


def import_statsforecast_alone() -> None:
    """Import StatsForecast without Dask and Numba, in a process that does nothing else (``cerebro forecast``).

    StatsForecast's helper library (utilsforecast) imports ``dask.dataframe`` whenever Dask is installed,
    only to recognise Dask frames, and Numba to compile its own frame utilities; the models used here run
    in StatsForecast's compiled library and use neither. Together 0.7 s of a command's 5 s budget. The
    import is made while both read as absent, then the marks are removed, so a later ``import dask`` or
    ``import numba`` still works (utilsforecast keeps its plain-Python fallbacks, which warn if called).
    Not for a process where another thread may be importing them meanwhile (the pipeline: Feast uses Dask)."""
    import sys

    if "statsforecast" in sys.modules or any(name in sys.modules for name in _NOT_NEEDED):
        return
    for name in _NOT_NEEDED:
        sys.modules[name] = None  # type: ignore[assignment]  # import name -> ImportError
    try:
        import statsforecast.models  # noqa: F401
    finally:
        for name in _NOT_NEEDED:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def statsforecast_model(method: str, n: int = 0):
    """A fresh non-seasonal StatsForecast model for ``method``, to be fitted on ``n`` points. AutoARIMA
    searches with the conditional-sum-of-squares approximation past :data:`ARIMA_APPROXIMATE_FROM` points, as
    R's ``auto.arima`` does by default (the chosen order is then refitted by maximum likelihood): on 500
    points it took 0.05 s instead of 0.65 s."""
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, Naive

    if method == "naive":
        return Naive()
    if method == "ets":
        return AutoETS(season_length=1)
    if method == "theta":
        return AutoTheta(season_length=1)
    if method == "arima":
        return AutoARIMA(season_length=1, seasonal=False, approximation=n > ARIMA_APPROXIMATE_FROM)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def seasons_of(y: pd.Series, step: pd.Timedelta, season: int | None) -> list[int]:
    """The periods to model: those found in the data, or ``[season]`` when given (1: none)."""
    if season is None:
        return detect_seasons(y.to_numpy(), step)
    if int(season) < 1:
        raise ValueError(f"season must be >= 1 (points per season), got {season!r}")
    return [int(season)] if int(season) > 1 else []


def clean_outliers(adjusted: np.ndarray, window: int, k: float = CLEAN_MADS) -> tuple[np.ndarray, int]:
    """``adjusted`` with points more than ``k`` robust deviations from their centred rolling median (over
    ``window`` points) replaced by that median. In the last half window only spikes of more than ``TAIL_MADS``
    that the series has come back from are replaced (``_left_spikes``): a change that lasts to the end is news,
    not an outlier. Returns the cleaned copy and how many points were replaced."""
    window = max(5, int(window))
    s = pd.Series(adjusted)
    level = s.rolling(window, center=True, min_periods=1).median().to_numpy()
    dev = adjusted - level
    mad = 1.4826 * float(np.median(np.abs(dev - np.median(dev))))
    if mad <= 0:
        return adjusted, 0
    outlying = np.abs(dev) > k * mad
    end = len(outlying) - window // 2
    outlying[end:] = _left_spikes(dev[end:], np.abs(dev[end:]) > TAIL_MADS * mad)
    return np.where(outlying, level, adjusted), int(outlying.sum())


def _left_spikes(dev: np.ndarray, outlying: np.ndarray, after: int = RETURNED, share: float = RETURN_SHARE) -> np.ndarray:
    """Of the outlying points at the end (``dev``: their deviations), those of a run the series has come back
    from: followed by at least ``after`` points in a row that are near the level again (not outlying, or within
    ``share`` of the largest deviation there: on a smooth series, a disk's slow fill, the robust deviation is so
    small that the points after a spike may still count as outlying). A run that lasts to the end may be a new
    level, which is news; a spike the series has left is not."""
    near = ~outlying | (np.abs(dev) <= share * float(np.max(np.abs(dev), initial=0.0)))
    keep = np.zeros(len(dev), dtype=bool)
    calm = 0  # points in a row after this one that are near the level
    for i in range(len(dev) - 1, -1, -1):
        if near[i]:
            calm += 1
            continue
        keep[i] = keep[i + 1] if i + 1 < len(dev) and not near[i + 1] else calm >= after  # a run shares its fate
        calm = 0
    return keep


def arima_spec(fitted: dict) -> dict:
    """The order and deterministic terms an AutoARIMA search chose, as ``ARIMA`` takes them."""
    p, q, _, _, _, d, _ = fitted["arma"]
    coef = fitted["coef"]
    return {"order": (int(p), int(d), int(q)), "include_mean": "intercept" in coef,
            "include_drift": "drift" in coef}


def adjusted_forecast(y: np.ndarray, periods: list[int], methods: list[str], horizon: int,
                      trend_points: int, levels: list[float] | None = None, clean: bool = True,
                      arima: dict | None = None):
    """Decompose ``y`` once, forecast the adjusted tail with each method, add the seasons back.

    ``arima``: a backtest's memory of the ARIMA order. Empty, the search runs and leaves its choice there;
    holding one, that order is refitted without a search (an AutoARIMA search is some twenty fits, and on a
    series with no season it was most of a backtest's time: 5.7 of 5.8 s on 299 annual sunspot counts).

    Returns ``(decomposition, {method: (mean, {level: (lower, upper)})})``; bands only when ``levels``."""
    dec: Decomposition = decompose(y, periods)
    adjusted = y - dec.seasonal
    if clean:
        adjusted, _ = clean_outliers(adjusted, min(dec.periods) if dec.periods else 12)
    tail = adjusted[-trend_points:]
    future = dec.future(horizon)
    out = {}
    for method in methods:
        kwargs = {"level": [int(lv) if float(lv).is_integer() else lv for lv in levels]} if levels else {}
        with warnings.catch_warnings():
            # the approximate order search warns of every candidate order whose optimiser stopped early;
            # the candidate is only ranked, and the chosen order is refitted exactly
            warnings.filterwarnings("ignore", message="possible convergence problem", category=UserWarning)
            if method == "arima" and arima is not None:
                fc = _arima_forecast(tail, horizon, kwargs, arima)
            else:
                fc = statsforecast_model(method, len(tail)).forecast(y=tail, h=horizon, **kwargs)
        mean = np.asarray(fc["mean"], dtype=float) + future
        bands: Bands = {}
        for lv, key in zip(levels or [], kwargs.get("level", [])):
            bands[lv] = (np.asarray(fc[f"lo-{key}"], dtype=float) + future,
                         np.asarray(fc[f"hi-{key}"], dtype=float) + future)
        out[method] = (mean, bands)
    return dec, out


def _arima_forecast(tail: np.ndarray, horizon: int, kwargs: dict, memory: dict) -> dict:
    """ARIMA on ``tail``: the order in ``memory`` refitted, or a search whose choice is kept there."""
    from statsforecast.models import ARIMA

    if memory:
        # an order that does not fit this history (too short, not invertible) falls back to a new search
        with contextlib.suppress(Exception):
            return ARIMA(**memory).forecast(y=tail, h=horizon, **kwargs)
    model = statsforecast_model("arima", len(tail)).fit(tail)
    memory.clear()
    memory.update(arima_spec(model.model_))
    return model.predict(h=horizon, **kwargs)


class StatsForecaster(Forecaster):
    """One StatsForecast model on the seasonally adjusted series (see the module docstring)."""

    name = "statsforecast"
    min_points = 20

    def __init__(self, method: str = "ets", season: int | None = None, level: float = 95,
                 trend_points: int = 500):
        self.method = method
        self.season = season
        self.level = level
        self.trend_points = trend_points

    def _season(self, n, step, notes):  # seasons are found in _fit, several at once
        return 1

    def _fit(self, y: pd.Series) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        self.periods_ = seasons_of(y, self.step_, self.season)
        self.y_ = y.to_numpy()

    def _predict(self, horizon: int, levels: list[float]) -> tuple[np.ndarray, Bands]:
        dec, out = adjusted_forecast(self.y_, self.periods_, [self.method], horizon, self.trend_points, levels)
        if dec.periods != self.periods_:
            self.notes_.append(f"seasons of {sorted(set(self.periods_) - set(dec.periods))} point(s) need two "
                               "cycles of history: not modelled")
        self.periods_ = dec.periods
        return out[self.method]
