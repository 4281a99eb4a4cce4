"""DeepAR (GluonTS, torch backend): one autoregressive recurrent network learned across related series.

DeepAR is the *global* member: ``fit_many({key: series})`` trains one network on every series at once
(each series scaled by its own mean, so a busy and a quiet service share what they have in common: the
shape of a day, how load decays); ``fit(series)`` is ``fit_many`` with one series. All series must share
one step. A constant series is not trained on; its forecast is flat with zero-width intervals.

The network is trained for a fixed ``prediction_length_`` (GluonTS builds its sampler for it):
``predict(horizon)`` serves any ``horizon <= prediction_length_`` and refuses a longer one, naming both
(``prediction_length=None`` takes one season, or 24 steps without one, at most half the shortest
history). Lags are the last seven steps plus one season back (``season - 1, season, season + 1``), not
GluonTS's frequency defaults, which reach a month back and would make every training window mostly
padding on a fortnight of data; time-of-day/week features come from the frequency as usual.

Intervals are central quantiles of ``num_samples`` sample paths, ``yhat`` their median. Training runs
seeded (torch, NumPy and Python generators, restored afterwards), on at most two threads, with no
progress bar and no logger; Lightning's checkpoint (GluonTS needs it to restore the best epoch) goes to a
temporary folder that is deleted after training, so nothing is written under the working directory.
"""
from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from training.forecasting.base import Forecaster, forecast_frame, sample_bands, torch_session
from training.forecasting.prepare import (
    ForecastInputError,
    check_horizon,
    future_index,
    is_constant,
    prepare_series,
)

ONE = "series"  # the key of the single series behind fit()/predict()


def quiet_lightning() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "gluonts"):
        logging.getLogger(name).setLevel(logging.WARNING)


def freq_string(step: pd.Timedelta) -> str:
    return pd.tseries.frequencies.to_offset(step).freqstr


class DeepARForecaster(Forecaster):
    name = "deepar"
    min_points = 30
    global_model = True

    def __init__(self, season: int | None = None, level: float = 95, prediction_length: int | None = None,
                 context_length: int | None = None, hidden_size: int = 32, num_layers: int = 2,
                 max_epochs: int = 8, num_batches_per_epoch: int = 25, batch_size: int = 32,
                 learning_rate: float = 5e-3, num_samples: int = 200, random_state: int = 0):
        self.season = season
        self.level = level
        self.prediction_length = prediction_length
        self.context_length = context_length
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.max_epochs = max_epochs
        self.num_batches_per_epoch = num_batches_per_epoch
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.num_samples = num_samples
        self.random_state = random_state

    # ------------------------------------------------------------------ contract
    def fit(self, series: pd.Series) -> DeepARForecaster:
        self.fit_many({ONE: series})
        self.history_ = self.histories_[ONE]
        self.constant_ = ONE in self.constant_keys_
        return self

    def predict(self, horizon: int) -> pd.DataFrame:
        return self.predict_many(horizon)[ONE]

    def fit_many(self, series: Mapping[str, pd.Series]) -> DeepARForecaster:
        from gluonts.torch import DeepAREstimator

        self._check_level()
        if not series:
            raise ValueError("fit_many needs at least one series")
        preps = {key: prepare_series(s, min_points=self.min_points) for key, s in series.items()}
        steps = {key: p.step for key, p in preps.items()}
        if len(set(steps.values())) > 1:
            raise ForecastInputError(f"DeepAR learns across series of one step; got {steps}: resample them "
                                     "to a common step first")
        step = next(iter(steps.values()))
        several = len(preps) > 1
        notes = [f"{key}: {n}" if several else n for key, p in preps.items() for n in p.notes]
        shortest = min(len(p.series) for p in preps.values())
        self.step_ = step
        self.season_ = self._season(shortest, step, notes)
        self.histories_ = {key: p.series for key, p in preps.items()}
        self.constant_keys_ = sorted(k for k, p in preps.items() if is_constant(p.series.to_numpy()))
        for key in self.constant_keys_:
            notes.append((f"{key}: " if several else "") + "the series is constant: the forecast is that value "
                         "with zero-width intervals; it was not trained on")
        m = self.season_
        pl = self.prediction_length or max(1, min(m if m > 1 else 24, shortest // 2))
        self.prediction_length_ = int(pl)
        self.context_length_ = int(self.context_length or max(pl, min(m if m > 1 else 2 * pl, 4 * pl)))
        self.lags_ = sorted({1, 2, 3, 4, 5, 6, 7} | ({m - 1, m, m + 1} if m > 1 else set()))
        self.freq_ = freq_string(step)
        self.notes_ = notes
        train = self._dataset(exclude_constant=True)
        if not train:
            self.predictor_ = None
            return self
        quiet_lightning()
        with tempfile.TemporaryDirectory(prefix="cerebro-deepar-") as tmp, warnings.catch_warnings(), \
                torch_session(self.random_state):
            warnings.simplefilter("ignore")  # Lightning's advice on data-loader workers and the like
            estimator = DeepAREstimator(
                freq=self.freq_, prediction_length=self.prediction_length_, context_length=self.context_length_,
                num_layers=self.num_layers, hidden_size=self.hidden_size, lr=self.learning_rate,
                lags_seq=self.lags_, num_parallel_samples=self.num_samples, batch_size=self.batch_size,
                num_batches_per_epoch=self.num_batches_per_epoch,
                trainer_kwargs={"max_epochs": self.max_epochs, "enable_progress_bar": False,
                                "enable_model_summary": False, "logger": False, "accelerator": "cpu",
                                "devices": 1, "default_root_dir": tmp},
            )
            self.predictor_ = estimator.train(train)
        return self

    def predict_many(self, horizon: int) -> dict[str, pd.DataFrame]:
        check_is_fitted(self, "histories_")
        shortest = min(len(y) for y in self.histories_.values())
        horizon = check_horizon(horizon, shortest, self.step_)
        if horizon > self.prediction_length_:
            raise ForecastInputError(
                f"horizon {horizon} is longer than the prediction_length {self.prediction_length_} this DeepAR "
                f"model was trained for; refit with prediction_length >= {horizon}")
        levels = self._levels()
        out: dict[str, pd.DataFrame] = {}
        data = self._dataset(exclude_constant=True)
        if data:
            with torch_session(self.random_state), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                forecasts = list(self.predictor_.predict(data, num_samples=self.num_samples))
            for entry, fc in zip(data, forecasts):
                samples = np.asarray(fc.samples, dtype=float)[:, :horizon]
                key = entry["item_id"]
                index = future_index(self.histories_[key].index[-1], self.step_, horizon)
                out[key] = forecast_frame(index, np.median(samples, axis=0), sample_bands(samples, levels),
                                          self.level)
        for key in self.constant_keys_:
            y = self.histories_[key]
            flat = np.full(horizon, float(y.iloc[-1]))
            out[key] = forecast_frame(future_index(y.index[-1], self.step_, horizon), flat,
                                      {lv: (flat, flat) for lv in levels}, self.level)
        return {key: out[key] for key in self.histories_}

    def _dataset(self, exclude_constant: bool) -> list[dict]:
        return [{"start": pd.Period(y.index[0].tz_convert(None), freq=self.freq_),
                 "target": y.to_numpy(dtype=np.float32), "item_id": key}
                for key, y in self.histories_.items()
                if not (exclude_constant and key in self.constant_keys_)]
