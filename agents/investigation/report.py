"""The investigation report for people: Markdown tables with rounded numbers and blanks, never nan or None.

    markdown = report_markdown(bundle, links={"cerebro-detector-ensemble/3": "http://..."}, plot="...png")
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from agents.investigation.models import EvidenceBundle


def num(x, digits: int = 3) -> str:
    """A number for a table: blank when missing, 3 significant digits, thousands separated."""
    if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
        return ""
    if isinstance(x, bool):
        return "yes" if x else "no"
    x = float(x)
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if x != 0 and abs(x) < 0.001:
        return f"{x:.1e}"
    return f"{x:.{digits}g}"


def when(t: datetime | None, date: bool = False) -> str:
    if t is None:
        return ""
    return f"{t:%Y-%m-%d %H:%M}" if date else f"{t:%H:%M}"


def cell(text) -> str:
    """Table-safe text: no pipes or line breaks, blank for None."""
    if text is None:
        return ""
    return " ".join(str(text).split()).replace("|", "\\|")


def table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def report_markdown(bundle: EvidenceBundle, links: dict[str, str] | None = None, plot: str | None = None,
                    bundle_file: str | None = None) -> str:
    """The whole report: what is wrong, since when, where, root causes with evidence, changes, risks, traces,
    similar incidents, runbook steps, and the models and data used."""
    links = links or {}
    b = bundle
    w = b.window
    out = ["# Investigation", ""]
    if b.question.text:
        out += [f"**Question:** {cell(b.question.text)}", ""]
    out += [f"**Window:** {when(w.start, True)} to {when(w.end, True)} UTC (baseline {when(w.baseline_start, True)} "
            f"to {when(w.baseline_end, True)})" + (f"; symptom: {b.target}" + (f" / {b.target_metric}"
                                                                               if b.target_metric else "")
                                                   if b.target else ""), "",
            f"**{cell(b.summary)}**", ""]
    if b.verdict != "abnormal":
        out += [("Nothing abnormal in this window: no service's metrics left their baseline by enough to name a "
                 "cause with confidence."), ""]

    out += ["## What is wrong, since when, where", ""]
    if b.abnormal:
        out += [table(["service", "metric", "moved", "baseline", "peak", "size (robust units)", "since"],
                      [(a.service, a.metric, "up" if a.direction == "up" else "down", num(a.baseline), num(a.value),
                        num(a.size, 2), when(a.onset, True)) for a in b.abnormal[:12]]), ""]
    else:
        out += ["No metric left its baseline.", ""]
    if b.detector:
        flagged = [d for d in b.detector if d.flagged_minutes]
        out += [f"Live detector ({cell(b.detector[0].source)}): "
                + (f"{len(flagged)} of {len(b.detector)} services flagged." if flagged else
                   f"no minute flagged on {len(b.detector)} services."), ""]
        if flagged:
            out += [table(["service", "flagged minutes", "of", "highest score", "first flagged"],
                          [(d.service, d.flagged_minutes, d.minutes, num(d.max_score, 2), when(d.first_flag, True))
                           for d in flagged[:10]]), ""]

    out += ["## Most likely root causes", ""]
    if b.causes:
        rows = []
        for c in b.causes:
            ev = "; ".join(f"{e.metric} {num(e.baseline)} → {num(e.value)} ({num(e.size, 2)}σ"
                           + (f", since {when(e.onset)}" if e.onset else "") + ")" for e in c.evidence[:3])
            rows.append((c.rank, c.service, num(c.confidence, 2), num(c.score, 3), ev, " → ".join(c.path)))
        out += [table(["#", "service", "confidence", "score", "evidence", "path to the symptom"], rows), ""]
    else:
        out += ["No service's anomaly reached the threshold.", ""]
    if b.graph and b.graph.edges:
        out += ["Calls around the suspects: " + ", ".join(f"{a} → {c}" for a, c in b.graph.edges[:20]), ""]

    out += ["## Recent changes", ""]
    if b.changes:
        out += [table(["when", "service", "change", "version", "detail"],
                      [(when(c.at, True), c.service, c.kind, c.version, c.detail) for c in b.changes[:10]]), ""]
    else:
        out += [cell(b.changes_note or "No change recorded."), ""]

    if b.risks:
        out += ["## Failure risk (failure predictor)", "",
                table(["service", "probability", "alarm", "top factors"],
                      [(r.service, num(r.probability, 2), "yes" if r.alarm else "no",
                        ", ".join(f"{f.get('feature')} ({num(f.get('contribution'), 2)})" for f in r.factors))
                       for r in b.risks]), ""]
    if b.capacity:
        out += ["## Capacity near its limit", "",
                table(["service", "resource", "limit", "last", "status", "hours to limit"],
                      [(c.service, c.metric, num(c.limit), num(c.last_value), c.status, num(c.hours_to_limit, 2))
                       for c in b.capacity]), ""]
    if b.spans:
        out += ["## Traces: slowest and failing spans of the suspects", "",
                table(["service", "operation", "why", "started", "duration ms", "on critical path ms", "trace"],
                      [(s.service, s.operation, s.why, when(s.at, True), num(s.duration_ms), num(s.critical_ms),
                        s.trace_id) for s in b.spans[:12]]), ""]

    out += ["## Similar past incidents", ""]
    out += [table(["incident", "passage", "source"], [(h.title, h.snippet[:200], h.citation) for h in b.incidents]) +
            "\n" if b.incidents else "No similar past incident found.\n"]
    out += ["## Runbook steps to try", ""]
    out += [table(["runbook", "step", "source"], [(h.title, h.snippet[:240], h.citation) for h in b.runbooks]) +
            "\n" if b.runbooks else "No runbook passage found.\n"]

    out += ["## Models and data used", ""]
    rows = [(mu.role, mu.name, mu.version, links.get(f"{mu.name}/{mu.version}", mu.uri)) for mu in b.models]
    out += [table(["role", "model", "version", "link"], rows) + "\n" if rows else "No registered model was used.\n"]
    if b.data:
        out += [(f"Lake `{b.data.lake}`, dates {b.data.first_date} to {b.data.last_date}; {b.data.rows:,} rows "
                 "read for the window and its baseline."), ""]
    if plot:
        out += [f"Plot of the suspects' metrics: `{plot}`", ""]
    if bundle_file:
        out += [f"Evidence bundle (JSON): `{bundle_file}`", ""]
    if b.notes:
        out += ["## Notes", ""] + [f"* {cell(n)}" for n in b.notes] + [""]
    return "\n".join(out)
