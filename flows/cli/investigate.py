"""`cerebro investigate`: ask why something is wrong; the `investigate` flow (flows/investigate.py) answers."""
from __future__ import annotations

import typer

from flows.cli.common import ConfigOpt, JsonOpt, fail, out, print_json, settings_or_exit


def investigate(
    question: str | None = typer.Argument(None, help="The question, e.g. \"why is checkout slow?\" (a service "
                                          "named in it is the symptom; slow, errors, cpu, memory ... the metrics)."),
    service: str | None = typer.Option(None, "--service", "-s", help="The service to investigate (overrides the "
                                       "one the question names)."),
    at: str | None = typer.Option(None, "--at", help="The end of the window, ISO 8601 (default: the lake's "
                                  "newest minute)."),
    window: str = typer.Option("60m", "--window", "-w", help="How far back from --at to look: 15m, 60m, 2h."),
    as_json: bool = JsonOpt,
    config: str | None = ConfigOpt,
):
    """Investigate with evidence: abnormal metrics and since when, ranked root causes, changes, failure risk,
    capacity, traces, similar past incidents and runbook steps, with the model versions and data used; with an
    LLM configured (docs/llm.md), its analysis of that evidence and the calls' cost. Runs the `investigate`
    flow: a Markdown report, a plot and the JSON bundle are left as Prefect artifacts and under
    <home>/investigations/.

    Examples:

        cerebro investigate "why is checkout slow?"

        cerebro investigate --service payment --at 2026-12-01T14:05Z --json
    """
    if not (question or service):
        fail("ask a question (cerebro investigate \"why is checkout slow?\") or name a service with --service", 2)
    settings_or_exit(config)
    from agents.investigation.bundle import parse_duration
    from flows.investigation_data import InvestigationError

    try:
        parse_duration(window)
    except ValueError as exc:
        fail(f"--window: {exc}", 2)
    from flows.investigate import investigate_flow

    try:
        result = investigate_flow(question=question, service=service, at=at, window=window, config=config)
    except InvestigationError as exc:
        fail(str(exc), 2)
    if as_json:
        print_json({**result["bundle"], "analysis": result["analysis"], "report": result["report"],
                    "json": result["json"], "plot": result["plot"]})
        return
    out.print(f"[bold]{result['summary']}[/bold]", highlight=False, soft_wrap=True)
    bundle = result["bundle"]
    for c in bundle["causes"][:3]:
        ev = ", ".join(e["metric"] for e in c["evidence"][:3])
        out.print(f"  {c['rank']}. {c['service']} (confidence {c['confidence']:.2f}) {ev}", highlight=False)
    for h in bundle["runbooks"][:2]:
        out.print(f"  runbook: {h['title']} ({h['citation']})", highlight=False, soft_wrap=True)
    analysis = result["analysis"]
    out.print(analysis["note"], highlight=False, soft_wrap=True, markup=False)
    if analysis["answer"]:
        out.print(f"  {analysis['answer']['summary']}", highlight=False, soft_wrap=True, markup=False)
    if analysis["calls"]:
        t = analysis["total"]
        out.print(f"  LLM calls: {t['calls']} ({t['cached']} cached), {t['input_tokens']:,} input + "
                  f"{t['output_tokens']:,} output tokens, {t['cost_usd']:.4f} USD", highlight=False)
    out.print(f"Report {result['report']}; bundle {result['json']}" + (f"; plot {result['plot']}" if result["plot"]
                                                                      else ""), highlight=False, soft_wrap=True)
