"""Drift checks with Evidently: has the recent window left what the models were trained on?

Three questions, each answered on the lake's telemetry:

* **data drift**, per input of the live detector, as the detector reads it (levels against their 24-hour
  baseline, rolling statistics, standardised per service: ``DetectorRunner.model_inputs``); per raw metric,
  pooled over services, when no detector is live or ``drift.compare`` is ``metrics``. A column drifts when its
  two-sample Kolmogorov-Smirnov p-value is below ``ks_pvalue`` *and* its Population Stability Index is above
  ``psi``, both computed by Evidently's ``ValueDrift``: KS alone flags every trivial difference once there are
  thousands of rows, PSI alone ignores sample size; together they say "different, and by a material amount".
  Inputs are grouped by the metric they come from; a metric drifts when at least half of its inputs do, and
  the window drifts when at least ``drift_share`` of the metrics do (any single input would be too eager).

  The reference (``drift.reference``) is seasonal by default: the current window's clock hours on the same
  weekdays, one week earlier (or in each of the ``reference_days / 7`` weeks before, those the lake holds), so
  the daily and weekly cycles cancel. The week before the current day held a weekend and every hour of the
  day against one weekday: on a steady fleet, CPU, memory and traffic inputs read KS p ~ 0 and PSI > 0.2 and
  the check asked for retraining. ``preceding`` (the ``reference_days`` just before) is what the check falls
  back to, with a note, when the lake holds no week before the current window.

  Why the inputs decide: memory creeps and disks grow between deploys, so raw levels leave last week's range
  on a steady fleet, yet the detectors read them against the last day and see nothing new; retraining would
  change nothing. The raw metrics are still compared and reported, for the operator, without acting on them.

  Both windows are clipped to the reference's ``clip`` and ``1 - clip`` quantiles first. Evidently's PSI bins
  the combined range into equal widths, so one incident's spike, hundreds of deviations out, squeezes all
  ordinary values into one bin and hides any shift (a doubled latency read PSI 0.02); clipped, values past
  the reference's range gather in the edge bins, where a shift shows.
* **prediction drift**: the live detector's calibrated scores on both windows, PSI between them, and the
  alarm rate (the share of rows over its threshold).
* **performance drift**, only where labels have arrived (incidents recorded for the current window):
  event-wise F1 on the current window against the F1 the model was registered with.

``decide`` turns the figures into one action: ``fallback`` when the champion's quality degraded (a model
that misses incidents is worse than a simpler one), ``retrain`` when data or predictions drifted, else
``none``, with the reasons in words. Nothing here imports Prefect: ``serving.drift_check`` runs the check,
``flows/drift.py`` runs it as a Prefect flow.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass
class DriftResult:
    metrics: dict[str, dict]  # column compared -> {"ks_pvalue", "psi", "drifted"}
    share_drifted: float  # of the groups (metrics) compared
    data_drift: bool
    reference_rows: int
    current_rows: int
    compared: str = "raw metrics"  # or "inputs of <model> v<version>"
    groups: dict[str, dict] = field(default_factory=dict)  # metric -> {"inputs": n, "drifted": [columns], "drift": bool}
    raw: dict[str, dict] = field(default_factory=dict)  # raw metrics' figures when the inputs decided (reported only)
    prediction: dict = field(default_factory=dict)  # {"psi", "alarm_rate_reference", "alarm_rate_current", "drifted"}
    performance: dict = field(default_factory=dict)  # {"f1", "registered_f1", "degraded", "incidents"}
    html: str | None = None
    # columns left out, with why: the same single value (or nothing) in both windows says nothing about drift
    excluded: dict[str, str] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)  # ks_pvalue, psi, drift_share: what "drifted" means
    reference: str = ""  # the reference in words ("the same hours of the week one week earlier")
    reference_note: str = ""  # why the seasonal reference was not possible, when it was not

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Decision:
    action: str  # "none" | "retrain" | "fallback"
    reasons: list[str]


WEEK = pd.Timedelta(days=7)


@dataclass
class Windows:
    """The current window ``[start, end]`` and the reference spans ``[start, end)`` compared with it."""
    current: tuple[pd.Timestamp, pd.Timestamp]
    reference: list[tuple[pd.Timestamp, pd.Timestamp]]
    kind: str  # "seasonal" | "preceding"
    note: str = ""  # why a seasonal reference was not possible, when it was asked for

    @property
    def start(self) -> pd.Timestamp:
        """The oldest row either window holds."""
        return min(s for s, _ in self.reference)

    def masks(self, timestamps: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """Which rows are in the reference and which in the current window."""
        t = pd.to_datetime(timestamps, utc=True)
        reference = np.zeros(len(t), dtype=bool)
        for s, e in self.reference:
            reference |= ((t >= s) & (t < e)).to_numpy()
        return reference, ((t >= self.current[0]) & (t <= self.current[1])).to_numpy()

    def describe(self) -> str:
        """The reference in words, for the report and the summary."""
        if self.kind == "preceding":
            days = (self.current[0] - self.start) / pd.Timedelta(days=1)
            return f"the {days:g} days before the current window"
        weeks = len(self.reference)
        return ("the same hours of the week one week earlier" if weeks == 1 else
                f"the same hours of the week in each of the {weeks} weeks before")


def plan_windows(end: pd.Timestamp, reference_days: float, current_hours: float, reference: str = "seasonal",
                 lake_start: pd.Timestamp | None = None) -> Windows:
    """The current window (the last ``current_hours`` before ``end``) and its reference.

    ``seasonal``: the same clock hours of the same weekdays in each of the ``reference_days / 7`` weeks before
    (rounded, at least one) that the lake holds whole (from ``lake_start``), so the daily and weekly cycles
    cancel: a week of all hours held against one weekday read as drift on a steady fleet. ``preceding``: the
    ``reference_days`` just before the current window; a seasonal reference falls back to it, with a note, when
    the lake holds no week before the current window or that window is a week or longer."""
    cur_start = end - pd.Timedelta(hours=current_hours)
    preceding = [(cur_start - pd.Timedelta(days=reference_days), cur_start)]
    if reference == "preceding":
        return Windows((cur_start, end), preceding, "preceding")
    if reference != "seasonal":
        raise ValueError(f"drift.reference must be seasonal or preceding, not {reference!r}")
    weeks = max(1, round(reference_days / 7))
    if pd.Timedelta(hours=current_hours) >= WEEK:
        why = f"a current window of {current_hours:g} hours is a week or longer: it has no same hours a week earlier"
    else:
        spans = [(cur_start - k * WEEK, end - k * WEEK) for k in range(1, weeks + 1)]
        spans = [(s, e) for s, e in spans if lake_start is None or s >= lake_start]
        if spans:
            return Windows((cur_start, end), spans, "seasonal")
        held = "nothing" if lake_start is None or pd.isna(lake_start) else f"rows from {lake_start:%Y-%m-%d %H:%M} on"
        why = (f"the lake holds no week before the current window (it needs rows from "
               f"{cur_start - WEEK:%Y-%m-%d %H:%M}; it has {held})")
    note = (f"Seasonal reference not possible: {why}. Compared with the {reference_days:g} days before instead, "
            "where the daily and weekly cycles can read as drift.")
    return Windows((cur_start, end), preceding, "preceding", note)


def split_windows(telemetry: pd.DataFrame, end: pd.Timestamp, reference_days: float,
                  current_hours: float, reference: str = "preceding") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The reference and current windows of ``plan_windows``, cut from long telemetry (its oldest row is taken
    as the lake's)."""
    return cut_windows(telemetry, plan_windows(end, reference_days, current_hours, reference,
                                               telemetry["timestamp"].min() if len(telemetry) else None))


