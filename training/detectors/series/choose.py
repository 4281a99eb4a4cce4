"""The label-free model choice for a user's series: :class:`AutoSeries`.

Which detector fits a series depends on the series (a daily cycle or none, steady or trending, noisy or
smooth), and a user's export has no labels to say. So the candidates are tried on the series' own
training part with synthetic anomalies planted in it (training/detectors/series/inject.py): each
candidate is fitted on the planted copy (so anomalies in training are part of the test, as in real
exports) and the simplest one whose evidence ranks the planted rows (average precision) within ``TIE`` of
the best is kept, then fitted on the real training part. The threshold is the chosen detector's own: the ``alpha`` tail of its
training evidence, and no lower than ``min_z`` robust units.
"""
from __future__ import annotations

import numpy as np

from training.detectors.series.base import DAY, NotEnoughRows, Params, rows_for, to_score
from training.detectors.series.inject import KINDS, inject
from training.detectors.series.models import SeasonalResidual

WEEK = 7 * DAY
TIE = 0.02  # average-precision margin within which the simpler candidate is kept
STEADY_R = 0.5  # a trailing level that moves less than this share of the noise: the series holds one level
PLATEAU = 6 * 3600.0  # how long the planted plateaus last that decide on a slow level
# How large: 3-6 units of the series' noise or of half its robust spread, the larger. An outage takes a metric
# out of its usual range; on a series that wanders, a shift the size of its noise stays inside that range
# and shows nothing of what a slow or steady level is for.
PLATEAU_SIZE = (3.0, 6.0)
# Weekday and weekend profiles are tried only where they cut the largest training residuals to this share:
# on synthetic series with no weekly pattern the ratio was 0.89-1.01 (two weekend days fit some noise), on
# the shop example's CPU and request rates (lower weekend peaks) 0.58-0.82
WEEKPART_GAIN = 0.85


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve as sklearn's average_precision_score computes it (ties
    grouped), here so that the choice does not import sklearn."""
    y = np.asarray(labels, dtype=bool)
    if not y.any():
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    s, y = np.asarray(scores, dtype=float)[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each tied group
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall = tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def with_slow_level(params: dict, n_train: int, step: float | None) -> dict | None:
    """The same detector with a slow level beside its own: a trailing day (see
    ``SeasonalResidual.slow_window``), at least four of its own windows; None where its own level already
    spans a day or more. No longer than a day, so that a lasting shift still becomes the new normal within
    a day, as it does with a day-long level alone."""
    day = min(rows_for(DAY, step, fallback=max(10, n_train // 4)), n_train)
    slow = max(day, 4 * int(params["level_window"]))
    return {**params, "slow_window": int(slow)} if slow <= day else None


def with_steady_level(params: dict, n_train: int, step: float | None) -> dict | None:
    """The same detector with a steady level beside its trailing one (``slow_window`` 0): the training
    median, moved only by a day-long shift (``rebase``), so that an outage's plateau keeps its evidence for
    its length on a series whose trailing level would absorb it; None where there is no trailing level."""
    if int(params.get("level_window") or 0) <= 1:
        return None
    day = min(rows_for(DAY, step, fallback=max(10, n_train // 4)), n_train)
    return {**params, "slow_window": 0, "rebase": int(day)}


def plateau_unit(x: np.ndarray) -> float:
    """The unit of the planted plateaus' size (PLATEAU_SIZE)."""
    from training.detectors.series.base import robust_scale

    noise = robust_scale(np.diff(x)) / np.sqrt(2) if len(x) > 2 else 1.0
    return max(noise, 0.5 * robust_scale(x))


