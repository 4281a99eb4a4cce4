"""Everything an investigation reads, loaded for ``agents.investigation``: the lake's telemetry, graph, events
and traces, the registered detector and failure predictor (MLflow), the last capacity plan, and the
knowledge base. Plain functions (no Prefect), so `cerebro rca --service` answers without a flow run; the
``investigate`` flow runs the same steps as tasks (``step``).

    bundle = gather(settings, question="why is checkout slow?")          # the whole bundle
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd

from agents.investigation import models as m
from agents.investigation.bundle import (
    abnormal_from,
    capacity_from,
    changes_from,
    knowledge_from,
    make_window,
    neighbourhood,
    risks_from,
    spans_from,
)

log = logging.getLogger(__name__)
MLFLOW_UI = "http://127.0.0.1:5000"  # what `cerebro ui` starts; the report's links point there
SPANS_PER_SUSPECT = 3


class InvestigationError(ValueError):
    """The investigation cannot run as asked (an empty lake, an unknown service or incident)."""


def lake_context(settings) -> dict:
    """The lake's services, metrics, date range and call graph (``graph.json``; none on a user's lake without one)."""
    from telemetry import lake

    stats = lake.lake_stats(settings.lake_dir)
    if not stats["dates"]:
        raise InvestigationError(f"the lake at {settings.lake_dir} holds no telemetry; run `cerebro run` or "
                                 "`cerebro ingest` first")
    last = lake.read_telemetry(settings.lake_dir, start=stats["dates"][-1])
    graph = lake.read_graph(settings.lake_dir) or {}
    edges = [(str(e["caller"]), str(e["callee"])) for e in graph.get("edges", [])]
    services = sorted(set(stats["services"]) | {s for e in edges for s in e})
    return {"stats": stats, "services": services, "metrics": sorted(last["metric"].astype(str).unique()),
            "newest": last["timestamp"].max(), "edges": edges, "graph": graph}


def resolve_time(text_or_time, newest) -> pd.Timestamp:
    """``at`` as UTC; None -> one minute after the lake's newest sample (the latest window there is)."""
    if text_or_time is None or text_or_time == "":
        return pd.Timestamp(newest) + pd.Timedelta(minutes=1)
    try:
        t = pd.Timestamp(text_or_time)
    except ValueError:
        raise InvestigationError(f"at {text_or_time!r}: not a time; use e.g. 2026-12-01T14:05Z") from None
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def read_window(settings, window: m.Window) -> pd.DataFrame:
    from telemetry import lake

    return lake.read_telemetry(settings.lake_dir, start=window.baseline_start, end=window.end)


def model_link(name: str, version: str | None) -> str:
    return f"{MLFLOW_UI}/#/models/{name}" + (f"/versions/{version}" if version else "")


def detector_scores(settings, window: m.Window, services: list[str]):
    """(scores over the window by the live detector, the model used) or (None, None, why not)."""
    from features.from_lake import read_features
    from serving.batch import score_features
    from serving.registry import RegistryError, load_champion

    cfg = settings.lifecycle
    try:
        detector = load_champion(settings, cfg.detector_model, fallback=cfg.fallback_model)
    except RegistryError as exc:
        return None, None, f"no registered detector to score the window with ({exc})"
    feats = read_features(settings, window.start, window.end, services or None)
    if feats.empty:
        return None, _used("detector", detector), "the detector had no feature rows in the window"
    return score_features(feats, detector), _used("detector", detector), None


def _used(role: str, loaded) -> m.ModelUsed:
    return m.ModelUsed(source=f"mlflow:{loaded.name}/{loaded.version}", at=None, role=role, name=loaded.name,
                       version=str(loaded.version), alias="champion", uri=loaded.uri)


