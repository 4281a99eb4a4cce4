"""Turn what the flows loaded (frames, model outputs, knowledge base hits) into an :class:`EvidenceBundle`.

Nothing here reads a file or a model: ``flows/investigation_data.py`` loads the lake, MLflow and the
knowledge base and hands the results in, so this stays pure and testable on small frames.

    window = make_window(at, "60m")
    result = diagnose(telemetry, edges, window, target="checkout", target_metric="latency_p99_ms")
    bundle = assemble(question, window, result, ...)
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime

from agents.investigation.models import (
    Abnormal,
    CapacityRisk,
    Cause,
    Change,
    DataUsed,
    DetectorFinding,
    EvidenceBundle,
    FailureRisk,
    KnowledgeHit,
    ModelUsed,
    Neighbourhood,
    Question,
    SpanFinding,
    Window,
)

BASELINE_MINUTES = 300  # the normal period before the window (what docs/rca.md measured with)
QUIET_CONFIDENCE = 0.5  # a top cause below this is not called abnormal (the benchmark's specificity rule)
TELEMETRY = "lake:telemetry"


def _utc(value):
    import pandas as pd

    t = pd.Timestamp(value)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def parse_duration(text: str | float):
    """"60m", "2h", "90" (minutes) or "1d" -> a positive Timedelta; ValueError naming what was expected."""
    import pandas as pd

    raw = str(text).strip()
    try:
        delta = pd.Timedelta(minutes=float(raw)) if raw.replace(".", "", 1).isdigit() else pd.Timedelta(raw)
    except ValueError:
        raise ValueError(f"window {text!r}: expected a duration such as 15m, 60m, 2h") from None
    if delta <= pd.Timedelta(0):
        raise ValueError(f"window {text!r}: must be longer than zero")
    return delta


def make_window(at, window="60m", baseline_minutes: int = BASELINE_MINUTES) -> Window:
    """The window [at - window, at) and the baseline the ``baseline_minutes`` before it."""
    import pandas as pd

    end = _utc(at)
    start = end - parse_duration(window)
    base0 = start - pd.Timedelta(minutes=baseline_minutes)
    return Window(start=start.to_pydatetime(), end=end.to_pydatetime(), baseline_start=base0.to_pydatetime(),
                  baseline_end=start.to_pydatetime())


def split_window(telemetry, window: Window):
    """(incident rows, baseline rows) of a long frame that covers both."""
    t = telemetry["timestamp"]
    inc = telemetry[(t >= _utc(window.start)) & (t < _utc(window.end))]
    base = telemetry[(t >= _utc(window.baseline_start)) & (t < _utc(window.baseline_end))]
    return inc, base


def diagnose(telemetry, edges: Iterable[tuple[str, str]], window: Window, target: str | None = None,
             target_metric: str | None = None, top: int = 10):
    """Rank root causes over ``window`` against its baseline (``agents.rca``). Raises ``RcaInputError``."""
    from agents.rca import rank_root_causes

    inc, base = split_window(telemetry, window)
    return rank_root_causes(inc, base, list(edges), target=target, target_metric=target_metric, top=top)


def _abnormal(service: str, ev) -> Abnormal:
    return Abnormal(source=TELEMETRY, at=ev.onset, service=service, metric=ev.metric, direction=ev.direction,
                    size=float(ev.size), baseline=float(ev.baseline), value=float(ev.incident), onset=ev.onset)


def causes_from(result, top: int = 5) -> list[Cause]:
    """The ranking's causes as items, each with its abnormal metrics; sourced from the lake's telemetry."""
    out = []
    for i, c in enumerate(result.causes[:top], 1):
        evidence = [_abnormal(e.seen_at or c.service, e) for e in c.evidence]  # seen_at: a caller's, for a blind callee
        onsets = [e.onset for e in evidence if e.onset is not None]
        out.append(Cause(source="agents.rca over " + TELEMETRY, at=min(onsets) if onsets else None, rank=i,
                         service=c.service, score=float(c.score), confidence=float(c.confidence),
                         path=list(c.path), evidence=evidence))
    return out


def abnormal_from(result) -> list[Abnormal]:
    """Every abnormal metric the ranking saw (its causes' evidence and the symptom), strongest first."""
    seen: dict[tuple[str, str], Abnormal] = {}
    for c in result.causes:
        for e in c.evidence:
            seen.setdefault((e.seen_at or c.service, e.metric), _abnormal(e.seen_at or c.service, e))
    if result.symptom is not None and result.target and result.symptom.onset is not None:
        seen.setdefault((result.target, result.symptom.metric), _abnormal(result.target, result.symptom))
    return sorted(seen.values(), key=lambda a: -a.size)


def detector_from(scores, source: str) -> list[DetectorFinding]:
    """Per service: minutes scored, minutes the detector flagged, its highest calibrated score, first flag.
    ``scores``: service, timestamp, calibrated, is_anomaly (``serving.batch.score_features``)."""
    if scores is None or len(scores) == 0:
        return []
    out = []
    for service, g in scores.groupby("service", sort=True):
        flagged = g[g["is_anomaly"].astype(int) == 1]
        first = _utc(flagged["timestamp"].min()).to_pydatetime() if len(flagged) else None
        out.append(DetectorFinding(source=source, at=first or _utc(g["timestamp"].max()).to_pydatetime(),
                                   service=str(service), minutes=len(g), flagged_minutes=len(flagged),
                                   max_score=float(g["calibrated"].max()), first_flag=first))
    return sorted(out, key=lambda d: (-d.flagged_minutes, -d.max_score, d.service))


def changes_from(events, services: Sequence[str] | None, start, end, source: str = "lake:events") -> list[Change]:
    """Change events (deploys, rollbacks, config changes, restarts) of ``services`` in [start, end), newest first."""
    if events is None or len(events) == 0:
        return []
    import pandas as pd

    t = pd.to_datetime(events["timestamp"], utc=True)
    keep = (t >= _utc(start)) & (t < _utc(end))
    if services:
        keep &= events["service"].astype(str).isin(list(services))
    picked = events[keep].assign(timestamp=t[keep]).sort_values("timestamp", ascending=False)
    return [Change(source=source, at=r.timestamp.to_pydatetime(), service=str(r.service), kind=str(r.kind),
                   version=_text(getattr(r, "version", None)), detail=_text(getattr(r, "detail", None)))
            for r in picked.itertuples()]


def _text(value) -> str | None:
    import pandas as pd

    return None if value is None or (not isinstance(value, str) and pd.isna(value)) or str(value) == "" else str(value)


def risks_from(predictions, source: str) -> list[FailureRisk]:
    """The failure predictor's answer per service (service, timestamp, failure_probability, alarm, top_factors
    as a list or its JSON), riskiest first."""
    if predictions is None or len(predictions) == 0:
        return []
    import json

    out = []
    for r in predictions.to_dict("records"):
        factors = r.get("top_factors") or []
        if isinstance(factors, str):
            factors = json.loads(factors)
        out.append(FailureRisk(source=source, at=_utc(r["timestamp"]).to_pydatetime(), service=str(r["service"]),
                               probability=float(r["failure_probability"]), alarm=bool(int(r.get("alarm", 0))),
                               factors=[{k: f.get(k) for k in ("feature", "value", "contribution")} for f in factors]))
    return sorted(out, key=lambda f: -f.probability)


NEAR_LIMIT = ("over limit now", "certain", "expected", "possible")


def capacity_from(table, source: str, at) -> list[CapacityRisk]:
    """Rows of a capacity plan (training/forecasting/capacity.py COLUMNS) whose resource is near its limit."""
    if table is None or len(table) == 0:
        return []
    import pandas as pd

    out = []
    for r in table.to_dict("records"):
        if r.get("status") not in NEAR_LIMIT:
            continue
        hours = r.get("hours_to_expected")
        hours = r.get("hours_to_upper") if hours is None or pd.isna(hours) else hours
        out.append(CapacityRisk(source=source, at=_utc(at).to_pydatetime(), service=str(r["service"]),
                                metric=str(r["metric"]), limit=float(r["limit"]),
                                last_value=None if pd.isna(r.get("last_value")) else float(r["last_value"]),
                                status=str(r["status"]),
                                hours_to_limit=None if hours is None or pd.isna(hours) else float(hours)))
    return out


def neighbourhood(edges: Iterable[tuple[str, str]], suspects: Sequence[str], source: str, at=None) -> Neighbourhood:
    """The edges that touch a suspect (its callers and callees)."""
    keep = set(suspects)
    picked = sorted({(a, b) for a, b in edges if a in keep or b in keep})
    return Neighbourhood(source=source, at=at, suspects=list(suspects), edges=picked)


def knowledge_from(hits: Iterable[dict], kind: str, limit: int = 3) -> list[KnowledgeHit]:
    """Knowledge base hits (``rag.retrieval.Hit.to_dict()``) of one kind, cited by file and section."""
    out = []
    for h in hits:
        if h.get("kind") != kind:
            continue
        section = h.get("section") or ""
        where = str(h.get("source", ""))
        out.append(KnowledgeHit(source=f"knowledge:{h.get('chunk_id', '')}", at=h.get("updated"), kind=kind,
                                title=str(h.get("title", "")), section=section,
                                citation=where + (f" § {section}" if section else ""),
                                snippet=str(h.get("snippet", "")), score=float(h.get("score", 0.0))))
        if len(out) == limit:
            break
    return out


def spans_from(slowest, failing, source: str = "lake:traces") -> list[SpanFinding]:
    """Slowest and failing spans (``telemetry.traces`` frames; ``critical_ms`` when the critical path was walked)."""
    out = []
    for frame, why in ((slowest, "slowest"), (failing, "failing")):
        if frame is None or len(frame) == 0:
            continue
        for r in frame.to_dict("records"):
            crit = r.get("critical_ms")
            out.append(SpanFinding(source=source, at=_utc(r["start"]).to_pydatetime(), service=str(r["service"]),
                                   trace_id=str(r["trace_id"]), span_id=str(r["span_id"]),
                                   operation=str(r["operation"]), duration_ms=float(r["duration_ms"]),
                                   status=str(r["status"]), why=why,
                                   critical_ms=None if crit is None or math.isnan(crit) else float(crit)))
    return out


def is_abnormal(causes: Sequence[Cause]) -> bool:
    return bool(causes) and causes[0].confidence >= QUIET_CONFIDENCE


def summary_line(question: Question, window: Window, target: str | None, causes: Sequence[Cause],
                 abnormal: Sequence[Abnormal]) -> str:
    where = f" for {target}" if target else ""
    span = f"{window.start:%Y-%m-%d %H:%M} to {window.end:%H:%M} UTC"
    if not is_abnormal(causes):
        return f"Nothing abnormal in this window{where} ({span})."
    top = causes[0]
    ev = top.evidence[0] if top.evidence else None
    moved = (f": {ev.metric} {'rose' if ev.direction == 'up' else 'fell'} from {_short(ev.baseline)} to "
             f"{_short(ev.value)}" + (f" since {ev.onset:%H:%M}" if ev.onset else "")) if ev else ""
    return (f"Most likely root cause{where}: {top.service} (confidence {top.confidence:.2f}){moved}; "
            f"{len(abnormal)} abnormal metrics in {span}.")


def _short(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def assemble(question: Question, window: Window, result, *, target: str | None = None,
             target_metric: str | None = None, scores=None, detector_source: str = "",
             changes: list[Change] | None = None, changes_note: str | None = None,
             risks: list[FailureRisk] | None = None, capacity: list[CapacityRisk] | None = None,
             graph: Neighbourhood | None = None, incidents: list[KnowledgeHit] | None = None,
             runbooks: list[KnowledgeHit] | None = None, spans: list[SpanFinding] | None = None,
             models: list[ModelUsed] | None = None, data: DataUsed | None = None,
             notes: Sequence[str] = (), generated_at: datetime | None = None) -> EvidenceBundle:
    """The bundle. ``result``: the ranking (:func:`diagnose`), or None when it could not run (said in notes)."""
    causes = causes_from(result) if result is not None else []
    abnormal = abnormal_from(result) if result is not None else []
    all_notes = list(notes) + (list(result.notes) if result is not None else [])
    return EvidenceBundle(
        question=question, window=window, verdict="abnormal" if is_abnormal(causes) else "nothing abnormal",
        summary=summary_line(question, window, target, causes, abnormal), target=target,
        target_metric=target_metric, abnormal=abnormal, detector=detector_from(scores, detector_source),
        causes=causes, changes=changes or [], changes_note=changes_note, risks=risks or [],
        capacity=capacity or [], graph=graph, incidents=incidents or [], runbooks=runbooks or [],
        spans=spans or [], models=models or [], data=data, notes=all_notes, generated_at=generated_at)
