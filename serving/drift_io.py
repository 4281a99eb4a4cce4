"""The drift check's I/O edges: the lake's windows, the live model from MLflow, its scores and inputs, the
``drift-check`` MLflow run, the fallback, old reports.

``serving.drift`` computes and decides; this module reads and writes around it; ``serving.drift_check`` runs
the check in order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Reference rows compared for drift: every Nth minute (a week of minutes is 131,000 rows for 13 services).
REFERENCE_STRIDE_MINUTES = 5


HISTORY = pd.Timedelta(days=7)  # read before the reference window: the longest look-back of any input


def read_windows(settings, end: str | None):
    """The lake's telemetry from a week before the reference window to ``end`` (default: the lake's newest row),
    the reference and current windows cut from it, that end, and the windows (``serving.drift.Windows``)."""
    from serving.drift import WEEK, cut_windows, plan_windows
    from telemetry import lake

    cfg = settings.drift
    stats = lake.lake_stats(settings.lake_dir)
    if not stats.get("rows"):
        raise ValueError(f"the lake at {settings.lake_dir} is empty: ingest telemetry first (cerebro ingest / make run)")
    if end:
        stop = pd.Timestamp(end)
        stop = stop.tz_localize("UTC") if stop.tzinfo is None else stop.tz_convert("UTC")
    else:  # the newest row: read only the newest day's partitions to find it
        stop = lake.read_telemetry(settings.lake_dir, start=pd.Timestamp(stats["dates"][-1], tz="UTC"))["timestamp"].max()
    # The widest reference asked for (seasonal weeks, or the preceding days), and a week before it too (as much
    # as the lake holds), so that every row of both windows has the history its inputs read: the 24-hour
    # baselines and the week-over-week inputs (the same clock hour one week earlier).
    cur_start = stop - pd.Timedelta(hours=cfg.current_hours)
    widest = min(cur_start - pd.Timedelta(days=cfg.reference_days), cur_start - max(1, round(cfg.reference_days / 7)) * WEEK)
    telemetry = lake.read_telemetry(settings.lake_dir, start=widest - HISTORY, end=stop)
    lake_start = telemetry["timestamp"].min() if len(telemetry) else None
    windows = plan_windows(stop, cfg.reference_days, cfg.current_hours, cfg.reference, lake_start)
    reference, current = cut_windows(telemetry, windows)
    return telemetry, reference, current, stop, windows


@dataclass
class LiveModel:
    name: str
    version: str
    alias: str | None  # "champion", or None when the newest version stood in
    model: object  # mlflow.pyfunc.PyFuncModel
    registered_f1: float | None  # test F1 logged when it was registered

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def live_model(name: str, alias: str = "champion") -> LiveModel | None:
    """The version ``alias`` points at (the newest version if no alias is set), loaded; None if not registered."""
    import mlflow

    from serving.registry import alias_or_newest

    client = mlflow.MlflowClient()
    found = alias_or_newest(client, name, alias)
    if found is None:
        return None
    mv, used_alias = client.get_model_version(name, found[0]), found[1]
    f1 = None
    if mv.run_id:
        f1 = client.get_run(mv.run_id).data.metrics.get("test_f1")
    model = mlflow.pyfunc.load_model(f"models:/{name}/{mv.version}")
    return LiveModel(name=name, version=str(mv.version), alias=used_alias, model=model, registered_f1=f1)


def score_windows(live: LiveModel, features: pd.DataFrame, windows) -> dict[str, pd.DataFrame]:
    """The live model's output on the reference rows (every ``REFERENCE_STRIDE_MINUTES``th minute) and on
    every current row, each with its ``service`` and ``timestamp``. ``windows``: a ``serving.drift.Windows``, or
    the current window's start (every row before it is the reference).

    Every row is scored, in one call, and only then thinned: sequence-aware members (EWMA, Holt-Winters, the
    autoencoders) read the minutes before each row, so scoring every 5th minute alone fed them gapped series
    (on the pipeline's champion that doubled the reference's alarm rate, 12.4 % against 5.8 %), and the
    current window scored apart lacked its first hour's history."""
    from serving.registry import bundle_of
    from training.kinds import predict_bundle

    # The bundle inside the pyfunc model, called directly as batch scoring and the promotion gate do: the
    # frames come from our own feature code, so the request schema's checks and conversions add nothing.
    rows = features.reset_index(drop=True)
    scored = predict_bundle(bundle_of(live.model), rows, {})
    out = pd.concat([rows[["service", "timestamp"]], scored.reset_index(drop=True)], axis=1)
    reference, current = _window_masks(out, windows)
    return {"reference": out[reference].reset_index(drop=True), "current": out[current].reset_index(drop=True)}


