"""Seasonal periods found in the data, and a fast multi-seasonal decomposition for long periods.

Candidates depend on the step: a day and a week in points of a sub-daily step (24 and 168 on hourly data,
1440 and 10080 on minutes); a week and a year on daily data (7 and 365); and the calendar year on longer
steps, as is conventional: 52 on weekly steps, 12 on monthly, 4 on quarterly (none on yearly). Calendar
steps are recognised by their length (a month is 28 to 31 days, a quarter 89 to 92), so a month-start
grid and a fixed 30-day grid get the same candidate. None is assumed: a candidate is kept when the history holds at least two of its cycles and
the series, once a centred moving average of one cycle is taken off (that removes level and trend but
keeps the cycle), correlates with itself one cycle later by at least ``min_corr``. The check runs on an
aggregated copy (at most :data:`POINTS_PER_DAY` points a day) so it costs the same at any step.

Decomposition: statsmodels' STL with a 1440-point period took 3.4 s on three days of minutes (its trend
smoother spans more than a period), so :func:`decompose` runs MSTL on the series averaged into blocks of
``k`` steps (at most :data:`POINTS_PER_DAY` points a day) and interpolates the seasonal components back
onto the original grid. Minute-to-minute detail inside a block is noise for a forecast an hour ahead.
Its loess smoothers run at every ``ceil(p / 10)``-th point and are interpolated between (R's ``stl()``
default), which is what keeps half-hourly and hourly data with a weekly season fast.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

POINTS_PER_DAY = 96  # the coarsest grid the season is estimated on: quarter-hours
MIN_CORR = 0.3
# Robustness reweightings per STL fit: statsmodels' default for robust fits is 15, and MSTL with a day and a
# week on 976 hourly points took 1.7 s (0.9 s of a 7 s `cerebro forecast` call, once per backtest origin);
# 3 took 0.43 s and still down-weights outliers.
OUTER_ITER = 3


def candidate_periods(step: pd.Timedelta) -> list[int]:
    """The seasonal periods (in steps) worth testing for this step; see the module docstring."""
    day, week = pd.Timedelta(days=1), pd.Timedelta(days=7)
    if step < day and day % step == pd.Timedelta(0):
        return [int(day / step), int(week / step)]
    if step == day:
        return [7, 365]
    if step < week and week % step == pd.Timedelta(0):
        return [int(week / step)]
    days = step / day
    for low, high, period in ((6.5, 7.5, 52), (28, 31, 12), (89, 92, 4)):
        if low <= days <= high:
            return [period]
    return []


def block_size(periods: list[int]) -> int:
    """The smallest block that divides every period and brings the shortest to at most POINTS_PER_DAY."""
    if not periods:
        return 1
    g = math.gcd(*periods)
    for k in range(1, g + 1):
        if g % k == 0 and min(periods) // k <= POINTS_PER_DAY:
            return k
    return g


def aggregate(y: np.ndarray, k: int) -> np.ndarray:
    """Means of consecutive blocks of ``k`` points, aligned on the end (a partial first block is dropped)."""
    n = (len(y) // k) * k
    return y[len(y) - n:].reshape(-1, k).mean(axis=1) if k > 1 else y


def detect_seasons(y: np.ndarray, step: pd.Timedelta, min_corr: float = MIN_CORR) -> list[int]:
    """The candidate periods (in steps) the series shows; [] when none."""
    y = np.asarray(y, dtype=float)
    candidates = candidate_periods(step)
    k = block_size(candidates)
    agg = aggregate(y, k)
    found = []
    for p in candidates:
        pa = p // k
        if pa < 2 or len(agg) < 2 * pa + 1:
            continue
        level = pd.Series(agg).rolling(pa, center=True, min_periods=pa).mean().to_numpy()
        r = agg - level
        a, b = r[pa:], r[:-pa]
        ok = ~(np.isnan(a) | np.isnan(b))
        if ok.sum() < pa or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
            continue
        if float(np.corrcoef(a[ok], b[ok])[0, 1]) >= min_corr:
            found.append(p)
    return found


@dataclass
class Decomposition:
    periods: list[int]  # the periods modelled (steps); [] when the history is too short for any
    seasonal: np.ndarray  # the summed seasonal components on the input grid
    components: list[np.ndarray]  # one per period, on the input grid

    def future(self, horizon: int) -> np.ndarray:
        """Each component's last cycle repeated over the next ``horizon`` steps, summed."""
        out = np.zeros(horizon)
        j = np.arange(horizon)
        for p, c in zip(self.periods, self.components):
            out += c[len(c) - p + (j % p)]
        return out


def decompose(y: np.ndarray, periods: list[int]) -> Decomposition:
    """Robust MSTL seasonal components of ``y`` for ``periods`` (those with two cycles in ``y``)."""
    y = np.asarray(y, dtype=float)
    periods = sorted(p for p in periods if len(y) >= 2 * p)
    if not periods:
        return Decomposition([], np.zeros(len(y)), [])
    from statsmodels.tsa.seasonal import MSTL

    k = block_size(periods)
    agg = aggregate(y, k)
    # statsmodels' MSTL drops (and with none left, fails on) a period of half the length or more
    periods = [p for p in periods if len(agg) > 2 * (p // k)]
    if not periods:
        return Decomposition([], np.zeros(len(y)), [])
    agg_periods = [p // k for p in periods]
    # Loess at every jump-th point, interpolated between (R's stl() does this by default, with jumps of a
    # tenth of each window; statsmodels computes every point): 2.9 s -> 0.6 s for half-hourly data with a
    # weekly season (3,984 points), the components within 0.04 % of their range.
    jump = max(1, math.ceil(min(agg_periods) / 10))
    fit = MSTL(agg, periods=agg_periods if len(agg_periods) > 1 else agg_periods[0],
               stl_kwargs={"robust": True, "seasonal_deg": 0, "outer_iter": OUTER_ITER,
                           "trend_jump": jump, "low_pass_jump": jump}).fit()
    seasonal = np.asarray(fit.seasonal, dtype=float).reshape(len(agg), -1)
    # Block centres on the input grid; values outside the first/last centre hold the nearest block's.
    start = len(y) - len(agg) * k
    centres = start + np.arange(len(agg)) * k + (k - 1) / 2
    grid = np.arange(len(y))
    components = [np.interp(grid, centres, seasonal[:, i]) for i in range(seasonal.shape[1])]
    return Decomposition(periods, np.sum(components, axis=0), components)
