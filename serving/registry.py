"""Model lifecycle in the MLflow registry: a ``champion`` alias per model, a ``challenger`` while one is judged,
a promotion gate, and rollback.

    figures  = compare(champion, challenger, frame, labels)            # both scored on the same held-out frame
    ok, why  = gate(figures, margin)                                   # does the challenger win by the margin?
    decision = promote_if_better(settings, name, version, frame, labels)   # the pipeline, after registering
    decision = promote(settings, name, version, force=True)            # an operator overriding the gate
    decision = rollback(settings, name)                                # back to the previous champion

Families and their figure (``family_of`` reads it from the registered name):

* ``cerebro-detector-*``: event-wise F1 on the held-out period (``training.evaluation``; labels = incidents);
* ``cerebro-forecaster-*``: MASE over the held-out actuals (lower is better; labels = actual values, and
  ``history=`` the series before them, which scales the error the same way for both versions);
* ``cerebro-failure-predictor``: PR-AUC (labels = 0/1 per row: a failure within the horizon).

Every decision (first champion, promoted, rejected, forced, rollback) is a run in the ``model-promotions``
experiment (params, figures as metrics, the decision as tags) and a ``cerebro.promotion`` tag on the judged
version. The champions, oldest first, are kept in the model's ``cerebro.champion_history`` tag, so rollback
works as many times as there were champions.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "cerebro.champion_history"
PROMOTIONS_EXPERIMENT = "model-promotions"
HISTORY_KEEP = 50  # champions remembered per model (a tag holds a few KB)

# family -> (figure, higher is better)
FIGURES = {"detector": ("f1", True), "forecaster": ("mase", False), "failure": ("pr_auc", True)}
KEY_METRICS = {
    "detector": ("test_f1", "test_precision", "test_recall", "validation_f1"),
    "failure": ("test_pr_auc", "validation_pr_auc", "test_recall_at_precision_0_9"),
    "forecaster": (),  # every h<N>_mase the backtest logged
}


class RegistryError(ValueError):
    """A registry request that cannot be done as asked; the message says why and what would work."""


@dataclass
class Figures:
    family: str
    metric: str
    higher_is_better: bool
    champion: float | None
    challenger: float | None
    rows: int
    detail: dict[str, Any] = field(default_factory=dict)  # "<role>_<figure>" -> value, and notes

    @property
    def improvement(self) -> float | None:
        """How much better the challenger is, in the family's direction (positive: better)."""
        if not _finite(self.champion) or not _finite(self.challenger):
            return None
        delta = self.challenger - self.champion
        return delta if self.higher_is_better else -delta


@dataclass
class Decision:
    name: str
    version: str
    decision: str  # first | promoted | rejected | forced | unchanged | rollback
    reason: str
    champion_before: str | None
    champion_after: str | None
    margin: float | None = None
    figures: Figures | None = None
    run_id: str | None = None

    def as_dict(self) -> dict:
        out = asdict(self)
        if self.figures is not None:
            out["figures"]["improvement"] = self.figures.improvement
        return out


def _finite(value) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def family_of(name: str) -> str:
    if name.startswith("cerebro-detector-"):
        return "detector"
    if name.startswith("cerebro-forecaster-"):
        return "forecaster"
    if name.startswith("cerebro-failure-predictor"):
        return "failure"
    raise RegistryError(f"model {name!r}: not a CEREBRO model; expected cerebro-detector-<name>, "
                        "cerebro-forecaster-<name> or cerebro-failure-predictor")


# ------------------------------------------------------------------------------------------------ loading
def client_for(settings):
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)  # pyfunc.load_model reads the global URI
    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri)


@dataclass
class LoadedModel:
    name: str
    version: str
    uri: str
    bundle: dict


def load_version(settings, name: str, version: str | None = None, alias: str | None = None) -> LoadedModel:
    """A registered version's bundle (what the pyfunc adapter serves), by version number or alias."""
    import mlflow

    client = client_for(settings)
    try:
        mv = (client.get_model_version_by_alias(name, alias) if alias
              else client.get_model_version(name, str(version)))
    except Exception as exc:  # noqa: BLE001 - MLflow raises RestException / MlflowException for "no such model or alias"
        what = f"alias @{alias}" if alias else f"version {version}"
        raise RegistryError(f"{name}: no {what} in {settings.mlflow_tracking_uri} ({type(exc).__name__})") from None
    uri = f"models:/{name}/{mv.version}"
    bundle = mlflow.pyfunc.load_model(uri).unwrap_python_model().bundle
    return LoadedModel(name, str(mv.version), uri, bundle)


