"""The ``pipeline`` flow: every lifecycle stage that exists, end to end, on the configured profile.

Stages so far: simulate the fleet (or take a given source) -> ingest (validate with Great Expectations,
quarantine, lake) -> features (Feast) -> train the detector zoo -> evaluate -> register in MLflow ->
forecasters (backtest, capacity plan, register) -> failure predictor (train, measure, register) -> deploy (the detector champion on
the local scoring service, or SageMaker) -> drift check -> knowledge base (index runbooks, incidents and the
service graph for retrieval) -> investigations (root causes of the test period's incidents: AC@1, AC@3,
specificity)
(the drift check compares the lake's last day against the same hours a week earlier, with the live detector's scores; report only: the pipeline is
itself the retraining).
Later stages are added here as they are built; none is a placeholder.

    make run                      # the embedded default
    cerebro run --days 3 --seed 7
    cerebro run --source examples/shop/metrics.csv --incidents examples/shop/incidents.csv
    prefect deployment run 'pipeline/weekly' --param source=prometheus://prom:9090 --param window=14d

With a ``source`` other than a simulated dataset, every stage trains on the lake's last ``window`` (each
service up to its own newest sample), whichever source filled it; without incidents in the lake, the detector
is chosen on anomalies planted into its own validation period.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from configs.settings import load_settings
from flows import progress, reporting
from flows.deploy import deploy_flow
from flows.detection import detection_flow
from flows.drift import drift_flow
from flows.failure import failure_flow
from flows.forecasting import forecasting_flow
from flows.ingest import ingest_flow
from flows.investigations import investigations_stage, rca_line
from flows.knowledge import knowledge_flow, knowledge_line
from flows.notify import pipeline_failed
from flows.runners import task_runner_for


@task(name="simulate-fleet", cache_policy=NO_CACHE)
def simulate_fleet(settings) -> str:
    """Generate the fleet's telemetry, events, incidents and graph into the home folder (reused if present)."""
    from telemetry.runs import simulate_to_raw

    path, reused = simulate_to_raw(settings)
    get_run_logger().info("fleet dataset %s at %s", "reused" if reused else "generated", path)
    return str(path)


def _manifest(source: str) -> dict | None:
    """The manifest of a simulated dataset folder (its name and window), if the source is one."""
    import json
    from pathlib import Path

    path = Path(source) / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else None


LAKE = "lake"  # source="lake": no ingest, train on what the lake already holds (a stream or an earlier ingest filled it)


def _ingest(settings, source: str, config: str | None, incidents: str | None, stages: list, t0: float) -> dict:
    ingest = ingest_flow.with_options(task_runner=task_runner_for(settings))(
        source=source, config=config, incidents=incidents)
    line = (f"{ingest['rows_clean']:,} clean rows, {ingest['rows_quarantined']:,} quarantined, "
            f"lake {ingest['lake']['rows']:,} rows")
    if ingest.get("incidents"):
        inc = ingest["incidents"]
        line += f"; incidents: {inc['rows_stored']:,} stored, {inc['rows_quarantined']:,} quarantined"
    stages.append({"stage": "ingest + validate", "seconds": time.perf_counter() - t0, "result": line})
    return ingest


def _lake_only(settings) -> dict:
    from telemetry import lake

    return {"rows_in": 0, "rows_clean": 0, "rows_quarantined": 0, "quarantine_reasons": {}, "quarantine_files": [],
            "warnings": [], "lake": lake.lake_stats(settings.lake_dir)}


def _lake_plan(settings, window: str) -> dict:
    """What the later stages train on when the source is not a simulated dataset: the lake's last ``window``
    per service, every dataset's incidents (``dataset`` None)."""
    from features.from_lake import service_spans

    spans = service_spans(settings, window)
    return {"dataset": None, "window": window, "services": len(spans),
            "start": min(a for a, _ in spans.values()).isoformat(), "end": max(b for _, b in spans.values()).isoformat()}


STAGES = 9


def _timed(run, **params) -> tuple[dict, float]:
    """``run(**params)`` and the seconds it took (a stage's own time, not its wait in the queue)."""
    t0 = time.perf_counter()
    return run(**params), time.perf_counter() - t0


@task(name="forecasting-stage", cache_policy=NO_CACHE)
def forecasting_stage(start: str, end: str, config: str | None) -> tuple[dict, float]:
    """The forecasting subflow, started from a task so that it can run while detection trains."""
    runner = task_runner_for(load_settings(config))
    return _timed(forecasting_flow.with_options(task_runner=runner), start=start, end=end, config=config)


