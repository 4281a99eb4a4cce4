"""The columns a detector reads, straight from one scoring window's samples, in numpy.

    path = WindowInputs(columns, inputs, window)              # once per loaded model
    services, minutes_ns, values = path.compute(samples)    # per window: one row per (service, minute)

``compute_features`` followed by the zoo's transforms (``pandas_path``) gives the same columns; this path
skips the pandas frames, which cost most of a window's time (a 60-minute window in a few milliseconds, detector
included, instead of ~25 ms). Same rules as ``features.transforms``: samples ceiled to the minute, the latest of
a (service, minute, metric) wins, windows run over clock minutes within one service (missing minutes skipped,
never filled), the baseline is the median of the hourly means of the 24 completed clock hours before. Then the
zoo's transforms, by the definitions in ``columns``: levels against their baseline, CPU and memory blank for one
window after a deploy, the deploy clock capped, the time of day. ``tests/features/test_detector_inputs.py`` holds the
two paths equal on every column; the scoring service's warm-up compares their scores on each model's example.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from features.detector_inputs.columns import (
    DEPLOY_HORIZON_MINUTES,
    LEVEL_STATS,
    RESTARTED_BY_DEPLOYS,
    Column,
    parse,
    settle_minutes,
    time_of_day,
)
from features.transforms import (
    BASELINE_HOURS,
    DEPLOY_CAP_MINUTES,
    DEPLOY_KINDS,
    ROC_LAG,
    ROLLING,
    rate_of_change,
    roc_floors,
)

NS_PER_MINUTE = 60_000_000_000


@dataclass
class WindowSamples:
    """One window's samples as arrays (the scoring service decodes a request into this)."""

    names: Sequence[str]  # the window's services, in any order
    service: np.ndarray  # per sample: its service's position in ``names``
    metric: np.ndarray  # per sample: its metric's position in ``WindowInputs.levels``, -1 for one not read
    ns: np.ndarray  # per sample: epoch nanoseconds
    value: np.ndarray  # per sample: the value, NaN for a missing one
    baselines: Mapping[str, Mapping[str, float]]  # service -> metric -> a level sent with the window
    events: Iterable[tuple[str, str, int]]  # (service, kind, epoch nanoseconds) per event


