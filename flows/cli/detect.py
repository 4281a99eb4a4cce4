"""`cerebro detect`: anomalies in a user's own series (telemetry/sources/user_series.py reads the file,
training/series_detection.py scores it). A folder is scored file by file in one process."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import typer

from flows.cli.common import DEBUG, JsonOpt, console, fail, out, print_json

SUFFIXES = (".csv", ".parquet", ".pq", ".json")


def detect(
    input_path: Path = typer.Option(..., "--input", "-i", help="CSV or Parquet: a timestamp column and numeric "
                                    "columns, or long form timestamp, service, metric, value; or a saved "
                                    "Prometheus range query (.json). A folder: every such file in it."),
    output: Path = typer.Option(..., "--output", "-o", help="CSV to write: timestamp, score, is_anomaly, one row "
                                "per input row, in input order. With a folder as input: a folder, one file "
                                "per input file under the same name (.json inputs get .json.csv)."),
    model: str | None = typer.Option(None, help="auto (default: per series, the robust residual detector that "
                                        "finds anomalies planted in its own training part best), or a zoo "
                                        "member: zscore, mad, ewma, holt_winters, isolation_forest, one_class_svm, "
                                        "dbscan, lof, random_cut_forest, pca, lstm_autoencoder, "
                                        "transformer_autoencoder, vae."),
    time_col: str | None = typer.Option(None, help="Timestamp column (default: found by name)."),
    value_col: list[str] | None = typer.Option(None, "--value-col", help="Numeric column(s) to score "
                                                  "(repeatable; default: every other column, except "
                                                  "those named like anomaly labels: is_anomaly, label ...)."),
    train_fraction: float = typer.Option(0.5, min=0.05, max=1.0, help="Leading share of the series the model "
                                         "learns normal behaviour from."),
    as_json: bool = JsonOpt,
):
    """Find anomalies in your own exported metrics, with no labels: the model learns from the series itself.

    Writes one row per input row: `timestamp, score, is_anomaly`. `score` is in [0, 1]; with the default
    model it grows with the evidence without a cap (a larger anomaly scores higher). `is_anomaly` is `score`
    over the threshold learned from the training part, which the summary reports per series. Long-form files are scored per
    service, all its metrics together. Unsorted, irregular or duplicate timestamps and gaps are handled (see
    the summary); a series too short for the model is refused with what it needs.

    Examples:

        cerebro detect --input cpu.csv --output cpu-scores.csv

        cerebro detect -i exports/ -o scores/ --json

        cerebro detect -i export.parquet -o out.csv --model isolation_forest --value-col p99
    """
    from training.series_detection import DEFAULT_MODEL

    model = model or DEFAULT_MODEL
    if input_path.is_dir():
        files = sorted(p for p in input_path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            fail(f"{input_path}: no CSV, Parquet or .json (saved Prometheus query) files in this folder", 2)
        if output.exists() and not output.is_dir():
            fail(f"{output}: with a folder as --input, --output must be a folder (it is a file)", 2)
        # a saved Prometheus query's scores are a CSV too: latency.json -> latency.json.csv
        jobs = [(f, output / (f.name + ".csv" if f.suffix.lower() == ".json" else f.name)) for f in files]
    else:
        if output.is_dir():
            fail(f"{output} is a folder: give a file name, or a folder as --input to score a whole folder", 2)
        jobs = [(input_path, output)]
    summaries, errors = [], []
    with _files_bar(len(jobs)) as advance:
        for src, dst in jobs:
            try:
                summaries.append(_one(src, dst, model, time_col, value_col, train_fraction))
            except ValueError as exc:  # the reader's and the detector's errors name the file and the fix
                if DEBUG["on"]:
                    console.print_exception(show_locals=False)
                errors.append(str(exc) if str(src) in str(exc) else f"{src}: {exc}")
            advance(src.name)
    if as_json:
        doc = summaries[0] if len(jobs) == 1 and summaries else {"files": summaries, "errors": errors}
        if summaries or not errors:
            print_json(doc)
    else:
        for summary in summaries:
            _print(summary)
    if errors:
        fail("\n".join(errors), 2)


@contextmanager
def _files_bar(total: int):
    """A progress bar over a folder's files on stderr (a folder of a hundred exports takes a minute or two); a
    single file gets none. Yields ``advance(name)``."""
    if total < 2:
        yield lambda name: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]scoring"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[name]}"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("files", total=total, name="")
        yield lambda name: bar.update(task, advance=1, name=name)


def _one(src: Path, dst: Path, model: str, time_col, value_col, train_fraction) -> dict:
    from telemetry.sources.user_series import read_user_series
    from training.series_detection import detect_user_series

    raw = read_user_series(src, time_col, value_col or None)
    result, scored = detect_user_series(raw, model=model, train_fraction=train_fraction, label=str(src))
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.suffix.lower() in (".parquet", ".pq"):
        result.to_parquet(dst, index=False)
    else:
        result.to_csv(dst, index=False)
    return {"input": str(src), "output": str(dst), "model": model, "series": scored["series"],
            "rows": scored["rows"], "anomalous_rows": scored["anomalous_rows"]}


def _print(summary: dict) -> None:
    out.print(f"Scored {summary['rows']:,} rows of {summary['input']} with {summary['model']}: "
              f"{summary['anomalous_rows']:,} anomalous; wrote {summary['output']}")
    for s in summary["series"]:
        chosen = ", ".join(f"{c}: {m}" for c, m in s["chosen"].items())
        if s["threshold"] is not None:
            out.print(f"  {s['series']}: threshold {s['threshold']:.4f}" + (f" ({chosen})" if chosen else ""))
        for note in s["notes"]:
            out.print(f"[yellow]note[/yellow] ({s['series']}): {note}")
        for w in s["windows"][:10]:
            out.print(f"  {s['series']}: {w['start']} .. {w['end']} ({w['rows']} rows, peak {w['peak_score']:.4f})")