@task(name="knowledge-stage", cache_policy=NO_CACHE)
def knowledge_stage(config: str | None) -> tuple[dict, float]:
    """The knowledge-base subflow (it reads the lake's incidents and graph only), beside detection too."""
    return _timed(knowledge_flow, config=config)


@task(name="drift-stage", cache_policy=NO_CACHE)
def drift_stage(config: str | None) -> tuple[dict, float]:
    """The report-only drift check of the champion detection just registered, beside failure and deploy."""
    return _timed(drift_flow, config=config, trigger=False)


def _use_api(url: str) -> None:
    """Point this (child) process's Prefect client at ``url``."""
    import os

    os.environ["PREFECT_API_URL"] = url


@contextmanager
def _beside(settings):
    """Where the stages that run beside detection go: a second process on a laptop. Threads would not do:
    detection's feature build and zoo hold the GIL most of the time, and with forecasting in a thread beside it
    the feature build took twice as long as alone. With Dask, the flow's own cluster takes them."""
    if settings.prefect.task_runner == "dask":
        yield lambda task, **params: task.submit(**params)
        return
    from prefect.context import FlowRunContext
    from prefect.task_runners import ProcessPoolTaskRunner

    # The process reports to this run's API. Without a configured one that is the temporary server Prefect
    # started for this process, which the runner does not pass on: the child would start a second one.
    api_url = str(FlowRunContext.get().client.api_url)
    with ProcessPoolTaskRunner(max_workers=1, initializer=_use_api, initargs=(api_url,)) as runner:
        # one process: its stages queue in submission order
        yield lambda task, **params: runner.submit(task, params)


def _failure_line(failure: dict) -> str:
    """All failures first, then the foreseeable ones (fault under way before the failure) the predictor can see."""
    if "skipped" in failure:
        return f"skipped: {failure['skipped']}"
    line = (f"test PR-AUC {failure['pr_auc']:.3f} (positive rate {failure['positive_rate']:.3f}), "
            f"{failure['caught']} of {failure['failures']} failures foreseen")
    if failure.get("foreseeable_pr_auc") is not None:
        from training.failure.evaluation import FORESEEABLE_PR_AUC_TARGET as target

        met = "meets" if failure["foreseeable_pr_auc"] >= target else "misses"
        line += (f"; of those with a precursor: PR-AUC {failure['foreseeable_pr_auc']:.3f} ({met} the {target:g} "
                 f"target), {failure['foreseeable_caught']} of {failure['foreseeable_failures']} foreseen")
    return line


def _detection_line(detection: dict) -> str:
    t = detection["test"]
    registered = f"{len(detection['registered'])} models registered"
    if detection.get("chosen_without_labels"):
        p = detection["planted"]
        line = (f"put forward {detection['best']}, chosen on anomalies planted in validation: found "
                f"{p['found']} of {p['incidents']} (F1 {p['f1']:.3f})")
        if t.get("incidents"):
            line += f"; test against {t['incidents']} incidents: F1 {t['f1']:.3f}, AUC-PR {_num(t['auc_pr'])}"
        else:
            line += "; no incidents in the test period to measure against"
        return f"{line}; {registered}"
    return (f"best {detection['best']}: test precision {t['precision']:.3f}, recall {t['recall']:.3f}, F1 "
            f"{t['f1']:.3f} ({'meets' if detection['meets_targets'] else 'misses'} targets); {registered}")


def _num(value) -> str:
    return "" if value is None else f"{value:.3f}"


def _no_failure_labels(settings) -> str:
    """Why the failure predictor cannot train on the lake, and what would enable it."""
    from telemetry import lake

    incidents = lake.read_table("incidents", settings.lake_dir)
    with_time = 0 if incidents.empty or "failed_at" not in incidents else int(incidents["failed_at"].notna().sum())
    if with_time:
        return (f"the lake's incidents hold {with_time} failure time(s); the predictor trains on the simulator's "
                "labelled datasets only so far")
    return ("no incident in the lake has a failure time; import past incidents with a failed_at column "
            "(`cerebro ingest --incidents FILE`) to train it")


