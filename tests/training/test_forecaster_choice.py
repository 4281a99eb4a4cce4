"""training.forecasting.choice: `auto` picks the forecaster by backtest; forecast_series runs the chosen one."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.forecasting import ForecastInputError
from training.forecasting.choice import choose_forecaster, forecast_series

T0 = pd.Timestamp("2026-10-01T00:00Z")


def _hourly(values) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=float), index=pd.date_range(T0, periods=len(values), freq="h"))


def test_a_pure_daily_cycle_goes_to_seasonal_naive():
    i = np.arange(24 * 10)
    best, scores = choose_forecaster(_hourly(50 + 10 * np.sin(2 * np.pi * i / 24)), 12)
    assert set(scores) == {"seasonal_naive", "arima"}
    assert best == "seasonal_naive" and scores["seasonal_naive"] < scores["arima"]


def test_a_steady_trend_goes_to_arima():
    rng = np.random.default_rng(0)
    i = np.arange(24 * 10)
    best, scores = choose_forecaster(_hourly(10 + 0.5 * i + rng.normal(0, 0.1, len(i))), 12)
    assert best == "arima" and scores["arima"] < scores["seasonal_naive"]


def test_too_short_to_backtest_is_the_baseline():
    assert choose_forecaster(_hourly([1.0, 2.0, 3.0]), 2) == ("seasonal_naive", {})


def test_ties_go_to_the_baseline_and_nan_scores_are_dropped(monkeypatch):
    import training.forecasting.backtest as bt

    class Result:
        def __init__(self, rows):
            self.frame = pd.DataFrame(rows, columns=["model", "mase"])

    monkeypatch.setattr(bt, "backtest", lambda *a, **k: Result([("arima", 0.5), ("seasonal_naive", 0.5)]))
    assert choose_forecaster(_hourly(range(100)), 5) == ("seasonal_naive", {"arima": 0.5, "seasonal_naive": 0.5})
    monkeypatch.setattr(bt, "backtest", lambda *a, **k: Result([("arima", 0.9), ("seasonal_naive", np.nan)]))
    assert choose_forecaster(_hourly(range(100)), 5) == ("arima", {"arima": 0.9})
    monkeypatch.setattr(bt, "backtest", lambda *a, **k: Result([("arima", np.nan)]))
    assert choose_forecaster(_hourly(range(100)), 5) == ("seasonal_naive", {})


def test_forecast_series_named_model_prepares_and_notes():
    i = np.arange(24 * 5)
    values = _hourly(50 + 10 * np.sin(2 * np.pi * i / 24)).iloc[::-1]  # newest first: preparation sorts it
    fc = forecast_series(values, 6, "seasonal_naive")
    assert fc.model == "seasonal_naive" and fc.comparison is None
    assert len(fc.forecast) == 6 and fc.forecast.index[0] == values.index.max() + pd.Timedelta(hours=1)
    assert np.allclose(fc.forecast["yhat"], values.sort_index().iloc[-24:-18])  # the last day repeated
    assert fc.prepared.step == pd.Timedelta(hours=1) and any("sorted" in n for n in fc.notes)


def test_forecast_series_auto_says_what_it_compared_and_refuses_long_horizons():
    i = np.arange(24 * 10)
    fc = forecast_series(_hourly(50 + 10 * np.sin(2 * np.pi * i / 24)), 12)
    assert fc.model == "seasonal_naive" and set(fc.comparison) == {"seasonal_naive", "arima"}
    with pytest.raises(ForecastInputError, match="horizon 500 is too long"):
        forecast_series(_hourly(np.arange(48.0)), 500, "seasonal_naive")
