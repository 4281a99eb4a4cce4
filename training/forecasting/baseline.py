"""Seasonal naive: the baseline every other forecaster must beat.

The forecast for ``T + j`` repeats the value one season earlier (the last observed season, over and over;
with no season, the last value). Intervals are empirical, with no distributional assumption: the
half-width at level ``L`` is the ``L`` % quantile of the absolute in-sample seasonal-naive errors
``|y_t - y_{t-m}|``, widened by ``sqrt(k + 1)`` where ``k = (j - 1) // m`` counts the seasons the forecast
has already repeated (the random-walk scaling of Hyndman and Athanasopoulos, *Forecasting: Principles and
Practice*, 5.5: each extra season adds one independent error). Symmetric half-widths keep ``yhat`` inside
its interval even when the errors are biased (a trend).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from training.forecasting.base import Bands, Forecaster


class SeasonalNaive(Forecaster):
    name = "seasonal_naive"

    def __init__(self, season: int | None = None, level: float = 95):
        self.season = season
        self.level = level

    def _fit(self, y: pd.Series) -> None:
        m = self.season_
        v = y.to_numpy()
        self.last_season_ = v[-m:].copy()
        self.abs_errors_ = np.abs(v[m:] - v[:-m])

    def _predict(self, horizon: int, levels: list[float]) -> tuple[np.ndarray, Bands]:
        m = self.season_
        j = np.arange(horizon)
        mean = self.last_season_[j % m]
        widen = np.sqrt(j // m + 1.0)
        bands = {}
        for lv in levels:
            half = float(np.quantile(self.abs_errors_, lv / 100)) * widen
            bands[lv] = (mean - half, mean + half)
        return mean, bands
