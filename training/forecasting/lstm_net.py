"""The torch module behind :mod:`training.forecasting.lstm` (its own module so that importing the
forecasting package does not load torch, and fitted forecasters still pickle)."""
from __future__ import annotations

import torch
from torch import nn


class GaussianLSTM(nn.Module):
    """LSTM whose head gives, at every step, the mean and scale of a Gaussian for the next value."""

    def __init__(self, n_in: int, hidden: int, layers: int):
        super().__init__()
        self.lstm = nn.LSTM(n_in, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def forward(self, x: torch.Tensor, state=None):
        out, state = self.lstm(x, state)
        mu, raw = self.head(out).unbind(-1)
        return mu, nn.functional.softplus(raw) + 1e-3, state
