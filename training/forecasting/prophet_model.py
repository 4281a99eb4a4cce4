"""Prophet: a piecewise-linear trend plus Fourier seasonalities, fitted by Stan (MAP).

Seasonality follows the shared rule: one seasonal component of ``season_`` steps (named ``daily`` when
that is a day) with ``fourier_order`` terms (at most ``season_ // 2``), plus a weekly one when the step is
shorter than a week and the history spans at least two weeks (``weekly="auto"``). Prophet's own automatic
seasonalities are switched off so that every model sees the same seasons.

Intervals come from Prophet's posterior predictive samples (``uncertainty_samples`` paths of trend
changes plus observation noise) as central quantiles, so one set of samples gives every level; the
point forecast is Prophet's own ``yhat``. Sampling draws from NumPy's global generator, so it runs
seeded with ``random_state`` and the caller's generator state is restored.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from training.forecasting.base import Bands, Forecaster, sample_bands, seeded


def quiet_prophet() -> None:
    """Prophet and cmdstanpy log every fit at INFO; keep only warnings."""
    from cmdstanpy.utils import get_logger

    get_logger().setLevel(logging.WARNING)  # cmdstanpy sets its level on first use: make that happen now
    for name in ("prophet", "prophet.plot", "cmdstanpy"):
        logging.getLogger(name).setLevel(logging.WARNING)


class ProphetForecaster(Forecaster):
    name = "prophet"

    def __init__(self, season: int | None = None, level: float = 95, fourier_order: int = 6,
                 weekly: bool | str = "auto", changepoint_prior_scale: float = 0.05,
                 seasonality_mode: str = "additive", uncertainty_samples: int = 500, random_state: int = 0):
        self.season = season
        self.level = level
        self.fourier_order = fourier_order
        self.weekly = weekly
        self.changepoint_prior_scale = changepoint_prior_scale
        self.seasonality_mode = seasonality_mode
        self.uncertainty_samples = uncertainty_samples
        self.random_state = random_state

    def _fit(self, y: pd.Series) -> None:
        from prophet import Prophet

        quiet_prophet()
        model = Prophet(growth="linear", changepoint_prior_scale=self.changepoint_prior_scale,
                        seasonality_mode=self.seasonality_mode, daily_seasonality=False,
                        weekly_seasonality=False, yearly_seasonality=False,
                        uncertainty_samples=self.uncertainty_samples)
        period = self.season_ * self.step_ / pd.Timedelta(days=1)
        if self.season_ > 1:
            model.add_seasonality(name="daily" if period == 1 else "season", period=period,
                                  fourier_order=max(1, min(self.fourier_order, self.season_ // 2)))
        span = y.index[-1] - y.index[0]
        weekly = self.weekly if self.weekly != "auto" else span >= pd.Timedelta(days=14)
        if weekly and period != 7 and self.step_ < pd.Timedelta(days=7):
            model.add_seasonality(name="weekly", period=7, fourier_order=3)
        frame = pd.DataFrame({"ds": y.index.tz_convert(None), "y": y.to_numpy()})
        with seeded(self.random_state):
            model.fit(frame)
        self.model_ = model

    def _predict(self, horizon: int, levels: list[float]) -> tuple[np.ndarray, Bands]:
        last = self.history_.index[-1].tz_convert(None)
        future = pd.DataFrame({"ds": pd.date_range(last + self.step_, periods=horizon, freq=self.step_)})
        model = self.model_
        with seeded(self.random_state):
            samples = model.predictive_samples(future)["yhat"].T  # paths x horizon
        kept = model.uncertainty_samples
        try:
            model.uncertainty_samples = 0  # the point forecast alone; the samples are already drawn
            mean = model.predict(future)["yhat"].to_numpy()
        finally:
            model.uncertainty_samples = kept
        return mean, sample_bands(samples, levels)
