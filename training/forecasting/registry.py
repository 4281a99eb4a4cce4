"""Every forecaster by name, with two parameter profiles.

``default`` is sized for a laptop's few cores: the networks train for a handful of epochs (on a fortnight
of hourly points, the LSTM about a second, DeepAR a few seconds per series; with so few epochs DeepAR
learns faster, ``learning_rate`` 5e-3 instead of GluonTS's 1e-3, which halved its error against the
baseline on the benchmark's fleet series compared with 5 epochs at 1e-3). ``large`` trains them longer and widens
them, and lets ARIMA search further; it is for a machine with time to spare. Parameters given to
:func:`build_forecaster` override the profile's.
"""
from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module

from training.forecasting.base import Forecaster

FORECASTERS = ["seasonal_naive", "prophet", "arima", "lstm", "deepar"]  # the pipeline stage's set
# StatsForecast members on the MSTL-adjusted series, and `auto` (backtest choice, conformal intervals): what
# `cerebro forecast` offers besides the pipeline's set. "arima" stays the pmdarima STL-ARIMA the stage was
# tuned with; "arima_pmdarima" names it explicitly, "autoarima" is StatsForecast's.
STATISTICAL = ["auto", "naive", "ets", "theta", "autoarima"]
ALL_FORECASTERS = [*FORECASTERS, "arima_pmdarima", *STATISTICAL]
BASELINE = "seasonal_naive"

_CLASSES = {
    "seasonal_naive": ("training.forecasting.baseline", "SeasonalNaive"),
    "prophet": ("training.forecasting.prophet_model", "ProphetForecaster"),
    "arima": ("training.forecasting.arima", "ArimaForecaster"),
    "arima_pmdarima": ("training.forecasting.arima", "ArimaForecaster"),
    "auto": ("training.forecasting.auto", "AutoForecaster"),
    "lstm": ("training.forecasting.lstm", "LSTMForecaster"),
    "deepar": ("training.forecasting.deepar", "DeepARForecaster"),
}

_METHODS = {"naive": "naive", "ets": "ets", "theta": "theta", "autoarima": "arima"}

PROFILES: dict[str, dict[str, dict]] = {
    "default": {
        "lstm": {"epochs": 30, "hidden_size": 32},
        "deepar": {"max_epochs": 8, "num_batches_per_epoch": 25, "learning_rate": 5e-3},
    },
    "large": {
        "prophet": {"uncertainty_samples": 1000},
        "arima": {"max_p": 5, "max_q": 5, "max_points": 2000},
        "lstm": {"epochs": 150, "hidden_size": 64, "num_layers": 2, "max_windows": 10000},
        "deepar": {"max_epochs": 40, "num_batches_per_epoch": 50, "hidden_size": 40, "learning_rate": 1e-3},
    },
}


def build_forecaster(name: str, profile: str = "default", **params) -> Forecaster:
    """A fresh forecaster ``name`` with the profile's parameters, overridden by ``params``."""
    if name not in _CLASSES and name not in _METHODS:
        raise ValueError(f"unknown forecaster {name!r}; choose from {ALL_FORECASTERS}")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {sorted(PROFILES)}")
    if name in _METHODS:
        from training.forecasting.statsforecast_models import StatsForecaster

        return StatsForecaster(method=_METHODS[name], **params)
    module, cls = _CLASSES[name]
    return getattr(import_module(module), cls)(**{**PROFILES[profile].get(name, {}), **params})


def for_horizon(model: Forecaster, horizon: int, fixed: Mapping | None = None) -> Forecaster:
    """``model`` told the horizon it will be asked for, where it takes one: DeepAR trains for a
    ``prediction_length``, ``auto`` backtests its candidates at ``horizon``. A parameter in ``fixed`` (set by
    the caller on purpose) is left as it is."""
    params = model.get_params()
    for key in ("prediction_length", "horizon"):
        if key in params and key not in (fixed or {}):
            model.set_params(**{key: int(horizon)})
    return model
