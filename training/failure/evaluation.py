"""How good the failure predictor is on a period it never saw.

Point-wise, over the period's rows (rows inside an ongoing incident left out, as in training):

* ``pr_auc``: average precision of the probabilities (threshold-free). A predictor that knows nothing scores
  the positive rate (``positive_rate``), so read it against that;
* ``recall_at_precision``: the most recall any threshold reaches with precision >= 0.9 on the period itself
  (an upper bound: the threshold is picked with the answers in hand), from the PR curve;
* ``precision`` / ``recall`` / ``f1`` at the stored threshold (chosen on validation): what an operator gets.

Per failure (one service in one incident, starting inside the period with a whole horizon of the period's
rows before it): the **lead time** is how long before the start the alarm first rose in the H minutes before
it (alarms during an earlier incident of the service do not count). A failure without such an alarm is a
**miss**: counted, listed, and left out of the median lead time, which is over caught failures only. Each
failure carries its **precursor** (minutes from the incident's start, the fault's onset, to the failure: 0 for
the abrupt kinds, which fail as they begin). Only a failure with a precursor can be foreseen from the service's
own metrics, and its lead time cannot exceed the precursor: training reports the figures over every failure
and over the *foreseeable* ones (precursor > 0) apart, and per kind.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from training.failure.labels import failures_by_service

TARGET_PRECISION = 0.9
# The quality target: PR-AUC on failures with a precursor (resource exhaustion: the fault is under way in the
# service's own metrics before it gives out). Failures that strike at onset are detection's job; the report shows
# both figures.
FORESEEABLE_PR_AUC_TARGET = 0.8


def recall_at_precision(y: np.ndarray, proba: np.ndarray, precision: float = TARGET_PRECISION) -> float:
    """The highest recall on the PR curve among points with precision >= ``precision`` (0 if there is none)."""
    from sklearn.metrics import precision_recall_curve

    y = np.asarray(y)
    if y.sum() == 0:
        return float("nan")
    p, r, _ = precision_recall_curve(y, proba)
    ok = p >= precision
    return float(r[ok].max()) if ok.any() else 0.0


def point_metrics(y: np.ndarray, proba: np.ndarray, threshold: float,
                  target_precision: float = TARGET_PRECISION) -> dict:
    from sklearn.metrics import average_precision_score

    y = np.asarray(y).astype(int)
    proba = np.asarray(proba, dtype=float)
    alarm = proba >= threshold
    tp = int((alarm & (y == 1)).sum())
    fp = int((alarm & (y == 0)).sum())
    fn = int((~alarm & (y == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    has_both = 0 < y.sum() < len(y)
    return {
        "pr_auc": float(average_precision_score(y, proba)) if has_both else float("nan"),
        "positive_rate": float(y.mean()) if len(y) else float("nan"),
        f"recall_at_precision_{target_precision:g}": recall_at_precision(y, proba, target_precision)
        if has_both else float("nan"),
        "precision": precision, "recall": recall, "f1": f1,
        "alarms": int(alarm.sum()), "true_alarms": tp, "false_alarms": fp,
    }


def lead_times(services: np.ndarray, times: pd.DatetimeIndex, alarm: np.ndarray, incidents: pd.DataFrame,
               horizon_minutes: float, ongoing: np.ndarray | None = None,
               period: tuple[pd.Timestamp, pd.Timestamp] | None = None, at: str = "start") -> pd.DataFrame:
    """One row per failure in the period: incident_id, service, kind, start, precursor_minutes, first_alarm,
    lead_minutes, caught.

    ``period`` defaults to the rows' time span; a failure counts when its whole horizon before the start lies
    inside it (so every counted failure had the same chance to be foreseen).
    """
    services = np.asarray(services).astype(str)
    times = pd.DatetimeIndex(times)
    alarm = np.asarray(alarm, dtype=bool)
    usable = alarm if ongoing is None else alarm & ~np.asarray(ongoing, dtype=bool)
    lo, hi = period if period is not None else (times.min(), times.max())
    horizon = pd.Timedelta(minutes=horizon_minutes)
    table = failures_by_service(incidents, at) if len(incidents) else pd.DataFrame(
        columns=["service", "incident_id", "kind", "start", "end", "began"])
    table = table[(table["start"] - horizon >= lo) & (table["start"] <= hi)]
    table = table[table["service"].isin(set(services))]
    rows = []
    by_service = {s: np.flatnonzero(services == s) for s in table["service"].unique()}
    for f in table.itertuples(index=False):
        idx = by_service[f.service]
        t = times[idx]
        window = idx[np.asarray((t >= f.start - horizon) & (t < f.start))]
        hits = window[usable[window]]
        first = times[hits].min() if len(hits) else pd.NaT
        lead = (f.start - first).total_seconds() / 60 if len(hits) else np.nan
        rows.append({"incident_id": f.incident_id, "service": f.service, "kind": f.kind, "start": f.start,
                     "precursor_minutes": max(0.0, (f.start - f.began).total_seconds() / 60),
                     "first_alarm": first, "lead_minutes": lead, "caught": bool(len(hits))})
    return pd.DataFrame(rows, columns=["incident_id", "service", "kind", "start", "precursor_minutes", "first_alarm",
                                       "lead_minutes", "caught"])


def lead_summary(leads: pd.DataFrame) -> dict:
    caught = leads[leads["caught"]]
    return {
        "failures": len(leads),
        "caught": len(caught),
        "missed": int(len(leads) - len(caught)),
        "failure_recall": float(len(caught) / len(leads)) if len(leads) else float("nan"),
        "median_lead_minutes": float(caught["lead_minutes"].median()) if len(caught) else None,
    }


def per_kind(leads: pd.DataFrame, y: np.ndarray, proba: np.ndarray, kinds: np.ndarray) -> list[dict]:
    """Per fault kind: failures, how many of them had a precursor, caught, recall of failures, median lead, the
    median precursor, and PR-AUC of that kind's positive rows against every negative row (how well the score
    ranks that kind's run-up above normal rows)."""
    from sklearn.metrics import average_precision_score

    y = np.asarray(y).astype(int)
    kinds = np.asarray(kinds, dtype=object)
    out = []
    for kind in sorted(set(leads["kind"]) | {k for k in kinds[y == 1] if k is not None}):
        sub = leads[leads["kind"] == kind]
        s = lead_summary(sub)
        sel = (y == 0) | (kinds == kind)
        has = 0 < y[sel].sum() < sel.sum()
        precursor = sub["precursor_minutes"] if "precursor_minutes" in sub else pd.Series(dtype=float)
        out.append({"kind": kind, "failures": s["failures"], "with_precursor": int((precursor > 0).sum()),
                    "caught": s["caught"], "recall": s["failure_recall"],
                    "median_lead_minutes": s["median_lead_minutes"],
                    "median_precursor_minutes": float(precursor.median()) if len(precursor) else None,
                    "pr_auc": float(average_precision_score(y[sel], proba[sel])) if has else None})
    return out
