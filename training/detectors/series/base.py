"""Shared pieces of the series detectors: parameters as sklearn expects them, the time step, robust
spread, and the tail score.

Only numpy and pandas are imported here: ``cerebro detect`` loads this path on every call, and sklearn,
torch or MLflow would cost seconds of start-up for nothing.
"""
from __future__ import annotations

import inspect

import numpy as np
import pandas as pd

DAY = 86_400.0
# Positions counted from here (a Monday, 00:00 UTC) tell the day of the week: ``calendar_positions``
CALENDAR_EPOCH_NS = 4 * 86_400 * 10**9  # 1970-01-05T00:00Z


def calendar_positions(stamps_ns: np.ndarray, step: float) -> np.ndarray:
    """Positions in steps of ``step`` seconds from CALENDAR_EPOCH_NS (epoch nanoseconds in): the phase of
    the day and the day of the week follow from them, whatever the series' first timestamp."""
    return (np.asarray(stamps_ns, dtype=np.int64) - CALENDAR_EPOCH_NS) / 1e9 / step
MAD_TO_SIGMA = 1.4826
# L = -log10(tail probability) maps to score = L / (L + SCORE_HALF): p = 1e-3 gives 0.5, and the score
# keeps growing with L (no cap at the training maximum), so larger anomalies always rank higher.
SCORE_HALF = 3.0


class NotEnoughRows(ValueError):
    """Too few rows for a series detector; the message names both numbers."""


class Params:
    """get_params / set_params from the ``__init__`` signature, as sklearn's ``clone`` and grid search use
    them, without importing sklearn (it costs most of a second at start-up)."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        # an object pickled by an older release lacks a parameter added since: its default
        sig = inspect.signature(type(self).__init__).parameters
        return {name: getattr(self, name, sig[name].default) for name in self._param_names()}

    def set_params(self, **params):
        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}; it has {sorted(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def infer_step(times: pd.Index) -> float | None:
    """The sampling step in seconds: the median gap between distinct sorted timestamps (robust to a few
    missing or doubled rows). None when the index holds no times (plain row numbers)."""
    if not isinstance(times, pd.DatetimeIndex) or len(times) < 2:
        return None
    t = np.unique(times.asi8)
    gaps = np.diff(t) / 1e9
    gaps = gaps[gaps > 0]
    return float(np.median(gaps)) if len(gaps) else None


def rows_for(seconds: float, step: float | None, fallback: int) -> int:
    """A span of time as a number of rows (at least 1); ``fallback`` when the step is unknown."""
    if not step:
        return max(1, int(fallback))
    return max(1, round(seconds / step))


def robust_scale(x: np.ndarray) -> float:
    """Spread that anomalies in the data barely move: 1.4826 MAD, then the mean absolute deviation from
    the median (count series are often mostly one value, where the MAD is 0), then 1."""
    x = x[np.isfinite(x)]
    if not len(x):
        return 1.0
    dev = np.abs(x - np.median(x))
    for s in (MAD_TO_SIGMA * np.median(dev), float(np.mean(dev))):
        if s > 1e-12 * max(1.0, float(np.max(np.abs(x)))):
            return float(s)
    return 1.0


class LogTail:
    """-log10 P(training evidence >= e): the empirical exceedance (interpolated, so strictly ordered) up to
    the ``tail_start`` quantile, an exponential tail fitted to the excesses above it (peaks over threshold)
    beyond, so the value keeps growing past the largest training evidence instead of saturating."""

    def __init__(self, tail_start: float = 0.98):
        self.tail_start = tail_start

    def fit(self, evidence: np.ndarray) -> LogTail:
        e = np.sort(np.asarray(evidence, dtype=float)[np.isfinite(evidence)])
        if len(e) < 10:
            raise NotEnoughRows(f"need at least 10 training rows to calibrate scores, got {len(e)}")
        self.sorted_ = e
        self.distinct_ = _distinct(e)  # log_p's support, kept: the service scores every request with it
        self.u_ = float(np.quantile(e, self.tail_start))
        excess = e[e > self.u_] - self.u_
        spread = float(np.std(e)) or 1.0
        self.beta_ = max(float(excess.mean()) if len(excess) else 0.0, 1e-3 * spread, 1e-12)
        return self

    def log_p(self, evidence: np.ndarray) -> np.ndarray:
        """-log10 of the tail probability, >= 0 and increasing with the evidence."""
        e = np.asarray(evidence, dtype=float)
        n = len(self.sorted_)
        distinct = getattr(self, "distinct_", None)
        if distinct is None:  # a tail fitted before ``distinct_`` was kept (a registered version): once, here
            distinct = self.distinct_ = _distinct(self.sorted_)
        values, first = distinct
        p = np.interp(e, values, 1.0 - first / n, left=1.0, right=1.0 / n)
        tail = e > self.u_
        p_u = 1.0 - self.tail_start
        p[tail] = p_u * np.exp(-(e[tail] - self.u_) / self.beta_)
        with np.errstate(divide="ignore"):
            out = -np.log10(np.clip(p, 1e-300, 1.0))
        # beyond 1e-300 the probability underflows: keep ordering by growing linearly with the evidence
        far = tail & (out >= 299.0)
        out[far] = (e[far] - self.u_) / self.beta_ / np.log(10) - np.log10(p_u)
        return np.where(np.isnan(e), 0.0, out)

    def evidence_at(self, log_p: float) -> float:
        """The evidence whose -log10 tail probability is ``log_p`` (inverse of :meth:`log_p`)."""
        p = 10.0 ** -log_p
        if p <= 1.0 - self.tail_start:
            return self.u_ + self.beta_ * float(np.log((1.0 - self.tail_start) / p))
        return float(np.quantile(self.sorted_, 1.0 - p))


def _distinct(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted training values ``e`` that differ by more than rounding, and the first position of each:
    P(E >= v) at each, linear between them, is continuous in the evidence. With tied or nearly tied values
    kept apart (many rows sit exactly on their rolling median; a slowly moving disk percentage repeats
    values to the 14th digit), a row a rounding error above a tie jumped past the whole run of them, and
    two float paths to the same inputs (the service's numpy path and pandas) scored differently."""
    tol = 1e-9 * max(1.0, float(np.max(np.abs(e))))
    new = np.r_[True, np.diff(e) > tol]
    return e[new], np.flatnonzero(new)


def to_score(log_p: np.ndarray | float) -> np.ndarray:
    """Map -log10 tail probability to [0, 1): monotone, never reaching 1."""
    lp = np.maximum(np.asarray(log_p, dtype=float), 0.0)
    return lp / (lp + SCORE_HALF)
