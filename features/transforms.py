"""Feature transforms: pure pandas, shared by the offline (training) and online (serving) paths.

    features = compute_features(telemetry, events, window=15)

``telemetry`` is the canonical long frame (``timestamp`` UTC tz-aware, ``service``, ``metric``, ``value``), one
sample a minute, possibly with gaps. The result has one row per (service, minute) that has at least one sample:

    service, event_timestamp, created,
    <m>                        the current value of metric m (NaN when m has no sample this minute)
    <m>__mean_15m  __std_15m  __min_15m  __max_15m  __p95_15m
                               over the trailing window (t - 14 min .. t], clock time: missing minutes are skipped,
                               never filled; std needs 2 samples, the others 1
    <m>__slope_15m             least-squares slope, value units per minute, over the same window (2 samples)
    <m>__roc_5m                relative change against the sample exactly 5 minutes earlier,
                               (v_t - v_t-5) / |v_t-5|, with the denominator floored at 1e-9 and the result clipped
                               to +-10 (+-1000 %), so a change from 0 is finite; 0 -> 0 is 0; NaN when either
                               sample is missing. For a count (``telemetry.schema.is_count``: connections, queue
                               depth) the denominator is floored at 1 instead: one message joining an empty queue
                               is one message, not +1000 %
    <m>__wow                   week over week: v_t minus the mean of m over the same clock hour exactly one week
                               earlier (e.g. for Tue 14:37, the mean of the previous Tue 14:00-14:59). NaN when that
                               hour has no samples (the first week of a history, or a gap a week ago)
    <m>__base_24h              the level m has kept lately: the median of its hourly means over the 24 clock hours
                               before the current one (completed hours only; NaN until one hour has passed).
                               Detectors measure levels against it, so slow drifts (memory creep, disk growth,
                               organic traffic growth) do not carry a level past anything the training period saw
    hour, weekday              of event_timestamp, UTC (weekday: Monday = 0)
    minutes_since_deploy       minutes since the service's latest ``deploy`` or ``rollback`` event at or before
                               t, capped at 10080 (one week); 10080 when there is none

("15m" follows ``window``; "5m" is fixed.) Every value at time t is computed from samples at or before t only,
so features are causal and a training row never sees its future. Samples that are not on a whole minute are
assigned to the *next* whole minute (ceil), never to an earlier one, for the same reason; several samples of one
metric in one minute keep the latest.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from telemetry.schema import is_count

ENTITY = "service"
TIMESTAMP = "event_timestamp"
CREATED = "created"
ROC_LAG = 5  # minutes
ROC_CLIP = 10.0
ROC_FLOOR = 1e-9
DEPLOY_CAP_MINUTES = 10080.0  # one week
DEPLOY_KINDS = ("deploy", "rollback")
CONTEXT_COLUMNS = ["hour", "weekday", "minutes_since_deploy"]
BASELINE_HOURS = 24


@dataclass(frozen=True)
class RollingStat:
    """One rolling statistic, written twice side by side: ``on_grid`` over the stacked minute grid with pandas
    (``compute_features``), ``on_windows`` over trailing windows in numpy (the scoring service's numpy path,
    ``features.detector_inputs.numpy_path``; its arguments are the windows, oldest sample first on the last
    axis, and the count of samples present in each). A test holds the two equal."""

    on_grid: Callable[[pd.DataFrame, int], pd.DataFrame]
    on_windows: Callable[[np.ndarray, np.ndarray], np.ndarray]


# Every ``<m>__<stat>_<w>m`` column: add a statistic here, both ways, and both paths compute it. std needs
# 2 samples, the others 1; empty windows give NaN (the numpy path silences numpy's warnings about them).
ROLLING: dict[str, RollingStat] = {
    "mean": RollingStat(lambda grid, w: grid.rolling(w, min_periods=1).mean(),
                        lambda win, n: np.nanmean(win, axis=-1)),
    "std": RollingStat(lambda grid, w: grid.rolling(w, min_periods=2).std(),
                       lambda win, n: np.where(n >= 2, np.nanstd(win, axis=-1, ddof=1), np.nan)),
    "min": RollingStat(lambda grid, w: grid.rolling(w, min_periods=1).min(),
                       lambda win, n: np.nanmin(win, axis=-1)),
    "max": RollingStat(lambda grid, w: grid.rolling(w, min_periods=1).max(),
                       lambda win, n: np.nanmax(win, axis=-1)),
    "p95": RollingStat(lambda grid, w: grid.rolling(w, min_periods=1).quantile(0.95, interpolation="linear"),
                       lambda win, n: window_p95(win, n)),
    "slope": RollingStat(lambda grid, w: _slope(grid, w), lambda win, n: window_slope(win)),
}
ROLLING_STATS = tuple(ROLLING)

# The fields the failure predictor uses: CPU trend, memory level and growth, disk level and growth, error rate,
# latency p99, connection count, queue depth, recent deploys and time features, and each level's 24-hour
# baseline (the predictor compares a level with its service's usual one: training/failure/relative.py).
FAILURE_FEATURES = [
    "cpu_pct__slope_{w}m",
    "memory_pct",
    "memory_pct__slope_{w}m",
    "disk_pct",
    "disk_pct__slope_{w}m",
    "error_rate",
    "latency_p99_ms",
    "connections",
    "queue_depth",
    "minutes_since_deploy",
    "hour",
    "weekday",
    "memory_pct__base_24h",
    "disk_pct__base_24h",
    "error_rate__base_24h",
    "latency_p99_ms__base_24h",
    "connections__base_24h",
    "queue_depth__base_24h",
]


# ----------------------------------------------------------------------------------------------- feature names
def rolling_columns(metric: str, window: int = 15) -> list[str]:
    return [f"{metric}__{stat}_{window}m" for stat in ROLLING_STATS] + [f"{metric}__roc_{ROC_LAG}m"]


def metric_view_columns(metrics: Iterable[str]) -> list[str]:
    """Columns of the ``service_metrics`` view: the current value of each metric."""
    return sorted(metrics)


def rolling_view_columns(metrics: Iterable[str], window: int = 15) -> list[str]:
    """Columns of the ``service_rolling`` view: window statistics, slope and rate of change."""
    return [c for m in sorted(metrics) for c in rolling_columns(m, window)]


def context_view_columns(metrics: Iterable[str]) -> list[str]:
    """Columns of the ``service_context`` view: time, deploy recency and week-over-week deviations."""
    return CONTEXT_COLUMNS + [f"{m}__wow" for m in sorted(metrics)] + [baseline_column(m) for m in sorted(metrics)]


def baseline_column(metric: str) -> str:
    return f"{metric}__base_{BASELINE_HOURS}h"


def view_columns(metrics: Iterable[str], window: int = 15) -> dict[str, list[str]]:
    metrics = sorted(metrics)
    return {
        "service_metrics": metric_view_columns(metrics),
        "service_rolling": rolling_view_columns(metrics, window),
        "service_context": context_view_columns(metrics),
    }


def feature_names(metrics: Iterable[str], window: int = 15) -> list[str]:
    """Every feature column compute_features produces for these metrics, in output order."""
    return [c for cols in view_columns(metrics, window).values() for c in cols]


def failure_feature_names(window: int = 15) -> list[str]:
    return [f.format(w=window) for f in FAILURE_FEATURES]


def metrics_of(features: pd.DataFrame) -> list[str]:
    """The metrics a feature frame was computed from (the columns that have a ``__mean_*`` companion)."""
    return sorted(c.split("__")[0] for c in features.columns if "__mean_" in c)


# ----------------------------------------------------------------------------------------------- transforms
_NS_PER_MINUTE = 60_000_000_000


def _grid(telemetry: pd.DataFrame, pad: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, pd.DatetimeIndex]:
    """Long telemetry -> every service's complete minute grid (rows) x metric (columns), stacked.

    Each service's grid runs from its first to its last minute and is followed by ``pad`` empty rows, so that
    no window spans two services; minutes without a sample stay NaN. Samples are ceiled to the minute and the
    latest sample of a (service, minute, metric) wins. Integer arithmetic throughout: 2.4 M rows take well under a
    second. Returns the grid, the grid positions of the (service, minute) rows that have a sample, their service
    names and their minutes.
    """
    stamps = pd.DatetimeIndex(pd.to_datetime(telemetry["timestamp"], utc=True))
    ns = stamps.asi8
    minute_no = -((-ns) // _NS_PER_MINUTE)  # ceil: a sample is never moved to an earlier minute
    s_codes, services = pd.factorize(telemetry["service"].astype(str), sort=True)
    m_codes, metrics = pd.factorize(telemetry["metric"].astype(str), sort=True)
    values = telemetry["value"].to_numpy(dtype="float64")
    k, n_metrics = len(services), len(metrics)

    first = np.full(k, np.iinfo(np.int64).max)
    last = np.full(k, np.iinfo(np.int64).min)
    np.minimum.at(first, s_codes, minute_no)
    np.maximum.at(last, s_codes, minute_no)
    lengths = last - first + 1 + pad
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    positions = offsets[s_codes] + (minute_no - first[s_codes])

    # Latest sample per (position, metric): sort by key then time, keep the last of each key.
    key = positions * n_metrics + m_codes
    order = np.lexsort((ns, key))
    key_sorted = key[order]
    keep = np.ones(len(order), dtype=bool)
    keep[:-1] = key_sorted[:-1] != key_sorted[1:]
    chosen = order[keep]

    grid = np.full((int(lengths.sum()), n_metrics), np.nan)
    grid[positions[chosen], m_codes[chosen]] = values[chosen]

    rows = np.unique(positions)
    row_service = np.searchsorted(offsets, rows, side="right") - 1
    row_minute = first[row_service] + (rows - offsets[row_service])
    minutes = pd.DatetimeIndex(pd.to_datetime(row_minute * _NS_PER_MINUTE, utc=True))
    return (
        pd.DataFrame(grid, columns=list(metrics)),
        rows,
        np.asarray(services, dtype=object)[row_service],
        minutes,
    )


def window_slope(win: np.ndarray) -> np.ndarray:
    """Least-squares slope per step over the last axis of ``win`` (trailing windows, oldest first), using only
    the samples present (2 at least; NaN otherwise).

    Computed in window-local coordinates (x = 0 .. window-1, centred on the samples present), so the result is
    as precise on a year of history as on an hour. The scoring service's numpy path calls it too."""
    x = np.arange(win.shape[-1], dtype="float64")
    valid = ~np.isnan(win)
    n = valid.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = (valid * x).sum(axis=-1) / n
        my = np.nansum(win, axis=-1) / n
        dx = np.where(valid, x - mx[..., None], 0.0)
        dy = np.where(valid, win - my[..., None], 0.0)
        var = (dx * dx).sum(axis=-1)
        slope = (dx * dy).sum(axis=-1) / var
    return np.where((n >= 2) & (var > 0), slope, np.nan)


