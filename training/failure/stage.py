"""The failure-prediction stage of the pipeline: a time-ordered split, fit on the past, measure on the future,
then log and register the predictor in MLflow.

    data = failure_training_data(settings, dataset, start, end)     # training.failure.data
    model, report = train_failure_predictor(data, settings)
    markdown = report_markdown(report)                              # training.failure.report
    register_failure_predictor(settings, model, report, data, markdown)

Split: the window's distinct minutes in time order, train / validation / test = 50 / 20 / 30 % (the zoo's
shares). The classifier learns on train, the calibration and the alarm threshold come from validation, the test
period is only measured. Two kinds of rows are left out of fitting:

* rows inside an ongoing incident of their service (see ``labels.py``: they are neither "a failure is coming"
  nor "all is well");
* the last H minutes of train and of validation (a *purge*): their labels look up to H minutes ahead, into the
  next period, so keeping them would let the next period's incidents shape this period's labels.

The test period keeps every row that is not ongoing.

**What the classifier learns** (``target``). With a failure moment later than the incident's start (the
simulator's ``failed_at``), a failure is *foreseeable* on the rows where its fault is already under way (see
``labels.py``: memory climbing before the OOM kill, a disk filling, connections piling up) and nowhere else: a
positive row before the fault's onset (every row before an abrupt CPU saturation, error burst, slow dependency or
traffic surge, and the rows before a creeping fault begins) looks exactly like a normal row, because it is one.
About 70 % of the positive rows are of that sort, and fed to the classifier as positives they are label noise
that it can only memorise (when, on which service). On ten simulated fleets (seeds 1-6 and 8-11, test periods),
fitted on every failure it caught 48 of the 62 foreseeable failures, fitted on the foreseeable ones 53, with as
many false alarms outside a fault (39 and 36 rows). ``target="foreseeable"`` (the default when the failure moment is
not ``start``) leaves the positive rows that are not under way out of fitting, calibration and the threshold
(neither positives nor negatives, like ongoing rows); ``target="all"`` keeps them (the default for
``failure_at="start"``, where no failure has a precursor; it falls back to it, and says so, when train or
validation holds no foreseeable failure). Either way the probability means "a failure within H minutes" and the
test period is measured twice, and reported both ways:

* ``test`` (every row that is not ongoing, every failure): what an operator gets, abrupt failures included;
* ``test["foreseeable"]``: the positive rows that are under way against every negative row, and the failures
  with a precursor: how well the predictor does what it can do.

Alarm rows are split into true (a failure within H), *early* (the service's fault is under way, its failure more
than H ahead: the label says 0, an operator would not call it false) and false (neither); the threshold is
chosen on validation with the early rows not counted (``FailurePredictor.fit(threshold_ignore=...)``), the test
precision counts them as false.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from training.failure.data import FailureData
from training.failure.evaluation import lead_summary, lead_times, per_kind, point_metrics
from training.failure.labels import KIND, LABEL, ONGOING, TTF, UNDERWAY
from training.failure.model import FailurePredictor

SPLITS = ("train", "validation", "test")
TARGETS = ("foreseeable", "all")
DEFAULT_FRACTIONS = (0.5, 0.2, 0.3)


@dataclass
class FailureSplits:
    masks: dict[str, np.ndarray]  # rows used for each split (ongoing rows and purged rows already out)
    bounds: dict[str, tuple[pd.Timestamp, pd.Timestamp]]  # [start, end) of each period
    purged: dict[str, int]  # rows left out by the purge, per split
    ongoing: int  # rows left out for lying inside an incident


def split_by_time(frame: pd.DataFrame, horizon_minutes: float,
                  fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> FailureSplits:
    """Time-ordered split of rows indexed (service, timestamp); never shuffled, periods never overlap."""
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions={fractions}: three positive shares that add up to 1")
    times = pd.DatetimeIndex(frame.index.get_level_values(-1))
    stamps = np.sort(times.unique())
    if len(stamps) < 3:
        raise ValueError(f"{len(stamps)} distinct timestamps: too few to split by time")
    cuts = [pd.Timestamp(stamps[int(len(stamps) * sum(fractions[:k]))]) for k in (1, 2)]
    end = pd.Timestamp(stamps[-1]) + pd.Timedelta(minutes=1)
    bounds = {"train": (pd.Timestamp(stamps[0]), cuts[0]), "validation": (cuts[0], cuts[1]), "test": (cuts[1], end)}
    ongoing = frame[ONGOING].to_numpy(dtype=bool)
    horizon = pd.Timedelta(minutes=horizon_minutes)
    masks, purged = {}, {}
    for name, (lo, hi) in bounds.items():
        inside = np.asarray((times >= lo) & (times < hi)) & ~ongoing
        keep = inside & np.asarray(times < hi - horizon) if name != "test" else inside
        masks[name], purged[name] = keep, int((inside & ~keep).sum())
    return FailureSplits(masks, bounds, purged, int(ongoing.sum()))


def _failure_settings(settings) -> dict[str, Any]:
    """Options from ``settings.failure`` when the configuration has that section (it may not yet)."""
    section = getattr(settings, "failure", None) if settings is not None else None
    if section is None:
        return {}
    return section.model_dump() if hasattr(section, "model_dump") else dict(section)


def _underway(frame: pd.DataFrame) -> np.ndarray:
    if UNDERWAY in frame.columns:
        return frame[UNDERWAY].to_numpy(dtype=bool)
    return np.zeros(len(frame), dtype=bool)  # labels made before the precursor window was recorded


def row_roles(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Masks over ``frame``'s rows: ``foreseeable`` positives (under way), ``unforeseeable`` positives (not),
    ``early`` negatives (under way, failure beyond the horizon)."""
    y = frame[LABEL].to_numpy() == 1
    underway = _underway(frame)
    return {"foreseeable": y & underway, "unforeseeable": y & ~underway, "early": ~y & underway}


