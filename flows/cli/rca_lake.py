"""`cerebro rca --service S --at TIME` and `cerebro rca --incident ID`: the ranking over the lake, with the
registered detector, failure predictor and capacity plan beside it (flows/investigation_data.py).

Kept apart from rca.py (the ranking on a user's files) so each mode's options stay readable."""
from __future__ import annotations

from flows.cli.common import fail, out, print_json, settings_or_exit

INCIDENT_WINDOW = "15m"  # a replay ranks the incident's first quarter of an hour, as an alert would see it


def rca_on_lake(service: str | None, at: str | None, incident: str | None, window: str | None, top: int,
                as_json: bool, config: str | None) -> None:
    from agents.investigation.bundle import parse_duration
    from flows.investigation_data import InvestigationError, gather, incident_case

    if service and incident:
        fail("--service and --incident are two ways to choose the window: give one", 2)
    if incident and at:
        fail("--at is taken from the incident's start with --incident; leave it out", 2)
    settings = settings_or_exit(config)
    try:
        span = parse_duration(window or (INCIDENT_WINDOW if incident else "60m"))
        case = None
        if incident:
            case = incident_case(settings, incident)
            if case["target"] is None:
                fail(f"incident {incident}: no affected service recorded; rank it with --service S --at TIME", 2)
            service, at = case["target"], (case["start"] + span).isoformat()
        bundle = gather(settings, service=service, at=at, window=span, use_knowledge=False, incident=case)
    except (InvestigationError, ValueError) as exc:
        fail(str(exc), 2)
    bundle.causes = bundle.causes[:top]
    if as_json:
        doc = bundle.model_dump(mode="json")
        print_json({"causes": doc.pop("causes"), **doc})
        return
    _print(bundle)


def _print(bundle) -> None:
    from rich.table import Table

    from agents.investigation.report import num

    out.print(bundle.summary, highlight=False, soft_wrap=True)
    if bundle.causes:
        table = Table(title=f"Likely root causes for {bundle.target}")
        for col in ("#", "service", "score", "confidence", "evidence", "path"):
            table.add_column(col, justify="right" if col in ("#", "score", "confidence") else "left")
        for c in bundle.causes:
            ev = "; ".join(f"{e.metric} {e.direction} {num(e.size, 2)}σ ({num(e.baseline)} → {num(e.value)})"
                           + (f" since {e.onset:%H:%M}" if e.onset else "") for e in c.evidence[:3])
            table.add_row(str(c.rank), c.service, num(c.score), num(c.confidence, 2), ev, " → ".join(c.path))
        out.print(table)
    flagged = [d for d in bundle.detector if d.flagged_minutes]
    if flagged:
        out.print("live detector flagged: " + ", ".join(f"{d.service} ({d.flagged_minutes} of {d.minutes} min)"
                                                          for d in flagged), highlight=False, soft_wrap=True)
    for mu in bundle.models:
        out.print(f"model: {mu.role} {mu.name} v{mu.version}", highlight=False)
    for note in bundle.notes:
        out.print(f"[yellow]note[/yellow]: {note}", soft_wrap=True)