def cut_windows(telemetry: pd.DataFrame, windows: Windows) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of both windows; a clear error when either is empty."""
    ref, cur = windows.masks(telemetry["timestamp"])
    reference, current = telemetry[ref], telemetry[cur]
    if reference.empty or current.empty:
        t = telemetry["timestamp"]
        have = f"{t.min():%Y-%m-%d %H:%M} to {t.max():%Y-%m-%d %H:%M}" if len(t) else "nothing"
        hours = (windows.current[1] - windows.current[0]) / pd.Timedelta(hours=1)
        raise ValueError(f"drift check needs telemetry from {windows.start:%Y-%m-%d %H:%M} to "
                         f"{windows.current[1]:%Y-%m-%d %H:%M} ({windows.describe()}, then {hours:g} hours); "
                         f"the lake has {have}")
    return reference, current


def wide(telemetry: pd.DataFrame) -> pd.DataFrame:
    """One row per (service, minute), one column per metric."""
    return telemetry.pivot_table(index=["service", "timestamp"], columns="metric", values="value",
                                 observed=True).reset_index()


def metric_of(column: str) -> str:
    """The metric a feature column comes from: ``cpu_pct__p95_15m`` -> ``cpu_pct``; context such as ``hour``
    or ``minutes_since_deploy`` is its own group."""
    return column.split("__")[0]


def clip_to_reference(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str],
                      q: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both windows clipped, column by column, to the reference's ``q`` and ``1 - q`` quantiles (NaN kept)."""
    ref = reference[columns].astype(float)
    cur = current[columns].astype(float)
    if q <= 0:
        return ref, cur
    lo, hi = ref.quantile(q), ref.quantile(1 - q)
    return ref.clip(lo, hi, axis=1), cur.clip(lo, hi, axis=1)


