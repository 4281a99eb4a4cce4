"""`cerebro rca`: rank the services that may have caused an incident (agents/rca does the work)."""
from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.common import ConfigOpt, JsonOpt, fail, out, print_json, settings_or_exit


def rca(
    metrics: Path | None = typer.Option(None, "--metrics", "-m", help="CSV or Parquet, long form timestamp, "
                                        "service, metric, value: the incident window."),
    baseline: Path | None = typer.Option(None, "--baseline", "-b", help="The same layout: a normal period "
                                         "before it."),
    graph: Path | None = typer.Option(None, "--graph", "-g", help="CSV of caller, callee edges."),
    target: str | None = typer.Option(None, "--target", "-t", help="The service showing the symptom (a node "
                                      "of the graph): only services whose fault can reach it are ranked."),
    target_metric: str | None = typer.Option(None, "--target-metric", help="The symptom metric of --target: "
                                             "causes must be able to explain it (a callee's latency, errors or "
                                             "resources, a caller's traffic) and must not begin after it."),
    at: str | None = typer.Option(None, "--at", help="Rank as of this time: incident rows after it are ignored."),
    top: int = typer.Option(5, "--top", "-k", min=1, help="How many causes to list."),
    service: str | None = typer.Option(None, "--service", "-s", help="Over the lake: the service showing the "
                                       "symptom (with --at; the registered models score the window too)."),
    incident: str | None = typer.Option(None, "--incident", help="Over the lake: replay a recorded incident "
                                        "(its id in the lake's incidents table); its root cause is not read."),
    window: str | None = typer.Option(None, "--window", "-w", help="With --service or --incident: the window "
                                      "ending at --at (default 60m; 15m from an incident's start)."),
    as_json: bool = JsonOpt,
    config: str | None = ConfigOpt,
):
    """Rank likely root causes of an incident from metrics and the service dependency graph (no LLM).

    Each metric of the incident window is measured against the baseline in robust units; a service's
    anomaly counts less when a neighbour explains it (latency and errors come up from callees, traffic
    comes down from callers). Self-loops in the graph are ignored, cycles allowed; duplicate and unsorted
    timestamps are averaged and sorted; series with no baseline are skipped. All of it is listed in `notes`.

    Examples:

        cerebro rca --metrics incident.csv --baseline normal.csv --graph edges.csv --target frontend

        cerebro rca -m window.parquet -b week.parquet -g edges.csv -t api --target-metric latency_p90 --json

        cerebro rca --service checkout --at 2026-12-01T14:05Z --window 60m      # over the lake

        cerebro rca --incident INC-42-2611200000-003 --json                      # replay a recorded incident
    """
    if service or incident:
        if metrics or baseline or graph:
            fail("--service/--incident rank over the lake; --metrics, --baseline and --graph rank files: give one "
                 "or the other", 2)
        rca_on_lake(service, at, incident, window, top, as_json, config)
        return
    missing = [o for o, v in (("--metrics", metrics), ("--baseline", baseline), ("--graph", graph)) if v is None]
    if missing:
        fail(f"missing {', '.join(missing)}: rank files with --metrics, --baseline and --graph, or the lake with "
             "--service S --at TIME or --incident ID", 2)
    from agents.rca import RcaInputError, rank_root_causes

    try:
        incident = _read_long(metrics, "--metrics")
        normal = _read_long(baseline, "--baseline")
        edges = _read_edges(graph)
        result = rank_root_causes(incident, normal, edges, target=target, target_metric=target_metric,
                                  top=top, at=_time(at))
    except RcaInputError as exc:
        fail(str(exc), 2)
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    _print(result)


def _time(text: str | None):
    if text is None:
        return None
    import pandas as pd

    try:
        return pd.Timestamp(text)
    except ValueError:
        fail(f"--at {text!r}: not a time; use e.g. 2024-06-01T12:30Z", 2)


def _read_long(path: Path, option: str):
    """A long-form file with loosely named headers (telemetry/sources/files.py), as text columns."""
    from agents.rca import RcaInputError
    from telemetry.sources.files import SchemaError, find_column, read_table

    if not path.is_file():
        raise RcaInputError(f"{option} {path}: no such file")
    try:
        frame = read_table(path)
    except SchemaError as exc:
        raise RcaInputError(f"{option} {exc}") from None
    columns = [c for c in frame.columns if c not in ("source_row", "problem")]
    found = {role: find_column(columns, role) for role in ("timestamp", "service", "metric", "value")}
    missing = [role for role, col in found.items() if col is None]
    if missing:
        raise RcaInputError(f"{option} {path}: no {', '.join(missing)} column; expected long form timestamp, "
                            f"service, metric, value, found {columns}")
    if frame.empty:
        raise RcaInputError(f"{option} {path}: no data rows")
    out = frame[[found[r] for r in found]].set_axis(list(found), axis=1)
    _check_readable(out, path, option)
    return out