def failure_risks(settings, window: m.Window, suspects: list[str]):
    """The failure predictor on each suspect's last minute of the window, with its top SHAP factors."""
    from features.from_lake import read_features
    from serving.registry import RegistryError, load_champion
    from training.kinds import predict_bundle

    if not suspects:
        return [], None, None
    try:
        model = load_champion(settings, settings.lifecycle.failure_model)
    except RegistryError as exc:
        return [], None, f"no registered failure predictor ({exc})"
    end = pd.Timestamp(window.end)
    feats = read_features(settings, end - pd.Timedelta(minutes=5), end, suspects)
    if feats.empty:
        return [], _used("failure predictor", model), "no feature rows for the suspects at the window's end"
    last = feats.sort_values("timestamp").groupby("service", sort=False).tail(1).reset_index(drop=True)
    pred = predict_bundle(model.bundle, last, {"top_k": 3})
    used = _used("failure predictor", model)
    return risks_from(pred, used.source), used, None


def capacity_near_limit(settings, suspects: list[str]):
    """The newest capacity plan the forecasting stage logged to MLflow, the suspects' rows near their limit."""
    import mlflow

    if not suspects:
        return [], None, None
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    try:
        runs = mlflow.search_runs(experiment_names=[settings.mlflow.experiment], max_results=1,
                                  filter_string="tags.`cerebro.stage` = 'forecasting'",
                                  order_by=["attributes.start_time DESC"])
    except Exception as exc:  # noqa: BLE001 - an empty or unreachable tracking store: say so in the bundle
        return [], None, f"no capacity plan in MLflow ({type(exc).__name__})"
    if runs.empty:
        return [], None, "no capacity plan in MLflow (the forecasting stage has not run)"
    run = runs.iloc[0]
    try:
        raw = mlflow.artifacts.load_dict(f"{run['artifact_uri']}/capacity_plan.json")
    except Exception as exc:  # noqa: BLE001 - a run without the plan artifact
        return [], None, f"the forecasting run {run['run_id']} holds no capacity plan ({type(exc).__name__})"
    table = pd.DataFrame(raw["data"], columns=raw["columns"]).replace({"nan": None, "None": None, "NaT": None})
    for col in ("limit", "last_value", "hours_to_expected", "hours_to_upper"):
        table[col] = pd.to_numeric(table[col], errors="coerce")
    table = table[table["service"].isin(suspects)]
    source = f"mlflow:run/{run['run_id']}/capacity_plan.json"
    used = m.ModelUsed(source=source, at=run["start_time"].to_pydatetime(), role="capacity forecast",
                       name="forecasting run", version=str(run["run_id"]), uri=source)
    return capacity_from(table, source, run["start_time"]), used, None


def changes(settings, suspects: list[str], window: m.Window) -> tuple[list[m.Change], str | None]:
    """Change events of the suspects from the baseline's start to the window's end, or why there are none."""
    from telemetry import lake

    events = lake.read_table("events", settings.lake_dir)
    if events.empty:
        return [], "the lake has no events table: no deploys or other changes are recorded for this data"
    found = changes_from(events, suspects or None, window.baseline_start, window.end)
    return found, None if found else "no deploys or other change events for these services in the window or its baseline"


def traces(settings, suspects: list[str], window: m.Window) -> tuple[list[m.SpanFinding], str | None]:
    """Each suspect's slowest span and first failing spans in the window, with their time on the critical path."""
    from telemetry import lake
    from telemetry.traces import critical_path, failing_spans, slowest_spans

    spans = lake.read_table("traces", settings.lake_dir)
    if spans.empty:
        return [], "the lake holds no traces"
    spans = spans.assign(start=pd.to_datetime(spans["start"], utc=True))
    slow_rows, fail_rows = [], []
    for service in suspects:
        slow = slowest_spans(spans, service, window.start, window.end, k=SPANS_PER_SUSPECT)
        fail = failing_spans(spans, service, window.start, window.end, k=SPANS_PER_SUSPECT)
        for frame, rows in ((slow, slow_rows), (fail, fail_rows)):
            for r in frame.to_dict("records"):
                try:
                    path = critical_path(spans, r["trace_id"])
                    hit = path[path["span_id"] == r["span_id"]]
                    r["critical_ms"] = float(hit["critical_ms"].iloc[0]) if len(hit) else 0.0
                except (KeyError, ValueError):
                    r["critical_ms"] = None
                rows.append(r)
    found = spans_from(pd.DataFrame(slow_rows), pd.DataFrame(fail_rows))
    return found, None if found else "no spans of the suspects in the window"


