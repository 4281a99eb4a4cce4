"""Input preparation shared by every forecaster, and the rules for input a forecaster cannot use.

:func:`prepare_series` turns what a user hands over into one regular series:

1. **Index.** A :class:`~pandas.DatetimeIndex` is required (a frame is accepted too: a ``timestamp``
   column, or the index, and one value column). Naive times are taken as UTC (the telemetry
   convention), other time zones are converted to UTC; both are noted.
2. **Values.** Non-numeric values become missing; infinite values too.
3. **Order and duplicates.** Rows are sorted by time; the values that share a timestamp are averaged
   (noted with their count).
4. **Step.** Stamps on a calendar grid (month starts or ends, quarters, years, weeks: what
   :func:`pandas.infer_freq` names ``MS``, ``ME``, ``QS-...``, ``YS-...``, ``W-...``) stay on that grid: the
   step is their median spacing (31 days for months) and ``calendar`` holds the offset the future stamps
   follow, so months are not resampled onto a 31-day grid. Otherwise the regular step is the median
   spacing of the distinct timestamps. When the spacing is irregular (any spacing differs from the step), the series is resampled onto a grid of that step
   starting at the first timestamp, each grid point the mean of the observations in ``[t, t + step)``.
5. **Gaps.** Missing grid points (empty bins, missing values) are filled by linear interpolation in
   time when a run of them is at most ``max_gap`` points long (the count is reported); a longer run is
   refused (see below), because interpolating across a long hole invents a trend and erases seasons.
   Leading and trailing missing values are dropped (nothing to interpolate from).

The rules (each raises :class:`ForecastInputError`, a ``ValueError``, whose message says what is wrong
and what is needed, unless it says "handled"):

* **Too few points.** Fewer than :data:`MIN_POINTS` (10) valid points after preparation, or fewer than
  a model's own ``min_points`` (the LSTM and DeepAR need more), is refused: the message names the count
  found and the count needed.
* **Too little history for the seasonality** (handled, never refused). A seasonal model needs at least
  two full seasons (``2 * season`` points) to tell a season from noise. With less, every forecaster
  falls back to a non-seasonal model (``season_ == 1``) and says so in ``notes_``. The season comes from
  the step unless given: one day for sub-daily steps that divide a day (24 for hourly data, 1440 for
  minutes), a week (7) for daily data, none otherwise.
* **A constant series** (handled). Every value equal (to within ``1e-12`` relative): the forecast is that
  value, flat, with zero-width intervals, and ``notes_`` says so. The underlying model is not fitted
  (Prophet, ARIMA and the networks fail or invent noise on a constant).
* **Horizon too long.** ``horizon`` must be a whole number of steps with
  ``1 <= horizon <= MAX_HORIZON_RATIO * history length`` (ratio 1: no further ahead than the history
  the model saw). A longer horizon is refused with a message naming the horizon, the history length
  and the maximum allowed. DeepAR is also bound by the ``prediction_length`` it was trained for.
* **A long gap.** A run of more than ``max_gap`` missing grid points (default 12) is refused, naming
  where it starts, how long it is, and the options (fill it, pass only the part after it, or raise
  ``max_gap``).
* **Not a time series.** No datetime index or timestamp column, no numeric value column, or all values
  missing: refused, naming what was found.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MIN_POINTS = 10
MAX_HORIZON_RATIO = 1.0
DEFAULT_MAX_GAP = 12
_TIME_COLUMNS = ("timestamp", "time", "ts", "date", "datetime")


class ForecastInputError(ValueError):
    """The input cannot be forecast as it is; the message says what is wrong and what is needed."""


@dataclass
class PreparedSeries:
    series: pd.Series  # float64, regular grid, tz-aware UTC DatetimeIndex, no missing values
    step: pd.Timedelta
    filled: int = 0  # grid points filled by interpolation
    duplicates: int = 0  # rows merged into another row's timestamp
    resampled: bool = False
    notes: list[str] = field(default_factory=list)
    calendar: str | None = None  # a calendar offset ('MS', 'QE-DEC', ...) the stamps follow; None: ``step``

    @property
    def constant(self) -> bool:
        return is_constant(self.series.to_numpy())


def is_constant(values: np.ndarray) -> bool:
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return False
    return float(np.ptp(values)) <= 1e-12 * max(1.0, float(np.max(np.abs(values))))


def _as_series(data: pd.Series | pd.DataFrame, value_col: str | None) -> pd.Series:
    if isinstance(data, pd.DataFrame):
        frame = data
        time_col = next((c for c in frame.columns if str(c).lower() in _TIME_COLUMNS), None)
        if time_col is not None:
            frame = frame.set_index(time_col)
        if value_col is None:
            numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
            if len(numeric) != 1:
                raise ForecastInputError(
                    f"expected one numeric value column, found {numeric or 'none'} among {list(frame.columns)}; "
                    "pass value_col=")
            value_col = numeric[0]
        if value_col not in frame.columns:
            raise ForecastInputError(f"value column {value_col!r} not in {list(frame.columns)}")
        data = frame[value_col]
    if not isinstance(data, pd.Series):
        raise ForecastInputError(f"expected a pandas Series with a DatetimeIndex, got {type(data).__name__}")
    if not isinstance(data.index, pd.DatetimeIndex):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pandas' "could not infer format" on text that is not a time
                index = pd.DatetimeIndex(pd.to_datetime(data.index, utc=True))
        except (TypeError, ValueError) as exc:
            raise ForecastInputError(
                f"the index must hold timestamps (a DatetimeIndex); got {type(data.index).__name__} "
                f"starting {list(data.index[:3])}") from exc
        data = data.set_axis(index)
    return data


def infer_step(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The median spacing of the distinct, sorted timestamps."""
    distinct = index.unique().sort_values()
    if len(distinct) < 2:
        raise ForecastInputError(f"need at least two distinct timestamps to infer the step, got {len(distinct)}")
    return pd.Timedelta(int(np.median(np.diff(distinct.asi8))), unit="ns")


