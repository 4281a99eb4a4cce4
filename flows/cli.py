"""The ``cerebro`` command line: every user entry point starts here.

Heavy libraries are imported inside the commands so that ``cerebro --help`` answers at once.
"""
from __future__ import annotations

import json
import math
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from flows.deploy_cli import deploy
from flows.kb_cli import kb_app
from flows.models_cli import app as models_app
from flows.serve_cli import serve
from flows.stream_cli import replay, stream

app = typer.Typer(
    name="cerebro",
    help="CEREBRO ML: telemetry ingest, anomaly detection, forecasting and operations agents.\n\n"
    "Start with `cerebro run` (the whole pipeline on the built-in fleet simulator), then `cerebro ui`.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
)
app.add_typer(kb_app, name="kb")
app.command()(serve)
app.add_typer(models_app, name="models")
app.command()(stream)
app.command()(replay)
app.command()(deploy)
console = Console(stderr=True)
out = Console()

ConfigOpt = typer.Option(None, "--config", "-c", help="Profile name (default, scale) or a YAML file. "
                         "Also $CEREBRO_CONFIG.", show_default=False)
JsonOpt = typer.Option(False, "--json", help="Print one JSON document on stdout instead of tables.")


def _settings(config: str | None, **overrides):
    from configs.runtime import configure_environment
    from configs.settings import ConfigError, load_settings

    try:
        settings = load_settings(config, **overrides)
    except ConfigError as exc:
        console.print(f"[red]configuration error[/red]\n{exc}", soft_wrap=True)
        raise typer.Exit(2)
    configure_environment(settings)
    return settings


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _progress(title: str):
    """A rich progress bar fed by flows.progress: one line per stage (pipeline stages, batches ...)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from flows import progress as hub

    bars = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=console, transient=False)
    tasks: dict[str, int] = {}

    def listener(stage: str, done: int, total: int, detail: str) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total, detail="")
        bars.update(tasks[stage], completed=done, total=total, detail=Path(detail).name if "/" in detail else detail)

    with bars, hub.listen(listener):
        head = bars.add_task(title, total=None, detail="")
        try:
            yield
        finally:
            bars.update(head, total=1, completed=1)


@app.command()
def run(
    config: str | None = ConfigOpt,
    days: float | None = typer.Option(None, help="Days of fleet telemetry to simulate (overrides the profile)."),
    seed: int | None = typer.Option(None, help="Simulator seed (overrides the profile)."),
    source: str | None = typer.Option(None, help="Ingest this source instead of simulating the fleet."),
    as_json: bool = JsonOpt,
):
    """Run the whole pipeline end to end: simulate, ingest and validate into the lake, and the later stages.

    Runs are recorded by Prefect in the home folder; see them with `cerebro ui`.

    Examples:

        cerebro run                       # the embedded default profile

        cerebro run --days 3 --seed 7     # a smaller, different fleet

        CEREBRO_CONFIG=scale cerebro run  # PostgreSQL, Redis and Dask (see README)
    """
    overrides = {k: v for k, v in {"simulator.days": days, "simulator.seed": seed}.items() if v is not None}
    settings = _settings(config, **overrides)
    from flows.pipeline import pipeline_flow
    from flows.runners import task_runner_for

    t0 = time.perf_counter()
    with _progress("pipeline (Prefect starts a local server on first use)"):
        try:
            summary = pipeline_flow.with_options(task_runner=task_runner_for(settings))(
                config=config, source=source, days=days, seed=seed)
        except Exception as exc:  # noqa: BLE001 - the flow has already logged the details
            _fail(str(exc))
    summary["wall_seconds"] = round(time.perf_counter() - t0, 1)
    if as_json:
        out.print_json(json.dumps(summary, default=str))
        return
    table = Table(title=f"Pipeline ({settings.profile} profile) finished in {summary['wall_seconds']:.0f} s")
    for col in ("stage", "seconds", "result"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for stage in summary["stages"]:
        table.add_row(stage["stage"], f"{stage['seconds']:.1f}", stage["result"])
    out.print(table)
    _print_ingest_details(summary["ingest"])
    det = summary.get("detection")
    if det:
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
              f"{settings.quarantine_dir}\n  MLflow      {settings.mlflow_tracking_uri}\n"
              f"Look at the runs: [bold]make ui[/bold] (Prefect http://127.0.0.1:4200, MLflow http://127.0.0.1:5000)")


def _print_ingest_details(summary: dict) -> None:
    if summary["quarantine_reasons"]:
        reasons = ", ".join(f"{k}: {v:,}" for k, v in sorted(summary["quarantine_reasons"].items()))
        out.print(f"Quarantined {summary['rows_quarantined']:,} rows ({reasons}); files:")
        for path in summary["quarantine_files"]:
            out.print(f"  {path}")
    for warning in summary["warnings"]:
        out.print(f"[yellow]warning:[/yellow] {warning}")


@app.command()
def simulate(
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder to write the dataset into (created if missing)."),
    days: float = typer.Option(3.0, min=0.05, max=366, help="Days of one-minute telemetry."),
    seed: int = typer.Option(42, help="Random seed: the same seed and window give identical files."),
    end: str | None = typer.Option(None, help="Last minute (ISO 8601, UTC); default the start of today (UTC)."),
    incidents_per_day: float = typer.Option(3.0, min=0, max=24, help="Injected faults per day."),
    fmt: str = typer.Option("parquet", "--format", help="Telemetry file format: parquet or csv."),
    plot: Path | None = typer.Option(None, help="Also draw the fleet and its incidents to this PNG file."),
    as_json: bool = JsonOpt,
):
    """Generate a labelled fleet: telemetry, deploy events, incidents (ground truth), logs and the service graph.

    13 services (frontend, api-gateway, auth, catalog, cart, checkout, payment, inventory, shipping,
    notification, database, cache, queue) emit nine metrics a minute. Faults (CPU saturation, memory leak,
    slow dependency, error burst after a bad deploy, disk filling, connection-pool exhaustion, traffic
    surge) are injected and recorded as incidents.

    Example:

        cerebro simulate --days 3 --seed 7 --out data/fleet

        cerebro simulate --days 7 --out data/week --format csv --plot data/week.png
    """
    if fmt not in ("parquet", "csv"):
        _fail(f"--format {fmt!r}: expected parquet or csv", 2)
    from telemetry.dataset import write_simulation
    from telemetry.simulator import FleetSimulator

    t0 = time.perf_counter()
    with console.status(f"simulating {days:g} days of the fleet"):
        try:
            result = FleetSimulator(days=days, seed=seed, end=end, incidents_per_day=incidents_per_day).run()
        except ValueError as exc:
            _fail(str(exc), 2)
    with console.status(f"writing to {out_dir}"):
        paths = write_simulation(result, out_dir, fmt)
        if plot:
            from telemetry.plots import plot_fleet

            paths["plot"] = plot_fleet(result, plot)
    info = {
        "out": str(out_dir), "seed": seed, "start": result.start.isoformat(), "end": result.end.isoformat(),
        "services": len(result.topology.services), "telemetry_rows": len(result.telemetry),
        "events": len(result.events), "incidents": len(result.incidents), "log_lines": len(result.logs),
        "seconds": round(time.perf_counter() - t0, 2), "files": {k: str(v) for k, v in paths.items()},
    }
    if as_json:
        out.print_json(json.dumps(info))
        return
    out.print(f"Wrote {info['telemetry_rows']:,} telemetry rows, {info['events']} events, {info['incidents']} "
              f"incidents and {info['log_lines']} log lines for {info['services']} services "
              f"({result.start:%Y-%m-%d %H:%M} to {result.end:%Y-%m-%d %H:%M} UTC) in {info['seconds']} s")
    table = Table("incident", "kind", "root cause", "severity", "start (UTC)", "minutes")
    for inc in result.incidents.itertuples():
        table.add_row(inc.incident_id, inc.kind, inc.root_cause_service, inc.severity, f"{inc.start:%m-%d %H:%M}",
                      f"{(inc.end - inc.start).total_seconds() / 60:.0f}")
    out.print(table)
    out.print(f"Files in {out_dir}: " + ", ".join(sorted(p.name for p in paths.values())))


@app.command()
def ingest(
    source: str = typer.Option(..., "--source", "-s", help="A CSV/Parquet file or folder, s3://bucket/prefix, "
                               "prometheus://host:9090 or cloudwatch://[namespace]."),
    config: str | None = ConfigOpt,
    time_col: str | None = typer.Option(None, help="Timestamp column, when its name is not a usual one."),
    service_col: str | None = typer.Option(None, help="Service column (files)."),
    service: str | None = typer.Option(None, help="Service name for files without a service column "
                                          "(default: the file name)."),
    value_col: list[str] | None = typer.Option(None, "--value-col", help="Metric columns of a wide file "
                                                  "(repeatable; default: every other column)."),
    as_json: bool = JsonOpt,
):
    """Validate telemetry with Great Expectations and merge the good rows into the lake.

    Rows that break a rule (unparseable timestamp, text in a value, a negative rate, a duplicate, a time
    in the future ...) go to the quarantine with a reason each; nothing is dropped silently. Ingesting
    the same window again changes nothing. Files may be long form (timestamp, service, metric, value)
    or wide form (a timestamp column and a column per metric); header case and quoting may vary.

    Examples:

        cerebro ingest --source exports/payment.csv --service payment

        cerebro ingest --source s3://ops-telemetry/2026/11/ --json

        cerebro ingest --source prometheus://localhost:9090   # queries from sources.prometheus
    """
    settings = _settings(config)
    if "://" not in source and not Path(source).expanduser().exists():
        _fail(f"{source}: no such file or folder", 2)  # say so before starting Prefect
    from flows.ingest import ingest_flow
    from flows.runners import task_runner_for

    with _progress(f"ingest {source}"):
        try:
            summary = ingest_flow.with_options(task_runner=task_runner_for(settings))(
                source=source, config=config, time_col=time_col, service_col=service_col,
                value_cols=value_col or None, default_service=service)
        except FileNotFoundError as exc:
            _fail(str(exc), 2)
        except Exception as exc:  # noqa: BLE001 - any other failure: its message, exit 1
            _fail(str(exc))
    if as_json:
        out.print_json(json.dumps(summary, default=str))
        return
    out.print(f"{summary['batches']} batch(es): {summary['rows_in']:,} rows read, {summary['rows_clean']:,} clean "
              f"({summary['rows_new_in_lake']:,} new in the lake, {summary['rows_updated_in_lake']:,} updated), "
              f"{summary['rows_quarantined']:,} quarantined")
    _print_ingest_details(summary)
    out.print(f"Lake: {summary['lake']['rows']:,} rows in {summary['lake']['partitions']} partitions at "
              f"{summary['lake_dir']}")


def _read_user_series(input_path: Path, time_col: str | None, value_cols: list[str] | None):
    """A user's CSV or Parquet as long rows with parsed ``ts`` and ``val`` (what `detect` and `forecast` read);
    a missing file, an unusable layout or unreadable timestamps end the command naming the file and rows."""
    from telemetry.sources.files import SchemaError, read_table, to_raw_telemetry
    from telemetry.validation import parse_timestamps, parse_values

    if not input_path.is_file():
        _fail(f"{input_path}: no such file", 2)
    try:
        raw = to_raw_telemetry(read_table(input_path), str(input_path), time_col=time_col, value_cols=value_cols,
                               default_service="series")
    except SchemaError as exc:
        _fail(str(exc), 2)
    ts = parse_timestamps(raw["timestamp"])
    bad = raw.loc[ts.isna(), "source_row"].unique()
    if len(bad):
        examples = ", ".join(f"row {r}: {raw.loc[raw['source_row'] == r, 'timestamp'].iloc[0]!r}" for r in bad[:5])
        _fail(f"{input_path}: {len(bad)} row(s) have no readable timestamp ({examples}); expected ISO 8601 or "
              "epoch seconds. Fix or remove them, or name the column with --time-col", 2)
    return raw.assign(ts=ts, val=parse_values(raw["value"]))


@app.command()
def detect(
    input_path: Path = typer.Option(..., "--input", "-i", help="CSV or Parquet: a timestamp column and numeric "
                                    "columns, or long form timestamp, service, metric, value."),
    output: Path = typer.Option(..., "--output", "-o", help="CSV to write: timestamp, score, is_anomaly, one row "
                                "per input row, in input order."),
    model: str | None = typer.Option(None, help="Detector of the zoo (zscore, mad, ewma, holt_winters, "
                                        "isolation_forest, one_class_svm, dbscan, lof, random_cut_forest, pca, "
                                        "lstm_autoencoder, transformer_autoencoder, vae). Default: pca, the best on unlabelled single "
                                        "series in benchmarks/detectors.py."),
    time_col: str | None = typer.Option(None, help="Timestamp column (default: found by name)."),
    value_col: list[str] | None = typer.Option(None, "--value-col", help="Numeric column(s) to score "
                                                  "(repeatable; default: every other column)."),
    train_fraction: float = typer.Option(0.5, min=0.05, max=1.0, help="Leading share of the series the model "
                                         "learns normal behaviour from."),
    as_json: bool = JsonOpt,
):
    """Find anomalies in your own exported metrics, with no labels: the model learns from the series itself.

    Writes one row per input row: `timestamp, score, is_anomaly`, with `score` in [0, 1] (1 - how often
    the training part scored at least this high) and `is_anomaly` against the threshold learned from the
    training part. Long-form files are scored per service, all its metrics together. Unsorted, irregular
    or duplicate timestamps and gaps are handled (see the summary); a series too short for the model is
    refused with what it needs.

    Examples:

        cerebro detect --input cpu.csv --output cpu-scores.csv

        cerebro detect -i export.parquet -o out.csv --model isolation_forest --value-col p99 --json
    """
    import pandas as pd

    from training.detectors.base import NotEnoughData
    from training.series_detection import DEFAULT_MODEL, detect_series

    model = model or DEFAULT_MODEL
    raw = _read_user_series(input_path, time_col, value_col or None)
    outputs, summary = [], {"input": str(input_path), "output": str(output), "model": model, "series": []}
    for service, rows in raw.groupby(raw["service"].astype(str), sort=False):
        wide = rows.pivot_table(index="ts", columns="metric", values="val", aggfunc="mean", dropna=False)
        wide = wide.reindex(pd.Index(rows["ts"].drop_duplicates().to_numpy(), name="ts"))
        try:
            res = detect_series(wide, model=model, train_fraction=train_fraction, key=service)
        except (NotEnoughData, ValueError) as exc:
            _fail(f"{input_path}: series {service!r}: {exc}", 2)
        scored = res.frame.set_index("timestamp")
        outputs.append(rows[["source_row", "ts"]].join(scored, on="ts"))
        summary["series"].append({"series": service, "rows": len(wide), "train_rows": res.train_rows,
                                  "anomalous_rows": int(res.frame["is_anomaly"].sum()), "windows": res.windows,
                                  "notes": res.notes})
    result = pd.concat(outputs).drop_duplicates("source_row").sort_values("source_row")
    result = pd.DataFrame({"timestamp": result["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"), "score": result["score"],
                           "is_anomaly": result["is_anomaly"].astype(int)})
    output.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(output, index=False)
    summary["rows"] = len(result)
    summary["anomalous_rows"] = int(result["is_anomaly"].sum())
    if as_json:
        out.print_json(json.dumps(summary, default=str))
        return
    out.print(f"Scored {len(result):,} rows with {model}: {summary['anomalous_rows']:,} anomalous; wrote {output}")
    for s in summary["series"]:
        for note in s["notes"]:
            out.print(f"[yellow]note[/yellow] ({s['series']}): {note}")
        for w in s["windows"][:10]:
            out.print(f"  {s['series']}: {w['start']} .. {w['end']} ({w['rows']} rows, peak {w['peak_score']:.4f})")


@app.command()
def forecast(
    input_path: Path = typer.Option(..., "--input", "-i", help="CSV or Parquet: a timestamp column and a numeric "
                                    "column, or long form timestamp, service, metric, value."),
    horizon: int = typer.Option(..., "--horizon", "-H", min=1, help="Steps ahead to forecast, in the series' own "
                                "step (24 on hourly data is one day); at most as many as the history holds."),
    output: Path = typer.Option(..., "--output", "-o", help="CSV to write: timestamp, yhat, yhat_lower, "
                                "yhat_upper (one row per future step)."),
    model: str = typer.Option("auto", help="seasonal_naive, arima, prophet, lstm, deepar, or auto: backtest "
                              "seasonal_naive and arima on the end of your series and keep the better (MASE)."),
    time_col: str | None = typer.Option(None, help="Timestamp column (default: found by name)."),
    value_col: str | None = typer.Option(None, "--value-col", help="The column to forecast (needed when the "
                                         "file has several numeric columns)."),
    series: str | None = typer.Option(None, help="SERVICE/METRIC to forecast from a long-form file with several."),
    level: int = typer.Option(95, help="Interval of yhat_lower/yhat_upper: 80 or 95 (percent)."),
    plot: Path | None = typer.Option(None, "--plot", help="Also draw history, forecast and intervals to this PNG."),
    as_json: bool = JsonOpt,
):
    """Forecast a series of your own: when will it reach a level, what will the next day look like.

    Reads the file like `cerebro detect` (header case and quoting may vary), prepares one regular series
    (sorted, duplicate timestamps averaged, irregular samples put on the median step, short gaps
    interpolated; each noted), fits the model and writes `timestamp, yhat, yhat_lower, yhat_upper`. Too
    few points, a gap too long to fill, or a horizon longer than the history are refused with what is
    needed; a constant series gets a flat forecast and a note.

    Examples:

        cerebro forecast --input disk.csv --horizon 48 --output disk-forecast.csv --plot disk.png

        cerebro forecast -i export.parquet -H 24 -o out.csv --series database/cpu_pct --model prophet --json
    """
    import pandas as pd

    from training.forecasting import FORECASTERS, ForecastInputError, build_forecaster, prepare_series
    from training.forecasting.prepare import check_horizon

    if level not in (80, 95):
        _fail(f"--level {level}: choose 80 or 95", 2)
    if model != "auto" and model not in FORECASTERS:
        _fail(f"--model {model!r}: choose auto or one of {', '.join(FORECASTERS)}", 2)
    raw = _read_user_series(input_path, time_col, [value_col] if value_col else None)
    keys = raw["service"].astype(str) + "/" + raw["metric"].astype(str)
    available = list(dict.fromkeys(keys))
    if series is not None:
        if series not in available:
            _fail(f"{input_path}: no series {series!r}; the file has {', '.join(available[:20])}", 2)
        chosen = series
    elif len(available) == 1:
        chosen = available[0]
    else:
        _fail(f"{input_path}: {len(available)} series ({', '.join(available[:10])}); forecast one at a time: name it "
              "with --value-col (wide file) or --series SERVICE/METRIC (long file)", 2)
    rows = raw[keys == chosen]
    values = pd.Series(rows["val"].to_numpy(), index=pd.DatetimeIndex(rows["ts"]), name=chosen)
    try:
        prepared = prepare_series(values)
        check_horizon(horizon, len(prepared.series), prepared.step)
        chosen_model, comparison = model, None
        if model == "auto":
            chosen_model, comparison = _auto_forecaster(prepared.series, horizon)
        fitted = build_forecaster(chosen_model).fit(prepared.series)
        result = fitted.predict(horizon)
    except ForecastInputError as exc:
        _fail(f"{input_path}: series {chosen!r}: {exc}", 2)
    lo, hi = f"yhat_lower_{level}", f"yhat_upper_{level}"
    table_out = pd.DataFrame({"timestamp": result.index.strftime("%Y-%m-%dT%H:%M:%SZ"), "yhat": result["yhat"].to_numpy(),
                              "yhat_lower": result[lo].to_numpy(), "yhat_upper": result[hi].to_numpy()})
    output.parent.mkdir(parents=True, exist_ok=True)
    table_out.to_csv(output, index=False)
    if plot is not None:
        from training.forecasting.plots import plot_forecast

        plot_forecast(prepared.series, result, plot, title=f"{chosen}: {chosen_model}, {level}% interval",
                      last=max(4 * horizon, 200))
    notes = list(prepared.notes) + list(getattr(fitted, "notes_", []))
    summary = {"input": str(input_path), "output": str(output), "series": chosen, "model": chosen_model,
               "history_points": len(prepared.series), "step": _step_text(prepared.step), "horizon": horizon,
               "level": level, "first": table_out["timestamp"].iloc[0], "last": table_out["timestamp"].iloc[-1],
               "yhat_last": float(table_out["yhat"].iloc[-1]), "notes": notes, "auto_comparison": comparison,
               "plot": str(plot) if plot else None}
    if as_json:
        out.print_json(json.dumps(summary, default=str))
        return
    out.print(f"Forecast {chosen} {horizon} steps of {_step_text(prepared.step)} ahead with {chosen_model}: wrote {output}"
              + (f" and {plot}" if plot else ""))
    if comparison:
        out.print("  auto: " + ", ".join(f"{k} MASE {v:.3f}" for k, v in comparison.items()))
    for note in notes:
        out.print(f"[yellow]note[/yellow]: {note}")


def _step_text(step) -> str:
    from pandas.tseries.frequencies import to_offset

    return to_offset(step).freqstr


def _auto_forecaster(series, horizon: int) -> tuple[str, dict]:
    """Backtest seasonal naive and auto-ARIMA on the end of the series; the lower mean MASE wins (ties: naive)."""
    from training.forecasting.backtest import backtest

    h = max(1, min(horizon, len(series) // 4))
    try:
        result = backtest(series, ["seasonal_naive", "arima"], horizons=[h], n_origins=2, errors="record")
    except Exception:  # noqa: BLE001 - too short to backtest: the baseline needs nothing to be chosen
        return "seasonal_naive", {}
    scores = result.frame.groupby("model")["mase"].mean().dropna().to_dict()
    if not scores:
        return "seasonal_naive", {}
    best = min(scores, key=lambda k: (scores[k], k != "seasonal_naive"))
    return best, {k: float(v) for k, v in scores.items()}


@app.command("predict-failure")
def predict_failure(
    service: list[str] | None = typer.Option(None, "--service", "-s", help="Service(s) to predict (repeatable; "
                                             "default: every service of the fleet in the lake)."),
    top: int = typer.Option(3, "--top", min=1, max=20, help="Contributing factors shown per service."),
    version: str = typer.Option("latest", help="Version of the registered cerebro-failure-predictor."),
    config: str | None = ConfigOpt,
    as_json: bool = JsonOpt,
):
    """Which services are likely to fail soon, how soon, and why: the registered failure predictor on the
    latest features in Feast's online store.

    Prints, per service: the calibrated probability of a failure within the model's horizon, whether that is
    over the alarm threshold learned on validation, the estimated time to failure (for alarms), and the top
    SHAP factors (feature, its value, its signed push on the log-odds). Needs a pipeline run first
    (`cerebro run`), which trains, registers and materialises everything this reads.

    Examples:

        cerebro predict-failure

        cerebro predict-failure --service payment --service database --top 5 --json
    """
    settings = _settings(config)
    import mlflow
    from training.failure.serving import predict_online

    from telemetry import lake

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    uri = f"models:/cerebro-failure-predictor/{version}"
    try:
        bundle = mlflow.pyfunc.load_model(uri).unwrap_python_model().bundle
    except Exception as exc:  # noqa: BLE001 - MLflow raises several types for "no such model"
        _fail(f"no failure predictor at {uri} in {settings.mlflow_tracking_uri} ({type(exc).__name__}); run the "
              "pipeline first: cerebro run", 2)
    model = bundle["model"]
    services = list(service or [])
    if not services:
        graph = lake.read_graph(settings.lake_dir) or {}
        services = [s["name"] for s in graph.get("services", [])]
        if not services:
            _fail(f"no fleet graph in {settings.lake_dir}: name the services with --service", 2)
    try:
        result = predict_online(settings, model, services, top_k=top)
    except Exception as exc:  # noqa: BLE001 - the Feast repo or its online store is missing
        _fail(f"could not read the online features ({type(exc).__name__}: {exc}); run the pipeline first: cerebro run", 2)
    unknown = result.attrs.get("unknown_services", [])
    result = result.sort_values("failure_probability", ascending=False)
    rows = [{"service": r.service, "failure_probability": float(r.failure_probability), "alarm": bool(r.alarm),
             "time_to_failure_minutes": None if math.isnan(r.time_to_failure_minutes)
             else float(r.time_to_failure_minutes),
             "top_factors": list(r.top_factors)} for r in result.itertuples()]
    summary = {"model": uri, "horizon_minutes": bundle.get("horizon_minutes"), "threshold": bundle.get("threshold"),
               "data_version": bundle.get("data_version"), "predictions": rows, "unknown_services": unknown}
    if as_json:
        out.print_json(json.dumps(summary, default=str))
        return
    table = Table(title=f"Failure within {bundle.get('horizon_minutes', 0):g} min (alarm at p >= "
                        f"{bundle.get('threshold', 0):.3f}; {uri})")
    for col in ("service", "probability", "alarm", "time to failure", "top factors (SHAP, log-odds)"):
        table.add_column(col)
    for r in rows:
        factors = "; ".join(f"{f['feature']}={_fmt(f.get('value'))} ({f['contribution']:+.2f})" for f in r["top_factors"])
        ttf = "-" if r["time_to_failure_minutes"] is None else f"{r['time_to_failure_minutes']:.0f} min"
        table.add_row(r["service"], f"{r['failure_probability']:.3f}", "yes" if r["alarm"] else "no", ttf, factors)
    out.print(table)
    if unknown:
        out.print(f"[yellow]no features in the online store for[/yellow] {', '.join(unknown)}")


def _fmt(value) -> str:
    return "NaN" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


@app.command()
def drift(
    config: str | None = ConfigOpt,
    end: str | None = typer.Option(None, help="End of the current window, ISO 8601 (default: the lake's newest row)."),
    act: bool = typer.Option(False, "--act", help="Act on the decision as the hourly deployment does: run the "
                             "retraining deployment, or serve the fallback model. Default: report only."),
    as_json: bool = JsonOpt,
):
    """Check drift now: the lake's last `drift.current_hours` against the `drift.reference_days` before them.

    Compares the live detector's inputs as it reads them (raw metrics when none is live), its scores and,
    where incidents were recorded, its F1; writes the Evidently HTML report and logs the check to MLflow.

    Examples:

        cerebro drift                              # report only

        cerebro drift --end 2026-11-20T00:00Z --json

        cerebro drift --act                        # retrain or fall back, as `drift/hourly` would
    """
    settings = _settings(config)
    if end is not None:
        import pandas as pd

        try:
            pd.Timestamp(end)
        except ValueError:
            _fail(f"--end {end!r} is not a time: expected ISO 8601, e.g. 2026-11-20T00:00Z", 2)
    from flows.drift import drift_flow

    with _progress("drift check"):
        try:
            result = drift_flow(config=config, end=end, trigger=act)
        except Exception as exc:  # noqa: BLE001 - the flow has already logged the details
            _fail(str(exc))
    if as_json:
        out.print_json(json.dumps(result, default=str))
        return
    action = result["action"]
    out.print(f"[bold]{action['action']}[/bold] ({'acted on' if action['applied'] else 'report only'})")
    for reason in action["reasons"]:
        out.print(f"  - {reason}", highlight=False, soft_wrap=True)
    out.print(f"Compared: {result['compared']}: {result['share_drifted']:.0%} of metrics drifted "
              f"({', '.join(result['drifted_metrics']) or 'none'}; threshold {settings.drift.drift_share:.0%})")
    pred = result.get("prediction") or {}
    if pred:
        out.print(f"Scores of {result['model']}: PSI {pred['psi']:.2f}, alarm rate "
                  f"{pred['alarm_rate_reference']:.2%} -> {pred['alarm_rate_current']:.2%}")
    out.print(f"Report {result['html']}; MLflow run {result['mlflow_run_id']}")


@app.command()
def ui(
    config: str | None = ConfigOpt,
    prefect_port: int = typer.Option(4200, help="Port of the Prefect UI."),
    mlflow_port: int = typer.Option(5000, help="Port of the MLflow UI."),
    wait: bool = typer.Option(True, help="Stay in the foreground until Ctrl-C (--no-wait starts them and returns)."),
    stop: bool = typer.Option(False, "--stop", help="Stop UIs that an earlier `cerebro ui --no-wait` left running."),
):
    """Start the Prefect UI and the MLflow UI on localhost over the home folder, and print their addresses.

    Example:

        cerebro ui            # then open http://127.0.0.1:4200 and http://127.0.0.1:5000

        cerebro ui --no-wait  # leave them running; `cerebro ui --stop` ends them
    """
    settings = _settings(config)
    from flows.services import start_uis, stop_detached, stop_uis

    if stop:
        out.print(f"stopped {stop_detached(settings)} process(es)")
        return
    try:
        procs = start_uis(settings, prefect_port, mlflow_port)
    except RuntimeError as exc:
        _fail(str(exc))
    out.print(f"Prefect UI  http://127.0.0.1:{prefect_port}\nMLflow UI   http://127.0.0.1:{mlflow_port}\n"
              f"Logs and pids in {settings.home / 'run'}")
    if not wait:
        return
    out.print("Press Ctrl-C to stop both.")
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        stop_uis(procs)


@app.command()
def env(config: str | None = ConfigOpt):
    """Print `export` lines that point the `prefect` and `mlflow` commands at this project's home folder.

    Example:

        eval "$(cerebro env)" && prefect deployment ls
    """
    from configs.runtime import engine_environment
    from configs.settings import ConfigError, load_settings

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        _fail(str(exc), 2)
    for key, value in engine_environment(settings).items():
        print(f"export {key}={json.dumps(value)}")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