def evaluate_period(model: FailurePredictor, data: FailureData, mask: np.ndarray,
                    period: tuple[pd.Timestamp, pd.Timestamp]) -> dict[str, Any]:
    """Every figure of ``evaluation.py`` on the rows of ``mask`` (a period's rows, ongoing ones already out),
    over every failure, and again over the foreseeable ones (``["foreseeable"]``; see the module docstring)."""
    rows = data.frame[mask]
    y = rows[LABEL].to_numpy()
    roles = row_roles(rows)
    t0 = time.perf_counter()
    proba = model.predict_proba(rows)[:, 1]
    predict_s = time.perf_counter() - t0
    alarm = proba >= model.threshold_
    services = rows.index.get_level_values(0).astype(str).to_numpy()
    times = pd.DatetimeIndex(rows.index.get_level_values(1))
    # Lead times look at the rows before each failure; ongoing rows were never alarm candidates.
    leads = lead_times(services, times, alarm, data.incidents, data.horizon_minutes, period=period,
                       at=data.failure_at)
    out = point_metrics(y, proba, model.threshold_, model.target_precision)
    out["early_alarms"] = int((alarm & roles["early"]).sum())  # inside false_alarms: the fault was under way
    ttf_true = rows[TTF].to_numpy()
    caught_pos = (y == 1) & alarm
    ttf_err = (np.abs(model.predict_time_to_failure(rows[caught_pos]) - ttf_true[caught_pos])
               if caught_pos.any() else np.array([]))
    usable = ~roles["unforeseeable"]
    foreseeable_leads = leads[leads["precursor_minutes"] > 0]
    foreseeable = point_metrics(y[usable], proba[usable], model.threshold_, model.target_precision)
    foreseeable.update({"rows": int(usable.sum()), "failure_rows": int(y[usable].sum()),
                        "lead": lead_summary(foreseeable_leads)})
    # Rows inside an incident are not scored as alarms either way; how often the model alarms there (the trouble
    # already visible: the failed service, and the services the incident affected) is reported, not counted.
    stamps = pd.DatetimeIndex(data.frame.index.get_level_values(-1))
    inside = data.frame[np.asarray((stamps >= period[0]) & (stamps < period[1]))
                        & data.frame[ONGOING].to_numpy(dtype=bool)]
    inside_alarms = int((model.predict_proba(inside)[:, 1] >= model.threshold_).sum()) if len(inside) else 0
    out.update({
        "rows": len(rows), "failure_rows": int(y.sum()),
        "ongoing_rows": len(inside), "ongoing_alarms": inside_alarms,
        "foreseeable_failure_rows": int(roles["foreseeable"].sum()), "early_rows": int(roles["early"].sum()),
        "lead": lead_summary(leads),
        "misses": leads.loc[~leads["caught"], ["incident_id", "service", "kind", "start", "precursor_minutes"]]
        .assign(start=lambda f: f["start"].astype(str)).to_dict("records"),
        "per_kind": per_kind(leads, y, proba, rows[KIND].to_numpy()),
        "foreseeable": foreseeable,
        "ttf_mae_minutes": float(ttf_err.mean()) if len(ttf_err) else None,
        "predict_seconds": predict_s,
    })
    return out


