"""The failure predictor's report as markdown (a Prefect artifact, an MLflow text, the CLI)."""
from __future__ import annotations

import math
from typing import Any


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _table(rows: list[dict], cols: list[str]) -> list[str]:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return out


def report_markdown(report: dict[str, Any]) -> str:
    h = report["horizon_minutes"]
    test, val = report["test"], report["validation"]
    bounds = {k: f"{a[:16]} to {b[:16]}" for k, (a, b) in report["split"]["bounds"].items()}
    lead = test["lead"]
    r_at_p = "recall_at_precision_0.9"
    at = report.get("failure_at", "start")
    fails = ("an incident of its service (root cause or affected) starts" if at == "start" else
             f"an incident whose root cause it is reaches its failure moment (`{at}`)")
    lines = [
        f"# Failure prediction: will a service fail within {h:g} minutes?", "",
        (f"Data `{report['data_version'] or report['dataset'] or 'in memory'}`; one row per service every "
         f"{report['step_minutes']} minutes; train {bounds['train']}, validation {bounds['validation']}, test "
         f"{bounds['test']} (UTC). A row is positive when {fails} in the next {h:g} minutes; "
         "rows inside an incident are left out "
         f"({report['split']['ongoing_rows_left_out']} rows), and so are the last {h:g} minutes of train and "
         "validation, whose labels would look into the next period. XGBoost behind SMOTE (training rows only), "
         f"on the {report['fit'].get('inputs', 'raw')} view of the features, "
         f"{report['fit']['calibration']} calibration and the alarm threshold from validation "
         f"({report['threshold']:.3f}: {report['threshold_rule']}); the test period is only measured."), "",
    ]
    target = report.get("target", "all")
    if target == "foreseeable":
        left = report["split"].get("unforeseeable_rows_left_out_of_fitting", {})
        lines += [(f"Fitted on the **foreseeable** failures: positive rows whose fault was already under way (a "
                   f"precursor in the service's own metrics). The other positive rows (abrupt kinds, and the rows "
                   f"before a creeping fault began: {left.get('train', 0)} in train, {left.get('validation', 0)} in "
                   "validation) look like normal rows and were left out of fitting; the figures below count them."),
                  ""]
    elif report.get("target_note"):
        lines += [f"Fitted on every failure: {report['target_note']}.", ""]
    lines += ["## Test period", ""]
    lines += _table([
        {"measure": "PR-AUC", "value": test["pr_auc"], "note": f"a predictor that knows nothing: "
                                                                f"{test['positive_rate']:.3f} (the positive rate)"},
        {"measure": "recall at precision 0.9", "value": test.get(r_at_p), "note": "best threshold in hindsight"},
        {"measure": "precision at the threshold", "value": test["precision"],
         "note": f"{test['true_alarms']} true, {test['false_alarms']} false alarm rows"
                 + (f" ({test['early_alarms']} of them early: the fault under way, the failure beyond "
                    f"{h:g} min)" if test.get("early_alarms") is not None else "")},
        {"measure": "recall at the threshold", "value": test["recall"], "note": f"{test['failure_rows']} failure rows"},
        {"measure": "failures foreseen", "value": f"{lead['caught']} of {lead['failures']}",
         "note": "an alarm in the horizon before the start"},
        {"measure": "median lead time (min)", "value": lead["median_lead_minutes"], "note": "over foreseen failures"},
        {"measure": "time-to-failure error (min)", "value": test["ttf_mae_minutes"], "note": "mean absolute, alarmed "
                                                                                            "failure rows"},
    ], ["measure", "value", "note"])
    fore = test.get("foreseeable")
    if fore:
        fl = fore["lead"]
        from training.failure.evaluation import FORESEEABLE_PR_AUC_TARGET as target_auc

        met = fore["pr_auc"] is not None and fore["pr_auc"] >= target_auc
        lines += ["", "### Foreseeable failures (test)", "",
                  ("Positive rows under way against every negative row; failures with a precursor. The quality target "
                   f"is PR-AUC at least {target_auc:g} here: **{'met' if met else 'not met'}**. Failures that strike "
                   "at onset (above, in every failure) are detection's job."), ""]
        lines += _table([
            {"measure": "PR-AUC", "value": fore["pr_auc"], "note": f"positive rate {fore['positive_rate']:.4f}"},
            {"measure": "recall at precision 0.9", "value": fore.get(r_at_p), "note": "best threshold in hindsight"},
            {"measure": "recall at the threshold", "value": fore["recall"],
             "note": f"{fore['failure_rows']} foreseeable failure rows"},
            {"measure": "failures foreseen", "value": f"{fl['caught']} of {fl['failures']}",
             "note": "failures with a precursor"},
            {"measure": "median lead time (min)", "value": fl["median_lead_minutes"], "note": "over foreseen failures"},
        ], ["measure", "value", "note"])
    lines += ["", "### Per fault kind (test)", ""]
    lines += _table(test["per_kind"], ["kind", "failures", "with_precursor", "caught", "recall",
                                       "median_lead_minutes", "median_precursor_minutes", "pr_auc"])
    if test["misses"]:
        lines += ["", f"### Missed failures ({len(test['misses'])})", ""]
        lines += _table(test["misses"], ["incident_id", "service", "kind", "start", "precursor_minutes"])
    lines += ["", "## Validation period", ""]
    lines += _table([{"pr_auc": val["pr_auc"], "positive_rate": val["positive_rate"], r_at_p: val.get(r_at_p),
                      "precision": val["precision"], "recall": val["recall"],
                      "failures": val["lead"]["failures"], "caught": val["lead"]["caught"]}],
                    ["pr_auc", "positive_rate", r_at_p, "precision", "recall", "failures", "caught"])
    fit = report["fit"]
    lines += ["", "## Training", "",
              (f"{fit['train_rows']} training rows ({fit['train_failures']} failure rows), "
               f"{fit['validation_rows']} validation rows ({fit['validation_failures']}). SMOTE: {fit['smote']}. "
               f"Fit {report['timings']['fit_s']:.1f} s; SHAP {1000 * report['timings']['shap_per_row_s']:.2f} ms "
               "per row. Contributions are log-odds of the uncalibrated classifier."),
              "", "Features: " + ", ".join(f"`{f}`" for f in report["features"])]
    if report.get("model_features") and report["model_features"] != report["features"]:
        lines += ["", "The trees see: " + ", ".join(f"`{f}`" for f in report["model_features"])]
    return "\n".join(lines)
