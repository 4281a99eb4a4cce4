"""`cerebro detect`: anomalies in a user's own series (telemetry/sources/user_series.py reads the file,
training/series_detection.py scores it)."""
from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.common import JsonOpt, fail, out, print_json


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
    from telemetry.sources.user_series import UserSeriesError, read_user_series
    from training.series_detection import DEFAULT_MODEL, SeriesDetectionError, detect_user_series

    model = model or DEFAULT_MODEL
    try:
        raw = read_user_series(input_path, time_col, value_col or None)
        result, scored = detect_user_series(raw, model=model, train_fraction=train_fraction, label=str(input_path))
    except (UserSeriesError, SeriesDetectionError) as exc:
        fail(str(exc), 2)
    output.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(output, index=False)
    summary = {"input": str(input_path), "output": str(output), "model": model, "series": scored["series"],
               "rows": scored["rows"], "anomalous_rows": scored["anomalous_rows"]}
    if as_json:
        print_json(summary)
        return
    out.print(f"Scored {len(result):,} rows with {model}: {summary['anomalous_rows']:,} anomalous; wrote {output}")
    for s in summary["series"]:
        for note in s["notes"]:
            out.print(f"[yellow]note[/yellow] ({s['series']}): {note}")
        for w in s["windows"][:10]:
            out.print(f"  {s['series']}: {w['start']} .. {w['end']} ({w['rows']} rows, peak {w['peak_score']:.4f})")