def _check_readable(frame, path: Path, option: str) -> None:
    """Name the file and show its values when none of its times or none of its values can be read: ranking
    would otherwise stop with 'no rows' and leave the user to guess which file and why."""
    from agents.rca import RcaInputError
    from telemetry.validation import parse_timestamps, parse_values

    for role, parse, expected in (("timestamp", parse_timestamps, "ISO 8601 times or epoch seconds"),
                                  ("value", parse_values, "plain numbers such as 12.5")):
        if parse(frame[role]).notna().any():
            continue
        text = frame[role].astype(str).str.strip()
        seen = ", ".join(repr(v) for v in text[text != ""].drop_duplicates().head(3))
        raise RcaInputError(f"{option} {path}: no {role} can be read" + (f" (values such as {seen})" if seen else "")
                            + f"; expected {expected}")


def _read_edges(path: Path) -> list[tuple[str, str]]:
    import pandas as pd

    from agents.rca import RcaInputError
    from telemetry.sources.files import SchemaError, read_table

    if not path.is_file():
        raise RcaInputError(f"--graph {path}: no such file")
    try:
        frame = read_table(path)
    except SchemaError as exc:
        raise RcaInputError(f"--graph {exc}") from None
    names = {"caller": ("caller", "source", "from", "parent", "client", "src"),
             "callee": ("callee", "target", "to", "child", "server", "dst", "destination", "dependency")}
    cols = {role: next((c for c in aliases if c in frame.columns), None) for role, aliases in names.items()}
    if None in cols.values():
        found = [c for c in frame.columns if c not in ("source_row", "problem")]
        raise RcaInputError(f"--graph {path}: expected columns caller, callee; found {found}")
    edges = frame[[cols["caller"], cols["callee"]]].astype(str).apply(lambda s: s.str.strip())
    blank = edges[(edges == "").any(axis=1) | pd.isna(edges).any(axis=1)]
    if len(blank):
        rows = ", ".join(str(r + 2) for r in blank.index[:5])
        raise RcaInputError(f"--graph {path}: empty caller or callee on line(s) {rows}")
    if edges.empty:
        raise RcaInputError(f"--graph {path}: no edges")
    return list(edges.itertuples(index=False, name=None))


def _print(result) -> None:
    from rich.table import Table

    where = f" for {result.target}" + (f" / {result.target_metric}" if result.target_metric else "") \
        if result.target else ""
    if not result.causes:
        out.print(f"No abnormal service{where}: nothing reached {result.threshold:g} robust units "
                  f"over {result.window.get('points', 0)} incident points.")
    else:
        table = Table(title=f"Likely root causes{where}")
        for col in ("#", "service", "score", "confidence", "evidence", "path"):
            table.add_column(col, justify="right" if col in ("#", "score", "confidence") else "left")
        for i, c in enumerate(result.causes, 1):
            ev = "; ".join(f"{e.seen_at + '/' if e.seen_at else ''}{e.metric} {e.direction} {e.size:.1f}σ "
                           f"({e.baseline:.4g} → {e.incident:.4g})" for e in c.evidence[:3])
            table.add_row(str(i), c.service, f"{c.score:.1f}", f"{c.confidence:.2f}", ev, " → ".join(c.path))
        out.print(table)
        if result.quiet_top is not None and result.quiet_top > result.threshold:
            out.print(f"confidence is measured above {result.quiet_top:.1f} robust units: the largest deviation "
                      "the baseline's own quiet windows show (the threshold is "
                      f"{result.threshold:g})", soft_wrap=True)
    if result.symptom is not None:
        s = result.symptom
        out.print(f"symptom {result.target}/{s.metric}: {s.direction} {s.size:.1f} robust units "
                  f"({s.baseline:.4g} → {s.incident:.4g})")
    for note in result.notes:
        out.print(f"[yellow]note[/yellow]: {note}", soft_wrap=True)


# ------------------------------------------------------------------ over the lake: --service, --incident
# The ranking with the registered detector, failure predictor and capacity plan beside it
# (flows/investigation_data.py).
INCIDENT_WINDOW = "30m"  # a replay ranks the incident's first half hour (benchmarks/rca.py's headline window)


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
    _print_bundle(bundle)


def _print_bundle(bundle) -> None:
    from rich.table import Table

    from agents.investigation.report import num

    out.print(bundle.summary, highlight=False, soft_wrap=True)
    if bundle.causes:
        table = Table(title=f"Likely root causes for {bundle.target}")
        for col in ("#", "service", "score", "confidence", "evidence", "path"):
            table.add_column(col, justify="right" if col in ("#", "score", "confidence") else "left")
        for c in bundle.causes:
            ev = "; ".join(f"{e.service + '/' if e.service != c.service else ''}{e.metric} {e.direction} "
                           f"{num(e.size, 2)}σ ({num(e.baseline)} → {num(e.value)})"
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