# infer_freq's names for steps of a week or longer whose length varies (weeks are kept for their anchor)
_CALENDAR_PREFIXES = ("MS", "ME", "M", "BMS", "BME", "BM", "SMS", "SME", "QS", "QE", "Q", "BQS", "BQE", "BQ",
                      "YS", "YE", "Y", "AS", "A", "BYS", "BYE", "BY", "BAS", "BA", "W")


def calendar_step(index: pd.DatetimeIndex) -> str | None:
    """The calendar offset (weeks, months, quarters, years) a sorted, distinct index follows exactly, or None."""
    if len(index) < 3:
        return None
    try:
        freq = pd.infer_freq(index)
    except (TypeError, ValueError):
        return None
    if not freq:
        return None
    head = freq.lstrip("0123456789").split("-")[0]
    return freq if head in _CALENDAR_PREFIXES else None


def season_for(step: pd.Timedelta) -> int:
    """Points per season implied by the step: a day for sub-daily steps that divide it, a week for days."""
    day = pd.Timedelta(days=1)
    if step < day and day % step == pd.Timedelta(0):
        return int(day / step)
    if step == day:
        return 7
    return 1


def prepare_series(data: pd.Series | pd.DataFrame, value_col: str | None = None,
                   max_gap: int = DEFAULT_MAX_GAP, min_points: int = MIN_POINTS) -> PreparedSeries:
    """One regular, gap-free UTC series from a user's series or frame (see the module docstring)."""
    s = _as_series(data, value_col)
    notes: list[str] = []
    index = s.index
    if index.tz is None:
        index = index.tz_localize("UTC")
        notes.append("timestamps had no time zone: taken as UTC")
    elif str(index.tz) != "UTC":
        notes.append(f"timestamps converted from {index.tz} to UTC")
        index = index.tz_convert("UTC")
    values = pd.to_numeric(pd.Series(np.asarray(s.to_numpy(), dtype=object), index=index), errors="coerce")
    values = values.astype(float).replace([np.inf, -np.inf], np.nan)
    values = values[values.index.notna()]
    if values.notna().sum() == 0:
        raise ForecastInputError(f"the series holds no numbers ({len(values)} rows, all missing or non-numeric)")

    if not values.index.is_monotonic_increasing:
        values = values.sort_index(kind="stable")
        notes.append("timestamps were not in order: sorted")
    duplicates = int(values.index.duplicated().sum())
    if duplicates:
        values = values.groupby(level=0).mean()
        notes.append(f"{duplicates} row(s) shared a timestamp with another: their values were averaged")
    values = values.loc[values.first_valid_index():values.last_valid_index()]
    if len(values) < 2:
        raise ForecastInputError(f"need at least {min_points} points, got {len(values)}")
    step = infer_step(values.index)
    calendar = calendar_step(values.index)

    spacing = np.diff(values.index.asi8)
    resampled = calendar is None and bool((spacing != step.value).any())
    if resampled:
        grid = values.resample(step, origin=values.index[0], label="left", closed="left").mean()
        # Count bins with data before interpolating, to tell irregular sampling from mere gaps.
        off_grid = int(((values.index - values.index[0]) % step != pd.Timedelta(0)).sum())
        if off_grid:
            notes.append(f"irregular sampling ({off_grid} timestamp(s) off a {_fmt(step)} grid): resampled onto "
                         f"that grid, each point the mean of the observations in its interval")
        values = grid

    missing = values.isna().to_numpy()
    filled = int(missing.sum())
    if filled:
        longest, start = _longest_run(missing)
        if longest > max_gap:
            raise ForecastInputError(
                f"a gap of {longest} missing point(s) ({_fmt(step * longest)}) starts at {values.index[start]}; "
                f"gaps of at most max_gap={max_gap} points are interpolated. Fill it, pass only the part after "
                f"it, or raise max_gap (prepare_series(series, max_gap=...) before fitting)")
        values = values.interpolate(method="time")
        notes.append(f"{filled} missing point(s) in gaps of at most {longest} step(s) filled by linear interpolation")
    values = values.astype("float64").rename(s.name)
    values.index.freq = None
    if len(values) < min_points:
        raise ForecastInputError(
            f"need at least {min_points} points to forecast, got {len(values)} (step {_fmt(step)}); "
            "give a longer history")
    return PreparedSeries(series=values, step=step, filled=filled, duplicates=duplicates, resampled=resampled,
                          notes=notes, calendar=calendar)