def _forecasting_line(result: dict) -> str:
    if "skipped" in result:
        return f"skipped: {result['skipped']}"
    rows = [r for r in result["backtest"] if r["model"] != "seasonal_naive"]
    beat = sorted({r["model"] for r in rows if r["mase_vs_naive"] < 1})
    first = result["runs_out_first"][0] if result["runs_out_first"] else None
    risk = (f"{result['capacity_at_risk']} resources may reach their limit; first {first['service']}/{first['metric']} "
            f"({first['status']})") if result["capacity_at_risk"] and first else "no resource reaches its limit"
    return (f"{len(result['registered'])} forecasters registered; beat seasonal naive: "
            f"{', '.join(beat) if beat else 'none'}; {risk}")


def _too_short_for_drift(manifest: dict, settings) -> str | None:
    import pandas as pd

    from telemetry import lake

    cfg = settings.drift
    start = pd.Timestamp(manifest["start"])
    if manifest.get("dataset") is None:  # the lake's own history, not the window asked for
        dates = lake.lake_stats(settings.lake_dir)["dates"]
        start = max(start, pd.Timestamp(dates[0], tz="UTC")) if dates else start
    have = pd.Timestamp(manifest["end"]) - start
    need = pd.Timedelta(days=cfg.reference_days) + pd.Timedelta(hours=cfg.current_hours)
    if have < need:
        return (f"the fleet covers {have / pd.Timedelta(days=1):g} days; the drift check compares the last "
                f"{cfg.current_hours:g} hours with the {cfg.reference_days:g} days before them")
    return None


def _drift_line(result: dict) -> str:
    action = result["action"]
    pred = result.get("prediction") or {}
    scores = f"; score PSI {pred['psi']:.2f}" if pred else ""
    drifted = ", ".join(result.get("drifted_metrics") or []) or "none"
    what = "the detector's inputs" if str(result.get("compared", "")).startswith("inputs") else "raw metrics"
    if result.get("reference_note"):  # the lake held no week before the current window
        what += f" against {result.get('reference') or 'the days before'}"
    return (f"{action['action']}: {result['share_drifted']:.0%} of metrics drifted in {what} ({drifted}){scores} "
            f"({result['model'] or 'no live detector'}); report {result['html']}")


def _deploy(settings, config: str | None) -> tuple[dict, str]:
    """Serve the detector champion; the models are registered either way, so a failure is said, not raised."""
    from training.kinds import DETECTOR

    name = settings.serving.models[DETECTOR.name]
    try:
        deployed = deploy_flow(name=name, target=settings.deploy.target, config=config)
    except Exception as exc:  # noqa: BLE001 - say why serving did not start
        return {"action": "failed", "error": str(exc)}, f"failed: {exc}"
    return deployed, (f"{deployed['action']} {name} v{deployed['version']} on {settings.deploy.target}"
                      # As code, not a link: the address is dead once the service stops, and a report outlives it.
                      + (f" at `{deployed['url']}`" if deployed.get("url") else ""))


def _overrides(days: float | None, seed: int | None) -> dict:
    return {k: v for k, v in {"simulator.days": days, "simulator.seed": seed}.items() if v is not None}


