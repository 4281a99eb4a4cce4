"""`cerebro rca`: rank the services that may have caused an incident (agents/rca does the work)."""
from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.common import ConfigOpt, JsonOpt, fail, out, print_json


def rca(
    metrics: Path | None = typer.Option(None, "--metrics", "-m", help="CSV or Parquet, long form timestamp, "
                                        "service, metric, value: the incident window."),
    baseline: Path | None = typer.Option(None, "--baseline", "-b", help="The same layout: a normal period "
                                         "before it."),
    graph: Path | None = typer.Option(None, "--graph", "-g", help="CSV of caller, callee edges."),
    target: str | None = typer.Option(None, "--target", "-t", help="The service showing the symptom (a node "
                                      "of the graph): only services whose fault can reach it are ranked."),
    target_metric: str | None = typer.Option(None, "--target-metric", help="The symptom metric of --target "
                                             "(reported as the symptom)."),
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
        from flows.cli.rca_lake import rca_on_lake

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
    return frame[[found[r] for r in found]].set_axis(list(found), axis=1)


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
            ev = "; ".join(f"{e.metric} {e.direction} {e.size:.1f}σ ({e.baseline:.4g} → {e.incident:.4g})"
                           for e in c.evidence[:3])
            table.add_row(str(i), c.service, f"{c.score:.1f}", f"{c.confidence:.2f}", ev, " → ".join(c.path))
        out.print(table)
    if result.symptom is not None:
        s = result.symptom
        out.print(f"symptom {result.target}/{s.metric}: {s.direction} {s.size:.1f} robust units "
                  f"({s.baseline:.4g} → {s.incident:.4g})")
    for note in result.notes:
        out.print(f"[yellow]note[/yellow]: {note}", soft_wrap=True)
