"""The drift check end to end, without Prefect: the lake's windows, the live detector, data, prediction and
performance drift, the decision and its report, the ``drift-check`` MLflow run, and the fallback.

    check = run_drift_check(settings)                 # report only (what `cerebro drift` shows)
    check = run_drift_check(settings, act=True)       # also fall back when the decision says so
    check.decision.action                             # "none" | "retrain" | "fallback"
    check.summary()                                   # what the drift flow returns

``serving.drift`` computes and decides, ``serving.drift_io`` reads and writes around it; this module runs the
steps in order. ``flows/drift.py`` runs each step as a Prefect task, starts the retraining deployment and
writes the Prefect artifacts.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from serving import drift_io
from serving.drift import (
    Decision,
    DriftResult,
    data_drift,
    decide,
    performance_drift,
    prediction_drift,
    report_markdown,
    wide,
)

LOG = logging.getLogger("cerebro.drift")


@dataclass
class DriftCheck:
    result: DriftResult
    decision: Decision
    action: dict  # {"action", "reasons", "applied"} and what applying it gave
    report_md: str  # the report, ending with what was done
    live: drift_io.LiveModel | None
    mlflow_run_id: str

    def summary(self) -> dict:
        """The check in a JSON-ready dict: what the drift flow returns and ``cerebro drift --json`` prints."""
        r = self.result
        return {"action": self.action, "share_drifted": r.share_drifted, "data_drift": r.data_drift,
                "compared": r.compared, "reference": r.reference, "reference_note": r.reference_note,
                "drifted_metrics": sorted(name for name, g in r.groups.items() if g["drift"]),
                "compared_metrics": sorted(r.groups),
                "prediction": r.prediction, "performance": r.performance, "html": r.html,
                "mlflow_run_id": self.mlflow_run_id,
                "model": None if self.live is None else f"{self.live.name}/{self.live.version}"}


def load_live(settings, telemetry: pd.DataFrame, windows):
    """The live detector (None when none is registered) and the feature rows of both windows."""
    import mlflow

    from features.from_lake import deploy_events, features_of

    cfg = settings.drift
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    live = drift_io.live_model(cfg.model)
    if live is None:
        return None, None
    events = deploy_events(settings)
    features = features_of(telemetry, events if len(events) else None, settings.feast.window_minutes)
    # From the oldest reference row on, unbroken: sequence-aware members score each row after the minutes before
    # it (a seasonal reference and the current window are a week apart; the rows between are scored, not compared).
    features = features[pd.to_datetime(features["timestamp"], utc=True) >= windows.start]
    return live, features


def check_data(settings, reference, current, html_path: str, live, features, windows,
               logger: Callable[[], logging.Logger] = lambda: LOG) -> DriftResult:
    """Drift of the live detector's inputs (``drift.compare: inputs``), with the raw metrics reported beside;
    of the raw metrics alone when no detector is live, its inputs cannot be computed, or ``compare: metrics``."""
    from pathlib import Path

    from serving.scoring import RequestError, WarmUpError
    from telemetry.schema import FLEET_METRICS

    cfg = settings.drift
    ref, cur = wide(reference), wide(current)
    # The fleet's metrics in their order, then a user's own.
    columns = cfg.metrics or ([m for m in FLEET_METRICS if m in ref.columns]
                              + [m for m in ref.columns if m not in FLEET_METRICS and m not in ("service", "timestamp")])
    options = {"ks_pvalue": cfg.ks_pvalue, "psi": cfg.psi, "drift_share": cfg.drift_share, "clip": cfg.clip_quantile}
    by_inputs = live is not None and cfg.compare == "inputs"
    raw = data_drift(ref, cur, columns, html_path=None if by_inputs else Path(html_path), **options)
    if not by_inputs:
        return raw
    try:
        ref_in, cur_in, used = drift_io.input_windows(live, features, windows)
    except (RequestError, WarmUpError) as exc:
        logger().warning("drift: comparing raw metrics: %s", exc)
        raw.compared = f"raw metrics ({live.name} v{live.version}'s inputs could not be computed: {exc})"
        return raw
    result = data_drift(ref_in, cur_in, used, html_path=Path(html_path), **options,
                        compared=f"inputs of {live.name} v{live.version}")
    result.raw = raw.metrics
    return result


def check_predictions(settings, live, features, windows) -> tuple[dict, dict]:
    """Prediction drift of the live detector's scores, and performance drift where the lake holds incidents
    of the current window; both empty when no detector is live."""
    cfg = settings.drift
    if live is None:
        return {}, {}
    scored = drift_io.score_windows(live, features, windows)
    prediction = prediction_drift(drift_io.scores_of(scored["reference"]), drift_io.scores_of(scored["current"]),
                                  scored["reference"]["is_anomaly"].to_numpy(), scored["current"]["is_anomaly"].to_numpy(),
                                  psi=cfg.prediction_psi)
    performance = {}
    incidents = drift_io.recent_incidents(settings.lake_dir, *windows.current)
    if len(incidents):
        f1, n = drift_io.current_f1(scored["current"], incidents, settings.feast.window_minutes)
        performance = performance_drift(f1, live.registered_f1, cfg.max_f1_drop, n)
    return prediction, performance


def _as_is(name: str, fn: Callable) -> Callable:
    return fn


def run_drift_check(settings, end: str | None = None, act: bool = False, *,
                    retrain: Callable[[str, list[str]], dict] | None = None,
                    step: Callable[[str, Callable], Callable] = _as_is,
                    logger: Callable[[], logging.Logger] = lambda: LOG) -> DriftCheck:
    """Compare the lake's last ``drift.current_hours`` with their reference (``drift.reference``: the same hours
    of the week in the weeks before, or the ``drift.reference_days`` before them), decide,
    log the ``drift-check`` MLflow run and, with ``act``, apply the decision: ``fallback`` serves
    ``drift.fallback_model`` under the live model's name (a new version that becomes its champion);
    ``retrain`` calls ``retrain(drift.retrain_deployment, reasons)``, which returns ``{"triggered": ...}``
    (without it, retraining is reported only).

    ``end``: the end of the current window (default: the lake's newest row). ``step(name, fn)`` wraps each
    step (the flow makes each a Prefect task of that name); ``logger()`` gives the logger of the moment (the
    flow passes Prefect's ``get_run_logger``, so a step's message lands in its task's log)."""
    cfg = settings.drift
    telemetry, reference, current, stop, windows = step("read-windows", drift_io.read_windows)(settings, end)
    if windows.note:
        logger().warning("drift: %s", windows.note)
    html = settings.reports_dir / f"drift-{stop:%Y%m%dT%H%M}.html"
    live, features = step("live-detector", load_live)(settings, telemetry, windows)
    result = step("data-drift", check_data)(settings, reference, current, str(html), live, features, windows, logger)
    result.reference, result.reference_note = windows.describe(), windows.note
    result.prediction, result.performance = step("prediction-and-performance-drift", check_predictions)(
        settings, live, features, windows)
    decision = decide(result)
    report_md = report_markdown(result, decision, {"reference": _spans(reference, windows), "current": _span(current)})
    if live is None:
        report_md += f"\n\nNo `{cfg.model}` is registered: prediction and performance drift not checked."
    run_id = step("log-drift-to-mlflow", drift_io.log_to_mlflow)(settings, result, decision, report_md)

    action: dict = {"action": decision.action, "reasons": decision.reasons, "applied": False}
    if act and decision.action == "retrain" and retrain is not None:
        action.update(retrain(cfg.retrain_deployment, decision.reasons))
        action["applied"] = action.get("triggered", False)
    elif act and decision.action == "fallback" and live is not None:
        version = drift_io.fall_back(live, cfg.fallback_model, "; ".join(decision.reasons))
        action.update({"applied": True, "fallback_version": version})
        logger().warning("drift: %s now serves %s as version %s because %s", live.name, cfg.fallback_model,
                         version, "; ".join(decision.reasons))
    report_md += "\n\n" + action_sentence(action)
    if result.html:
        pruned = drift_io.prune_reports(settings.reports_dir, cfg.keep_reports)
        if pruned:
            logger().info("drift: removed %d older report(s) (drift.keep_reports: %d)", len(pruned),
                          cfg.keep_reports)
    logger().info("drift: %s (%s)", decision.action, "; ".join(decision.reasons))
    return DriftCheck(result=result, decision=decision, action=action, report_md=report_md, live=live,
                      mlflow_run_id=run_id)


def action_sentence(action: dict) -> str:
    """What the check did, in words (the report's last line)."""
    what = action["action"]
    if what == "none":
        return "What was done: nothing (no action needed)."
    if not action.get("applied"):
        why = action.get("why") or "this check only reports (the hourly `drift/hourly` deployment acts)"
        return f"What was done: nothing; the decision was {what}, but {why}."
    if what == "retrain":
        return (f"What was done: started the retraining deployment {action.get('deployment')} "
                f"(flow run {action.get('flow_run_name') or action.get('flow_run_id')}).")
    return f"What was done: the fallback model now serves as version {action.get('fallback_version')}."


def _span(window: pd.DataFrame) -> str:
    return f"{window['timestamp'].min():%Y-%m-%d %H:%M} to {window['timestamp'].max():%Y-%m-%d %H:%M}"


def _spans(reference: pd.DataFrame, windows) -> str:
    """The reference's rows, span by span (a seasonal reference is one span per week)."""
    t = reference["timestamp"]
    parts = [_span(reference[(t >= s) & (t < e)]) for s, e in sorted(windows.reference) if ((t >= s) & (t < e)).any()]
    return "; ".join(parts)