def rate_of_change(values: np.ndarray, floors: np.ndarray) -> np.ndarray:
    """``<m>__roc_5m`` over a minute grid (rows consecutive minutes, one column per metric): the change against
    the row ``ROC_LAG`` earlier, relative to it with its size floored per column, clipped to +-``ROC_CLIP``."""
    prev = np.full_like(values, np.nan)
    prev[ROC_LAG:] = values[:-ROC_LAG]
    with np.errstate(invalid="ignore", divide="ignore"):
        roc = (values - prev) / np.maximum(np.abs(prev), floors)
    return np.clip(roc, -ROC_CLIP, ROC_CLIP)


def roc_floors(metrics: Sequence[str]) -> np.ndarray:
    """The denominator's floor per metric: one unit for a count (one message joining an empty queue is one
    message, not +1000 %), ``ROC_FLOOR`` otherwise."""
    return np.array([1.0 if is_count(m) else ROC_FLOOR for m in metrics])


def _slope(grid: pd.DataFrame, window: int) -> pd.DataFrame:
    """:func:`window_slope` over every trailing window of each column of the stacked grid."""
    y = grid.to_numpy()
    out = np.full(y.shape, np.nan)
    lead = np.full(window - 1, np.nan)
    for j in range(y.shape[1]):
        out[:, j] = window_slope(np.lib.stride_tricks.sliding_window_view(np.concatenate([lead, y[:, j]]), window))
    return pd.DataFrame(out, columns=grid.columns)


