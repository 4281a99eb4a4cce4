"""The forecasters as a bundle (their row in ``training/kinds.py``): the MLflow bundle, its request adapter, and
its figure on held-out data for the promotion gate.

    bundle = forecast_bundle(name, model, freq, data_version)    # what log_bundle pickles (kind "forecaster")
    out = predict(bundle, request)                               # what the pyfunc adapter returns
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from training.forecasting.base import COLUMNS
from training.kinds import FORECASTER, JudgeError


def forecast_bundle(name: str, model, freq: str, data_version: str) -> dict:
    return {"kind": FORECASTER.name, "name": name, "model": model, "series": sorted(model.models_) if hasattr(model, "models_")
            else [], "freq": freq, "data_version": data_version}


def predict(bundle: dict, frame: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
    """A request is one row per wanted forecast: ``series`` (SERVICE/METRIC the model was fitted on) and
    ``horizon`` (steps of the bundle's ``freq``). The answer is one row per future step."""
    missing = [c for c in ("series", "horizon") if c not in frame.columns]
    if missing:
        raise ValueError(f"request lacks columns {missing}; expected series, horizon")
    model = bundle["model"]
    out = []
    for row in frame.itertuples(index=False):
        key, horizon = str(row.series), int(row.horizon)
        fitted = getattr(model, "models_", {}).get(key)
        if fitted is None and not getattr(model, "global_model", False):
            raise ValueError(f"no forecaster for series {key!r}; this model knows {bundle['series']}")
        fc = fitted.predict(horizon) if fitted is not None else model.predict_many(horizon)[key]
        part = fc[COLUMNS].reset_index()
        part.insert(0, "series", key)
        part["timestamp"] = pd.DatetimeIndex(part["timestamp"]).strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append(part)
    return pd.concat(out, ignore_index=True)


# ------------------------------------------------------------------------------------------ the promotion gate
def check_labels(frame: pd.DataFrame, labels, **options) -> tuple[pd.DataFrame, np.ndarray]:
    """Labels: one actual value per frame row (``frame`` has ``series`` and ``timestamp``)."""
    actual = np.asarray(labels, dtype=float)
    if actual.shape != (len(frame),):
        raise JudgeError(f"forecaster labels: expected one actual value per frame row ({len(frame)})")
    return frame, actual


def _forecast_end(bundle: dict, key: str) -> pd.Timestamp:
    model = bundle["model"]
    fitted = getattr(model, "models_", {}).get(key)
    history = fitted.history_ if fitted is not None else getattr(model, "histories_", {}).get(key)
    if history is None:
        raise JudgeError(f"forecaster {bundle.get('name')!r} was not fitted on series {key!r}; it knows "
                         f"{bundle.get('series')}")
    return history.index[-1]


def figures(bundle: dict, frame: pd.DataFrame, actual: np.ndarray, history: dict | None = None, **options) -> dict:
    """MASE of the forecasts each model makes from the end of its own history, on the held-out steps.
    ``history={series: values before the held-out period}`` scales the error the same way for both versions."""
    from training.forecasting.backtest import mase
    from training.forecasting.prepare import season_for

    history = history or {}
    step = pd.tseries.frequencies.to_offset(bundle["freq"])
    errors, steps = [], 0
    for key, rows in frame.assign(actual=actual).groupby("series", sort=True):
        times = pd.DatetimeIndex(pd.to_datetime(rows["timestamp"], utc=True))
        end = _forecast_end(bundle, key)
        horizon = int(np.ceil((times.max() - end) / pd.Timedelta(step)))
        if horizon < 1:
            raise JudgeError(f"series {key!r}: the held-out period ends {times.max()}, before the model's history "
                             f"ends ({end}); judge on data after both versions' training")
        fc = predict(bundle, pd.DataFrame({"series": [key], "horizon": [horizon]}))
        fc = fc.assign(timestamp=pd.to_datetime(fc["timestamp"], utc=True)).set_index("timestamp")["yhat"]
        joined = pd.Series(rows["actual"].to_numpy(), index=times).to_frame("actual").join(fc, how="inner")
        if joined.empty:
            continue
        past = history.get(key)
        if past is None or len(past) < 2:
            raise JudgeError(f"series {key!r}: history= needs the series before the held-out period (MASE scale)")
        season = season_for(pd.Timedelta(step))
        errors.append(mase(joined["actual"].to_numpy(), joined["yhat"].to_numpy(), np.asarray(past, dtype=float),
                           season) * len(joined))
        steps += len(joined)
    return {"mase": float(sum(errors) / steps) if steps else None, "steps": steps}


def unjudgeable(detail: dict) -> str | None:
    return None  # any held-out actuals give a MASE


def heldout(settings, start: pd.Timestamp, end: pd.Timestamp, incidents: pd.DataFrame):
    """The configured series' means on their grid after ``start``, with the history before it (MASE scale)."""
    from telemetry import lake
    from training.forecasting.prepare import series_of

    cfg = settings.forecasting
    telemetry = lake.read_telemetry(settings.lake_dir, start=start - pd.Timedelta(days=14), end=end)
    series, _ = series_of(telemetry, list(cfg.series), cfg.freq)
    if not series:
        raise JudgeError(f"the lake holds none of forecasting.series {cfg.series} before {end}")
    frames, history = [], {}
    for key, s in series.items():
        history[key] = s[s.index < start].dropna().to_numpy()
        after = s[s.index >= start].dropna()
        frames.append(pd.DataFrame({"series": key, "timestamp": after.index, "actual": after.to_numpy()}))
    frame = pd.concat(frames, ignore_index=True)
    return frame[["series", "timestamp"]], frame["actual"].to_numpy(), {"history": history}


def shadow_gap(champion, challenger) -> dict:
    """How far the challenger's answer is from the champion's (what the shadow log records)."""
    a, b = champion["yhat"].to_numpy(dtype=float), challenger["yhat"].to_numpy(dtype=float)
    gap = float(np.nanmax(np.abs(a - b))) if len(a) == len(b) and len(a) else float("nan")
    return {"agree": bool(gap == 0.0), "max_abs_gap": gap}