def _evidently():
    """The ``evidently`` package and its ``ValueDrift``, imported with deprecation notices off: importing it
    raises three about its own dependencies (its legacy test helpers touch ``numpy.core``; Litestar's renamed
    helpers). Python hides those by default, but pmdarima's deprecation decorator, which the forecasting
    stage runs first, puts a "default" filter for every DeprecationWarning in front of the process's
    filters, and Prefect then printed the three into each pipeline run's log as warnings."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import evidently
        from evidently.metrics import ValueDrift
    return evidently, ValueDrift


def data_drift(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], ks_pvalue: float = 0.05,
               psi: float = 0.2, drift_share: float = 0.3, html_path: Path | None = None, clip: float = 0.005,
               group=metric_of, compared: str = "raw metrics") -> DriftResult:
    """Per-column KS and PSI (Evidently) between two wide frames, the share of drifted groups (``group`` maps
    a column to its metric), and an HTML report where ``html_path`` is given."""
    evidently, ValueDrift = _evidently()
    DataDefinition, Dataset, Report = evidently.DataDefinition, evidently.Dataset, evidently.Report

    columns = [c for c in columns if c in reference.columns and c in current.columns]
    if not columns:
        raise ValueError("data_drift: the two windows share none of the columns to compare")
    ref, cur = clip_to_reference(reference, current, columns, clip)
    excluded = {c: _flat(ref[c], cur[c]) for c in columns}
    excluded = {c: why for c, why in excluded.items() if why}
    columns = [c for c in columns if c not in excluded]
    if not columns:
        raise ValueError(f"data_drift: every column is constant in both windows ({', '.join(sorted(excluded))})")
    ref, cur = ref[columns], cur[columns]
    definition = DataDefinition(numerical_columns=columns)
    ref = Dataset.from_pandas(ref, data_definition=definition)
    cur = Dataset.from_pandas(cur, data_definition=definition)
    # ValueDrift per column and method; no DataDriftPreset, which would compute every column's drift a third
    # time (with its own method) and double the run time on a detector's ~80 inputs.
    tests = [ValueDrift(column=c, method="ks", threshold=ks_pvalue) for c in columns]
    tests += [ValueDrift(column=c, method="psi", threshold=psi) for c in columns]
    snapshot = Report(tests).run(current_data=cur, reference_data=ref)
    values: dict[str, dict] = {c: {} for c in columns}
    for m in snapshot.dict()["metrics"]:
        cfg = m["config"]
        if str(cfg.get("type", "")).endswith("ValueDrift") and cfg.get("column") in values:
            key = "ks_pvalue" if cfg.get("method") == "ks" else "psi" if cfg.get("method") == "psi" else None
            if key:
                values[cfg["column"]][key] = float(m["value"])
    groups: dict[str, dict] = {}
    for c, v in values.items():
        v["drifted"] = bool(v.get("ks_pvalue", 1.0) < ks_pvalue and v.get("psi", 0.0) > psi)
        g = groups.setdefault(group(c), {"inputs": 0, "drifted": []})
        g["inputs"] += 1
        if v["drifted"]:
            g["drifted"].append(c)
    for g in groups.values():
        g["drift"] = bool(g["drifted"]) and 2 * len(g["drifted"]) >= g["inputs"]
    share = float(np.mean([g["drift"] for g in groups.values()]))
    html = None
    if html_path is not None:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(html_path))
        html = str(html_path)
    return DriftResult(metrics=values, share_drifted=share, data_drift=share >= drift_share,
                       reference_rows=len(reference), current_rows=len(current), html=html, compared=compared,
                       groups=groups, excluded=excluded,
                       thresholds={"ks_pvalue": ks_pvalue, "psi": psi, "drift_share": drift_share})


def _flat(reference: pd.Series, current: pd.Series) -> str | None:
    """Why a column cannot show drift, or None: no value in either window, or one and the same value in both
    (KS would read p = 1 and PSI 0 whatever happened)."""
    ref, cur = reference.dropna(), current.dropna()
    if ref.empty or cur.empty:
        return "no value in " + ("either window" if ref.empty and cur.empty else
                                 "the reference window" if ref.empty else "the current window")
    values = set(ref.unique()) | set(cur.unique())
    if len(values) == 1:
        return f"the same value ({next(iter(values)):.3g}) on every row of both windows"
    return None


def prediction_drift(reference_scores: np.ndarray, current_scores: np.ndarray, reference_alarms: np.ndarray,
                     current_alarms: np.ndarray, psi: float = 0.2) -> dict:
    """PSI between the live model's scores on the two windows (Evidently), and its alarm rates (0/1 arrays)."""
    evidently, ValueDrift = _evidently()
    Dataset, Report = evidently.Dataset, evidently.Report

    ref = np.asarray(reference_scores, dtype=float)
    cur = np.asarray(current_scores, dtype=float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if not len(ref) or not len(cur):
        raise ValueError("prediction_drift: the live model gave no finite score in one of the windows")
    snap = Report([ValueDrift(column="score", method="psi", threshold=psi)]).run(
        current_data=Dataset.from_pandas(pd.DataFrame({"score": cur})),
        reference_data=Dataset.from_pandas(pd.DataFrame({"score": ref})))
    value = float(snap.dict()["metrics"][0]["value"])
    return {"psi": value, "alarm_rate_reference": float(np.mean(reference_alarms)),
            "alarm_rate_current": float(np.mean(current_alarms)), "drifted": bool(value > psi)}


def performance_drift(current_f1: float, registered_f1: float | None, max_drop: float, incidents: int) -> dict:
    """Whether F1 on the current window fell more than ``max_drop`` below the F1 the model was registered with."""
    degraded = registered_f1 is not None and incidents > 0 and current_f1 < registered_f1 - max_drop
    return {"f1": current_f1, "registered_f1": registered_f1, "incidents": incidents, "degraded": bool(degraded)}


def decide(result: DriftResult) -> Decision:
    reasons = []
    if result.performance.get("degraded"):
        p = result.performance
        reasons.append(f"the live model's F1 on {p['incidents']} recent incident(s) is {p['f1']:.3f}, down from "
                       f"{p['registered_f1']:.3f} when it was registered")
        return Decision("fallback", reasons)
    if result.data_drift:
        drifted = {name: g for name, g in result.groups.items() if g["drift"]}
        words = []
        for name, g in drifted.items():
            worst = max(g["drifted"], key=lambda c: result.metrics[c]["psi"])
            v = result.metrics[worst]
            detail = f"KS p={v['ks_pvalue']:.2g}, PSI {v['psi']:.2f}"
            words.append(f"{name} ({detail})" if g["inputs"] == 1 else
                         f"{name} ({len(g['drifted'])} of {g['inputs']} inputs, most {worst}: {detail})")
        reasons.append(f"{len(drifted)} of {len(result.groups)} metrics drifted in the {result.compared}: "
                       f"{', '.join(words)}")
    if result.prediction.get("drifted"):
        p = result.prediction
        reasons.append(f"the live model's scores drifted (PSI {p['psi']:.2f}; alarm rate "
                       f"{p['alarm_rate_reference']:.2%} -> {p['alarm_rate_current']:.2%})")
    return Decision("retrain" if reasons else "none", reasons or ["no drift past the configured thresholds"])


def report_markdown(result: DriftResult, decision: Decision, window: dict) -> str:
    """The drift report for people: the verdict, what "drifted" means and how the rows add up to it, then the
    per-metric and per-input tables. Every "drifted" below is the one test of ``data_drift``."""
    t = result.thresholds or {"ks_pvalue": 0.05, "psi": 0.2, "drift_share": 0.3}
    inputs_drifted = sum(v["drifted"] for v in result.metrics.values())
    metrics_drifted = [m for m, g in result.groups.items() if g["drift"]]
    what = "input" if result.compared.startswith("inputs") else "column"
    verdict = "the data drifted" if result.data_drift else "the data did not drift"
    lines = ["# Drift check", "",
             f"Reference {window['reference']}; current {window['current']} (UTC). Compared: {result.compared}.", "",
             f"**Verdict: {verdict}. Action: {decision.action}.**", "", *[f"- {r}" for r in decision.reasons], "",
             "## How it is decided", "",
             (f"- An {what} drifted when its Kolmogorov-Smirnov p-value is below {t['ks_pvalue']:g} **and** its "
              f"PSI is above {t['psi']:g} (different, and by a material amount). Here {inputs_drifted} of "
              f"{len(result.metrics)} {what}s drifted."),
             (f"- A metric drifted when at least half of its {what}s did: {len(metrics_drifted)} of "
              f"{len(result.groups)} ({result.share_drifted:.0%}){': ' + ', '.join(metrics_drifted) if metrics_drifted else ''}."),
             (f"- The data drifted when at least {t['drift_share']:.0%} of the metrics did."),
             (f"- The reference is {result.reference}: " + (
                 "the daily and weekly cycles cancel, so a steady fleet does not read as drifted because the "
                 "current day is a weekday and the reference holds a weekend and every hour of the day."
                 if "same hours" in result.reference else
                 "it holds other hours and weekdays than the current window, so the daily and weekly cycles "
                 "can move a steady metric's inputs.") if result.reference else
              "- A few drifted inputs alone leave the verdict at no drift.")]
    if result.reference_note:
        lines.append(f"- {result.reference_note}")
    if result.excluded:
        lines += [(f"- Not compared ({len(result.excluded)}): " + "; ".join(
            f"{c}: {why}" for c, why in sorted(result.excluded.items())) + ". Such a column reads KS p = 1 and "
            "PSI 0 whatever happened; week-over-week inputs have no value until the lake holds a week before "
            "the reference window.")]
    lines += ["", "## Per metric", "", "| metric | inputs | inputs drifted | metric drifted |", "|---|---:|---:|---|"]
    for m, g in result.groups.items():
        lines.append(f"| {m} | {g['inputs']} | {len(g['drifted'])} | {'yes' if g['drift'] else 'no'} |")
    lines += ["", f"## Per {what}", "", *_table(result.metrics, what)]
    if result.raw:
        held = [m for m, v in result.raw.items() if v["drifted"]]
        lines += ["", "## Raw metrics, pooled over services", "",
                  ("Reported, not acted on: the detectors read levels against the last day, so raw levels that "
                   f"leave last week's range change nothing they see. Drifted by the same test: {', '.join(held) or 'none'}."),
                  "", *_table(result.raw, "metric")]
    if result.prediction:
        p = result.prediction
        lines += ["", (f"Prediction drift: PSI {p['psi']:.3f} ({'drifted' if p['drifted'] else 'no drift'}); alarm "
                      f"rate {p['alarm_rate_reference']:.2%} -> {p['alarm_rate_current']:.2%}.")]
    if result.performance:
        p = result.performance
        reg = "not recorded" if p["registered_f1"] is None else f"{p['registered_f1']:.3f}"
        lines += ["", f"Performance: F1 {p['f1']:.3f} on {p['incidents']} incident(s); registered with {reg}."]
    return "\n".join(lines)


def _table(values: dict[str, dict], what: str) -> list[str]:
    lines = [f"| {what} | KS p-value | PSI | drifted |", "|---|---:|---:|---|"]
    for c, v in values.items():
        ks = "" if v.get("ks_pvalue") is None else f"{v['ks_pvalue']:.2g}"
        psi = "" if v.get("psi") is None else f"{v['psi']:.3f}"
        lines.append(f"| {c} | {ks} | {psi} | {'yes' if v['drifted'] else 'no'} |")
    return lines
