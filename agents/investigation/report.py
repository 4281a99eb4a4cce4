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
                    bundle_file: str | None = None, analysis=None, secrets: Sequence[str] = ()) -> str:
    """The whole report: what is wrong, since when, where, root causes with evidence, changes, risks, traces,
    similar incidents, runbook steps, and the models and data used. ``analysis``
    (:class:`agents.investigation.analysis.Analysis`): the LLM's section and its calls' cost, or the one line
    saying the report is evidence-only. ``secrets`` (and anything shaped like a credential) are masked, wherever
    they came from (a change's detail, a runbook passage, the model)."""
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
    if analysis is not None:
        out += analysis_markdown(analysis)
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
    from agents.investigation.analysis import scrub

    return scrub("\n".join(out), secrets)


def plain(text) -> str:
    """Model-written text for Markdown: one line, no table breaks, no links or images a viewer would fetch."""
    return cell(text).replace("](", "]\\(").replace("<", "&lt;")


def analysis_markdown(analysis) -> list[str]:
    """The report's lines for the LLM step: one line when it is evidence-only (no LLM, the token cap, no
    answer), else the Analysis section beside the evidence-only findings, then the calls and their cost."""
    a = analysis
    if a.status == "evidence-only" and not a.calls:
        return [plain(a.note), ""]
    out = ["## Analysis (LLM)", "", plain(a.note), ""]
    ans = a.answer
    if ans is not None:
        out += [f"**{plain(ans.summary)}**", ""]
        rc = ans.root_cause
        out += [table(["root cause", "metric", "confidence"], [(rc.service, rc.metric, num(rc.confidence, 2))])
                + "\n" if rc else "Root cause: none named (nothing abnormal, says the model).\n"]
        if ans.reasoning:
            out += [f"{i}. {plain(step)}" for i, step in enumerate(ans.reasoning, 1)] + [""]
        if ans.next_steps:
            steps = [(plain(s.action), s.tool, s.risk) for s in ans.next_steps]
            out += [table(["next step", "tool", "risk"], steps), ""]
        out += ["Cites: " + ", ".join(f"`{plain(c)}`" for c in ans.citations), ""]
    if a.flags:
        out += ["Dropped or corrected (not in the evidence, or not as the tool registry has it):", ""] + [f"* {plain(f)}" for f in a.flags] + [""]
    out += usage_markdown(a)
    return out


def usage_markdown(analysis) -> list[str]:
    """The calls of one investigation (provider, model, tokens, cache hit, cost, latency) and its total."""
    a = analysis
    if not a.calls:
        return []
    rows = [(c["provider"] or "(none answered)", c["model"], f"{c['input_tokens']:,}", f"{c['output_tokens']:,}",
             "yes" if c["cached"] else "no", f"{c['cost_usd']:.4f}", num(c["latency_ms"])) for c in a.calls]
    t = a.total
    rows.append(("**total**", f"{t['calls']} call{'' if t['calls'] == 1 else 's'}", f"{t['input_tokens']:,}",
                 f"{t['output_tokens']:,}", f"{t['cached']} cached", f"{t['cost_usd']:.4f}", ""))
    header = ["provider", "model", "input tokens", "output tokens", "cached", "cost (USD)", "latency ms"]
    return ["### LLM calls and cost", "", table(header, rows), ""]
