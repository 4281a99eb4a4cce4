"""Residual detectors for one real series: value minus (seasonal profile + level), in robust units.

Real monitoring series have daily/weekly cycles, trends, level shifts that become the new normal, and
anomalies inside the part a detector learns from. :class:`SeasonalResidual` handles each:

* the seasonal profile is the per-phase *median* of the detrended training part, so a few anomalies in
  training do not bend it;
* the level is a *trailing* rolling median (``level_window`` rows): it follows trends, and after a level
  shift it re-baselines within about half the window, so a lasting shift is flagged at its start and then
  becomes normal (a centred median would hide the step; a fixed level would flag it forever);
* the spread is the MAD of the training residuals (robust to the anomalies in them);
* the evidence per row is |residual| / spread, optionally averaged over ``smooth`` rows, and scores are
  -log10 tail probabilities of that evidence (:class:`~training.detectors.series.base.LogTail`).

``fit(x_train)`` / ``score(x)`` follow sklearn's shape: ``x`` starts where the training part starts
(the phase of row ``i`` is ``i mod period``, or ``t[i] mod period`` when positions ``t`` in steps are given,
so gaps in the timestamps keep the phase right).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from training.detectors.series.base import LogTail, NotEnoughRows, Params, robust_scale, to_score

TRIM = 3.0  # training rows beyond TRIM * min_z robust units count as anomalies when setting the threshold,
RARE = 0.002  # if they form at most 3 runs, or one per 500 rows
REBASE_SHARE = 0.8  # a single level moves once this share of its last ``rebase`` rows is beyond the gate
# ... beyond this share of the gate: on a series that wanders, a lasting shift keeps a quarter of its rows
# inside the full gate, and one level would flag it for good
REBASE_GATE = 0.5
RETURN_ROWS = 3  # rows in a row back at the level before a move that move it back
DEGENERATE_SCALE = 1e-6  # the spread, relative to the level, of a training part that held one value


def _positions(n: int, t: np.ndarray | None) -> np.ndarray:
    return np.arange(n) if t is None else np.round(np.asarray(t, dtype=float)).astype(np.int64)


def weekend(pos: np.ndarray, day: int) -> np.ndarray:
    """Whether each position falls on a Saturday or Sunday, for positions in steps counted from Monday
    1970-01-05 00:00 UTC (``CALENDAR_EPOCH``) with ``day`` steps a day."""
    return (np.asarray(pos) // day) % 7 >= 5


def _profile(detrended: np.ndarray, phase: np.ndarray, period: int) -> np.ndarray:
    """Each phase's median of the detrended values (gaps interpolated), smoothed over neighbouring phases:
    a circular moving average over period / 96 phases each side (15 minutes of a day) keeps a profile
    learnt from a few cycles from fitting the training noise, which would understate the spread and raise
    false alarms later."""
    prof = pd.Series(detrended).groupby(phase).median()
    prof = prof.reindex(range(period)).interpolate(limit_direction="both").fillna(0.0).to_numpy()
    k = period // 96
    if k:
        wrapped = np.r_[prof[-k:], prof, prof[:k]]
        prof = np.convolve(wrapped, np.ones(2 * k + 1) / (2 * k + 1), mode="valid")
    return prof


def _trimmed_scale(resid: np.ndarray) -> float:
    """Robust spread, recomputed without rows beyond 5 spreads (twice): a level shift that sat in the
    training part for a quarter of it inflates even the MAD, and would hide later anomalies."""
    s = robust_scale(resid)
    for _ in range(2):
        kept = resid[np.abs(resid) <= 5 * s]
        if len(kept) < len(resid) // 2 or np.ptp(kept) == 0:
            break
        s = robust_scale(kept)
    return s


class SeasonalResidual(Params):
    """Robust residual detector for one univariate series.

    period        seasonal period in rows (0: no seasonal profile)
    level_window  trailing rolling-median window in rows for the level (0: one level, the training median)
    smooth        rows averaged into each row's evidence (1: none); >1 favours sustained anomalies
    alpha         false-alarm rate per row that sets the threshold on the training evidence (its 1 - alpha
                  quantile, rows beyond 3 * min_z left out when they form few runs)
    min_z         the evidence (robust z) a row needs to be flagged, whatever alpha says
    slow_window   None: off. Else a second, slow level (0: one level, the training median, moved as
                  ``rebase`` says; > 1: a trailing median of that many rows) whose residual is scored
                  alongside: a departure that lasts (an outage's plateau, a failing machine's drift) keeps
                  its evidence after the fast level has taken it as the new normal. The two scores are
                  rescaled to cross their own thresholds together and the larger counts.
    weekpart      with a daily ``period``: one profile for weekdays and one for weekends, positions ``t``
                  counted from Monday 1970-01-05 00:00 UTC (traffic that is lower on Saturdays and
                  Sundays, with less than the two weeks of training a weekly profile needs)
    rebase        for one level (``level_window`` 0, or ``slow_window`` 0 for the slow one): once most of
                  the last ``rebase`` rows are beyond the threshold the level moves to their median (a
                  lasting shift becomes the new normal), and moves back when the series returns; 0: never.
    """

    min_rows = 10

    def __init__(self, period: int = 0, level_window: int = 0, smooth: int = 1, alpha: float = 1e-3,
                 min_z: float = 5.0, slow_window: int | None = None, rebase: int = 0, weekpart: bool = False):
        self.period = period
        self.level_window = level_window
        self.smooth = smooth
        self.alpha = alpha
        self.min_z = min_z
        self.slow_window = slow_window
        self.rebase = rebase
        self.weekpart = weekpart

    # ------------------------------------------------------------------ sklearn-style contract
    def fit(self, x, y=None, t: np.ndarray | None = None) -> SeasonalResidual:
        """Learn the profile, spread and score tail from the training part ``x`` (``y`` is ignored)."""
        x = np.asarray(x, dtype=float)
        if len(x) < self.min_rows:
            raise NotEnoughRows(f"needs at least {self.min_rows} training rows, got {len(x)}")
        pos = _positions(len(x), t)
        self.gate_z_ = None  # the first pass's level is the plain one
        period = int(self.period or 0)
        if period > 1 and len(x) >= 2 * period:
            # a whole period per trend value: a part-window at either end would carry half a cycle's bias
            trend = pd.Series(x).rolling(period, center=True, min_periods=period).median().bfill().ffill().to_numpy()
            detrended = x - trend
            parts = [np.ones(len(x), dtype=bool)]
            if self.weekpart:  # weekdays and weekends each get their own day (see ``weekend``)
                end = weekend(pos, period)
                parts = [~end, end]
            profiles = [_profile(detrended[m], pos[m] % period, period) for m in parts]
            centre = np.median(profiles[0])
            self.profile_ = np.array(profiles) - centre if self.weekpart else profiles[0] - centre
        else:
            self.profile_ = None
        deseason = x - self._season(pos)
        self.level_ = float(np.median(deseason))
        resid = deseason - self._level(deseason)
        # a trend leaves a trailing level behind by a steady amount: the residuals' median, taken off
        self.center_ = float(np.median(resid))
        resid = resid - self.center_
        self.scale_ = _trimmed_scale(resid)
        if len(resid) and np.nanmax(np.abs(resid)) == 0:
            # the training part held one value throughout (a crash count that stayed 0): any visible change is
            # news, so the spread is a millionth of the level rather than robust_scale's 1.0 in the series' own
            # units, which let a count go from 0 to 3 unflagged
            self.scale_ = DEGENERATE_SCALE * max(1.0, abs(self.level_))
        self._calibrate(self._evidence(resid))
        if int(self.rebase or 0) > 0 and int(self.level_window or 0) <= 1:
            # second pass: the one level moves to a run's own median once the first pass has flagged it
            # for ``rebase`` rows in a row (its threshold is the gate)
            self.gate_z_ = self.threshold_z_
            self._calibrate(self._evidence(deseason - self._level(deseason) - self.center_))
        self.slow_ = None
        if self.slow_window is not None:
            self.slow_ = SeasonalResidual(period=self.period, weekpart=self.weekpart, level_window=self.slow_window,
                                          smooth=self.smooth,
                                          alpha=self.alpha, min_z=self.min_z,
                                          rebase=int(self.rebase or 0) if int(self.slow_window) <= 1 else 0
                                          ).fit(x, t=t)
            self.fast_log_p_ = self.threshold_log_p_
            self.threshold_log_p_ = max(self.fast_log_p_, self.slow_.threshold_log_p_)
        self.threshold_ = float(to_score(self.threshold_log_p_))
        return self

    def _calibrate(self, evidence: np.ndarray) -> None:
        """The score tail and the threshold from the training evidence."""
        self.tail_ = LogTail().fit(evidence)
        # the alpha quantile of the training evidence, leaving out rows already far beyond min_z when they
        # form few runs (incidents): anomalies in the training part must not lift the threshold over
        # themselves and later ones. Many runs are the series' normal (the 1s of a count series that is
        # mostly 0, a sawtooth's drops, a heavy tail's peaks) and stay in, so the threshold rises over them.
        far = evidence > TRIM * self.min_z
        runs = int(np.count_nonzero(far[1:] & ~far[:-1])) + int(far[0])
        kept = evidence[~far] if runs <= max(3.0, RARE * len(evidence)) else evidence
        z_alpha = float(np.quantile(kept, 1.0 - self.alpha)) if len(kept) >= self.min_rows else self.min_z
        self.threshold_z_ = max(z_alpha, self.min_z)
        self.threshold_log_p_ = float(self.tail_.log_p(np.array([self.threshold_z_]))[0])

    def log_p(self, x, t: np.ndarray | None = None) -> np.ndarray:
        """-log10 tail probability per row: the detector's evidence on an unbounded, comparable scale."""
        self._check()
        x = np.asarray(x, dtype=float)
        pos = _positions(len(x), t)
        deseason = x - self._season(pos)
        fast = self.tail_.log_p(self._evidence(deseason - self._level(deseason) - self.center_))
        slow = getattr(self, "slow_", None)
        if slow is None:
            return fast
        # each rescaled so that both cross the combined threshold where they cross their own
        return np.maximum(fast * (self.threshold_log_p_ / self.fast_log_p_),
                          slow.log_p(x, t) * (self.threshold_log_p_ / slow.threshold_log_p_))

    def score(self, x, t: np.ndarray | None = None) -> np.ndarray:
        """Scores in [0, 1), increasing with the evidence and never saturating."""
        return to_score(self.log_p(x, t))

    def predict(self, x, t: np.ndarray | None = None) -> np.ndarray:
        return (self.score(x, t) > self.threshold_).astype(int)

    # ------------------------------------------------------------------ pieces
    def _check(self):
        if not hasattr(self, "tail_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit first")

    def _season(self, pos: np.ndarray) -> np.ndarray:
        if self.profile_ is None:
            return np.zeros(len(pos))
        if self.profile_.ndim == 2:  # weekday and weekend days
            period = self.profile_.shape[1]
            return self.profile_[weekend(pos, period).astype(int), pos % period]
        return self.profile_[pos % len(self.profile_)]

    def _level(self, deseason: np.ndarray) -> np.ndarray:
        w = int(self.level_window or 0)
        if w <= 1:
            if getattr(self, "gate_z_", None) is not None:
                return _rebased_level(deseason, self.level_, int(self.rebase), self.center_,
                                      self.gate_z_ * self.scale_)
            return np.full(len(deseason), self.level_)
        # trailing: the level at row i comes from rows up to i, so a shift is flagged from its first row
        # until it fills half the window (then it is the new normal)
        lvl = trailing_median(deseason, w)
        # the first rows have a short window: one level, their median, until the window has filled a bit
        head = min(len(lvl), max(1, w // 4))
        lvl[:head] = np.median(deseason[:head])
        return lvl

    def _evidence(self, resid: np.ndarray) -> np.ndarray:
        z = np.abs(resid) / self.scale_
        k = int(self.smooth or 1)
        if k > 1:
            z = trailing_mean(z, k)
        return z


SMALL = 50_000  # rows x window up to which the trailing statistics run in numpy (a request's window)


def _trailing_windows(x: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Each row's last ``w`` values as a row of a (len(x), w) view, NaN-padded at the start, and how many of
    them are not NaN; None where the input is too large for that (SMALL) and pandas should do it."""
    n = len(x)
    if n == 0 or n * min(w, n) > SMALL:
        return None
    w = min(w, n)
    views = np.lib.stride_tricks.sliding_window_view(np.r_[np.full(w - 1, np.nan), x], w)
    return views, np.count_nonzero(~np.isnan(views), axis=1)


def trailing_median(x: np.ndarray, w: int) -> np.ndarray:
    """The median of each row's last ``w`` values (fewer at the start; NaN skipped, NaN when none), as
    pandas' ``rolling(w, min_periods=1).median()``. Small inputs (the scoring service's windows) in numpy:
    pandas' set-up costs more than the work there; long series through pandas' rolling algorithm."""
    x = np.asarray(x, dtype=float)
    windows = _trailing_windows(x, w)
    if windows is None:
        return pd.Series(x).rolling(w, min_periods=1).median().to_numpy()
    views, count = windows
    views = np.sort(views, axis=1)  # NaN sorts last: the first ``count`` of a row are its values
    rows = np.arange(len(x))
    lo, hi = np.maximum(count - 1, 0) // 2, np.maximum(count, 1) // 2
    out = (views[rows, lo] + views[rows, np.minimum(hi, views.shape[1] - 1)]) / 2
    out[count == 0] = np.nan
    return out


def trailing_mean(x: np.ndarray, w: int) -> np.ndarray:
    """The mean of each row's last ``w`` values (fewer at the start; NaN skipped, NaN when none), as pandas'
    ``rolling(w, min_periods=1).mean()``; small inputs in numpy, as :func:`trailing_median`."""
    x = np.asarray(x, dtype=float)
    windows = _trailing_windows(x, w)
    if windows is None:
        return pd.Series(x).rolling(w, min_periods=1).mean().to_numpy()
    views, count = windows
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.nansum(views, axis=1) / np.maximum(count, 1), np.nan)


def _rebased_level(d: np.ndarray, level: float, rebase: int, center: float, gate: float) -> np.ndarray:
    """One level that moves only when most (REBASE_SHARE) of the last ``rebase`` rows are beyond
    REBASE_GATE x ``gate`` from it: then to those rows' median. Until then the rows are measured against the old level. After a
    move, RETURN_ROWS rows in a row back within the gate of the level before it move it back: the end of
    a long plateau is a return to normal, not a new shift. Vectorised between moves (the scoring service
    runs this per request)."""
    d = np.asarray(d, dtype=float)
    n = len(d)
    out = np.empty(n)
    need = math.ceil(REBASE_SHARE * rebase - 1e-9)
    i, previous = 0, None
    while i < n:
        seg = d[i:]
        with np.errstate(invalid="ignore"):
            beyond = np.abs(seg - level - center) > gate  # NaN: False
            away = np.abs(seg - level - center) > REBASE_GATE * gate
        hits = []
        count = np.cumsum(away)
        if len(seg) >= rebase:
            window = count[rebase - 1:] - np.r_[0, count[:-rebase]]
            at = np.flatnonzero(window >= need)
            if len(at):
                hits.append((int(at[0]) + rebase - 1, "rebase"))
        if previous is not None:
            with np.errstate(invalid="ignore"):
                back = beyond & (np.abs(seg - previous - center) <= gate)
            runs = np.convolve(back.astype(int), np.ones(RETURN_ROWS, dtype=int))[:len(seg)]
            at = np.flatnonzero(runs >= RETURN_ROWS)
            if len(at):
                hits.append((int(at[0]), "return"))
        if not hits:
            out[i:] = level
            break
        j, kind = min(hits, key=lambda h: (h[0], h[1] != "return"))
        out[i:i + j + 1] = level
        if kind == "return":
            level, previous = previous, None
        else:
            recent = seg[j - rebase + 1:j + 1]
            previous, level = level, float(np.median(recent[np.isfinite(recent)])) - center
        i += j + 1
    return out