@flow(name="pipeline", log_prints=True, on_failure=[pipeline_failed], on_crashed=[pipeline_failed])
def pipeline_flow(config: str | None = None, source: str | None = None, days: float | None = None,
                  seed: int | None = None, window: str = "14d", incidents: str | None = None) -> dict:
    """Run the whole lifecycle on the simulator's fleet, or on ``source`` (a file, folder, s3://, prometheus://
    or cloudwatch:// source) over the lake's last ``window``; ``incidents``: a file of past incidents (CSV,
    JSON, a PagerDuty or Alertmanager export) to evaluate and choose with. Leaves a summary artifact."""
    settings = load_settings(config, **_overrides(days, seed))
    stages: list[dict] = []

    t0 = time.perf_counter()
    progress.advance("pipeline", 0, STAGES, "simulate")
    if source is None:
        source = simulate_fleet(settings)
        stages.append({"stage": "simulate", "seconds": time.perf_counter() - t0,
                       "result": f"{settings.simulator.days:g} days, seed {settings.simulator.seed}: {source}"})

    t0 = time.perf_counter()
    progress.advance("pipeline", 1, STAGES, "ingest + validate")
    if source == LAKE:
        ingest = _lake_only(settings)
        stages.append({"stage": "ingest + validate", "seconds": 0.0,
                       "result": f"skipped: source 'lake' trains on the {ingest['lake']['rows']:,} rows the lake holds"})
    else:
        ingest = _ingest(settings, source, config, incidents, stages, t0)

    progress.advance("pipeline", 2, STAGES, "features, detectors, forecasters, MLflow")
    manifest = (None if source == LAKE else _manifest(source)) or _lake_plan(settings, window)
    planned = bool(manifest and manifest.get("start"))
    with _beside(settings) as beside:
        detection = forecasting_run = knowledge_run = investigations_run = None
        if planned:
            from training.tracking import use_experiment

            # The tracking store's tables and the experiment are made here, once, before two processes would
            # race to create them.
            use_experiment(settings)
            # Forecasting, the knowledge base and the investigations read only the lake: they run beside
            # detection, in that order, and are collected after it.
            forecasting_run = beside(forecasting_stage, start=manifest["start"], end=manifest["end"], config=config)
            knowledge_run = beside(knowledge_stage, config=config)
            investigations_run = beside(investigations_stage, settings=settings, manifest=manifest)
            t0 = time.perf_counter()
            detection = detection_flow.with_options(task_runner=task_runner_for(settings))(
                dataset=manifest["dataset"], start=manifest["start"], end=manifest["end"], config=config,
                window=manifest.get("window"))
            stages.append({"stage": "features + detectors + register", "seconds": time.perf_counter() - t0,
                           "result": _detection_line(detection)})

        forecasting = failure = None
        if forecasting_run is not None:
            progress.advance("pipeline", 3, STAGES, "forecasters, capacity, MLflow")
            forecasting, seconds = forecasting_run.result()
            stages.append({"stage": "forecast + capacity + register", "seconds": seconds,
                           "result": _forecasting_line(forecasting) + " (ran beside detection)"})
        drift_run = short = None
        if detection is not None:
            # The drift check reads the champion detection just registered: it runs beside failure and deploy.
            short = _too_short_for_drift(manifest, settings)
            if not short:
                drift_run = beside(drift_stage, config=config)
            t0 = time.perf_counter()
            progress.advance("pipeline", 4, STAGES, "failure predictor, MLflow")
            failure = failure_flow.with_options(task_runner=task_runner_for(settings))(
                dataset=manifest["dataset"], start=manifest["start"], end=manifest["end"], config=config,
                build_store=False) if manifest["dataset"] else {"skipped": _no_failure_labels(settings)}
            stages.append({"stage": "failure predictor + register", "seconds": time.perf_counter() - t0,
                           "result": _failure_line(failure)})

        deployed = None
        if detection is not None and settings.deploy.after_pipeline:
            t0 = time.perf_counter()
            progress.advance("pipeline", 5, STAGES, "deploy")
            deployed, line = _deploy(settings, config)
            stages.append({"stage": "deploy", "seconds": time.perf_counter() - t0, "result": line})

        drift = None
        if detection is not None:
            progress.advance("pipeline", 6, STAGES, "drift check")
            if short:
                stages.append({"stage": "drift check", "seconds": 0.0, "result": f"skipped: {short}"})
            else:
                drift, seconds = drift_run.result()
                stages.append({"stage": "drift check", "seconds": seconds, "result": _drift_line(drift)})

        # The knowledge base (runbooks, architecture notes, the lake's incidents and service graph), indexed
        # incrementally: a rerun embeds only what changed.
        progress.advance("pipeline", 7, STAGES, "knowledge base")
        knowledge, seconds = knowledge_run.result() if knowledge_run is not None else _timed(knowledge_flow,
                                                                                             config=config)
        stages.append({"stage": "knowledge base", "seconds": seconds, "result": knowledge_line(knowledge)
                       + (" (ran beside detection)" if knowledge_run is not None else "")})

        # Root causes of the test period's incidents, found from the lake and the graph alone (a few seconds).
        investigations = None
        if investigations_run is not None:
            progress.advance("pipeline", 8, STAGES, "investigations")
            investigations = investigations_run.result()
            stages.append({"stage": "investigations", "seconds": investigations["stage_seconds"],
                           "result": rca_line(investigations) + " (ran beside detection)"})
    progress.advance("pipeline", STAGES, STAGES, "done")
    summary = {"profile": settings.profile, "home": str(settings.home), "source": source,
               "window": None if _manifest(source) else window, "stages": stages, "ingest": ingest, "detection": detection, "forecasting": forecasting,
               "failure": failure, "deploy": deployed, "drift": drift, "knowledge": knowledge,
               "investigations": investigations}
    create_markdown_artifact(
        key="pipeline-summary",
        markdown=reporting.stages_markdown("Pipeline", stages, f"Home folder: `{settings.home}`\n\n"
                                           + reporting.links_markdown(settings, summary)),
        description="Stages of this pipeline run and what each produced",
    )
    return summary