def load_champion(settings, name: str, fallback: str | None = None) -> LoadedModel:
    """``name@champion``, or ``fallback@champion`` (then the fallback's newest version) when it has none."""
    try:
        return load_version(settings, name, alias=CHAMPION)
    except RegistryError as first:
        if not fallback:
            raise
        import logging

        logging.getLogger(__name__).warning("%s; falling back to %s", first, fallback)
        try:
            return load_version(settings, fallback, alias=CHAMPION)
        except RegistryError:
            versions = versions_of(client_for(settings), fallback)
            if not versions:
                raise RegistryError(f"{first}; the fallback {fallback} has no versions either") from None
            return load_version(settings, fallback, version=versions[-1])


def bundle_of(model) -> dict:
    """A bundle from a loaded pyfunc model, a :class:`LoadedModel` or a bundle itself."""
    if isinstance(model, dict):
        return model
    if isinstance(model, LoadedModel):
        return model.bundle
    if hasattr(model, "unwrap_python_model"):
        return model.unwrap_python_model().bundle
    raise TypeError(f"expected a loaded MLflow pyfunc model or a bundle, got {type(model).__name__}")


# ------------------------------------------------------------------------------------------------ figures
def _detector_figures(bundle: dict, frame: pd.DataFrame, incidents: pd.DataFrame, recovery_minutes: float) -> dict:
    from training.evaluation import evaluate
    from training.serving_adapters import predict_bundle

    out = predict_bundle(bundle, frame, {})
    index = pd.MultiIndex.from_arrays([frame["service"].astype(str).to_numpy(),
                                       pd.to_datetime(frame["timestamp"], utc=True)])
    r = evaluate(index, out["score"].to_numpy(), float(bundle["model"].threshold_), incidents,
                 recovery_minutes=recovery_minutes)
    return {"f1": r["f1"], "precision": r["precision"], "recall": r["recall"], "incidents": r["incidents"],
            "false_alarms": r["false_alarm_events"]}


def _failure_figures(bundle: dict, frame: pd.DataFrame, labels: np.ndarray) -> dict:
    from sklearn.metrics import average_precision_score

    from training.serving_adapters import predict_bundle

    proba = predict_bundle(bundle, frame, {"top_k": 0})["failure_probability"].to_numpy(dtype=float)
    positives = int(labels.sum())
    pr_auc = float(average_precision_score(labels, proba)) if 0 < positives < len(labels) else None
    return {"pr_auc": pr_auc, "positives": positives, "positive_rate": positives / max(len(labels), 1)}


def _forecast_end(bundle: dict, key: str) -> pd.Timestamp:
    model = bundle["model"]
    fitted = getattr(model, "models_", {}).get(key)
    history = fitted.history_ if fitted is not None else getattr(model, "histories_", {}).get(key)
    if history is None:
        raise RegistryError(f"forecaster {bundle.get('name')!r} was not fitted on series {key!r}; it knows "
                            f"{bundle.get('series')}")
    return history.index[-1]


def _forecaster_figures(bundle: dict, frame: pd.DataFrame, actual: np.ndarray, history: dict) -> dict:
    """MASE of the forecasts each model makes from the end of its own history, on the held-out steps."""
    from training.forecasting.backtest import mase
    from training.forecasting.prepare import season_for
    from training.serving_adapters import predict_bundle

    step = pd.tseries.frequencies.to_offset(bundle["freq"])
    errors, steps = [], 0
    for key, rows in frame.assign(actual=actual).groupby("series", sort=True):
        times = pd.DatetimeIndex(pd.to_datetime(rows["timestamp"], utc=True))
        end = _forecast_end(bundle, key)
        horizon = int(np.ceil((times.max() - end) / pd.Timedelta(step)))
        if horizon < 1:
            raise RegistryError(f"series {key!r}: the held-out period ends {times.max()}, before the model's history "
                                f"ends ({end}); judge on data after both versions' training")
        fc = predict_bundle(bundle, pd.DataFrame({"series": [key], "horizon": [horizon]}), {})
        fc = fc.assign(timestamp=pd.to_datetime(fc["timestamp"], utc=True)).set_index("timestamp")["yhat"]
        joined = pd.Series(rows["actual"].to_numpy(), index=times).to_frame("actual").join(fc, how="inner")
        if joined.empty:
            continue
        past = history.get(key)
        if past is None or len(past) < 2:
            raise RegistryError(f"series {key!r}: history= needs the series before the held-out period (MASE scale)")
        season = season_for(pd.Timedelta(step))
        errors.append(mase(joined["actual"].to_numpy(), joined["yhat"].to_numpy(), np.asarray(past, dtype=float),
                           season) * len(joined))
        steps += len(joined)
    return {"mase": float(sum(errors) / steps) if steps else None, "steps": steps}


