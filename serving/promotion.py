"""Who becomes champion: the promotion gate, forced promotions, rollback, and the log of every decision.

    figures  = compare(champion, challenger, frame, labels)            # both scored on the same held-out frame
    ok, why  = gate(figures, margin)                                   # does the challenger win by the margin?
    decision = promote_if_better(settings, name, version, frame, labels)   # the pipeline, after registering
    decision = promote(settings, name, version, force=True)            # an operator overriding the gate
    decision = rollback(settings, name)                                # back to the previous champion
    frame, labels, options = heldout_from_lake(settings, name)         # held-out data for the gate

Each kind's figure comes from its row in ``training/kinds.py`` and is computed by its bundle module:

* detectors: event-wise F1 on the held-out period (``training.evaluation``; labels = incidents);
* forecasters: MASE over the held-out actuals (lower is better; labels = actual values, and ``history=`` the
  series before them, which scales the error the same way for both versions);
* the failure predictor: PR-AUC (labels = 0/1 per row: a failure within the horizon).

Only a version that meets its targets may become champion: the caller says when one does not
(``below_target``: why, in words). A model's first version that misses them is registered without an alias and
tagged ``cerebro.status=below-target`` (decision ``below-target``): it is kept for comparison, never served, and
never routed to as a challenger. The pipeline passes the model it puts forward as meeting them, so serving always
finds a champion.

Every decision (first champion, below-target, promoted, rejected, forced, rollback) is a run in the
``model-promotions`` experiment (params, figures as metrics, the decision as tags), and the judged version gets
readable tags (``cerebro.decision``, ``cerebro.reason``, the figures as ``cerebro.champion_<figure>`` and
``cerebro.challenger_<figure>``) and a line in its description. Aliases and loading are ``serving/registry.py``.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from serving.registry import (
    CHALLENGER,
    CHAMPION,
    HISTORY_TAG,
    RegistryError,
    bundle_of,
    champion_history,
    champion_of,
    check_version,
    client_for,
    family_of,
    load_version,
    set_champion,
    versions_of,
)
from training import kinds

PROMOTIONS_EXPERIMENT = "model-promotions"
# kind -> (figure, higher is better), from the kind table
FIGURES = {k.name: (k.figure, k.higher_is_better) for k in kinds.KINDS}
# decision -> the judged version's ``cerebro.status`` tag where the decision alone says it
STATUS = {"below-target": "below-target", "rollback": "rolled back"}


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
    decision: str  # first | below-target | promoted | rejected | forced | unchanged | rollback
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


def compare(champion, challenger, frame: pd.DataFrame, labels, family: str | None = None,
            **options) -> Figures:
    """Score both models on the same held-out ``frame`` and return the kind's figure for each.

    ``frame`` is a request frame of the kind (the pyfunc adapter's input); ``labels``: the incidents frame
    (detector), one 0/1 per row (failure), or one actual value per row (forecaster: ``frame`` has ``series`` and
    ``timestamp``, and ``history={series: values before the held-out period}`` must be given). Detector option:
    ``recovery_minutes`` (the feature window; alarms that long after an incident still belong to it)."""
    a, b = bundle_of(champion), bundle_of(challenger)
    family = family or b.get("kind")
    if family not in FIGURES:
        raise RegistryError(f"family {family!r}: expected one of {sorted(FIGURES)}")
    if a.get("kind") != b.get("kind"):
        raise RegistryError(f"champion is a {a.get('kind')!r} and challenger a {b.get('kind')!r}: not comparable")
    if frame is None or len(frame) == 0:
        raise RegistryError("the held-out frame is empty: nothing to judge the versions on")
    kind = kinds.by_name(family)
    code = kind.code
    try:
        frame, labels = code.check_labels(frame, labels, **options)
        figs = {role: code.figures(m, frame, labels, **options) for role, m in (("champion", a), ("challenger", b))}
    except kinds.JudgeError as exc:
        raise RegistryError(str(exc)) from None
    detail = {f"{role}_{k}": v for role, f in figs.items() for k, v in f.items() if _finite(v)}
    return Figures(family, kind.figure, kind.higher_is_better, figs["champion"][kind.figure],
                   figs["challenger"][kind.figure], len(frame), detail)


def gate(figures: Figures, margin: float) -> tuple[bool, str]:
    """Promote only when the challenger beats the champion by at least ``margin`` (and by something)."""
    m, word = figures.metric, "higher" if figures.higher_is_better else "lower"
    why_not = kinds.by_name(figures.family).code.unjudgeable(figures.detail)
    if why_not:
        return False, why_not
    gain = figures.improvement
    if gain is None:
        return False, (f"{m} could not be computed for both versions (champion {figures.champion}, challenger "
                       f"{figures.challenger}); nothing to judge on")
    text = f"{m} {figures.challenger:.4f} vs champion {figures.champion:.4f} ({word} is better; margin {margin:g})"
    if gain > 0 and gain >= margin - 1e-12:
        return True, f"challenger wins: {text}"
    return False, f"challenger does not beat the champion by the margin: {text}"


def _promotions_experiment(client, settings) -> str:
    exp = client.get_experiment_by_name(PROMOTIONS_EXPERIMENT)
    if exp is not None:
        return exp.experiment_id
    root = settings.mlflow_artifact_root
    from mlflow.exceptions import MlflowException

    try:
        return client.create_experiment(PROMOTIONS_EXPERIMENT, artifact_location=root and
                                        f"{root.rstrip('/')}/{PROMOTIONS_EXPERIMENT}")
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
    d.run_id = run.info.run_id
    _tag_version(client, d)
    return run.info.run_id


def _tag_version(client, d: Decision) -> None:
    """The decision on the judged version, for people: readable tags, the figures as tags of their own, and a
    line in the version's description (what the registry UI shows first)."""
    tags = {"cerebro.decision": d.decision, "cerebro.reason": d.reason[:4900], "cerebro.decision_run": d.run_id or ""}
    tags["cerebro.status"] = STATUS.get(d.decision, "champion" if d.champion_after == d.version else "not promoted")
    if d.champion_before and d.champion_after != d.champion_before:  # the old champion's tag must not linger
        client.set_model_version_tag(d.name, d.champion_before, "cerebro.status", "former champion")
    if d.decision == "rollback":
        client.set_model_version_tag(d.name, d.champion_after, "cerebro.status", "champion")
    if d.figures is not None:
        for role in ("champion", "challenger"):
            value = getattr(d.figures, role)
            if _finite(value):
                tags[f"cerebro.{role}_{d.figures.metric}"] = f"{value:.4g}"
    for key, value in tags.items():
        client.set_model_version_tag(d.name, d.version, key, value)
    mv = client.get_model_version(d.name, d.version)
    line = f"Decision ({pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M} UTC): {d.decision}. {d.reason}"
    text = f"{mv.description}\n\n{line}" if mv.description else line
    client.update_model_version(d.name, d.version, description=text[-5000:])


def promote(settings, name: str, version: str | int, frame: pd.DataFrame | None = None, labels=None, *,
            force: bool = False, below_target: str | None = None, **options) -> Decision:
    """Make ``version`` the champion of ``name`` if it passes the gate on the held-out ``frame`` (see
    :func:`compare`), or unconditionally with ``force`` (figures still computed when a frame is given). The
    first version of a model with no champion becomes champion directly, unless ``below_target`` says why it
    misses its targets: it then gets no alias (decision ``below-target``). A later version that misses them is
    not promoted even when it beats the champion. Always logged."""
    client = client_for(settings)
    version = str(version)
    check_version(client, name, version)
    family = family_of(name)
    margin = float(settings.lifecycle.margins[family])
    current = champion_of(client, name)
    figures, extra = None, {}
    # A version whose measured latency misses the spec never replaces a champion (a first version is judged by
    # its caller, which knows whether it is the model put forward: serving needs one).
    slow = serving_cost_refusal(client, name, version) if current is not None else None
    if slow and slow not in (below_target or ""):
        below_target = f"{below_target}; {slow}" if below_target else slow
    if current is None and below_target and not force:
        d = Decision(name, version, "below-target", f"Version {version} misses its targets ({below_target}), so it "
                     f"is registered without an alias; {name} has no champion until a version meets them.",
                     None, None, margin)
    elif current is None:
        set_champion(client, name, version)
        d = Decision(name, version, "first", f"Version {version} is the first champion of {name}: it meets its "
                     "targets and there was no champion to compare it with.", None, version, margin)
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
        elif ok and below_target:
            d = Decision(name, version, "rejected", f"{why}; but it misses its targets ({below_target})", current,
                         current, margin, figures)
        elif ok:
            set_champion(client, name, version)
            d = Decision(name, version, "promoted", why, current, version, margin, figures)
        else:
            d = Decision(name, version, "rejected", why, current, current, margin, figures)
    d.run_id = _log_decision(client, settings, d, extra)
    return d


def serving_cost_refusal(client, name: str, version: str) -> str | None:
    """Why the version's measured serving cost keeps it from becoming champion (a detector whose latency at 8
    clients misses the spec's p50 < 50 ms or p99 < 200 ms, ``training.detectors.serving_cost``); None when it
    meets them or carries no measurement (an older version, another kind)."""
    from training.detectors.serving_cost import SERVING_COST_TAG, ServingCost

    raw = (client.get_model_version(name, version).tags or {}).get(SERVING_COST_TAG)
    if not raw:
        return None
    try:
        cost = ServingCost.from_dict(json.loads(raw))
    except (ValueError, KeyError, TypeError):
        return None  # a tag written by hand or by another release: the gate does not guess
    return cost.refusal()


def promote_if_better(settings, name: str, version: str | int, frame: pd.DataFrame, labels, *,
                      below_target: str | None = None, **options) -> Decision:
    """What the pipeline calls after registering ``version``: a first version that meets its targets ->
    champion; otherwise the gate."""
    return promote(settings, name, version, frame, labels, force=False, below_target=below_target, **options)


def champion_or_challenger(settings, name: str, version: str | int, below_target: str | None = None) -> str:
    """For a model the pipeline has no held-out data to judge (a forecaster refitted on all history): the first
    version becomes champion (``below-target`` and no alias when ``below_target`` says why it may not); a later
    one waits as ``challenger`` until ``cerebro models promote`` judges it on data that came after both.
    Returns "first", "below-target" or "challenger"."""
    client = client_for(settings)
    if champion_of(client, name) is None:
        return promote(settings, name, version, below_target=below_target).decision
    client.set_registered_model_alias(name, CHALLENGER, str(version))
    client.set_model_version_tag(name, str(version), "cerebro.status", "challenger")
    client.set_model_version_tag(name, str(version), "cerebro.decision", "challenger")
    client.set_model_version_tag(name, str(version), "cerebro.reason", (
        f"Version {version} waits as the challenger: the pipeline has no held-out data to judge it on; "
        f"`cerebro models promote {name} {version}` judges it against the champion on newer data."))
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


# ------------------------------------------------------------------------------------------------ held-out data
def heldout_from_lake(settings, name: str, start=None, end=None) -> tuple[pd.DataFrame, Any, dict]:
    """Held-out data for the gate from the lake: ``(frame, labels, options)`` for :func:`compare`.

    Default window: the lake's last ``lifecycle.heldout_hours``. What a kind is judged on is its bundle module's
    ``heldout``: detectors and the failure predictor get feature rows (``features.from_lake.read_features``)
    with the lake's incidents; forecasters the configured series' means on their grid, with the history before
    the window for the MASE scale."""
    from features.from_lake import lake_window
    from telemetry import lake

    kind = kinds.by_name(family_of(name))
    start, end = lake_window(settings, start, end, hours=settings.lifecycle.heldout_hours)
    options: dict[str, Any] = {"heldout_window": f"{start.isoformat()} .. {end.isoformat()}"}
    incidents = lake.read_table("incidents", settings.lake_dir)
    if not incidents.empty:
        incidents = incidents.assign(start=pd.to_datetime(incidents["start"], utc=True),
                                     end=pd.to_datetime(incidents["end"], utc=True))
        if "failed_at" in incidents:
            incidents["failed_at"] = pd.to_datetime(incidents["failed_at"], utc=True)
        incidents = incidents.drop_duplicates("incident_id", keep="last")
    try:
        frame, labels, extra = kind.code.heldout(settings, start, end, incidents)
    except kinds.JudgeError as exc:
        raise RegistryError(str(exc)) from None
    return frame, labels, {**options, **extra}
