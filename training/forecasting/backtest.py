"""Rolling-origin evaluation: every model, every horizon, several forecast origins, scored against the baseline.

Origins. With ``H = max(horizons)``, the last origin leaves exactly ``H`` points after it and earlier ones
step back ``stride`` points each (default ``H``: the scored windows do not overlap). At each origin a
model is fitted on everything before it (an expanding window, or the last ``max_train`` points) and
forecasts ``H`` steps once; a horizon ``h`` is scored on the first ``h`` of them, so the horizons of one
origin share a fit, as they would in production.

Scores per (series, model, horizon, origin):

* **MASE**: mean absolute error over steps ``1..h`` divided by the in-sample MAE of the seasonal-naive
  forecast on that origin's training window (Hyndman & Koehler 2006; season from the step, 1 when the
  window holds under two seasons). Below 1: better than repeating the last season did in sample.
* **sMAPE** in percent: ``200 * mean(|y - f| / (|y| + |f|))`` (a step where both are 0 counts as 0).
* **coverage_80 / coverage_95**: the share of the ``h`` actuals inside the 80 % / 95 % interval.

The aggregate averages them per (model, horizon) over series and origins, with ``mase_vs_naive`` (the
model's MASE over ``seasonal_naive``'s at the same horizon; the baseline always runs) and mean fit and
predict seconds. A global model (DeepAR) is fitted once per origin on every series' training window; its
seconds are that fit divided by the number of series, so the columns compare per series.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import clone

from training.forecasting.prepare import MIN_POINTS, ForecastInputError, prepare_series, season_for
from training.forecasting.registry import BASELINE, FORECASTERS, build_forecaster, for_horizon

COLUMNS = ["series", "model", "horizon", "origin", "mase", "smape", "coverage_80", "coverage_95",
           "fit_s", "predict_s", "error"]


@dataclass
class BacktestResult:
    frame: pd.DataFrame  # one row per (series, model, horizon, origin): COLUMNS
    aggregate: pd.DataFrame  # one row per (model, horizon)
    forecasts: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)  # last origin, with `actual`
    histories: dict[str, pd.Series] = field(default_factory=dict)  # the prepared series


# ---------------------------------------------------------------------------------------------- scores
def mase(actual: np.ndarray, forecast: np.ndarray, train: np.ndarray, season: int) -> float:
    train = np.asarray(train, dtype=float)
    m = season if season > 1 and len(train) >= 2 * season else 1
    scale = float(np.nanmean(np.abs(train[m:] - train[:-m])))  # a missing training point is skipped
    err = float(np.mean(np.abs(np.asarray(actual, dtype=float) - np.asarray(forecast, dtype=float))))
    if scale == 0:
        return 0.0 if err == 0 else float("inf")
    return err / scale


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    a, f = np.asarray(actual, dtype=float), np.asarray(forecast, dtype=float)
    denom = np.abs(a) + np.abs(f)
    ratio = np.divide(np.abs(a - f), denom, out=np.zeros_like(denom), where=denom > 0)
    return float(200 * ratio.mean())


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    a = np.asarray(actual, dtype=float)
    return float(((a >= lower) & (a <= upper)).mean())


def origins(n: int, max_horizon: int, n_origins: int, stride: int | None = None) -> list[int]:
    """Positions of the forecast origins (the first point not trained on), oldest first."""
    stride = stride or max_horizon
    last = n - max_horizon
    out = [last - i * stride for i in reversed(range(n_origins))]
    if out[0] < MIN_POINTS:
        raise ForecastInputError(
            f"{n_origins} origin(s) {stride} points apart with horizon {max_horizon} need more than "
            f"{max_horizon + (n_origins - 1) * stride + MIN_POINTS} points; the series has {n}. Use fewer "
            "origins, a shorter horizon or a longer series")
    return out


# ---------------------------------------------------------------------------------------------- backtest
def backtest(series: pd.Series | Mapping[str, pd.Series], model_names: Iterable[str] = FORECASTERS,
             horizons: Iterable[int] = (1, 6, 24), n_origins: int = 3, stride: int | None = None,
             max_train: int | None = None, params: Mapping[str, dict] | None = None, profile: str = "default",
             errors: str = "raise", on_progress: Callable[[str], None] | None = None) -> BacktestResult:
    """Rolling-origin backtest of ``model_names`` (``seasonal_naive`` is always added) on one series or a
    ``{name: series}`` mapping. ``params`` overrides a model's parameters by name; ``errors="record"``
    keeps going when a model fails, with the message in the ``error`` column."""
    if errors not in ("raise", "record"):
        raise ValueError(f"errors must be 'raise' or 'record', got {errors!r}")
    named = dict(series) if isinstance(series, Mapping) else {str(series.name or "series"): series}
    hists = {key: prepare_series(s).series for key, s in named.items()}
    horizons = sorted({int(h) for h in horizons})
    H = horizons[-1]
    names = list(dict.fromkeys([BASELINE, *model_names]))
    cuts = {key: origins(len(y), H, n_origins, stride) for key, y in hists.items()}
    params = dict(params or {})
    rows: list[dict] = []
    forecasts: dict[tuple[str, str], pd.DataFrame] = {}

    def train_window(key: str, cut: int) -> pd.Series:
        y = hists[key].iloc[:cut]
        return y.iloc[-max_train:] if max_train else y

    for name in names:
        for o in range(n_origins):
            model = for_horizon(build_forecaster(name, profile=profile, **params.get(name, {})), H,
                                fixed=params.get(name))
            if on_progress:
                on_progress(f"{name} origin {o + 1}/{n_origins}")
            trains = {key: train_window(key, cuts[key][o]) for key in hists}
            results: dict[str, tuple[pd.DataFrame | None, float, float, str | None]] = {}
            if model.global_model:
                t0 = time.perf_counter()
                try:
                    model.fit_many(trains)
                    fit_s = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    frames = model.predict_many(H)
                    pred_s = time.perf_counter() - t0
                    k = len(trains)
                    results = {key: (frames[key], fit_s / k, pred_s / k, None) for key in trains}
                except Exception as exc:
                    if errors == "raise":
                        raise
                    results = {key: (None, np.nan, np.nan, f"{type(exc).__name__}: {exc}") for key in trains}
            else:
                for key, train in trains.items():
                    results[key] = _fit_predict(clone(model), train, H, errors)
            for key, (fc, fit_s, pred_s, err) in results.items():
                y, cut = hists[key], cuts[key][o]
                actual = y.iloc[cut:cut + H]
                if fc is not None and o == n_origins - 1:
                    forecasts[(key, name)] = fc.assign(actual=actual.to_numpy())
                for h in horizons:
                    row = {"series": key, "model": name, "horizon": h, "origin": actual.index[0],
                           "fit_s": fit_s, "predict_s": pred_s, "error": err}
                    if fc is not None:
                        a, f = actual.to_numpy()[:h], fc.iloc[:h]
                        row.update(
                            mase=mase(a, f["yhat"].to_numpy(), trains[key].to_numpy(), season_for(_step(y))),
                            smape=smape(a, f["yhat"].to_numpy()),
                            coverage_80=coverage(a, f["yhat_lower_80"].to_numpy(), f["yhat_upper_80"].to_numpy()),
                            coverage_95=coverage(a, f["yhat_lower_95"].to_numpy(), f["yhat_upper_95"].to_numpy()))
                    rows.append(row)
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
    return BacktestResult(frame=frame, aggregate=aggregate(frame), forecasts=forecasts, histories=hists)


def _fit_predict(model, train: pd.Series, horizon: int, errors: str):
    t0 = time.perf_counter()
    try:
        model.fit(train)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        fc = model.predict(horizon)
        return fc, fit_s, time.perf_counter() - t0, None
    except Exception as exc:
        if errors == "raise":
            raise
        return None, np.nan, np.nan, f"{type(exc).__name__}: {exc}"


def _step(y: pd.Series) -> pd.Timedelta:
    return y.index[1] - y.index[0]


def aggregate(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean scores per (model, horizon), each model's MASE relative to the baseline's, best first."""
    ok = frame[frame["error"].isna()]
    agg = ok.groupby(["model", "horizon"], sort=False).agg(
        mase=("mase", "mean"), smape=("smape", "mean"), coverage_80=("coverage_80", "mean"),
        coverage_95=("coverage_95", "mean"), fit_s=("fit_s", "mean"), predict_s=("predict_s", "mean"),
        runs=("mase", "size")).reset_index()
    failed = frame[frame["error"].notna()].groupby(["model", "horizon"]).size().rename("failed").reset_index()
    agg = agg.merge(failed, on=["model", "horizon"], how="outer")
    agg[["runs", "failed"]] = agg[["runs", "failed"]].fillna(0).astype(int)
    naive = agg[agg["model"] == BASELINE].set_index("horizon")["mase"]
    agg["mase_vs_naive"] = agg["mase"] / agg["horizon"].map(naive)
    cols = ["model", "horizon", "mase", "mase_vs_naive", "smape", "coverage_80", "coverage_95", "fit_s",
            "predict_s", "runs", "failed"]
    return agg.sort_values(["horizon", "mase"], na_position="last")[cols].reset_index(drop=True)
