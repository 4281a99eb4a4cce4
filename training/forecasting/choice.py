"""Which forecaster for a series nobody has benchmarked, and its forecast: what `cerebro forecast` runs.

``auto`` (:class:`training.forecasting.auto.AutoForecaster`) backtests last value, seasonal naive and the
StatsForecast members on the end of the series, keeps the best or the median of the best three, and
calibrates its intervals on the backtest errors (conformal). A named model runs as it is.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from training.forecasting.prepare import PreparedSeries, check_horizon, prepare_series
from training.forecasting.registry import build_forecaster


@dataclass
class SeriesForecast:
    prepared: PreparedSeries  # the series as the model saw it (regular, sorted, gaps filled), and its step
    model: str  # the forecaster used: the one asked for, or the one ``auto`` chose
    comparison: dict[str, float] | None  # ``auto``: each candidate's backtest MAE; None when a model was named
    forecast: pd.DataFrame  # yhat and the 80 % / 95 % interval columns, one row per future step
    notes: list[str] = field(default_factory=list)  # what preparation and fitting had to do


def forecast_series(values: pd.Series, horizon: int, model: str = "auto") -> SeriesForecast:
    """Prepare ``values``, check the horizon against the history, pick the forecaster (``auto`` or a name of
    the registry), fit it and forecast ``horizon`` steps. Raises ``ForecastInputError`` for input that
    cannot be forecast, saying what is needed."""
    prepared = prepare_series(values)
    check_horizon(horizon, len(prepared.series), prepared.step)
    params = {"horizon": horizon} if model == "auto" else {}
    fitted = build_forecaster(model, **params).fit(prepared.series)
    result = fitted.predict(horizon)
    chosen, comparison = model, None
    if model == "auto":
        chosen, comparison = f"auto: {fitted.description}", dict(fitted.scores_)
    return SeriesForecast(prepared, chosen, comparison, result,
                          list(prepared.notes) + list(getattr(fitted, "notes_", [])))