def train_failure_predictor(data: FailureData, settings=None, fractions: tuple[float, float, float] | None = None,
                            target: str | None = None, **params: Any) -> tuple[FailurePredictor, dict[str, Any]]:
    """Fit on train, calibrate and pick the threshold on validation, measure on test; returns (model, report).

    ``target``: "foreseeable" or "all" (see the module docstring); by default "foreseeable" when the data's
    failure moment is not the incident start, else "all". ``params`` go to :class:`FailurePredictor` (over
    ``settings.failure`` where that exists); the random seed defaults to ``settings.simulator.seed``."""
    options = _failure_settings(settings)
    target = target or options.pop("target", None) or ("foreseeable" if data.failure_at != "start" else "all")
    if target not in TARGETS:
        raise ValueError(f"target={target!r}: one of {TARGETS}")
    fractions = tuple(fractions or options.pop("split", None) or DEFAULT_FRACTIONS)
    options = {k: v for k, v in options.items() if k in FailurePredictor().get_params()}
    if settings is not None and "random_state" not in params:
        options["random_state"] = int(settings.simulator.seed)
    options.update(params)
    options.update(horizon_minutes=data.horizon_minutes, features=list(data.features))
    splits = split_by_time(data.frame, data.horizon_minutes, fractions)
    roles = row_roles(data.frame)
    target_note = ""
    if target == "foreseeable":
        missing = [k for k in ("train", "validation") if not roles["foreseeable"][splits.masks[k]].any()]
        if missing:
            target, target_note = "all", (f"no foreseeable failure row in {' or '.join(missing)}: fitted on every "
                                          "failure instead")
    left_out = roles["unforeseeable"] if target == "foreseeable" else np.zeros(len(data.frame), dtype=bool)
    fit_masks = {k: splits.masks[k] & ~left_out for k in ("train", "validation")}
    train, val = data.frame[fit_masks["train"]], data.frame[fit_masks["validation"]]

    model = FailurePredictor(**options)
    t0 = time.perf_counter()
    model.fit(train, train[LABEL].to_numpy(), ttf=train[TTF].to_numpy(), X_val=val, y_val=val[LABEL].to_numpy(),
              threshold_ignore=roles["early"][fit_masks["validation"]])
    fit_s = time.perf_counter() - t0
    test = evaluate_period(model, data, splits.masks["test"], splits.bounds["test"])
    # Validation's last H minutes were purged: count only the failures whose whole run-up it kept.
    lo, hi = splits.bounds["validation"]
    validation = evaluate_period(model, data, splits.masks["validation"],
                                 (lo, hi - pd.Timedelta(minutes=data.horizon_minutes)))

    rows = data.frame[splits.masks["test"]].head(256)
    model.explain(rows.head(1))  # builds the explainer: time the explanations, not the set-up
    t0 = time.perf_counter()
    model.explain(rows, top_k=5)
    shap_per_row = (time.perf_counter() - t0) / max(1, len(rows))
    report = {
        "model": "failure_predictor",
        "dataset": data.dataset, "data_version": data.data_version,
        "horizon_minutes": data.horizon_minutes, "step_minutes": data.step_minutes, "failure_at": data.failure_at,
        "features": list(data.features), "model_features": list(model.model_features_),
        "target": target, "target_note": target_note,
        "data": data.summary(),
        "split": {"fractions": list(fractions),
                  "bounds": {k: [a.isoformat(), b.isoformat()] for k, (a, b) in splits.bounds.items()},
                  "rows": {k: int(m.sum()) for k, m in splits.masks.items()},
                  "failure_rows": {k: int(data.frame[LABEL].to_numpy()[m].sum()) for k, m in splits.masks.items()},
                  "purged_rows": splits.purged, "ongoing_rows_left_out": splits.ongoing,
                  "unforeseeable_rows_left_out_of_fitting": {k: int((splits.masks[k] & left_out).sum())
                                                             for k in ("train", "validation")}},
        "fit": model.fit_report_,
        "threshold": float(model.threshold_), "threshold_rule": model.threshold_rule_,
        "validation": validation, "test": test,
        "timings": {"fit_s": fit_s, "predict_test_s": test["predict_seconds"], "shap_per_row_s": shap_per_row},
        "feature_report": data.feature_report,
    }
    return model, report


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """The few figures a pipeline summary line needs."""
    t = report["test"]
    f = t.get("foreseeable") or {}
    return {"pr_auc": t["pr_auc"], "positive_rate": t["positive_rate"],
            "recall_at_precision_0.9": t.get("recall_at_precision_0.9"),
            "precision": t["precision"], "recall": t["recall"], "threshold": report["threshold"],
            "median_lead_minutes": t["lead"]["median_lead_minutes"], "failures": t["lead"]["failures"],
            "caught": t["lead"]["caught"],
            "foreseeable_pr_auc": f.get("pr_auc"), "foreseeable_failures": f.get("lead", {}).get("failures"),
            "foreseeable_caught": f.get("lead", {}).get("caught")}


