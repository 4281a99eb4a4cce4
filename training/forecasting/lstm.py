"""A small probabilistic LSTM: at every step it outputs the mean and scale of a Gaussian for the next value.

Inputs at step ``t`` are the value ``z_t``, relative to the level of its window (the mean of the window's
first quarter) and divided by the series' standard deviation, so a level the network never saw (a trend
carried on) looks familiar; and, when the series is seasonal, the position of ``t + 1`` in the season as a
point on a circle (sin, cos), so a short window still knows the time of day.
Training: windows of ``window`` steps (at most ``max_windows`` of them, drawn at random), Gaussian negative
log-likelihood of every next value after a short warm-up (the first quarter of the window, where the
state has seen too little), Adam, ``epochs`` passes.

Forecast: the network reads the last ``window`` steps, then ``n_samples`` paths are sampled ancestrally
(each sampled value is fed back as the next input), as DeepAR does; ``yhat`` is the paths' median and the
intervals their central quantiles, so uncertainty grows with the horizon the way the model believes it
does. Everything runs under :func:`~training.forecasting.base.torch_session` (seeded, one
thread): the same ``random_state`` gives the same forecast.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from training.forecasting.base import Bands, Forecaster, sample_bands, torch_session


def _phase(index: pd.DatetimeIndex, step: pd.Timedelta, season: int) -> np.ndarray:
    """(n, 2) position in the season as sin/cos (absolute time, so every series of a step agrees)."""
    if season <= 1:
        return np.zeros((len(index), 0))
    pos = (index.asi8 // step.value) % season / season
    return np.column_stack([np.sin(2 * np.pi * pos), np.cos(2 * np.pi * pos)])


class LSTMForecaster(Forecaster):
    name = "lstm"
    min_points = 30

    def __init__(self, season: int | None = None, level: float = 95, window: int = 48, hidden_size: int = 32,
                 num_layers: int = 1, epochs: int = 30, batch_size: int = 64, learning_rate: float = 0.01,
                 max_windows: int = 2000, n_samples: int = 500, random_state: int = 0):
        self.season = season
        self.level = level
        self.window = window
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_windows = max_windows
        self.n_samples = n_samples
        self.random_state = random_state

    def _fit(self, y: pd.Series) -> None:
        import torch

        from training.forecasting.lstm_net import GaussianLSTM

        v = y.to_numpy()
        self.scale_ = float(v.std())
        w = self.window_ = int(min(self.window, max(8, (len(v) - 1) // 2)))
        warm = self.warm_ = max(1, w // 4)
        phases = _phase(y.index + self.step_, self.step_, self.season_)
        starts = np.arange(len(v) - w)  # input rows s .. s+w-1 predict values s+1 .. s+w
        rng = np.random.default_rng(self.random_state)
        if len(starts) > self.max_windows:
            starts = np.sort(rng.choice(starts, self.max_windows, replace=False))
        xs, ts = [], []
        for s in starts:
            anchor = v[s:s + warm].mean()  # the window's level, from its unscored warm-up only (no peeking)
            xs.append(np.column_stack([(v[s:s + w] - anchor) / self.scale_, phases[s:s + w]]))
            ts.append((v[s + 1:s + w + 1] - anchor) / self.scale_)
        X = torch.from_numpy(np.stack(xs).astype(np.float32))
        T = torch.from_numpy(np.stack(ts).astype(np.float32))
        with torch_session(self.random_state):
            net = GaussianLSTM(X.shape[2], self.hidden_size, self.num_layers)
            opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
            loss_fn = torch.nn.GaussianNLLLoss()
            losses = []
            for _ in range(self.epochs):
                order = torch.randperm(len(X))
                total = 0.0
                for b in range(0, len(X), self.batch_size):
                    idx = order[b:b + self.batch_size]
                    mu, sigma, _ = net(X[idx])
                    loss = loss_fn(mu[:, warm:], T[idx][:, warm:], sigma[:, warm:] ** 2)
                    opt.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                    opt.step()
                    total += loss.item() * len(idx)
                losses.append(total / len(X))
        self.net_ = net.eval()
        self.losses_ = losses
        self.anchor_ = float(v[-w:][:warm].mean())
        self.context_ = np.column_stack([(v[-w:] - self.anchor_) / self.scale_, phases[-w:]]).astype(np.float32)

    def _predict(self, horizon: int, levels: list[float]) -> tuple[np.ndarray, Bands]:
        import torch

        future = self.history_.index[-1] + self.step_ * np.arange(1, horizon + 1)
        phases = _phase(pd.DatetimeIndex(future) + self.step_, self.step_, self.season_).astype(np.float32)
        n = self.n_samples
        with torch_session(self.random_state), torch.no_grad():
            mu, sigma, state = self.net_(torch.from_numpy(self.context_)[None])
            mu, sigma = mu[:, -1].expand(n), sigma[:, -1].expand(n)
            state = tuple(s.expand(-1, n, -1).contiguous() for s in state)
            paths = torch.empty(n, horizon)
            for j in range(horizon):
                draw = mu + sigma * torch.randn(n)
                paths[:, j] = draw
                if j + 1 < horizon:
                    step_in = torch.cat([draw[:, None], torch.from_numpy(phases[j]).expand(n, -1)], dim=1)
                    mu, sigma, state = self.net_(step_in[:, None, :], state)
                    mu, sigma = mu[:, 0], sigma[:, 0]
        samples = paths.numpy().astype(float) * self.scale_ + self.anchor_
        return np.median(samples, axis=0), sample_bands(samples, levels)