def compare(champion, challenger, frame: pd.DataFrame, labels, family: str | None = None,
            **options) -> Figures:
    """Score both models on the same held-out ``frame`` and return the family's figure for each.

    ``frame`` is a request frame of the family (the pyfunc adapter's input); ``labels``: the incidents frame
    (detector), one 0/1 per row (failure), or one actual value per row (forecaster: ``frame`` has ``series`` and
    ``timestamp``, and ``history={series: values before the held-out period}`` must be given). Detector option:
    ``recovery_minutes`` (the feature window; alarms that long after an incident still belong to it)."""
    a, b = bundle_of(champion), bundle_of(challenger)
    kinds = {"detector": "detector", "forecaster": "forecaster", "failure": "failure"}
    family = family or kinds.get(b.get("kind"))
    if family not in FIGURES:
        raise RegistryError(f"family {family!r}: expected one of {sorted(FIGURES)}")
    if a.get("kind") != b.get("kind"):
        raise RegistryError(f"champion is a {a.get('kind')!r} and challenger a {b.get('kind')!r}: not comparable")
    if frame is None or len(frame) == 0:
        raise RegistryError("the held-out frame is empty: nothing to judge the versions on")
    metric, higher = FIGURES[family]
    if family == "detector":
        if not isinstance(labels, pd.DataFrame) or not {"start", "end", "affected_services"} <= set(labels.columns):
            raise RegistryError("detector labels: expected the incidents frame (incident_id, kind, start, end, "
                                "affected_services)")
        frame = frame.sort_values(["service", "timestamp"], kind="stable").reset_index(drop=True)
        rec = float(options.get("recovery_minutes", 0))
        figs = {role: _detector_figures(m, frame, labels, rec) for role, m in (("champion", a), ("challenger", b))}
    elif family == "failure":
        y = np.asarray(labels, dtype=float)
        if y.shape != (len(frame),) or np.isnan(y).any() or not np.isin(y, (0, 1)).all():
            raise RegistryError(f"failure labels: expected one 0/1 per frame row ({len(frame)}), got {y.shape}")
        figs = {role: _failure_figures(m, frame, y.astype(int)) for role, m in (("champion", a), ("challenger", b))}
    else:
        actual = np.asarray(labels, dtype=float)
        if actual.shape != (len(frame),):
            raise RegistryError(f"forecaster labels: expected one actual value per frame row ({len(frame)})")
        history = options.get("history") or {}
        figs = {role: _forecaster_figures(m, frame, actual, history) for role, m in (("champion", a), ("challenger", b))}
    detail = {f"{role}_{k}": v for role, f in figs.items() for k, v in f.items() if _finite(v)}
    return Figures(family, metric, higher, figs["champion"][metric], figs["challenger"][metric], len(frame), detail)


def gate(figures: Figures, margin: float) -> tuple[bool, str]:
    """Promote only when the challenger beats the champion by at least ``margin`` (and by something)."""
    m, word = figures.metric, "higher" if figures.higher_is_better else "lower"
    if figures.family == "detector" and not figures.detail.get("champion_incidents"):
        return False, "the held-out period holds no incidents, so F1 says nothing; judge on a period with incidents"
    if figures.family == "failure" and not figures.detail.get("champion_positives"):
        return False, "the held-out rows hold no failure, so PR-AUC says nothing; judge on a period with failures"
    gain = figures.improvement
    if gain is None:
        return False, (f"{m} could not be computed for both versions (champion {figures.champion}, challenger "
                       f"{figures.challenger}); nothing to judge on")
    text = f"{m} {figures.challenger:.4f} vs champion {figures.champion:.4f} ({word} is better; margin {margin:g})"
    if gain > 0 and gain >= margin - 1e-12:
        return True, f"challenger wins: {text}"
    return False, f"challenger does not beat the champion by the margin: {text}"


