"""Which forecaster for a series nobody has benchmarked, and its forecast: what `cerebro forecast` runs.

``auto`` backtests the seasonal-naive baseline and auto-ARIMA on the end of the series and keeps the one
with the lower mean MASE; a tie, or a series too short to backtest, goes to the baseline, which needs
nothing to be chosen.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from training.forecasting.prepare import PreparedSeries, check_horizon, prepare_series
from training.forecasting.registry import BASELINE, build_forecaster

AUTO_CANDIDATES = (BASELINE, "arima")


def choose_forecaster(series: pd.Series, horizon: int) -> tuple[str, dict[str, float]]:
    """The candidate with the lower mean MASE over two rolling origins (horizon at most a quarter of the
    history), and each candidate's MASE; ``(baseline, {})`` when the series is too short to backtest."""
    from training.forecasting.backtest import backtest

    h = max(1, min(horizon, len(series) // 4))
    try:
        result = backtest(series, list(AUTO_CANDIDATES), horizons=[h], n_origins=2, errors="record")
    except Exception:  # noqa: BLE001 - too short to backtest: the baseline needs nothing to be chosen
        return BASELINE, {}
    scores = result.frame.groupby("model")["mase"].mean().dropna().to_dict()
    if not scores:
        return BASELINE, {}
    best = min(scores, key=lambda k: (scores[k], k != BASELINE))
    return best, {k: float(v) for k, v in scores.items()}


@dataclass
class SeriesForecast:
    prepared: PreparedSeries  # the series as the model saw it (regular, sorted, gaps filled), and its step
    model: str  # the forecaster used: the one asked for, or the one ``auto`` chose
    comparison: dict[str, float] | None  # ``auto``: each candidate's backtest MASE; None when a model was named
    forecast: pd.DataFrame  # yhat and the 80 % / 95 % interval columns, one row per future step
    notes: list[str] = field(default_factory=list)  # what preparation and fitting had to do


def forecast_series(values: pd.Series, horizon: int, model: str = "auto") -> SeriesForecast:
    """Prepare ``values``, check the horizon against the history, pick the forecaster (``auto`` or a name of
    the registry), fit it and forecast ``horizon`` steps. Raises ``ForecastInputError`` for input that
    cannot be forecast, saying what is needed."""
    prepared = prepare_series(values)
    check_horizon(horizon, len(prepared.series), prepared.step)
    chosen, comparison = model, None
    if model == "auto":
        chosen, comparison = choose_forecaster(prepared.series, horizon)
    fitted = build_forecaster(chosen).fit(prepared.series)
    result = fitted.predict(horizon)
    return SeriesForecast(prepared, chosen, comparison, result,
                          list(prepared.notes) + list(getattr(fitted, "notes_", [])))
