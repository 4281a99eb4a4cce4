"""Forecasting: five forecasters on one contract, rolling-origin backtests, and capacity planning.

* :mod:`.prepare` - input preparation shared by every model, and the rules for input that cannot be
  forecast (too few points, too little history for a season, constant series, horizons too long, long
  gaps); :class:`ForecastInputError` says what is wrong and what is needed.
* :mod:`.base` - the scikit-learn-style contract: ``fit(series)``, ``predict(horizon)`` with ``yhat`` and
  80 % / 95 % intervals, ``fit_many`` / ``predict_many`` for related series.
* Members: :mod:`.baseline` (seasonal naive), :mod:`.prophet_model`, :mod:`.arima` (pmdarima),
  :mod:`.lstm` (torch, Gaussian head), :mod:`.deepar` (GluonTS, global across series),
  :mod:`.statsforecast_models` (StatsForecast ETS, Theta, ARIMA on the MSTL-adjusted series; seasons from
  :mod:`.seasons`) and :mod:`.auto` (choice by backtest, median combination, conformal intervals);
  :mod:`.registry` builds them by name with a ``default`` or ``large`` profile.
* :mod:`.backtest` - MASE, sMAPE and interval coverage over rolling origins, against seasonal naive;
  :mod:`.plots` draws a forecast.
* :mod:`.capacity` - when each service's disk, CPU or connections reach their limit.

Domain code only: no Prefect; prophet, pmdarima, GluonTS and torch load inside the methods that use them.
"""
from __future__ import annotations

from training.forecasting.base import COLUMNS, LEVELS, Forecaster
from training.forecasting.prepare import ForecastInputError, PreparedSeries, prepare_series
from training.forecasting.registry import BASELINE, FORECASTERS, PROFILES, build_forecaster

__all__ = ["BASELINE", "COLUMNS", "FORECASTERS", "LEVELS", "PROFILES", "ForecastInputError", "Forecaster",
           "PreparedSeries", "build_forecaster", "prepare_series"]