# ------------------------------------------------------------------------------------------------ registry
def versions_of(client, name: str) -> list[str]:
    return sorted((str(v.version) for v in client.search_model_versions(f"name='{name}'")), key=int)


def alias_or_newest(client, name: str, alias: str = CHAMPION, newest: bool = True) -> tuple[str, str | None] | None:
    """(version, alias) that ``name@alias`` points at; without that alias (newest=True) the newest version and
    None; None when there is nothing to use. What serving, the drift watch and the pipeline's deploy resolve."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version), alias
    except MlflowException:
        if not newest:
            return None
    try:
        versions = versions_of(client, name)
    except MlflowException:
        return None
    return (versions[-1], None) if versions else None


def champion_of(client, name: str) -> str | None:
    aliases = client.get_registered_model(name).aliases or {}
    value = aliases.get(CHAMPION)
    return None if value is None else str(value)


def champion_history(client, name: str) -> list[str]:
    raw = (client.get_registered_model(name).tags or {}).get(HISTORY_TAG)
    return [str(v) for v in json.loads(raw)] if raw else []


def set_champion(client, name: str, version: str) -> None:
    history = champion_history(client, name)
    if not history or history[-1] != version:
        history.append(version)
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[-HISTORY_KEEP:]))


def check_version(client, name: str, version: str) -> None:
    try:
        client.get_registered_model(name)
    except Exception:  # noqa: BLE001 - MLflow raises several types for "no such model"
        raise RegistryError(f"no registered model {name!r}; see `cerebro models list`") from None
    known = versions_of(client, name)
    if version not in known:
        raise RegistryError(f"{name}: no version {version}; it has versions {', '.join(known) or 'none'}")


def _promotions_experiment(client, settings) -> str:
    exp = client.get_experiment_by_name(PROMOTIONS_EXPERIMENT)
    if exp is not None:
        return exp.experiment_id
    root = settings.mlflow_artifact_root.rstrip("/")
    from mlflow.exceptions import MlflowException

    try:
        return client.create_experiment(PROMOTIONS_EXPERIMENT, artifact_location=f"{root}/{PROMOTIONS_EXPERIMENT}")
    except MlflowException:  # families judged side by side may race to create it; use the winner's
        exp = client.get_experiment_by_name(PROMOTIONS_EXPERIMENT)
        if exp is None:
            raise
        return exp.experiment_id


def _log_decision(client, settings, d: Decision, extra_params: dict | None = None) -> str:
    """One run in ``model-promotions`` with the decision and its figures; a tag on the judged version."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    params = {"model": d.name, "version": d.version, "champion_before": d.champion_before or "-",
              "champion_after": d.champion_after or "-", "margin": "-" if d.margin is None else d.margin,
              **(extra_params or {})}
    metrics = {}
    if d.figures is not None:
        f = d.figures
        params.update({"family": f.family, "metric": f.metric, "higher_is_better": f.higher_is_better,
                       "heldout_rows": f.rows})
        metrics.update({f"champion_{f.metric}": f.champion, f"challenger_{f.metric}": f.challenger,
                        "improvement": f.improvement, **f.detail})
    tags = {"cerebro.decision": d.decision, "cerebro.reason": d.reason[:4900], "cerebro.model": d.name,
            "mlflow.runName": f"{d.name} v{d.version}: {d.decision}"}
    run = client.create_run(_promotions_experiment(client, settings))
    client.log_batch(run.info.run_id,
                     metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if _finite(v)],
                     params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                     tags=[RunTag(k, str(v)) for k, v in tags.items()])
    client.set_terminated(run.info.run_id)
    summary = {"decision": d.decision, "reason": d.reason, "run_id": run.info.run_id,
               "at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")}
    if d.figures is not None:
        summary.update({"metric": d.figures.metric, "champion": d.figures.champion,
                        "challenger": d.figures.challenger, "margin": d.margin})
    client.set_model_version_tag(d.name, d.version, "cerebro.promotion", json.dumps(summary, default=str)[:4900])
    return run.info.run_id