def knowledge(settings, question: m.Question, suspects: list[str], aspect_words: str):
    """Similar past incidents and runbook passages for the suspects and the symptom."""
    from rag import open_knowledge_base

    kb, retriever = open_knowledge_base(settings)
    if not kb.chunks:
        return [], [], f"the knowledge base at {kb.dir} is empty (run `cerebro kb index` or `cerebro run`)"
    about = " ".join(suspects[:2]) or (question.service or "")
    query = f"{about} {aspect_words}".strip() or (question.text or "incident")
    incidents = retriever.search(f"past incident {query}", k=12)
    runbooks = retriever.search(f"runbook mitigation {query}", k=12)
    return (knowledge_from([h.to_dict() for h in incidents.hits], "incident"),
            knowledge_from([h.to_dict() for h in runbooks.hits], "runbook"), None)


def aspect_words(bundle_abnormal: list[m.Abnormal], question: m.Question) -> str:
    """Words for the knowledge base: the question's aspect and the strongest abnormal metrics."""
    words = [question.aspect] if question.aspect else []
    words += [a.metric.replace("_", " ") for a in bundle_abnormal[:2]]
    return " ".join(dict.fromkeys(w for w in words if w))


def _run(name: str, fn, *args):
    return fn(*args)


def gather(settings, question: str | None = None, service: str | None = None, at=None, window: str = "60m",
           *, step: Callable | None = None, use_models: bool = True, use_knowledge: bool = True,
           incident: dict | None = None):
    """The evidence bundle for a question, or a service and a time. ``step(name, fn, *args)`` runs each
    step (the flow makes each a Prefect task). ``incident``: a recorded incident to replay (its id, start,
    end and affected services; never its root cause)."""
    from agents.investigation import assemble, diagnose, parse_question
    from agents.rca import RcaInputError

    step = step or _run
    ctx = step("read-lake-context", lake_context, settings)
    q = parse_question(question, ctx["services"], ctx["metrics"])
    notes: list[str] = []
    if service:
        if service not in ctx["services"]:
            from difflib import get_close_matches

            close = get_close_matches(service, ctx["services"], n=3)
            raise InvestigationError(f"service {service!r} is not in the lake or its graph"
                                     + (f"; did you mean {', '.join(close)}?" if close else
                                        f"; known: {', '.join(ctx['services'][:20])}"))
        q = q.model_copy(update={"service": service, "services": [service, *[s for s in q.services if s != service]]})
    if question and not q.services and not service:
        notes.append("the question names no known service: every service was ranked")
    at_time = resolve_time(at if at is not None else q.at, ctx["newest"])
    win = make_window(at_time, window)
    target = q.service
    metrics_of_target = set()
    tel = step("read-telemetry", read_window, settings, win)
    if target:
        metrics_of_target = set(tel.loc[tel["service"].astype(str) == target, "metric"].astype(str))
    target_metric = next((mt for mt in q.metrics if mt in metrics_of_target), None)

    result = None
    if not ctx["edges"]:
        notes.append("the lake has no service graph (graph.json): root causes cannot be ranked along calls")
    elif tel.empty:
        notes.append(f"the lake holds no telemetry between {win.baseline_start:%Y-%m-%d %H:%M} and "
                     f"{win.end:%Y-%m-%d %H:%M} UTC")
    else:
        try:
            result = step("rank-root-causes", diagnose, tel, ctx["edges"], win, target, target_metric)
        except RcaInputError as exc:
            notes.append(f"root causes not ranked: {exc}")
    suspects = [c.service for c in (result.causes[:3] if result is not None else [])]
    if target and target not in suspects:
        suspects_for_context = [*suspects, target]
    else:
        suspects_for_context = suspects

    models: list[m.ModelUsed] = []
    scores = None
    detector_source = ""
    risks, capacity = [], []
    if use_models:
        scores, used, why = step("score-with-detector", detector_scores, settings, win,
                                 list(dict.fromkeys([*suspects_for_context, *q.services])) or None)
        if used:
            models.append(used)
            detector_source = used.source
        if why:
            notes.append(why)
        risks, used, why = step("failure-risk", failure_risks, settings, win, suspects_for_context)
        models += [used] if used else []
        notes += [why] if why else []
        capacity, used, why = step("capacity-plan", capacity_near_limit, settings, suspects_for_context)
        models += [used] if used else []
        notes += [why] if why else []

    change_list, changes_note = step("change-events", changes, settings, suspects_for_context, win)
    span_list, why = step("trace-spans", traces, settings, suspects_for_context, win)
    notes += [why] if why else []
    incidents, runbooks = [], []
    if use_knowledge:
        words = aspect_words(abnormal_from(result) if result is not None else [], q)
        try:
            incidents, runbooks, why = step("search-knowledge", knowledge, settings, q, suspects_for_context, words)
            notes += [why] if why else []
        except Exception as exc:  # noqa: BLE001 - the knowledge base is optional evidence, not a reason to fail
            notes.append(f"knowledge base not searched: {type(exc).__name__}: {exc}")
    stats = ctx["stats"]
    data = m.DataUsed(source=f"lake:{settings.lake_dir}", at=win.end, lake=str(settings.lake_dir),
                      first_date=stats["dates"][0], last_date=stats["dates"][-1], rows=len(tel))
    graph = neighbourhood(ctx["edges"], suspects_for_context, source=f"lake:{settings.lake_dir / 'graph.json'}")
    if incident is not None:
        notes.insert(0, f"replay of incident {incident['incident_id']} (its recorded root cause is not read)")
    return assemble(q, win, result, target=target, target_metric=target_metric, scores=scores,
                    detector_source=detector_source, changes=change_list, changes_note=changes_note, risks=risks,
                    capacity=capacity, graph=graph, incidents=incidents, runbooks=runbooks, spans=span_list,
                    models=models, data=data, notes=notes, generated_at=datetime.now(UTC))