def window_p95(win: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The 95th percentile over the last axis of ``win`` with linear interpolation, as pandas' rolling quantile,
    using the ``n`` samples present (NaN where there are none). A sort and two picks: ``np.nanquantile`` loops."""
    w = win.shape[-1]
    ordered = np.sort(win, axis=-1)  # NaN sorts last
    pos = 0.95 * (n - 1)
    lo = np.floor(pos).astype(np.int64).clip(0, w - 1)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    v_lo = np.take_along_axis(ordered, lo[..., None], axis=-1)[..., 0]
    v_hi = np.take_along_axis(ordered, hi[..., None], axis=-1)[..., 0]
    return np.where(n > 0, v_lo + (v_hi - v_lo) * (pos - np.floor(pos)), np.nan)




def _minutes_since_deploy(
    services: np.ndarray, stamps: pd.DatetimeIndex, events: pd.DataFrame | None
) -> np.ndarray:
    out = np.full(len(services), DEPLOY_CAP_MINUTES)
    if events is None or events.empty:
        return out
    deploys = events[events["kind"].astype(str).isin(DEPLOY_KINDS)]
    if deploys.empty:
        return out
    deploys = pd.DataFrame(
        {
            "service": deploys["service"].astype(str).to_numpy(),
            "deployed": pd.to_datetime(deploys["timestamp"], utc=True).astype("datetime64[ns, UTC]").array,
        }
    ).sort_values("deployed", kind="stable")
    left = pd.DataFrame(
        {"service": services, "at": stamps.astype("datetime64[ns, UTC]"), "row": np.arange(len(services))}
    ).sort_values("at", kind="stable")
    joined = pd.merge_asof(left, deploys, left_on="at", right_on="deployed", by="service", direction="backward")
    minutes = (joined["at"] - joined["deployed"]).dt.total_seconds().to_numpy() / 60.0
    minutes = np.where(np.isnan(minutes), DEPLOY_CAP_MINUTES, np.minimum(minutes, DEPLOY_CAP_MINUTES))
    out[joined["row"].to_numpy()] = minutes
    return out


def _trailing_baseline(hourly: pd.DataFrame) -> pd.DataFrame:
    """Per service, the median of the hourly means of the ``BASELINE_HOURS`` clock hours before each hour.

    ``closed="left"`` leaves the current hour out, so the value at minute t uses only completed hours (causal);
    a median, so that an incident of an hour or two does not move it."""
    def per_service(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.droplevel(0)
        return frame.rolling(f"{BASELINE_HOURS}h", closed="left", min_periods=1).median()

    parts = {svc: per_service(g) for svc, g in hourly.groupby(level=0, sort=False)}
    return pd.concat(parts, names=hourly.index.names)


def compute_features(
    telemetry: pd.DataFrame, events: pd.DataFrame | None = None, window: int = 15
) -> pd.DataFrame:
    """One feature row per (service, minute); see the module docstring for every column."""
    if window < 2:
        raise ValueError(f"window={window}: needs at least 2 minutes")
    if telemetry.empty:
        raise ValueError("compute_features: the telemetry frame is empty")
    pad = max(window, ROC_LAG)
    grid, positions, services, stamps = _grid(telemetry, pad)
    metrics = list(grid.columns)

    values = grid.to_numpy()
    stats = {name: stat.on_grid(grid, window).to_numpy()[positions] for name, stat in ROLLING.items()}
    # The padding between services keeps the lag within one service.
    roc = rate_of_change(values, roc_floors(metrics))[positions]
    current = values[positions]

    # Week over week: the mean of the same clock hour one week earlier (entirely in the past).
    hour_key = stamps.floor("h")
    hourly = pd.DataFrame(current, columns=metrics).groupby([services, hour_key]).mean()
    week_ago = hourly.reindex(pd.MultiIndex.from_arrays([services, hour_key - pd.Timedelta(days=7)])).to_numpy()

    data: dict[str, object] = {ENTITY: services, TIMESTAMP: stamps, CREATED: stamps}
    for j, m in enumerate(metrics):
        data[m] = current[:, j]
    for j, m in enumerate(metrics):
        for stat in ROLLING_STATS:
            data[f"{m}__{stat}_{window}m"] = stats[stat][:, j]
        data[f"{m}__roc_{ROC_LAG}m"] = roc[:, j]
    data["hour"] = stamps.hour.to_numpy(dtype="int64")
    data["weekday"] = stamps.weekday.to_numpy(dtype="int64")
    data["minutes_since_deploy"] = _minutes_since_deploy(services, stamps, events)
    for j, m in enumerate(metrics):
        data[f"{m}__wow"] = current[:, j] - week_ago[:, j]
    baseline = _trailing_baseline(hourly).reindex(pd.MultiIndex.from_arrays([services, hour_key])).to_numpy()
    for j, m in enumerate(metrics):
        data[baseline_column(m)] = baseline[:, j]
    frame = pd.DataFrame(data)  # rows already ordered by service, then minute
    return frame


def latest_rows(features: pd.DataFrame, services: Sequence[str] | None = None) -> pd.DataFrame:
    """The newest feature row of each service (what the online store should hold after materialisation)."""
    frame = features if services is None else features[features[ENTITY].isin(list(services))]
    idx = frame.groupby(ENTITY)[TIMESTAMP].idxmax()
    return frame.loc[idx.to_numpy()].reset_index(drop=True)