def _window_masks(rows: pd.DataFrame, windows) -> tuple[np.ndarray, np.ndarray]:
    """Which rows are compared as the reference (every ``REFERENCE_STRIDE_MINUTES``th minute of its spans, or
    before ``windows`` when that is the current window's start) and which are the current window."""
    t = pd.to_datetime(rows["timestamp"], utc=True)
    if isinstance(windows, pd.Timestamp):
        reference, current = (t < windows).to_numpy(), (t >= windows).to_numpy()
    else:
        reference, current = windows.masks(t)
    return reference & (t.dt.minute % REFERENCE_STRIDE_MINUTES == 0).to_numpy(), current


def input_windows(live: LiveModel, features: pd.DataFrame, windows) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The live detector's inputs, as it reads them, on the reference rows (every ``REFERENCE_STRIDE_MINUTES``th
    minute, as for prediction drift) and on every current row (``windows`` as for ``score_windows``), and the input columns that come from the fleet's
    metrics. Raises ``serving.scoring.RequestError`` or ``WarmUpError`` when they cannot be computed here."""
    from serving.drift import metric_of
    from serving.registry import bundle_of
    from serving.scoring import DetectorRunner, WarmUpError
    from telemetry.schema import FLEET_METRICS

    bundle = bundle_of(live.model)
    if bundle.get("kind", DetectorRunner.kind) != DetectorRunner.kind:  # the drift check watches a detector
        raise WarmUpError(f"{live.name} is a {bundle.get('kind')}, not a detector")
    runner = DetectorRunner(bundle)
    example = getattr(live.model, "input_example", None)  # a pyfunc model has one; a bare bundle (tests) none
    if example is not None:  # the same check the service makes before it serves the compiled path
        runner.warm_up(example if isinstance(example, pd.DataFrame) else pd.DataFrame(example))
    reference, current = _window_masks(features, windows)
    # Inputs from the metrics (the fleet's, or a user's own); the clock (time of day, weekday, minutes since a
    # deploy) is context whose distribution over whole days does not move.
    from features.detector_inputs.columns import EXTRAS

    used = [c for c in runner.used if metric_of(c) in FLEET_METRICS or (c not in EXTRAS and metric_of(c) not in EXTRAS)]
    return (runner.model_inputs(features[reference].reset_index(drop=True)),
            runner.model_inputs(features[current].reset_index(drop=True)), used)


def current_f1(scored: pd.DataFrame, incidents: pd.DataFrame, recovery_minutes: float) -> tuple[float, int]:
    """Event-wise F1 of the live model's alarms on the current window against the incidents that started in it."""
    from training.evaluation import evaluate

    index = pd.MultiIndex.from_arrays([scored["service"].astype(str),
                                       pd.to_datetime(scored["timestamp"], utc=True)])
    result = evaluate(index, scored["is_anomaly"].to_numpy(dtype=float), 0.5, incidents,
                      recovery_minutes=recovery_minutes)
    return float(result["f1"]), int(result["incidents"])