def steady_level(x: np.ndarray, t, step: float | None, profiles) -> dict | None:
    """One level for the series (its training median, moved only by a day-long shift) when a day-long
    trailing level barely moves in training: its robust spread under STEADY_R of the residuals'. The
    seasonal profile is the one of ``profiles`` ((period, weekpart) pairs; period 0: none) that leaves the
    smallest residuals. None for series that wander."""
    from training.detectors.series.base import robust_scale
    from training.detectors.series.models import _positions

    day = rows_for(DAY, step, fallback=max(10, len(x) // 4))
    w = min(max(day, 20), len(x) // 2)  # does the level move from day to day?
    fits = [SeasonalResidual(period=p, weekpart=wp, level_window=w).fit(x, t=t) for p, wp in sorted(set(profiles))]
    det = min(fits, key=lambda d: d.scale_)
    level = det._level(x - det._season(_positions(len(x), t)))[w:]
    if len(level) < 10 or robust_scale(level) >= STEADY_R * det.scale_:
        return None
    out = {"period": det.period, "level_window": 0, "rebase": int(day)}
    return {**out, "weekpart": True} if det.weekpart else out


def weekpart_fits(t, n_train: int, step: float | None) -> bool:
    """Whether weekday and weekend profiles can be learnt: positions are calendar positions
    (``calendar_positions``), a day is a whole number of steps, and the training part holds at least two
    weekend days and two weekdays (half a day of rows each) but not the two weeks a weekly profile needs."""
    from training.detectors.series.models import _positions, weekend

    if t is None or not step or abs(DAY / step - round(DAY / step)) > 1e-9:
        return False
    day, week = round(DAY / step), rows_for(WEEK, step, fallback=0)
    if day < 4 or n_train >= 2 * week:
        return False
    pos = _positions(n_train, np.asarray(t)[:n_train])
    days, counts = np.unique(pos // day, return_counts=True)
    full = days[counts >= day // 2]
    ends = weekend(full * day, day)
    return int(ends.sum()) >= 2 and int((~ends).sum()) >= 2


def weekend_differs(x: np.ndarray, t, step: float | None) -> bool:
    """Whether weekends look unlike weekdays in training: with a day-long trailing level, weekday and
    weekend profiles bring the largest residuals (the 99th percentile of their size) under WEEKPART_GAIN
    of what one daily profile leaves. A robust spread would not show it: the difference sits in a few
    hours of two days in seven (a lower weekend peak), the rows that become false alarms."""
    from training.detectors.series.models import _positions

    day = rows_for(DAY, step, fallback=0)
    w = min(max(day, 20), len(x) // 2)
    pos = _positions(len(x), t)

    def tail(det: SeasonalResidual) -> float:
        d = x - det._season(pos)
        return float(np.nanquantile(np.abs(d - det._level(d) - det.center_), 0.99))

    one = tail(SeasonalResidual(period=day, level_window=w).fit(x, t=t))
    two = tail(SeasonalResidual(period=day, level_window=w, weekpart=True).fit(x, t=t))
    return two < WEEKPART_GAIN * one


def candidates(n_train: int, step: float | None, weekpart: bool = False) -> dict[str, dict]:
    """Parameters of the detectors worth trying on a series with ``n_train`` training rows sampled every
    ``step`` seconds (None: unknown). Windows are set in time and converted to rows: the level follows
    the series over an hour (at least 5 rows: random-walk-like series, where only recent values say what
    is normal) or a day (at least 20 rows); seasonal profiles need two whole periods of training. One fixed
    level (the robust z-score) is not offered: on planted anomalies it sometimes ranked best by a hair and
    then missed a level that had moved in training, or a stuck value inside a sawtooth's range."""
    day = rows_for(DAY, step, fallback=max(10, n_train // 4))
    week = rows_for(WEEK, step, fallback=0)
    cap = max(4, n_train // 2)
    levels = {"hour": min(max(rows_for(3600.0, step, fallback=5), 5), cap), "day": min(max(day, 20), cap)}
    out = {}
    periods = {"": 0}
    if step and 4 <= day and n_train >= 2 * day:
        periods["daily"] = day
    if step and week and n_train >= 2 * week:
        periods["weekly"] = week
    for pname, period in periods.items():
        for lname, w in levels.items():
            out[f"{pname or 'rolling'}/{lname}"] = {"period": period, "level_window": w}
    if weekpart and "daily" in periods:
        for lname, w in levels.items():
            out[f"weekpart/{lname}"] = {"period": periods["daily"], "level_window": w, "weekpart": True}
    return out


class AutoSeries(Params):
    """One series, any number of columns: per column, the candidate that finds planted anomalies best.

    alpha, min_z  the threshold (see :class:`SeasonalResidual`)
    n_trials      planted copies per candidate (more: a steadier choice, slower)
    random_state  seed of the planting, so the same series gets the same choice
    """

    min_rows = 20

    def __init__(self, alpha: float = 1e-3, min_z: float = 4.0, n_trials: int = 2, random_state: int = 0,
                 calendar: bool = False):
        self.alpha = alpha
        self.min_z = min_z
        self.n_trials = n_trials
        self.random_state = random_state
        self.calendar = calendar

    def fit(self, X, y=None, t: np.ndarray | None = None, step: float | None = None) -> AutoSeries:
        """Choose and fit a detector per column of ``X`` (rows: training part in time order; ``y`` is
        ignored: the choice never sees labels). ``t``: row positions in steps; ``step``: seconds per row.
        With ``calendar``, ``t`` are calendar positions (``base.calendar_positions``: they tell the day of
        the week), and weekday and weekend profiles are among the candidates."""
        X = np.asarray(X, dtype=float)
        X = X[:, None] if X.ndim == 1 else X
        if len(X) < self.min_rows:
            raise NotEnoughRows(f"needs at least {self.min_rows} training rows, got {len(X)}")
        self.models_, self.choices_, self.trials_ = [], [], []
        for j in range(X.shape[1]):
            name, params, trial = self._choose(X[:, j], t, step)
            det = SeasonalResidual(alpha=self.alpha, min_z=self.min_z, **params).fit(X[:, j], t=t)
            self.models_.append(det)
            self.choices_.append(name)
            self.trials_.append(trial)
        # several columns: each column's evidence is rescaled so that all cross their thresholds together, on
        # the scale of the column with the lowest threshold. (The highest pushed every score toward 1 when one
        # column held one value in training: its threshold is far out on a tail fitted to zeros.)
        self.threshold_log_p_ = min(m.threshold_log_p_ for m in self.models_)
        self.threshold_ = float(to_score(self.threshold_log_p_))
        return self

    def log_p(self, X, t: np.ndarray | None = None) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        X = X[:, None] if X.ndim == 1 else X
        if not hasattr(self, "models_"):
            raise RuntimeError("AutoSeries is not fitted: call fit first")
        cols = [m.log_p(X[:, j], t) * (self.threshold_log_p_ / m.threshold_log_p_)
                for j, m in enumerate(self.models_)]
        return np.max(cols, axis=0)

    def score(self, X, t: np.ndarray | None = None) -> np.ndarray:
        return to_score(self.log_p(X, t))

    def predict(self, X, t: np.ndarray | None = None) -> np.ndarray:
        return (self.score(X, t) > self.threshold_).astype(int)

    def _choose(self, x: np.ndarray, t, step) -> tuple[str, dict, dict]:
        """Two stages, on the series' own training part with anomalies planted in copies of it: first the
        form (profile and level window) that ranks planted spikes and ~2-hour anomalies best; then, with
        six-hour plateaus planted too (sized by ``plateau_unit``), one level instead where the series holds
        one (``steady_level``), or else a second level beside the trailing one where it ranks them clearly
        better: a slow, day-long one (``with_slow_level``) or a steady one (``with_steady_level``)."""
        weekpart = bool(self.calendar) and weekpart_fits(t, len(x), step) and weekend_differs(x, t, step)
        cands = candidates(len(x), step, weekpart=weekpart)
        rng = np.random.default_rng(self.random_state)
        # events of about two hours (at least 3 rows), about one planted row in ten
        length = max(3, min(rows_for(2 * 3600.0, step, fallback=10), len(x) // 20))
        n_events = int(np.clip(len(x) // max(1, 10 * length), 4, 16))
        period = next((p["period"] for p in cands.values() if p["period"]), 0)
        # spikes and longer anomalies planted apart and weighed alike: long ones alone favour long windows,
        # which then miss every spike smaller than the daily swing
        plantings = [inject(x, rng, n_events, period=period, length=length, kinds=kinds)[:2]
                     for kinds in [KINDS[:1], KINDS[1:]] * self.n_trials]
        if len(cands) == 1:
            best = next(iter(cands))
            trial = {}
        else:
            trial = _ranking(cands, plantings, t)
            top = max((v for v in trial.values() if not np.isnan(v)), default=float("nan"))
            # the simplest candidate (candidates() lists them simplest first) within TIE of the best: a daily
            # profile that ranks planted anomalies no better than a rolling level is not worth its variance
            best = next((k for k, v in trial.items() if v >= top - TIE), next(iter(cands)))
        steady = steady_level(x, t, step, [(p["period"], bool(p.get("weekpart"))) for p in cands.values()])
        beside = {f"{best}+{k}": p for k, p in (("slow", with_slow_level(cands[best], len(x), step)),
                                                 ("steady", with_steady_level(cands[best], len(x), step)))
                  if p is not None}
        if not beside and steady is None:
            return best, cands[best], trial
        # plateaus: a few level shifts of about six hours, where an hour-long level has long re-baselined
        long = max(length, min(rows_for(PLATEAU, step, fallback=len(x) // 10), len(x) // 10))
        n_long = int(np.clip(len(x) // (10 * long), 1, 4))
        unit = plateau_unit(x)
        plateaus = [inject(x, rng, n_long, period=period, length=long, kinds=("level_shift",), size=PLATEAU_SIZE,
                           unit=unit)[:2] for _ in range(self.n_trials)]
        pair = {best: cands[best], **beside}
        steady_name = next((k.split("/")[0] for k, p in cands.items()
                            if steady is not None and p["period"] == steady["period"]
                            and bool(p.get("weekpart")) == bool(steady.get("weekpart"))), "rolling") + "/steady"
        if steady is not None:
            pair[steady_name] = steady
        # each kind of planting weighs alike: spikes, ~2-hour anomalies, plateaus
        parts = [_ranking(pair, plantings[0::2], t), _ranking(pair, plantings[1::2], t), _ranking(pair, plateaus, t)]
        second = {k: float(np.nanmean([p[k] for p in parts])) for k in pair}
        trial.update({k: v for k, v in second.items() if k != best})
        # one level, where the series holds one, unless it ranks planted anomalies clearly worse: the
        # plantings do not show what it is for (a plateau's end read as a second anomaly)
        if steady is not None and second[steady_name] >= second[best] - TIE:
            return steady_name, steady, trial
        # a second level beside the trailing one where it ranks them clearly better: the better of the two
        better = [k for k in beside if second[k] >= second[best] + TIE]
        if better:
            best = max(better, key=lambda k: second[k])
        return best, pair[best], trial


def _ranking(cands: dict[str, dict], plantings, t) -> dict[str, float]:
    """Mean average precision of each candidate's evidence over planted copies (label, copy pairs)."""
    result: dict[str, list[float]] = {name: [] for name in cands}
    for planted, labels in plantings:
        for name, params in cands.items():
            try:
                det = SeasonalResidual(**params).fit(planted, t=t)
            except NotEnoughRows:
                continue
            result[name].append(average_precision(labels, det.log_p(planted, t)))
    return {name: float(np.nanmean(v)) if v else float("nan") for name, v in result.items()}
