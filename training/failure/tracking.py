"""Log and register the failure predictor in MLflow, through the project's one pyfunc adapter."""
from __future__ import annotations

from typing import Any


def register_failure_predictor(settings: Any, model, report: dict[str, Any], data, report_md: str) -> dict:
    """A ``failure-predictor`` run with the report, registered as ``cerebro-failure-predictor``."""
    import mlflow
    import pandas as pd

    from training.failure.serving import failure_bundle, request_example
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
        mlflow.log_dict(settings.model_dump(mode="json"), "config.json")
        mlflow.log_dict({k: v for k, v in report.items() if k != "feature_report"}, "report.json")
        mlflow.log_text(report_md, "report.md")
        per_kind = report["test"].get("per_kind")
        if per_kind:
            mlflow.log_table(pd.DataFrame(per_kind), "per_kind_test.json")
        version = log_bundle(bundle, "cerebro-failure-predictor", example, params, metrics,
                             {"cerebro.stage": "failure", "cerebro.data_version": data.data_version,
                              "cerebro.kind": "failure"})
    return {"run_id": run.info.run_id, "version": version}
