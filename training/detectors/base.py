"""The detector contract every member of the zoo follows (scikit-learn's estimator conventions).

* ``__init__`` stores parameters verbatim, nothing else (so ``get_params``/``clone`` work).
* ``fit(X)`` learns, sets attributes ending in ``_`` and returns ``self``. It also learns, from the
  training scores only, a :class:`TailCalibrator` and the alarm threshold ``threshold_``: no labels, and
  never test data, are involved.
* ``score(X)`` returns one float per row, higher = more anomalous; ``predict(X)`` returns 0/1 against
  ``threshold_``; ``calibrated(X)`` maps scores to [0, 1] on a scale shared by every detector
  (1 - the estimated probability of a training score at least this high), which the ensemble combines.
* Streaming members (``streaming = True``) also take one point at a time: ``update(x, key)`` returns
  that point's score and learns from it.

``X`` is a DataFrame (or a 2-D array). Rows of one series are in time order. Several series may be
stacked: give the frame a MultiIndex whose first level is the series (``service``) and second the time
(``timestamp``); sequence-aware members then never mix neighbouring series, and the graph member lines
services up by time. ``features`` selects columns (``None``: all numeric columns).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted


class NotEnoughData(ValueError):
    """The input is too short (or too constant) for a detector; the message says what is needed."""


# The scoring service scores several requests' windows in one call (adaptive batching). Two requests may hold the
# same series, so each request's series are renamed ``<series><BATCH_SEP><n>``: no member reads one window as the
# continuation of another. What a member learned per series (its location and scale, seasonal profile) is looked
# up by the name before the separator (``series_name``), so that a batched window scores as it does alone.
BATCH_SEP = "\x1f"


def series_name(key):
    """The series a key names, without the batch suffix the scoring service may have added."""
    return key.split(BATCH_SEP, 1)[0] if isinstance(key, str) else key


def as_frame(X) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    arr = np.asarray(X, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D table of features, got an array with shape {arr.shape}")
    return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])


def iter_series(frame: pd.DataFrame) -> Iterator[tuple[object, pd.DataFrame]]:
    """(key, rows) for each stacked series, in the order they appear; one series when not stacked."""
    if isinstance(frame.index, pd.MultiIndex):
        level = frame.index.get_level_values(0)
        for key in pd.unique(level):
            yield key, frame[level == key]
    else:
        yield None, frame


def series_positions(frame: pd.DataFrame) -> list[np.ndarray]:
    """Row positions of each stacked series (to put per-series results back in row order)."""
    if isinstance(frame.index, pd.MultiIndex):
        codes, _ = pd.factorize(frame.index.get_level_values(0))
        return [np.flatnonzero(codes == c) for c in range(codes.max() + 1)] if len(codes) else []
    return [np.arange(len(frame))]


def fill_gaps(frame: pd.DataFrame) -> pd.DataFrame:
    """Gaps carried forward within each series (level 0 of a stacked index), then 0: "at the baseline" for
    inputs standardised per series. What every detector does to its inputs."""
    if not frame.isna().to_numpy().any():
        return frame
    if isinstance(frame.index, pd.MultiIndex):
        return frame.groupby(level=0, sort=False).ffill().fillna(0.0)
    return frame.ffill().fillna(0.0)


def series_runs(keys: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each series in ``keys``, rows grouped by series (the scoring service's numpy paths)."""
    if not len(keys):
        return []
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return list(zip(starts.tolist(), [*starts[1:].tolist(), len(keys)]))


