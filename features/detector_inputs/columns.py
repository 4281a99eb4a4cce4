"""Which columns a detector can read, and what each one is: the one definition the pandas and numpy paths follow.

A detector reads the feature store's columns (``features.transforms``) after the zoo's transforms
(``features.detector_inputs.pandas_path``):

    <m>                            the metric's level, against its 24-hour baseline where the inputs carry one
    <m>__<stat>_<w>m               a rolling statistic (``features.transforms.ROLLING``) over the feature window;
                                   the level statistics (LEVEL_STATS) against the baseline too
    <m>__roc_5m, <m>__wow          rate of change, week over week
    hour, weekday                  of the row's minute, UTC
    minutes_since_deploy           capped at DEPLOY_HORIZON_MINUTES
    tod_sin, tod_cos               the time of day as a point on a circle (TIME_OF_DAY)

The baselines (``<m>__base_24h``) are inputs the detector never reads itself. The columns of CPU and memory
(RESTARTED_BY_DEPLOYS) are blank for one feature window after a deploy.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from features.transforms import BASELINE_HOURS, CONTEXT_COLUMNS, ROC_LAG, ROLLING_STATS, feature_names

TIME_OF_DAY = ["tod_sin", "tod_cos"]

# Columns that describe when a row is, not how the service behaves: the detectors do not read them as
# symptoms. Minutes since the last deploy is the sharp one: a service that deployed rarely in training has
# almost no spread in it, so any later deploy reads as hundreds of deviations for four hours, whatever the
# service does (the settling after deploys is how deploys are allowed for).
CONTEXT = tuple(CONTEXT_COLUMNS)

# Columns that belong to no metric.
EXTRAS = frozenset(CONTEXT) | frozenset(TIME_OF_DAY)

# The rolling statistics that are levels: measured against the baseline, as the metric's value is.
LEVEL_STATS = ("mean", "min", "max", "p95")

# A deploy's effects are short-lived: the deploy clock is capped here (four hours).
DEPLOY_HORIZON_MINUTES = 240

# What any deploy moves (a restart): blanked for one feature window after it.
RESTARTED_BY_DEPLOYS = ("cpu_pct", "memory_pct")

BASE_SUFFIX = f"__base_{BASELINE_HOURS}h"


class Column(NamedTuple):
    """What one column a detector reads is: ``kind`` is ``level``, ``stat`` (a rolling statistic), ``roc``,
    ``wow`` or ``extra``; ``stat`` names the statistic of a ``stat`` and the column itself for an ``extra``."""

    kind: str
    metric: str | None
    stat: str | None


def parse(column: str, window: int) -> Column | None:
    """What ``column`` is, or None for one no detector reads (a baseline, another window's statistic)."""
    if column in EXTRAS:
        return Column("extra", None, column)
    if "__" not in column:
        return Column("level", column, None)
    metric, rest = column.split("__", 1)
    if rest == "wow":
        return Column("wow", metric, None)
    if rest == f"roc_{ROC_LAG}m":
        return Column("roc", metric, None)
    stat = rest.removesuffix(f"_{window}m")
    return Column("stat", metric, stat) if stat != rest and stat in ROLLING_STATS else None


def detector_columns(metrics: Iterable[str], window: int = 15) -> list[str]:
    """Every column a detector can read for these metrics: the store's features, less the baselines, and the
    time of day."""
    return [c for c in feature_names(metrics, window) if not c.endswith(BASE_SUFFIX)] + TIME_OF_DAY


def inputs_of(bundle: dict) -> list[str]:
    """The feature columns a detector's request carries (the store's, baselines included); the bundle's
    ``columns`` are what the detector sees after the zoo's transforms."""
    return list(bundle.get("inputs") or [c for c in bundle["columns"] if c not in TIME_OF_DAY])


def window_of(columns: Iterable[str], default: int = 15) -> int:
    """The feature window, in minutes, of these columns (from their ``__mean_<w>m`` columns)."""
    for c in columns:
        m = re.search(r"__mean_(\d+)m$", c)
        if m:
            return int(m.group(1))
    return default


def metrics_read(inputs: Iterable[str]) -> list[str]:
    """The metrics whose samples these inputs come from."""
    inputs = list(inputs)
    return sorted({c.split("__")[0] for c in inputs if "__mean_" in c}
                  | {c for c in inputs if "__" not in c and c not in CONTEXT})


def windows_of(columns: Iterable[str], metric: str) -> set[str]:
    """The rolling-window suffixes present for ``metric`` (``15m`` by default)."""
    return {c.rsplit("_", 1)[1] for c in columns if c.startswith(f"{metric}__mean_")}


def settle_minutes(columns: Iterable[str]) -> int:
    """How long CPU and memory stay blank after a deploy: the widest window of their statistics (the rolling
    statistics hold the restart that long); 0 when there are none."""
    columns = list(columns)
    return max([int(w.rstrip("m")) for m in RESTARTED_BY_DEPLOYS for w in windows_of(columns, m)] or [0])


def time_of_day(minute_of_day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``tod_sin`` and ``tod_cos``: the minute of the day as a point on a circle (23:59 sits next to 00:00)."""
    angle = 2 * np.pi * minute_of_day / 1440
    return np.sin(angle), np.cos(angle)