def recent_incidents(lake_dir, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Incidents recorded in the lake (any history) that overlap [start, end]."""
    from telemetry import lake

    inc = lake.read_table("incidents", lake_dir)
    if inc.empty:
        return inc
    for col in ("start", "end"):
        inc[col] = pd.to_datetime(inc[col], utc=True)
    return inc[(inc["end"] >= start) & (inc["start"] <= end)].reset_index(drop=True)


def fall_back(live: LiveModel, fallback_name: str, reason: str, alias: str = "champion") -> str:
    """Serve ``fallback_name``'s champion under the live model's name: MLflow copies that version into the
    live model as a new version, which becomes the champion (the scoring service follows the alias; the
    previous champion stays registered, so ``cerebro models rollback`` restores it). Returns the new version."""
    import mlflow

    client = mlflow.MlflowClient()
    source = live_model(fallback_name, alias)
    if source is None:
        raise LookupError(f"fallback model {fallback_name!r} is not registered; train the zoo first")
    copied = client.copy_model_version(f"models:/{fallback_name}/{source.version}", live.name)
    # The copy carries the source version's tags (its own decision and standing): replace them with what
    # happened here, so the registry never shows a champion tagged below its targets or rejected.
    why = (f"Fallback: drift replaced {live.name} v{live.version} with {fallback_name} v{source.version} "
           f"(the simpler model), copied here as v{copied.version}. {reason}")[:4900]
    for key, value in {"cerebro.fallback_from": f"{live.name}/{live.version}", "cerebro.fallback_reason": reason[:5000],
                       "cerebro.decision": "fallback", "cerebro.status": "champion", "cerebro.reason": why}.items():
        client.set_model_version_tag(live.name, copied.version, key, value)
    client.set_model_version_tag(live.name, live.version, "cerebro.status", "former champion")
    client.update_model_version(live.name, copied.version, description=why)
    client.set_registered_model_alias(live.name, alias, copied.version)
    return str(copied.version)


def scores_of(scored: pd.DataFrame) -> np.ndarray:
    """The shared-scale score to compare between windows (``calibrated`` when the model gives it)."""
    col = "calibrated" if "calibrated" in scored.columns else "score"
    return scored[col].to_numpy(dtype=float)


def prune_reports(folder, keep: int, pattern: str = "drift-*.html") -> list[str]:
    """Delete all but the ``keep`` most recently written reports matching ``pattern`` in ``folder`` (by
    modification time: a check of a past window, ``cerebro drift --end``, is as new as it was written); 0
    keeps all. An hourly check writes a report of about 9 MB an hour. Returns what went."""
    from pathlib import Path

    if keep <= 0:
        return []
    reports = sorted(Path(folder).glob(pattern), key=lambda p: (p.stat().st_mtime_ns, p.name))
    gone = reports[:-keep]
    for path in gone:
        path.unlink(missing_ok=True)
    return [str(p) for p in gone]


def log_to_mlflow(settings, result, decision, report_md: str) -> str:
    """The ``drift-check`` MLflow run: the action as a tag, the figures as metrics, the result as ``drift.json``,
    the report as ``drift.md`` and the Evidently HTML. Returns the run's id."""
    import mlflow

    from training.tracking import use_experiment

    use_experiment(settings)
    with mlflow.start_run(run_name="drift-check") as run:
        mlflow.set_tags({"cerebro.stage": "drift", "cerebro.drift_action": decision.action})
        mlflow.log_metrics({"share_drifted": result.share_drifted, "data_drift": float(result.data_drift),
                            **{f"psi_{c}": v["psi"] for c, v in result.metrics.items() if "psi" in v},
                            **{f"raw_psi_{c}": v["psi"] for c, v in result.raw.items() if "psi" in v},
                            **{f"prediction_{k}": float(v) for k, v in result.prediction.items()},
                            **{f"performance_{k}": float(v) for k, v in result.performance.items()
                               if v is not None}})
        mlflow.log_dict(result.as_dict(), "drift.json")
        mlflow.log_text(report_md, "drift.md")
        if result.html:
            mlflow.log_artifact(result.html)
        return run.info.run_id