def promote(settings, name: str, version: str | int, frame: pd.DataFrame | None = None, labels=None, *,
            force: bool = False, **options) -> Decision:
    """Make ``version`` the champion of ``name`` if it passes the gate on the held-out ``frame`` (see
    :func:`compare`), or unconditionally with ``force`` (figures still computed when a frame is given). The
    first version of a model with no champion becomes champion directly. Always logged."""
    client = client_for(settings)
    version = str(version)
    check_version(client, name, version)
    family = family_of(name)
    margin = float(settings.lifecycle.margins[family])
    current = champion_of(client, name)
    figures, extra = None, {}
    if current is None:
        set_champion(client, name, version)
        d = Decision(name, version, "first", f"{name} had no champion: version {version} becomes the first one "
                     "without a comparison", None, version, margin)
    elif current == version:
        d = Decision(name, version, "unchanged", f"version {version} is already the champion", current, current, margin)
    else:
        client.set_registered_model_alias(name, CHALLENGER, version)
        try:
            if frame is not None:
                figures = compare(load_version(settings, name, current), load_version(settings, name, version),
                                  frame, labels, family, **options)
            elif not force:
                raise RegistryError(f"{name} v{version}: the gate needs a held-out frame and labels to judge "
                                    f"against champion v{current} (or force=True)")
            if options.get("heldout_window"):
                extra["heldout_window"] = options["heldout_window"]
            ok, why = gate(figures, margin) if figures is not None else (False, "no held-out data: gate not run")
        finally:
            client.delete_registered_model_alias(name, CHALLENGER)
        if force:
            set_champion(client, name, version)
            d = Decision(name, version, "forced", f"forced by the operator (the gate said: {why})", current, version,
                         margin, figures)
        elif ok:
            set_champion(client, name, version)
            d = Decision(name, version, "promoted", why, current, version, margin, figures)
        else:
            d = Decision(name, version, "rejected", why, current, current, margin, figures)
    d.run_id = _log_decision(client, settings, d, extra)
    return d


def promote_if_better(settings, name: str, version: str | int, frame: pd.DataFrame, labels, **options) -> Decision:
    """What the pipeline calls after registering ``version``: first version -> champion; otherwise the gate."""
    return promote(settings, name, version, frame, labels, force=False, **options)


def champion_or_challenger(settings, name: str, version: str | int) -> str:
    """For a model the pipeline has no held-out data to judge (a forecaster refitted on all history): the first
    version becomes champion; a later one waits as ``challenger`` until ``cerebro models promote`` judges it on
    data that came after both. Returns "first" or "challenger"."""
    client = client_for(settings)
    if champion_of(client, name) is None:
        promote(settings, name, version)
        return "first"
    client.set_registered_model_alias(name, CHALLENGER, str(version))
    return "challenger"


def rollback(settings, name: str) -> Decision:
    """Move ``champion`` back to the previous champion; the current one leaves the history."""
    client = client_for(settings)
    try:
        current = champion_of(client, name)
    except Exception:  # noqa: BLE001 - MLflow raises several types for "no such model"
        raise RegistryError(f"no registered model {name!r}; see `cerebro models list`") from None
    history = champion_history(client, name)
    if current is not None and (not history or history[-1] != current):
        history.append(current)  # an alias moved by hand: treat it as the latest champion
    existing = set(versions_of(client, name))
    previous = [v for v in history[:-1] if v in existing]
    if current is None or not previous:
        raise RegistryError(f"{name}: no previous champion to roll back to (champions so far: "
                            f"{', '.join(history) or 'none'})")
    history = history[:-1]
    while history[-1] not in existing:  # a deleted version cannot serve: skip it
        history.pop()
    target = history[-1]
    client.set_registered_model_alias(name, CHAMPION, target)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    d = Decision(name, current, "rollback", f"champion rolled back from v{current} to v{target}", current, target)
    d.run_id = _log_decision(client, settings, d)
    return d