def incident_case(settings, incident_id: str) -> dict:
    """A recorded incident as a replay case: its id, start, end, dataset and the service it was paged for.
    The root-cause field is dropped here, before anything ranks."""
    from agents.investigation.evaluation import paged_target
    from telemetry import lake

    table = lake.read_table("incidents", settings.lake_dir)
    if table.empty:
        raise InvestigationError(f"the lake at {settings.lake_dir} has no incidents table; import incidents with "
                                 "`cerebro ingest --incidents FILE`")
    rows = table[table["incident_id"].astype(str) == str(incident_id)]
    if rows.empty:
        from difflib import get_close_matches

        close = get_close_matches(str(incident_id), table["incident_id"].astype(str).tolist(), n=3)
        raise InvestigationError(f"no incident {incident_id!r} in the lake"
                                 + (f"; did you mean {', '.join(close)}?" if close else ""))
    row = rows.iloc[-1].drop(labels=["root_cause_service"], errors="ignore").to_dict()
    graph = lake.read_graph(settings.lake_dir) or {}
    callers: dict[str, list[str]] = {}
    for e in graph.get("edges", []):
        callers.setdefault(str(e["callee"]), []).append(str(e["caller"]))
    affected = [str(s) for s in (row.get("affected_services") if row.get("affected_services") is not None else [])]
    return {"incident_id": str(row["incident_id"]), "start": pd.Timestamp(row["start"]),
            "end": pd.Timestamp(row["end"]) if pd.notna(row.get("end")) else None,
            "kind": row.get("kind"), "target": paged_target(affected, lambda s: callers.get(s, []))}
