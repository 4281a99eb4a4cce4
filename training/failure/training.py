"""Train and measure the failure predictor: a time-ordered split, fit on the past, measure on the future.

    data = failure_training_data(settings, dataset, start, end)
    model, report = train_failure_predictor(data, settings)
    markdown = report_markdown(report)          # training.failure.report

Split: the window's distinct minutes in time order, train / validation / test = 50 / 20 / 30 % (the zoo's
shares). The classifier learns on train, the calibration and the alarm threshold come from validation, the test
period is only measured. Two kinds of rows are left out of fitting:

* rows inside an ongoing incident of their service (see ``labels.py``: they are neither "a failure is coming"
  nor "all is well");
* the last H minutes of train and of validation (a *purge*): their labels look up to H minutes ahead, into the
  next period, so keeping them would let the next period's incidents shape this period's labels.

The test period keeps every row that is not ongoing.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from training.failure.data import FailureData
from training.failure.evaluation import lead_summary, lead_times, per_kind, point_metrics
from training.failure.labels import KIND, LABEL, ONGOING, TTF
from training.failure.model import FailurePredictor

SPLITS = ("train", "validation", "test")
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


def evaluate_period(model: FailurePredictor, data: FailureData, mask: np.ndarray,
                    period: tuple[pd.Timestamp, pd.Timestamp]) -> dict[str, Any]:
    """Every figure of ``evaluation.py`` on the rows of ``mask`` (a period's rows, ongoing ones already out)."""
    rows = data.frame[mask]
    y = rows[LABEL].to_numpy()
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
    ttf_true = rows[TTF].to_numpy()
    caught_pos = (y == 1) & alarm
    ttf_err = (np.abs(model.predict_time_to_failure(rows[caught_pos]) - ttf_true[caught_pos])
               if caught_pos.any() else np.array([]))
    out.update({
        "rows": len(rows), "failure_rows": int(y.sum()),
        "lead": lead_summary(leads),
        "misses": leads.loc[~leads["caught"], ["incident_id", "service", "kind", "start"]]
        .assign(start=lambda f: f["start"].astype(str)).to_dict("records"),
        "per_kind": per_kind(leads, y, proba, rows[KIND].to_numpy()),
        "ttf_mae_minutes": float(ttf_err.mean()) if len(ttf_err) else None,
        "predict_seconds": predict_s,
    })
    return out


def train_failure_predictor(data: FailureData, settings=None, fractions: tuple[float, float, float] | None = None,
                            **params: Any) -> tuple[FailurePredictor, dict[str, Any]]:
    """Fit on train, calibrate and pick the threshold on validation, measure on test; returns (model, report).

    ``params`` go to :class:`FailurePredictor` (over ``settings.failure`` where that exists); the random seed
    defaults to ``settings.simulator.seed``."""
    options = _failure_settings(settings)
    fractions = tuple(fractions or options.pop("split", None) or DEFAULT_FRACTIONS)
    options = {k: v for k, v in options.items() if k in FailurePredictor().get_params()}
    if settings is not None and "random_state" not in params:
        options["random_state"] = int(settings.simulator.seed)
    options.update(params)
    options.update(horizon_minutes=data.horizon_minutes, features=list(data.features))
    splits = split_by_time(data.frame, data.horizon_minutes, fractions)
    train, val = data.frame[splits.masks["train"]], data.frame[splits.masks["validation"]]

    model = FailurePredictor(**options)
    t0 = time.perf_counter()
    model.fit(train, train[LABEL].to_numpy(), ttf=train[TTF].to_numpy(), X_val=val, y_val=val[LABEL].to_numpy())
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
        "features": list(data.features),
        "data": data.summary(),
        "split": {"fractions": list(fractions),
                  "bounds": {k: [a.isoformat(), b.isoformat()] for k, (a, b) in splits.bounds.items()},
                  "rows": {k: int(m.sum()) for k, m in splits.masks.items()},
                  "failure_rows": {k: int(data.frame[LABEL].to_numpy()[m].sum()) for k, m in splits.masks.items()},
                  "purged_rows": splits.purged, "ongoing_rows_left_out": splits.ongoing},
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
    return {"pr_auc": t["pr_auc"], "positive_rate": t["positive_rate"],
            "recall_at_precision_0.9": t.get("recall_at_precision_0.9"),
            "precision": t["precision"], "recall": t["recall"], "threshold": report["threshold"],
            "median_lead_minutes": t["lead"]["median_lead_minutes"], "failures": t["lead"]["failures"],
            "caught": t["lead"]["caught"]}