class TailCalibrator:
    """Empirical CDF of training scores with an exponential tail (peaks over threshold, extreme-value theory).

    ``tail_probability(s)`` estimates P(training score >= s). Below the ``tail_start`` quantile it is the
    empirical frequency; above it, excesses over that quantile follow an exponential distribution fitted to
    the training excesses (the generalised Pareto with shape 0), so probabilities keep falling beyond the
    largest score seen. ``threshold(alpha)`` inverts it: the score exceeded with probability ``alpha``.
    """

    def __init__(self, tail_start: float = 0.98):
        self.tail_start = tail_start

    def fit(self, scores: np.ndarray) -> TailCalibrator:
        s = np.asarray(scores, dtype=float)
        s = s[np.isfinite(s)]
        if len(s) < 20:
            raise NotEnoughData(f"need at least 20 training scores to calibrate, got {len(s)}")
        self.grid_ = np.quantile(s, np.linspace(0, 1, 201))
        self.u_ = float(np.quantile(s, self.tail_start))
        excess = s[s > self.u_] - self.u_
        spread = float(np.std(s)) or 1.0
        self.beta_ = float(excess.mean()) if len(excess) else 1e-3 * spread
        self.beta_ = max(self.beta_, 1e-9 * spread, 1e-12)
        return self

    def tail_probability(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores, dtype=float)
        p_grid = np.linspace(0, 1, 201)
        cdf = np.interp(s, self.grid_, p_grid, left=0.0, right=1.0)
        p = 1.0 - cdf
        tail = s > self.u_
        p[tail] = (1 - self.tail_start) * np.exp(-(s[tail] - self.u_) / self.beta_)
        p = np.where(np.isnan(s), 1.0, p)
        return np.clip(p, 1e-300, 1.0)

    def threshold(self, alpha: float) -> float:
        if alpha >= 1 - self.tail_start:
            return float(np.interp(1 - alpha, np.linspace(0, 1, 201), self.grid_))
        return self.u_ + self.beta_ * float(np.log((1 - self.tail_start) / alpha))


class Detector(BaseEstimator):
    """Base class: subclasses implement ``_fit(frame)`` and ``_score(frame) -> ndarray``.

    Common parameters every subclass accepts (and lists in its own ``__init__``):
      features  columns to use (None: every numeric column)
      alpha     false-alarm rate per row that sets ``threshold_`` through the tail calibrator
    """

    streaming: ClassVar[bool] = False
    family: ClassVar[str] = "base"
    min_rows: ClassVar[int] = 20
    # What the detector's score reads, where several members read the same thing (None: its own). The ensemble
    # takes one member per view: three window autoencoders vote as one model counted three times.
    view: ClassVar[str | None] = None

    # ------------------------------------------------------------------ contract
    def fit(self, X, y=None):
        frame = self._select(as_frame(X), fitting=True)
        if len(frame) < self.min_rows:
            raise NotEnoughData(f"{type(self).__name__} needs at least {self.min_rows} rows to fit, got {len(frame)}")
        self._fit(frame)
        train = np.asarray(self._score(frame), dtype=float)
        self.calibrator_ = TailCalibrator().fit(train)
        self.threshold_ = self.threshold_at(getattr(self, "alpha", 1e-3))
        return self

    def threshold_at(self, alpha: float) -> float:
        """The score a training row exceeds with probability ``alpha`` (the fitted calibrator's tail)."""
        return self.calibrator_.threshold(alpha)

    def score(self, X) -> np.ndarray:
        check_is_fitted(self, "threshold_")
        return np.asarray(self._score(self._select(as_frame(X))), dtype=float)

    def predict(self, X) -> np.ndarray:
        return (self.score(X) > self.threshold_).astype(int)

    def calibrated(self, X=None, scores: np.ndarray | None = None) -> np.ndarray:
        """Scores on the shared [0, 1] scale: 1 - P(a training score at least this high)."""
        s = self.score(X) if scores is None else scores
        return 1.0 - self.calibrator_.tail_probability(s)

    # ------------------------------------------------------------------ helpers
    def _select(self, frame: pd.DataFrame, fitting: bool = False) -> pd.DataFrame:
        features = getattr(self, "features", None)
        if fitting:
            cols = list(features) if features is not None else list(frame.select_dtypes("number").columns)
            missing = [c for c in cols if c not in frame.columns]
            if missing:
                raise ValueError(f"{type(self).__name__}: columns {missing} not in the input")
            if not cols:
                raise ValueError(f"{type(self).__name__}: no numeric columns to learn from")
            self.feature_names_in_ = np.array(cols, dtype=object)
            self.n_features_in_ = len(cols)
        else:
            check_is_fitted(self, "feature_names_in_")
            cols = list(self.feature_names_in_)
            if frame.columns.tolist() == cols and all(d == np.float64 for d in frame.dtypes):
                return fill_gaps(frame)  # already the fitted columns as floats (the service's path): no copy
            missing = [c for c in cols if c not in frame.columns]
            if missing:
                raise ValueError(f"{type(self).__name__}: the input lacks the columns it was fitted on: {missing}")
        return fill_gaps(frame[cols].astype(float))

    def _fit(self, frame: pd.DataFrame) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _score(self, frame: pd.DataFrame) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError
