"""``auto``: each series gets the forecaster, or the median of the best few, that did best on its own past,
with conformal intervals from that past.

1. **Cut.** Only the last ``max_points`` points are used (at least three cycles of the longest candidate
   season plus the backtest): a fit stays fast on long minute-level histories.
2. **Seasons** are found in the data (a day and a week at sub-daily steps, a week and a year on days, the
   calendar year on weekly, monthly and quarterly steps; :mod:`training.forecasting.seasons`).
3. **Rolling-origin backtest.** At ``n_origins`` origins ``horizon`` steps apart (more origins for short
   horizons, so there are enough errors to calibrate on), every candidate forecasts ``horizon`` steps from
   the history before the origin: last value, seasonal naive (the shortest season found, else a day),
   the seasonal median (each phase's median over the last ``profile_cycles`` seasons, at least three: the
   same time of day over the past week on sub-daily data), the week-part median (on a sub-daily grid aligned
   to the day: each time of day's median over the last five weekdays for a weekday, over the last two to four
   Saturdays and Sundays for a weekend day), and AutoETS, AutoTheta and AutoARIMA
   on the MSTL-adjusted series (:mod:`training.forecasting.statsforecast_models`; one decomposition per
   origin serves all three). AutoARIMA searches its order at the first origin only; the later origins
   refit that order (a search is some twenty fits), and the final forecast searches the whole history.
   Where the forecast falls on a Saturday or a Sunday the backtest lacks (or on weekdays it lacks), origins
   are added until it holds them: a backtest of weekdays alone cannot tell a weekday's profile from the
   week-part median.
   A horizon as long as the history (capacity planning: a week ahead of a week) is backtested a third of
   what the history allows ahead, when that is at least a quarter of the horizon; the intervals widen beyond
   it with the square root of the step.
4. **Combination.** The median of the ``top_k`` candidates with the lowest backtest MAE is scored on the
   same origins (no refit: the median of their stored forecasts). The median rather than the mean: one
   member that misses badly does not drag it. The lowest MAE wins; ties go to the simpler.
5. **Conformal intervals** (split-conformal with a per-step scale): the winner's backtest errors
   ``e[o, j]`` give a scale per step ``s_j`` (the median absolute error over the origins and the steps
   around ``j``, enough steps for ``SCALE_ERRORS`` errors, made non-decreasing in ``j``: an incident's hour
   in the backtest does not set every later step's width); the interval at level ``L`` is
   ``yhat_j +- q_L * s_j`` where ``q_L`` is the
   ``k``-th smallest of the ``n`` scores ``|e[o, j]| / s_j``, ``k = ceil((n + 1) L)``. No distributional
   assumption: the intervals are as wide as this series' own forecasts missed.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from training.forecasting.base import Bands, Forecaster
from training.forecasting.prepare import season_for
from training.forecasting.seasons import candidate_periods
from training.forecasting.statsforecast_models import adjusted_forecast, seasons_of

MODELS = ("ets", "theta", "arima")
SIMPLE = ("naive", "seasonal_naive", "seasonal_median", "weekpart_median")  # preferred on ties, in this order
MIN_PROFILE_CYCLES = 3  # a median of two seasons is their mean: no robustness gained over seasonal naive
# The week-part median: each time of day's median over the last WEEKDAYS weekdays for a weekday, over the last
# WEEKEND_DAYS Saturdays and Sundays for a weekend day; it needs at least MIN_WEEKEND_DAYS of them (two weeks
# of history hold four).
WEEKDAYS, WEEKEND_DAYS, MIN_WEEKEND_DAYS = 5, 4, 2
CALENDAR_EPOCH = pd.Timestamp("1970-01-05", tz="UTC")  # a Monday: day k of the calendar is a weekend when k % 7 >= 5
MIN_SCORES = 120  # backtest errors wanted for calibration: origins x horizon
SCALE_ERRORS = 30  # backtest errors behind each step's interval scale (a median over neighbouring steps)


class AutoForecaster(Forecaster):
    name = "auto"
    min_points = 20

    def __init__(self, horizon: int = 24, level: float = 95, season: int | None = None, top_k: int = 3,
                 n_origins: int | None = None, max_origins: int = 12, max_points: int = 20000,
                 trend_points: int = 500, profile_cycles: int = 7):
        self.horizon = horizon
        self.level = level
        self.season = season
        self.top_k = top_k
        self.n_origins = n_origins
        self.max_origins = max_origins
        self.max_points = max_points
        self.trend_points = trend_points
        self.profile_cycles = profile_cycles

    def _season(self, n, step, notes):  # seasons are found in _fit
        return 1

    def _fit(self, y: pd.Series) -> None:
        H = int(self.horizon)
        longest = max(candidate_periods(self.step_), default=1)
        keep = min(int(self.max_points), 3 * longest + self.max_origins * H)
        if len(y) > keep:
            self.notes_.append(f"auto used the last {keep} of {len(y)} points")
            y = y.iloc[-keep:]
        v = y.to_numpy()
        self.first_pos_ = _calendar_position(y.index[0], self.step_)  # None: no week-part median
        self.day_steps_ = pd.Timedelta(days=1) // self.step_ if self.first_pos_ is not None else 0
        self.periods_ = seasons_of(y, self.step_, self.season)
        if self.season is not None:
            day = max(1, int(self.season))
        else:  # the shortest season found (12 on monthly data), else the step's conventional day
            day = min(self.periods_) if self.periods_ else season_for(self.step_)
        min_train = 20
        if self.n_origins is None and len(v) - min_train < H <= len(v) and (len(v) - min_train) // 3 >= H / 4:
            # a horizon as long as the history (capacity planning asks a week ahead of a week): the choice and
            # the intervals come from a backtest at least a quarter as long, and widen with the square root of
            # the step beyond it; shorter than that, the last value (below)
            H = (len(v) - min_train) // 3
            self.notes_.append(f"auto backtested {H} steps ahead (the history is too short for "
                               f"{int(self.horizon)}); its intervals widen beyond that with the square root of the step")
        wanted = self.n_origins or min(self.max_origins, max(3, math.ceil(MIN_SCORES / H)))
        n_origins = max(0, min(wanted, (len(v) - min_train) // H))
        if self.n_origins is None and self.first_pos_ is not None:
            n_origins = _reach_week_parts(self.first_pos_, len(v), H, n_origins,
                                          min(self.max_origins, (len(v) - min_train) // H), self.day_steps_)
        cuts = [len(v) - H * (n_origins - i) for i in range(n_origins)]
        errors: dict[str, list[np.ndarray]] = {}
        forecasts: dict[str, list[np.ndarray]] = {}
        arima: dict = {}  # the order the first origin's search chose, refitted at the later origins
        for cut in cuts:
            train, actual = v[:cut], v[cut:cut + H]
            for name, mean in self._candidates(train, H, day, arima=arima).items():
                forecasts.setdefault(name, []).append(mean)
                errors.setdefault(name, []).append(actual - mean)
        self.y_, self.day_ = v, day
        # a candidate that needs more history than the first origins had (seasonal naive: two seasons) is
        # compared only where it ran at every origin
        errors = {k: e for k, e in errors.items() if len(e) == len(cuts)}
        forecasts = {k: f for k, f in forecasts.items() if k in errors}
        if not errors:
            self.notes_.append("too short to backtest: last value, with intervals from one-step changes")
            self.chosen_, self.members_, self.scores_ = "naive", ["naive"], {}
            steps = np.diff(v)
            self.errors_ = np.array([steps - steps.mean()]) if len(steps) else np.zeros((1, 1))
            return
        mae = {k: float(np.mean(np.abs(e))) for k, e in errors.items()}
        ranked = sorted(mae, key=lambda k: (mae[k], _simplicity(k)))
        members = ranked[: self.top_k]
        if len(members) > 1:
            combo = [np.median([forecasts[m][o] for m in members], axis=0) for o in range(len(cuts))]
            actuals = [forecasts[members[0]][o] + errors[members[0]][o] for o in range(len(cuts))]
            errors["median"] = [a - c for a, c in zip(actuals, combo)]
            mae["median"] = float(np.mean(np.abs(errors["median"])))
        self.scores_ = {k: round(v_, 6) for k, v_ in sorted(mae.items(), key=lambda kv: kv[1])}
        best = min(mae, key=lambda k: (mae[k], _simplicity(k)))
        self.chosen_ = best
        self.members_ = members if best == "median" else [best]
        self.errors_ = np.vstack(errors[best])  # origins x H

    def _candidates(self, train: np.ndarray, H: int, day: int, methods=None,
                    arima: dict | None = None) -> dict[str, np.ndarray]:
        methods = list(methods) if methods is not None else [*SIMPLE, *MODELS]
        out = {}
        if "naive" in methods:
            out["naive"] = np.full(H, train[-1])
        if "seasonal_naive" in methods and day > 1 and len(train) >= 2 * day:
            out["seasonal_naive"] = train[len(train) - day + (np.arange(H) % day)]
        cycles = min(int(self.profile_cycles), len(train) // day) if day > 1 else 0
        if "seasonal_median" in methods and cycles >= MIN_PROFILE_CYCLES:
            # one season's noise is repeated by seasonal naive; the median over several is not, and an
            # incident or a weekend day among them does not move it
            profile = np.median(train[len(train) - cycles * day:].reshape(cycles, day), axis=0)
            out["seasonal_median"] = profile[np.arange(H) % day]
        first = getattr(self, "first_pos_", None)  # absent from a model pickled before the week-part median
        if "weekpart_median" in methods and first is not None:
            # weekends unlike weekdays: the seasonal median is a weekday's shape, and a weekend's errors (wide on
            # every backtest that crosses one) would also widen the intervals of a weekday's forecast
            fc = weekpart_median(train, first, H, self.day_steps_)
            if fc is not None:
                out["weekpart_median"] = fc
        models = [m for m in methods if m in MODELS]
        if models:
            _, fcs = adjusted_forecast(train, self.periods_, models, H, int(self.trend_points), arima=arima)
            out.update({m: mean for m, (mean, _) in fcs.items()})
        return out

    def _predict(self, horizon: int, levels: list[float]) -> tuple[np.ndarray, Bands]:
        fcs = self._candidates(self.y_, horizon, self.day_, self.members_)
        mean = np.median([fcs[m] for m in self.members_], axis=0)
        return mean, conformal_bands(mean, self.errors_, levels)

    @property
    def description(self) -> str:
        """What was chosen, in words: 'ets' or 'median of ets, theta, arima'."""
        if self.chosen_ == "median":
            return "median of " + ", ".join(self.members_)
        return self.chosen_


def _calendar_position(start: pd.Timestamp, step: pd.Timedelta) -> int | None:
    """The first point's position in steps from CALENDAR_EPOCH, when a day is a whole number (at least 4) of
    sub-daily steps and the grid is aligned to the day; else None (no week-part median)."""
    day = pd.Timedelta(days=1)
    if not isinstance(start, pd.Timestamp) or step >= day or day % step != pd.Timedelta(0) or day / step < 4:
        return None
    start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
    offset = start - CALENDAR_EPOCH
    if offset % step != pd.Timedelta(0):
        return None
    return int(offset // step)


def _weekend(pos: np.ndarray, day: int) -> np.ndarray:
    return (pos // day) % 7 >= 5


def _whole_days(first: int, n: int, day: int) -> tuple[int, int, np.ndarray]:
    """(index of the first midnight, number of whole days from it, whether each is a weekend day) for ``n``
    points from calendar position ``first``."""
    start = -(-first // day) * day - first
    days = max(0, (n - start) // day)
    return start, days, _weekend(first + start + day * np.arange(days), day)


def _enough_days(weekend: np.ndarray) -> bool:
    """Whether whole days flagged ``weekend`` hold the weekdays and weekend days the week-part median needs."""
    return int(weekend.sum()) >= MIN_WEEKEND_DAYS and int((~weekend).sum()) >= MIN_PROFILE_CYCLES


def _week_parts_known(first: int, n: int, day: int) -> bool:
    """Whether ``n`` points from calendar position ``first`` hold enough whole days for the week-part median."""
    return _enough_days(_whole_days(first, n, day)[2])


def _reach_week_parts(first: int, n: int, horizon: int, n_origins: int, most: int, day: int) -> int:
    """More backtest origins (up to ``most``) when the backtest lacks a Saturday or a Sunday the forecast covers,
    or any weekday when the forecast covers one: a backtest of weekdays cannot tell the week-part median from a
    weekday's profile (a Saturday's forecast would take the weekday's), and one that holds Sunday but not
    Saturday favours yesterday's values, which miss the change of week part. Origins are added only while the
    first still has the history the week-part median needs (a candidate that cannot run at every origin is
    left out of the comparison), and only if they reach what is lacking."""
    def days(pos: np.ndarray) -> set[int]:
        dow = (pos // day) % 7
        return {int(d) if d >= 5 else -1 for d in np.unique(dow)}  # each weekend day, and "a weekday"

    wanted = days(first + n + np.arange(horizon))

    def covered(k: int) -> bool:
        return wanted <= days(first + n - k * horizon + np.arange(k * horizon))

    k = n_origins
    while not covered(k) and k < most and _week_parts_known(first, n - (k + 1) * horizon, day):
        k += 1
    return k if covered(k) else n_origins


def weekpart_median(train: np.ndarray, first: int, horizon: int, day: int) -> np.ndarray | None:
    """Each future step's time-of-day median over the last WEEKDAYS whole weekdays of ``train`` (for a weekday)
    or its last WEEKEND_DAYS whole weekend days (for a Saturday or Sunday). ``first``: the calendar position of
    ``train[0]`` in steps of which ``day`` make a day. None when the history holds fewer than
    MIN_PROFILE_CYCLES weekdays or MIN_WEEKEND_DAYS weekend days."""
    start, days, weekend = _whole_days(first, len(train), day)
    if not _enough_days(weekend):
        return None
    whole = train[start:start + days * day].reshape(days, day)
    profiles = np.median(whole[~weekend][-WEEKDAYS:], axis=0), np.median(whole[weekend][-WEEKEND_DAYS:], axis=0)
    pos = first + len(train) + np.arange(horizon)
    return np.where(_weekend(pos, day), profiles[1][pos % day], profiles[0][pos % day])


def _simplicity(name: str) -> int:
    return SIMPLE.index(name) if name in SIMPLE else len(SIMPLE)


def conformal_bands(mean: np.ndarray, errors: np.ndarray, levels: list[float]) -> Bands:
    """Intervals around ``mean`` from backtest errors (origins x steps), see the module docstring; steps
    past the backtested horizon keep growing with the square root of the step."""
    errors = np.atleast_2d(np.asarray(errors, dtype=float))
    (origins, H), h = errors.shape, len(mean)
    size = np.abs(errors)
    # each step's scale: the median size over the steps around it, enough of them for SCALE_ERRORS errors (one
    # backtest week of hourly errors with an incident in it would otherwise widen every later step's interval)
    half = min(H, math.ceil(SCALE_ERRORS / origins)) // 2
    scale = np.maximum.accumulate([np.median(size[:, max(0, j - half): j + half + 1]) for j in range(H)])
    floor = max(float(np.mean(size)), 1e-12) * 1e-3
    scale = np.maximum(scale, floor)
    scores = np.sort((size / scale).ravel())
    j = np.arange(h)
    step_scale = np.where(j < H, scale[np.minimum(j, H - 1)], scale[-1] * np.sqrt((j + 1) / H))
    n = len(scores)
    bands: Bands = {}
    for lv in levels:
        # split conformal: the k-th smallest of n scores, k = ceil((n + 1) L) (the largest when k > n)
        k = min(n, math.ceil((n + 1) * lv / 100 - 1e-9))
        q = float(scores[k - 1])
        bands[lv] = (mean - q * step_scale, mean + q * step_scale)
    return bands