class WindowInputs:
    """The detector's ``columns`` (what it reads) from a window's samples; ``inputs`` are the feature columns
    it was trained from (the store's, baselines included): they say which metrics have a baseline and whether
    the deploy clock is known."""

    def __init__(self, columns: Sequence[str], inputs: Sequence[str], window: int):
        if not self.supports(columns, window):
            raise ValueError(f"the numpy path cannot compute {[c for c in columns if parse(c, window) is None]} "
                             "or reads no metric")
        self.columns = list(columns)
        self.window = window
        self.specs: list[Column] = [parse(c, window) for c in self.columns]
        self.levels = sorted({s.metric for s in self.specs if s.metric})  # the metrics the grid holds
        self._col_of = {m: j for j, m in enumerate(self.levels)}
        self.stats = {s.stat for s in self.specs if s.kind == "stat"}
        kinds = {s.kind for s in self.specs}
        self.with_week, self.with_roc = "wow" in kinds, "roc" in kinds
        self.roc_floors = roc_floors(self.levels)
        has_base = {c.split("__")[0] for c in inputs if "__base_" in c}
        self.relative = np.array([m in has_base for m in self.levels])
        self.settle = settle_minutes(inputs) if "minutes_since_deploy" in inputs else 0

    @staticmethod
    def supports(columns: Sequence[str], window: int) -> bool:
        """Whether this path computes every one of ``columns`` (and at least one metric's)."""
        specs = [parse(c, window) for c in columns]
        return all(specs) and any(s.kind != "extra" for s in specs)

    def compute(self, samples: WindowSamples) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(service per row, minute per row in epoch ns, ``columns`` per row): one row per (service, minute) with
        a sample of any metric, ordered by service, then minute."""
        ns, val = samples.ns, samples.value
        minute = -((-ns) // NS_PER_MINUTE)  # ceil: a sample is never moved to an earlier minute
        # Services in sorted order, as np.unique would give them (rows are ordered by service, then minute).
        code_of = {name: k for k, name in enumerate(samples.names)}
        services = np.array(sorted(code_of), dtype=object)
        rank = np.empty(len(code_of), dtype=np.int64)
        rank[[code_of[k] for k in services]] = np.arange(len(services))
        s_code, m_code = rank[samples.service], samples.metric
        # Rows: (service, minute) with a sample of any metric; the latest sample of a cell wins.
        first = minute.min() if len(minute) else 0
        span = int(minute.max() - first + 1) if len(minute) else 1
        keys, row = np.unique(s_code * span + (minute - first), return_inverse=True)
        row = row.ravel()
        grid = np.full((len(keys), len(self.levels)), np.nan)
        known = m_code >= 0
        order = np.lexsort((ns[known], row[known] * len(self.levels) + m_code[known]))
        r, c = row[known][order], m_code[known][order]
        grid[r, c] = val[known][order]  # later assignments win: the latest sample
        keys = np.stack([keys // span, keys % span + first])
        row_svc, row_min = keys[0], keys[1]
        base, week_ago = self._hourly(grid, row_svc, row_min)
        col_of = self._col_of
        for service, levels in samples.baselines.items():
            where = np.flatnonzero(services[row_svc] == service)
            for metric, level in levels.items():
                if metric in col_of and len(where):
                    cells = base[where, col_of[metric]]
                    base[where, col_of[metric]] = np.where(np.isnan(cells), float(level), cells)
        stats = self._rolling(grid, row_svc, row_min) if self.stats or self.with_roc else {}
        msd = self._minutes_since_deploy(samples.events, services[row_svc], row_min)
        fresh = msd < self.settle if self.settle else None
        tod_sin, tod_cos = time_of_day(row_min % 1440)
        extras = {"minutes_since_deploy": np.minimum(msd, DEPLOY_HORIZON_MINUTES), "tod_sin": tod_sin,
                  "tod_cos": tod_cos, "hour": ((row_min // 60) % 24).astype(float),
                  "weekday": ((row_min // 1440 + 3) % 7).astype(float)}  # 1970-01-01 was a Thursday (3)
        out = np.empty((len(row_min), len(self.specs)))
        for k, (kind, metric, stat) in enumerate(self.specs):
            if kind == "extra":
                out[:, k] = extras[stat]
                continue
            j = col_of[metric]
            if kind == "level":
                v = grid[:, j]
            elif kind == "wow":
                v = grid[:, j] - week_ago[:, j]
            else:  # a rolling statistic, or the rate of change
                v = stats[stat if kind == "stat" else "roc"][:, j]
            if self.relative[j] and (kind == "level" or (kind == "stat" and stat in LEVEL_STATS)):
                v = v - base[:, j]
            if fresh is not None and metric in RESTARTED_BY_DEPLOYS and kind != "wow":
                v = np.where(fresh, np.nan, v)
            out[:, k] = v
        return services[row_svc], row_min * NS_PER_MINUTE, out

    def _hourly(self, grid: np.ndarray, row_svc: np.ndarray, row_min: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the 24-hour baseline (median of the hourly means of the completed hours before) and, when
        a column reads it, the mean of the same clock hour a week earlier."""
        hour = row_min // 60
        base = np.full_like(grid, np.nan)
        week = np.full_like(grid, np.nan)
        for s in np.unique(row_svc):
            rows = np.flatnonzero(row_svc == s)
            hours = np.unique(hour[rows])
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN hours: NaN is the answer
                means = np.vstack([np.nanmean(grid[rows[hour[rows] == h]], axis=0) for h in hours])
                for h in hours:
                    at = rows[hour[rows] == h]
                    prior = (hours >= h - BASELINE_HOURS) & (hours < h)
                    if prior.any():
                        base[at] = np.nanmedian(means[prior], axis=0)
                    if self.with_week:
                        ago = np.flatnonzero(hours == h - 168)
                        if len(ago):
                            week[at] = means[ago[0]]
        return base, week

    def _rolling(self, grid: np.ndarray, row_svc: np.ndarray, row_min: np.ndarray) -> dict[str, np.ndarray]:
        """The rolling statistics the columns read (and the rate of change), per row, over each service's
        clock-minute grid: the window is ``self.window`` minutes, missing minutes count as gaps. Every service
        is computed in one pass: their grids lie one after another on one dense grid, each after ``lead`` empty
        minutes, so no window or lag reaches into the service before (a batch of windows costs one window's
        numpy calls, not one per service)."""
        w = self.window
        out = {stat: np.full_like(grid, np.nan) for stat in self.stats | ({"roc"} if self.with_roc else set())}
        if not len(row_min):
            return out
        lead = max(w - 1, ROC_LAG)
        starts = np.flatnonzero(np.r_[True, row_svc[1:] != row_svc[:-1]])  # rows are ordered by service, minute
        ends = np.r_[starts[1:], len(row_min)]
        first = row_min[starts]
        spans = row_min[ends - 1] - first + 1
        offset = lead + np.r_[0, np.cumsum(spans + lead)[:-1]]
        block = np.repeat(np.arange(len(starts)), ends - starts)
        at = (offset[block] + row_min - first[block]).astype(np.int64)
        dense = np.full((int(offset[-1] + spans[-1]), grid.shape[1]), np.nan)
        dense[at] = grid
        win = np.lib.stride_tricks.sliding_window_view(dense, w, axis=0)[at - (w - 1)]  # rows x metrics x w
        n = (~np.isnan(win)).sum(axis=2)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # empty windows: NaN is the answer
            for stat in self.stats:
                out[stat] = ROLLING[stat].on_windows(win, n)
            if self.with_roc:
                out["roc"] = rate_of_change(dense, self.roc_floors)[at]
        return out

    @staticmethod
    def _minutes_since_deploy(events: Iterable[tuple[str, str, int]], services: np.ndarray,
                              minutes: np.ndarray) -> np.ndarray:
        out = np.full(len(minutes), DEPLOY_CAP_MINUTES)
        for service, kind, at in events:
            if kind not in DEPLOY_KINDS:
                continue
            rows = (services == service) & (minutes * NS_PER_MINUTE >= at)
            since = (minutes[rows] * NS_PER_MINUTE - at) / 60e9
            out[rows] = np.minimum(out[rows], since)
        return np.minimum(out, DEPLOY_CAP_MINUTES)
