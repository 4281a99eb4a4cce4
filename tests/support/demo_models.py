"""Models to serve in a minute, trained and registered through the project's own code, for the tests and
``benchmarks/serving.py``.

    out = register_demo_models(settings)            # cerebro-detector-zscore (+ -ensemble), a forecaster
    body = window_body(out["telemetry"], "cart")    # a 60-minute /v1/score request
"""
from __future__ import annotations

import pandas as pd


def register_demo_models(settings, days: float = 2, seed: int = 7, detectors: tuple[str, ...] = ("zscore",),
                         forecaster: str | None = "seasonal_naive") -> dict:
    """Simulate a small fleet, compute its features with ``compute_features``, train the detectors with the
    zoo, register them with ``register_zoo`` (and a forecaster with ``log_bundle``). Returns the versions and
    the telemetry (requests are cut from it)."""
    import mlflow

    from features.transforms import compute_features
    from telemetry.simulator import FleetSimulator
    from training.detectors.stage import TrainingData, register_zoo, report_markdown
    from training.zoo import build_zoo, time_split, train_zoo

    sim = FleetSimulator(days=days, seed=seed, end="2026-11-20T00:00:00Z", incidents_per_day=4).run()
    feats = compute_features(sim.telemetry, sim.events, window=settings.feast.window_minutes)
    frame = (feats.drop(columns=["created"]).rename(columns={"event_timestamp": "timestamp"})
             .set_index(["service", "timestamp"]).select_dtypes("number"))
    data = TrainingData(frame=frame, incidents=sim.incidents, edges=[], dataset=sim.dataset,
                        data_version=f"{sim.dataset}@demo")
    splits = time_split(frame, sim.incidents, fractions=tuple(settings.detection.split))
    result = train_zoo(splits, build_zoo(list(splits.frame.columns), [], include=list(detectors)),
                       ensemble_size=len(detectors))
    out = register_zoo(settings, result, splits, data, report_markdown(result, splits, data))
    versions = {f"cerebro-detector-{k}": v for k, v in out["versions"].items()}
    if forecaster:
        from training.forecasting.bundle import forecast_bundle
        from training.forecasting.prepare import series_of
        from training.forecasting.registry import build_forecaster
        from training.tracking import log_bundle

        series, _ = series_of(sim.telemetry, list(settings.forecasting.series), settings.forecasting.freq)
        model = build_forecaster(forecaster).fit_many(series)
        example = pd.DataFrame({"series": [min(series)], "horizon": [6]})
        with mlflow.start_run(run_name=f"demo-forecaster-{forecaster}"):
            name = f"cerebro-forecaster-{forecaster}"
            versions[name] = log_bundle(forecast_bundle(forecaster, model, settings.forecasting.freq, data.data_version),
                                        name, example, {"forecaster": forecaster}, {}, {"cerebro.kind": "forecaster"})
    return {"versions": versions, "telemetry": sim.telemetry, "events": sim.events}


def window_body(telemetry: pd.DataFrame, service: str, minutes: int = 60, end: pd.Timestamp | None = None,
                columnar: bool = True) -> dict:
    """A /v1/score body: ``service``'s last ``minutes`` of every metric (before ``end``)."""
    rows = telemetry[telemetry["service"].astype(str) == service]
    end = end if end is not None else rows["timestamp"].max()
    rows = rows[(rows["timestamp"] > end - pd.Timedelta(minutes=minutes)) & (rows["timestamp"] <= end)]
    stamps = rows["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if not columnar:
        return {"telemetry": [{"timestamp": t, "service": service, "metric": str(m), "value": float(v)}
                              for t, m, v in zip(stamps, rows["metric"], rows["value"])]}
    series = []
    for metric, part in rows.assign(ts=stamps).groupby(rows["metric"].astype(str), sort=True):
        series.append({"service": service, "metric": metric, "timestamps": part["ts"].tolist(),
                       "values": part["value"].astype(float).tolist()})
    return {"series": series}
