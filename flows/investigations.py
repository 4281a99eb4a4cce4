"""The pipeline's ``investigations`` stage: how well root causes are found on the simulated fleet's test period.

Every incident that starts in the test period (the last ``detection.split`` share of the window, which no
model chose anything on) is ranked from the lake's telemetry and graph as an alert would see it: its first
30 minutes against the 300 before, the paged service as the symptom. Quiet windows of the same period
(half an hour from every incident and its baseline) measure specificity. The ranking never reads ``root_cause_service``; the
scoring does (``agents/investigation/evaluation.py``). On a user's lake (not simulated) there is no ground
truth: the stage says so and is skipped.
"""
from __future__ import annotations

import time

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE


def held_out_period(manifest: dict, split) -> tuple:
    import pandas as pd

    start, end = pd.Timestamp(manifest["start"]), pd.Timestamp(manifest["end"])
    return start + (end - start) * float(split[0] + split[1]), end


def evaluate_on_lake(settings, manifest: dict) -> dict:
    """The evaluation (no Prefect): read the test period from the lake, rank, score."""
    import pandas as pd

    from agents.investigation.evaluation import BASELINE_MINUTES, evaluate
    from telemetry import lake
    from telemetry.topology import default_topology

    if not manifest.get("dataset"):
        return {"skipped": "the lake's source is not simulated, so no root cause is known to score against; "
                           "replay a recorded incident with `cerebro rca --incident ID`"}
    incidents = lake.read_table("incidents", settings.lake_dir, dataset=manifest["dataset"])
    start, end = held_out_period(manifest, settings.detection.split)
    graph = lake.read_graph(settings.lake_dir) or default_topology().to_dict()
    edges = [(e["caller"], e["callee"]) for e in graph["edges"]]
    entry = (graph.get("entrypoints") or ["frontend"])[0]
    tel = lake.read_telemetry(settings.lake_dir, start=start - pd.Timedelta(minutes=BASELINE_MINUTES), end=end)
    if incidents.empty:
        incidents = pd.DataFrame(columns=["incident_id", "start", "end", "kind", "affected_services",
                                          "root_cause_service"])
    result = evaluate(tel, incidents, edges, quiet_target=entry, period=(start, end))
    return {**result, "period": [f"{start:%Y-%m-%d %H:%M}", f"{end:%Y-%m-%d %H:%M}"], "dataset": manifest["dataset"]}


def log_rca_run(settings, result: dict) -> str:
    """One ``rca`` MLflow run: AC@1, AC@3, specificity, per kind, and each case's ranking."""
    import mlflow

    from training.tracking import use_experiment

    use_experiment(settings)
    with mlflow.start_run(run_name="rca") as run:
        mlflow.set_tags({"cerebro.stage": "rca", "cerebro.dataset": result["dataset"]})
        mlflow.log_params({"window_minutes": result["window_minutes"], "baseline_minutes": result["baseline_minutes"],
                           "period_start": result["period"][0], "period_end": result["period"][1]})
        figures = {"cases": result["cases"], "quiet_windows": result["quiet_windows"], "seconds": result["seconds"]}
        figures.update({k.replace("@", "_at_"): result[k] for k in ("ac@1", "ac@3", "specificity")
                        if result[k] is not None})
        for kind, row in result["per_kind"].items():
            figures.update({f"{kind}_ac_at_1": row["ac@1"], f"{kind}_ac_at_3": row["ac@3"]})
        mlflow.log_metrics(figures)
        mlflow.log_dict({"rows": result["rows"], "per_kind": result["per_kind"]}, "rca_cases.json")
        return run.info.run_id


def rca_line(result: dict) -> str:
    if "skipped" in result:
        return f"skipped: {result['skipped']}"
    if not result["cases"]:
        return f"no incident in the test period to rank; specificity {_f(result['specificity'])} on " \
               f"{result['quiet_windows']} fault-free windows"
    return (f"AC@1 {_f(result['ac@1'])}, AC@3 {_f(result['ac@3'])} on {result['cases']} test incidents; "
            f"specificity {_f(result['specificity'])} on {result['quiet_windows']} fault-free windows "
            f"({result['seconds']:.1f} s ranking)")


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def rca_markdown(result: dict) -> str:
    from agents.investigation.report import table

    if "skipped" in result:
        return f"# Root-cause ranking\n\nSkipped: {result['skipped']}.\n"
    lines = ["# Root-cause ranking on the test period", "",
             (f"Dataset `{result['dataset']}`, {result['period'][0]} to {result['period'][1]} UTC; window "
             f"{result['window_minutes']} min from each incident's start, baseline the {result['baseline_minutes']} "
             "min before it. The ranking does not read the root cause; the scoring does."), "",
             rca_line(result), "",
             table(["fault kind", "cases", "AC@1", "AC@3"],
                   [(k, r["cases"], _f(r["ac@1"]), _f(r["ac@3"])) for k, r in result["per_kind"].items()]), "",
             "## Cases", "",
             table(["incident", "kind", "root cause", "ranked first three"],
                   [(r["incident_id"], r["kind"], r["root"], ", ".join(r["top"])) for r in result["rows"]])]
    return "\n".join(lines) + "\n"


@task(name="investigations-stage", cache_policy=NO_CACHE)
def investigations_stage(settings, manifest: dict) -> dict:
    """Rank the test period's incidents and quiet windows, log an ``rca`` run, leave the ``rca-evaluation``
    artifact."""
    t0 = time.perf_counter()
    result = evaluate_on_lake(settings, manifest)
    if "skipped" not in result:
        result["mlflow_run"] = log_rca_run(settings, result)
    create_markdown_artifact(key="rca-evaluation", markdown=rca_markdown(result),
                             description="Root-cause ranking on the test period's incidents: AC@1, AC@3, "
                                         "specificity")
    result["stage_seconds"] = time.perf_counter() - t0
    return result