def register_failure_predictor(settings: Any, model, report: dict[str, Any], data, report_md: str) -> dict:
    """A ``failure-predictor`` run with the report, registered as ``cerebro-failure-predictor``."""
    import mlflow

    from configs.settings import redacted_dump
    from training.failure.bundle import failure_bundle, request_example
    from training.kinds import FAILURE
    from training.tracking import log_bundle, use_experiment

    use_experiment(settings)
    bundle = failure_bundle(model, data.data_version)
    example = request_example(data.frame, model.features_, rows=5)
    metrics = {}
    for split in ("validation", "test"):
        r = report[split]
        for key in ("pr_auc", "positive_rate", "recall_at_precision_0.9", "precision", "recall"):
            if r.get(key) is not None:
                metrics[f"{split}_{key.replace('.', '_')}"] = r[key]
        lead = r.get("lead", {})
        if lead.get("median_lead_minutes") is not None:
            metrics[f"{split}_median_lead_minutes"] = lead["median_lead_minutes"]
    metrics["threshold"] = report["threshold"]
    params = {k: v for k, v in model.get_params(deep=False).items() if k != "features"}
    params.update({"n_features": len(model.features_), "failure_at": report["failure_at"],
                   "step_minutes": report["step_minutes"]})
    with mlflow.start_run(run_name="failure-predictor") as run:
        mlflow.log_dict(redacted_dump(settings), "config.json")  # never a password or token in MLflow
        mlflow.log_dict({k: v for k, v in report.items() if k != "feature_report"}, "report.json")
        mlflow.log_text(report_md, "report.md")
        per_kind = report["test"].get("per_kind")
        if per_kind:
            mlflow.log_table(pd.DataFrame(per_kind), "per_kind_test.json")
        test = report["test"]
        pr_auc = "n/a" if test.get("pr_auc") is None else f"{test['pr_auc']:.3f}"
        description = (f"XGBoost failure predictor over {len(model.features_)} features: the probability "
                       f"that a service fails within the horizon. Data {data.data_version}. "
                       f"Test PR-AUC {pr_auc} (positive rate {test.get('positive_rate') or 0:.3f}).")
        version = log_bundle(bundle, FAILURE.registered_name(), example, params, metrics,
                             {"cerebro.stage": "failure", "cerebro.data_version": data.data_version,
                              "cerebro.kind": FAILURE.name}, description=description,
                             model_description=("Failure predictor, trained by the pipeline's failure stage; "
                                                "@champion is what /v1/failure serves, moved by the promotion gate "
                                                "on PR-AUC (docs/lifecycle.md)."))
    return {"run_id": run.info.run_id, "version": version}
