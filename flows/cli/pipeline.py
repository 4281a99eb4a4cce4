"""`cerebro run`, `cerebro simulate` and `cerebro ingest`: the pipeline, the fleet simulator and telemetry into the
lake. The work runs in the Prefect flows (flows/pipeline.py, flows/ingest.py) and telemetry/; this prints it."""
from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from flows.cli.common import (
    ConfigOpt,
    JsonOpt,
    console,
    fail,
    is_user_error,
    out,
    print_json,
    progress,
    quiet_tracebacks_for_user_errors,
    settings_or_exit,
)


def run(
    config: str | None = ConfigOpt,
    days: float | None = typer.Option(None, help="Days of fleet telemetry to simulate (overrides the profile)."),
    seed: int | None = typer.Option(None, help="Simulator seed (overrides the profile)."),
    source: str | None = typer.Option(
        None, help="Ingest this source instead of simulating the fleet: a CSV/Parquet file or folder (long or wide "
        "form), s3://bucket/prefix, prometheus://host:9090 or cloudwatch://namespace."),
    window: str = typer.Option("14d", help="With --source: train on the lake's last WINDOW of each service "
                               "(14d, 36h, 2w), up to its newest sample."),
    incidents: str | None = typer.Option(
        None, help="Past incidents to evaluate and choose with: CSV or JSON (start, end, service, kind, severity, "
        "summary), a PagerDuty export or Alertmanager alerts."),
    as_json: bool = JsonOpt,
):
    """Run the whole pipeline end to end: simulate (or ingest your source), validate into the lake, features,
    detectors, forecasters, failure predictor, deploy, drift check and knowledge base.

    Runs are recorded by Prefect in the home folder; see them with `cerebro ui`.

    Examples:

        cerebro run                       # the embedded default profile

        cerebro run --days 3 --seed 7     # a smaller, different fleet

        cerebro run --source examples/shop/metrics.csv --incidents examples/shop/incidents.csv

        cerebro run --source prometheus://prom:9090 --window 7d

        CEREBRO_CONFIG=scale cerebro run  # PostgreSQL, Redis and Dask (see README)
    """
    if source is None and incidents:
        fail("--incidents goes with --source: the simulator labels its own fleet", 2)
    try:
        from features.from_lake import parse_window

        parse_window(window)
    except ValueError as exc:
        fail(f"--window: {exc}", 2)
    overrides = {k: v for k, v in {"simulator.days": days, "simulator.seed": seed}.items() if v is not None}
    settings = settings_or_exit(config, **overrides)
    if source is not None:
        _check_source(source, settings)
    from flows.pipeline import pipeline_flow
    from flows.runners import task_runner_for

    quiet_tracebacks_for_user_errors()
    t0 = time.perf_counter()
    with progress("pipeline (Prefect starts a local server on first use)"):
        try:
            summary = pipeline_flow.with_options(task_runner=task_runner_for(settings))(
                config=config, source=source, days=days, seed=seed, window=window, incidents=incidents)
        except Exception as exc:  # noqa: BLE001 - the flow has already logged the details
            fail(str(exc), 2 if is_user_error(exc) else 1)
    summary["wall_seconds"] = round(time.perf_counter() - t0, 1)
    if as_json:
        print_json(summary)
        return
    table = Table(title=f"Pipeline ({settings.profile} profile) finished in {summary['wall_seconds']:.0f} s")
    for col in ("stage", "seconds", "result"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for stage in summary["stages"]:
        table.add_row(stage["stage"], f"{stage['seconds']:.1f}", stage["result"])
    out.print(table)
    _print_ingest_details(summary["ingest"])
    det = summary.get("detection")
    if det and det.get("chosen_without_labels"):  # chosen on planted anomalies (a user's own telemetry)
        _print_label_free(det)
    elif det:
        t = det["test"]
        out.print(f"\nDetection (test period, event-wise, no point adjustment): [bold]{det['best']}[/bold] "
                  f"precision {t['precision']:.3f}, recall {t['recall']:.3f}, F1 {t['f1']:.3f}, mean time to "
                  f"detect {t['mttd_minutes'] or 0:.0f} min: {'meets' if det['meets_targets'] else 'does NOT meet'} "
                  "the targets (P > 0.90, R > 0.95, F1 > 0.92)")
        if t.get("overrun_p50_minutes") is not None:
            out.print(f"Its alarms outlast their incidents (end plus the {settings.feast.window_minutes}-minute "
                      f"window) by a median {t['overrun_p50_minutes']:.0f} min, p90 {t['overrun_p90_minutes']:.0f} min; "
                      f"false alarms hold {t.get('false_alarm_minutes', 0)} alarmed minutes")
        out.print(f"Models that meet them: {', '.join(det['models_meeting_targets']) or 'none'}")
        if det.get("skipped"):
            out.print(f"Not trained: {'; '.join(f'{k}: {v}' for k, v in det['skipped'].items())}")
        out.print(f"Report: Prefect artifact 'detection-report'; MLflow run {det['mlflow_run']} "
                  f"({len(det['registered'])} models registered as cerebro-detector-*); scores plot {det['plot']}")
    out.print(f"\nHome folder: {settings.home}\n  lake        {settings.lake_dir}\n  quarantine  "
              f"{settings.quarantine_dir}\n  MLflow      {settings.mlflow_tracking_uri_shown}\n"
              f"Look at the runs: [bold]make ui[/bold] (Prefect http://127.0.0.1:4200, MLflow http://127.0.0.1:5000)")


def _print_label_free(det: dict) -> None:
    p, t = det["planted"], det["test"]
    out.print(f"\nDetection, chosen on planted anomalies: [bold]{det['best']}[/bold] found {p['found']} of "
              f"{p['incidents']} labelled windows of the validation period (event-wise precision "
              f"{p['precision']:.3f}, recall {p['recall']:.3f}, F1 {p['f1']:.3f}).")
    if t.get("incidents"):
        auc = "" if t["auc_pr"] is None else f", AUC-PR {t['auc_pr']:.3f}"
        out.print(f"Against your {t['incidents']} incidents in the test period: precision {t['precision']:.3f}, "
                  f"recall {t['recall']:.3f}, F1 {t['f1']:.3f}{auc}")
    else:
        out.print("No incidents in the test period to measure against: import past incidents with "
                  "`cerebro ingest --incidents FILE` to see test figures.")
    out.print(f"Report: Prefect artifact 'detection-report'; MLflow run {det['mlflow_run']} "
              f"({len(det['registered'])} models registered as cerebro-detector-*); scores plot {det['plot']}")


def _print_ingest_details(summary: dict) -> None:
    if summary["quarantine_reasons"]:
        reasons = ", ".join(f"{k}: {v:,}" for k, v in sorted(summary["quarantine_reasons"].items()))
        out.print(f"Quarantined {summary['rows_quarantined']:,} rows ({reasons}); files:")
        for path in summary["quarantine_files"]:
            out.print(f"  {path}")
    for warning in summary["warnings"]:
        out.print(f"[yellow]warning:[/yellow] {warning}")


def simulate(
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder to write the dataset into (created if missing)."),
    days: float = typer.Option(3.0, min=0.05, max=366, help="Days of one-minute telemetry."),
    seed: int = typer.Option(42, help="Random seed: the same seed and window give identical files."),
    end: str | None = typer.Option(None, help="Last minute (ISO 8601, UTC); default the start of today (UTC)."),
    incidents_per_day: float = typer.Option(3.0, min=0, max=24, help="Injected faults per day."),
    fmt: str = typer.Option("parquet", "--format", help="Telemetry file format: parquet or csv."),
    plot: Path | None = typer.Option(None, help="Also draw the fleet and its incidents to this PNG file."),
    traces_per_minute: float = typer.Option(1.0, "--traces-per-minute", min=0, max=600,
                                            help="Sampled request traces a minute, on average (0: none)."),
    as_json: bool = JsonOpt,
):
    """Generate a labelled fleet: telemetry, deploy events, incidents (ground truth), logs, sampled request traces
    and the service graph.

    13 services (frontend, api-gateway, auth, catalog, cart, checkout, payment, inventory, shipping,
    notification, database, cache, queue) emit nine metrics a minute. Faults (CPU saturation, memory leak,
    slow dependency, error burst after a bad deploy, disk filling, connection-pool exhaustion, traffic
    surge) are injected and recorded as incidents.

    Example:

        cerebro simulate --days 3 --seed 7 --out data/fleet

        cerebro simulate --days 7 --out data/week --format csv --plot data/week.png
    """
    if fmt not in ("parquet", "csv"):
        fail(f"--format {fmt!r}: expected parquet or csv", 2)
    from telemetry.dataset import write_simulation
    from telemetry.simulator import FleetSimulator

    t0 = time.perf_counter()
    with console.status(f"simulating {days:g} days of the fleet"):
        try:
            result = FleetSimulator(days=days, seed=seed, end=end, incidents_per_day=incidents_per_day,
                                    traces_per_minute=traces_per_minute).run()
        except ValueError as exc:
            fail(str(exc), 2)
    with console.status(f"writing to {out_dir}"):
        paths = write_simulation(result, out_dir, fmt)
        if plot:
            from telemetry.plots import plot_fleet

            paths["plot"] = plot_fleet(result, plot)
    info = {
        "out": str(out_dir), "seed": seed, "start": result.start.isoformat(), "end": result.end.isoformat(),
        "services": len(result.topology.services), "telemetry_rows": len(result.telemetry),
        "events": len(result.events), "incidents": len(result.incidents), "log_lines": len(result.logs),
        "spans": len(result.traces), "seconds": round(time.perf_counter() - t0, 2), "files": {k: str(v) for k, v in paths.items()},
    }
    if as_json:
        print_json(info)
        return
    out.print(f"Wrote {info['telemetry_rows']:,} telemetry rows, {info['events']} events, {info['incidents']} "
              f"incidents, {info['log_lines']} log lines and {info['spans']:,} trace spans for {info['services']} services "
              f"({result.start:%Y-%m-%d %H:%M} to {result.end:%Y-%m-%d %H:%M} UTC) in {info['seconds']} s")
    table = Table("incident", "kind", "root cause", "severity", "start (UTC)", "minutes")
    for inc in result.incidents.itertuples():
        table.add_row(inc.incident_id, inc.kind, inc.root_cause_service, inc.severity, f"{inc.start:%m-%d %H:%M}",
                      f"{(inc.end - inc.start).total_seconds() / 60:.0f}")
    out.print(table)
    out.print(f"Files in {out_dir}: " + ", ".join(sorted(p.name for p in paths.values())))


def ingest(
    source: str | None = typer.Option(None, "--source", "-s", help="Telemetry: a CSV/Parquet file or folder, "
                                      "s3://bucket/prefix, prometheus://host:9090 or cloudwatch://[namespace]."),
    incidents: Path | None = typer.Option(None, "--incidents", help="Past incidents: a CSV or JSON list, a "
                                          "PagerDuty export (API JSON or CSV) or Alertmanager alerts JSON.",
                                          show_default=False),
    dataset: str | None = typer.Option(None, "--dataset", help="Name of this incident (or traces) import in "
                                       "the lake (default: incidents- or otlp- and the file name); importing again "
                                       "under it replaces the same ids.", show_default=False),
    traces: Path | None = typer.Option(None, "--traces", help="Request traces: an OpenTelemetry OTLP/JSON file "
                                       "(one document, or JSON lines as the collector's file exporter writes) or a "
                                       "folder of them; stored as --dataset (default: otlp- and the name).",
                                       show_default=False),
    open_minutes: float = typer.Option(60.0, "--open-minutes", min=1, help="End given to an incident the file "
                                       "says is still open (no end time): start plus this many minutes."),
    config: str | None = ConfigOpt,
    time_col: str | None = typer.Option(None, help="Timestamp column, when its name is not a usual one."),
    service_col: str | None = typer.Option(None, help="Service column (files)."),
    service: str | None = typer.Option(None, help="Service name for files without a service column "
                                          "(default: the file name)."),
    value_col: list[str] | None = typer.Option(None, "--value-col", help="Metric columns of a wide file "
                                                  "(repeatable; default: every other column)."),
    as_json: bool = JsonOpt,
):
    """Validate telemetry with Great Expectations and merge the good rows into the lake; import past incidents.

    Rows that break a rule (unparseable timestamp, text in a value, a negative rate, a duplicate, a time
    in the future ...) go to the quarantine with a reason each; nothing is dropped silently. Ingesting
    the same window again changes nothing. Files may be long form (timestamp, service, metric, value)
    or wide form (a timestamp column and a column per metric); header case and quoting may vary.

    `--incidents FILE` stores past incidents in the lake's incidents table, where the knowledge base
    (`cerebro kb`, the knowledge flow) and the evaluations find them. The format is told from the content:
    a loose CSV/JSON (start, end, service, kind, severity, summary, under their usual names), PagerDuty's
    API JSON or CSV export, Alertmanager's alerts or webhook JSON. Records that cannot be used are
    quarantined with a reason each. Both options may be given: the incidents are imported first.

    Examples:

        cerebro ingest --source exports/payment.csv --service payment

        cerebro ingest --source s3://ops-telemetry/2026/11/ --json

        cerebro ingest --source prometheus://localhost:9090   # queries from sources.prometheus

        cerebro ingest --incidents pagerduty-incidents.json --dataset pager-2026

        cerebro ingest --traces otel-export/traces.jsonl
    """
    if source is None and incidents is None and traces is None:
        fail("nothing to ingest: give --source (telemetry), --incidents FILE (past incidents) and/or --traces "
             "FILE_OR_DIR (OTLP/JSON traces)", 2)
    if source is not None and "://" not in source and not Path(source).expanduser().exists():
        fail(f"{source}: no such file or folder", 2)  # say so before starting Prefect
    if incidents is not None:
        from telemetry.sources.files import not_a_file

        if why := not_a_file(incidents.expanduser(), "a CSV or JSON file of past incidents (--incidents)"):
            fail(why, 2)
    settings = settings_or_exit(config)
    if source is not None:
        _check_source(source, settings)
    imported = _ingest_incidents(incidents.expanduser(), settings, dataset, open_minutes) if incidents else None
    spans = _ingest_traces(traces.expanduser(), settings, dataset) if traces else None
    if source is None:
        if as_json:
            print_json({k: v for k, v in {"incidents": imported, "traces": spans}.items() if v is not None})
        else:
            if imported is not None:
                _print_incidents(imported)
            if spans is not None:
                _print_traces(spans)
        return
    from flows.ingest import ingest_flow
    from flows.runners import task_runner_for

    quiet_tracebacks_for_user_errors()
    with progress(f"ingest {source}"):
        try:
            summary = ingest_flow.with_options(task_runner=task_runner_for(settings))(
                source=source, config=config, time_col=time_col, service_col=service_col,
                value_cols=value_col or None, default_service=service)
        except Exception as exc:  # noqa: BLE001 - Prefect has logged a bug's traceback; a refused input: exit 2
            fail(str(exc), 2 if is_user_error(exc) else 1)
    if imported is not None:
        summary["incidents"] = imported
    if spans is not None:
        summary["traces"] = spans
    if as_json:
        print_json(summary)
        return
    if imported is not None:
        _print_incidents(imported)
    if spans is not None:
        _print_traces(spans)
    out.print(f"{summary['batches']} batch(es): {summary['rows_in']:,} rows read, {summary['rows_clean']:,} clean "
              f"({summary['rows_new_in_lake']:,} new in the lake, {summary['rows_updated_in_lake']:,} updated), "
              f"{summary['rows_quarantined']:,} quarantined")
    _print_ingest_details(summary)
    out.print(f"Lake: {summary['lake']['rows']:,} rows in {summary['lake']['partitions']} partitions at "
              f"{summary['lake_dir']}")


def _check_source(source: str, settings) -> None:
    """What can be known about a source before Prefect starts (it exists, has credentials, answers): said in
    one line with exit code 2, not after a flow run's tracebacks."""
    from telemetry.sources import check

    try:
        check(source, settings)
    except Exception as exc:
        if not is_user_error(exc):
            raise
        fail(str(exc), 2)


def _ingest_incidents(path: Path, settings, dataset: str | None, open_minutes: float) -> dict:
    """Import one incidents file (telemetry.ingest.ingest_incidents); a file that is not usable ends the command
    with exit code 2 and the reason."""
    from telemetry.ingest import ingest_incidents
    from telemetry.sources.incidents import IncidentFileError

    try:
        return ingest_incidents(path, settings, dataset=dataset, open_minutes=open_minutes).to_dict()
    except (IncidentFileError, FileNotFoundError) as exc:
        fail(str(exc), 2)


def _ingest_traces(path: Path, settings, dataset: str | None) -> dict:
    """Import OTLP/JSON traces (telemetry.ingest.ingest_traces); an unusable file ends the command with exit code 2."""
    from telemetry.ingest import ingest_traces
    from telemetry.sources.otlp import TraceFileError

    try:
        return ingest_traces(path, settings, dataset=dataset).to_dict()
    except (TraceFileError, FileNotFoundError) as exc:
        fail(str(exc), 2)


def _print_traces(report: dict) -> None:
    out.print(f"Traces from {report['source']} ({report['files']} file(s)): {report['spans_in']:,} spans read, "
              f"{report['spans_stored']:,} stored as dataset {report['dataset']!r} ({report['spans_new_in_lake']:,} "
              f"new) in {report['traces']:,} traces of {len(report['services'])} service(s), "
              f"{report['spans_quarantined']:,} quarantined", highlight=False, soft_wrap=True)
    if report["quarantine_path"]:
        reasons = ", ".join(f"{k}: {v}" for k, v in report["reasons"].items())
        out.print(f"Quarantined ({reasons}): {report['quarantine_path']}", highlight=False, soft_wrap=True,
                  markup=False)
    out.print(f"Traces table: {report['lake_path']}", highlight=False, soft_wrap=True)


def _print_incidents(report: dict) -> None:
    out.print(f"Incidents from {report['source']} ({report['format']}): {report['rows_in']:,} records read, "
              f"{report['rows_stored']:,} stored as dataset {report['dataset']!r} ({report['rows_new_in_lake']:,} "
              f"new, {report['rows_replaced_in_lake']:,} replaced), {report['rows_quarantined']:,} quarantined",
              highlight=False, soft_wrap=True)
    if report["open_incidents"]:
        out.print(f"{report['open_incidents']} still open in the file: stored with end = start + "
                  f"{report['open_minutes']:g} min (--open-minutes)", highlight=False)
    if report["quarantine_path"]:
        reasons = ", ".join(f"{k}: {v}" for k, v in report["reasons"].items())
        look = (f"python -c \"import pandas as pd; print(pd.read_parquet('{report['quarantine_path']}')"
                "[['source_row', 'reason']].to_string())\"")
        out.print(f"Quarantined ({reasons}): {report['quarantine_path']}\n  look at them: {look}",
                  highlight=False, soft_wrap=True, markup=False)
    out.print(f"Incidents table: {report['lake_path']}. Search them: cerebro kb index --source lake:incidents "
              "(the knowledge flow and `cerebro run` index them too)", highlight=False, soft_wrap=True)