def list_models(settings, prefix: str = "cerebro-") -> list[dict]:
    """Every registered model with its versions, aliases, champion history and key metrics."""
    client = client_for(settings)
    out = []
    for rm in sorted(client.search_registered_models(filter_string=f"name LIKE '{prefix}%'"), key=lambda m: m.name):
        try:
            family = family_of(rm.name)
        except RegistryError:
            family = "other"
        by_version: dict[str, list[str]] = {}
        for alias, v in (rm.aliases or {}).items():
            by_version.setdefault(str(v), []).append(alias)
        versions = []
        for mv in sorted(client.search_model_versions(f"name='{rm.name}'"), key=lambda v: int(v.version)):
            metrics = {}
            if mv.run_id:
                run_metrics = client.get_run(mv.run_id).data.metrics
                keys = KEY_METRICS.get(family) or sorted(k for k in run_metrics if k.endswith("_mase"))
                metrics = {k: run_metrics[k] for k in keys if k in run_metrics}
            promo = json.loads((mv.tags or {}).get("cerebro.promotion", "null") or "null")
            versions.append({"version": str(mv.version), "aliases": sorted(by_version.get(str(mv.version), [])),
                             "created": pd.Timestamp(mv.creation_timestamp, unit="ms", tz="UTC").isoformat(),
                             "metrics": metrics, "last_decision": promo and promo.get("decision")})
        out.append({"name": rm.name, "family": family, "aliases": {k: str(v) for k, v in (rm.aliases or {}).items()},
                    "champion_history": champion_history(client, rm.name), "versions": versions})
    return out


# ------------------------------------------------------------------------------------------------ held-out data
def heldout_from_lake(settings, name: str, start=None, end=None) -> tuple[pd.DataFrame, Any, dict]:
    """Held-out data for the gate from the lake: ``(frame, labels, options)`` for :func:`compare`.

    Default window: the lake's last ``lifecycle.heldout_hours``. Detectors and the failure predictor get feature
    rows (``serving.batch.read_features``) with the lake's incidents; forecasters the configured series' means
    on their grid, with the history before the window for the MASE scale."""
    from features.from_lake import lake_window, read_features
    from telemetry import lake

    family = family_of(name)
    start, end = lake_window(settings, start, end, hours=settings.lifecycle.heldout_hours)
    options: dict[str, Any] = {"heldout_window": f"{start.isoformat()} .. {end.isoformat()}"}
    incidents = lake.read_table("incidents", settings.lake_dir)
    if not incidents.empty:
        incidents = incidents.assign(start=pd.to_datetime(incidents["start"], utc=True),
                                     end=pd.to_datetime(incidents["end"], utc=True))
        if "failed_at" in incidents:
            incidents["failed_at"] = pd.to_datetime(incidents["failed_at"], utc=True)
        incidents = incidents.drop_duplicates("incident_id", keep="last")
    if family == "forecaster":
        from training.forecasting.stage import series_of

        cfg = settings.forecasting
        telemetry = lake.read_telemetry(settings.lake_dir, start=start - pd.Timedelta(days=14), end=end)
        series, _ = series_of(telemetry, list(cfg.series), cfg.freq)
        if not series:
            raise RegistryError(f"the lake holds none of forecasting.series {cfg.series} before {end}")
        frames, history = [], {}
        for key, s in series.items():
            history[key] = s[s.index < start].dropna().to_numpy()
            after = s[s.index >= start].dropna()
            frames.append(pd.DataFrame({"series": key, "timestamp": after.index, "actual": after.to_numpy()}))
        frame = pd.concat(frames, ignore_index=True)
        return frame[["series", "timestamp"]], frame["actual"].to_numpy(), {**options, "history": history}
    frame = read_features(settings, start, end)
    if family == "detector":
        labels = incidents if not incidents.empty else pd.DataFrame(
            columns=["incident_id", "kind", "start", "end", "affected_services"])
        return frame, labels, {**options, "recovery_minutes": settings.feast.window_minutes}
    from training.failure.labels import LABEL, ONGOING, failure_labels

    if incidents.empty:
        raise RegistryError("the lake holds no incidents: the failure predictor cannot be judged")
    lab = failure_labels(frame["service"].to_numpy(), pd.DatetimeIndex(frame["timestamp"]), incidents,
                         horizon_minutes=settings.failure.horizon_minutes, at=settings.failure.failure_at)
    keep = ~lab[ONGOING].to_numpy(dtype=bool)  # the trouble is already visible there: not a prediction row
    return frame[keep].reset_index(drop=True), lab[LABEL].to_numpy()[keep], options