def check_horizon(horizon: int, history: int, step: pd.Timedelta | None = None,
                  ratio: float = MAX_HORIZON_RATIO) -> int:
    """``horizon`` as an int, or :class:`ForecastInputError` when it is not in ``1 .. ratio * history``."""
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)):
        raise ForecastInputError(f"horizon must be a whole number of steps, got {horizon!r}")
    horizon = int(horizon)
    longest = int(np.floor(ratio * history))
    if horizon < 1:
        raise ForecastInputError(f"horizon must be at least 1 step, got {horizon}")
    if horizon > longest:
        unit = f" (step {_fmt(step)})" if step is not None else ""
        raise ForecastInputError(
            f"horizon {horizon} is too long for a history of {history} points{unit}: the maximum allowed is "
            f"{longest} ({ratio:g} x the history length). Give more history or a shorter horizon")
    return horizon


def future_index(last: pd.Timestamp, step: pd.Timedelta, horizon: int,
                 calendar: str | None = None) -> pd.DatetimeIndex:
    """The next ``horizon`` stamps after ``last``: on the calendar grid when given, else ``step`` apart."""
    if calendar:
        return pd.date_range(last, periods=horizon + 1, freq=calendar, tz="UTC", name="timestamp")[1:]
    return pd.date_range(last + step, periods=horizon, freq=step, tz="UTC", name="timestamp")


def _longest_run(mask: np.ndarray) -> tuple[int, int]:
    """Length and start of the longest run of True."""
    best, best_start, run, start = 0, 0, 0, 0
    for i, m in enumerate(mask):
        if m:
            if run == 0:
                start = i
            run += 1
            if run > best:
                best, best_start = run, start
        else:
            run = 0
    return best, best_start


def _fmt(step: pd.Timedelta) -> str:
    """A step as people write it: 1h, 15min, 1D."""
    text = pd.tseries.frequencies.to_offset(step).freqstr
    return text if text[0].isdigit() else f"1{text}"


def series_of(telemetry: pd.DataFrame, names: list[str], freq: str) -> tuple[dict[str, pd.Series], list[str]]:
    """Means of each ``freq`` interval for every ``service/metric`` name the telemetry holds."""
    bad = [n for n in names if "/" not in n]
    if bad:
        raise ValueError(f"forecasting.series: {bad} are not SERVICE/METRIC names (e.g. database/cpu_pct)")
    keys = telemetry["service"].astype(str) + "/" + telemetry["metric"].astype(str)
    out, missing = {}, []
    for name in names:
        rows = telemetry[keys == name]
        if rows.empty:
            missing.append(name)
            continue
        s = rows.set_index("timestamp")["value"].sort_index().resample(freq).mean()
        out[name] = s.rename(name)
    return out, missing
