"""`cerebro forecast`: a forecast of a user's own series (telemetry/sources/user_series.py reads the file,
training/forecasting/choice.py picks the forecaster and runs it)."""
from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.common import JsonOpt, fail, out, print_json


def forecast(
    input_path: Path = typer.Option(..., "--input", "-i", help="CSV or Parquet: a timestamp column and a numeric "
                                    "column, or long form timestamp, service, metric, value."),
    horizon: int = typer.Option(..., "--horizon", "-H", min=1, help="Steps ahead to forecast, in the series' own "
                                "step (24 on hourly data is one day); at most as many as the history holds."),
    output: Path = typer.Option(..., "--output", "-o", help="CSV to write: timestamp, yhat, yhat_lower, "
                                "yhat_upper (one row per future step)."),
    model: str = typer.Option("auto", help="auto: backtest last value, seasonal naive, the seasonal and "
                              "week-part medians (each time of day over the last days; weekdays and weekends "
                              "apart), ETS, Theta and ARIMA (StatsForecast) on the end of your series, keep the "
                              "best or the median of the best three, intervals calibrated on the backtest "
                              "errors. Or one by name: naive, "
                              "ets, theta, autoarima, seasonal_naive, arima (pmdarima), prophet, lstm, deepar."),
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

    from telemetry.sources.user_series import UserSeriesError, read_user_series, select_series
    from training.forecasting import ForecastInputError
    from training.forecasting.choice import forecast_series
    from training.forecasting.registry import ALL_FORECASTERS, STATISTICAL
    from training.forecasting.statsforecast_models import import_statsforecast_alone

    if level not in (80, 95):
        fail(f"--level {level}: choose 80 or 95", 2)
    if model not in ALL_FORECASTERS:
        fail(f"--model {model!r}: choose one of {', '.join(ALL_FORECASTERS)}", 2)
    try:
        values = select_series(read_user_series(input_path, time_col, [value_col] if value_col else None),
                               input_path, series)
    except UserSeriesError as exc:
        fail(str(exc), 2)
    chosen = values.name
    if model in STATISTICAL:  # the StatsForecast models
        import_statsforecast_alone()
    try:
        fc = forecast_series(values, horizon, model)
    except ForecastInputError as exc:
        fail(f"{input_path}: series {chosen!r}: {exc}", 2)
    prepared, chosen_model, comparison, result = fc.prepared, fc.model, fc.comparison, fc.forecast
    lo, hi = f"yhat_lower_{level}", f"yhat_upper_{level}"
    table_out = pd.DataFrame({"timestamp": result.index.strftime("%Y-%m-%dT%H:%M:%SZ"), "yhat": result["yhat"].to_numpy(),
                              "yhat_lower": result[lo].to_numpy(), "yhat_upper": result[hi].to_numpy()})
    output.parent.mkdir(parents=True, exist_ok=True)
    table_out.to_csv(output, index=False)
    if plot is not None:
        from training.forecasting.plots import plot_forecast

        plot_forecast(prepared.series, result, plot, title=f"{chosen}: {chosen_model}, {level}% interval",
                      last=max(4 * horizon, 200))
    notes = fc.notes
    summary = {"input": str(input_path), "output": str(output), "series": chosen, "model": chosen_model,
               "history_points": len(prepared.series), "step": _step_text(prepared.step), "horizon": horizon,
               "level": level, "first": table_out["timestamp"].iloc[0], "last": table_out["timestamp"].iloc[-1],
               "yhat_last": float(table_out["yhat"].iloc[-1]), "notes": notes, "auto_comparison": comparison,
               "plot": str(plot) if plot else None}
    if as_json:
        print_json(summary)
        return
    out.print(f"Forecast {chosen}: {horizon} steps of {_step_words(prepared.step)} ahead with {chosen_model}; wrote {output}"
              + (f" and {plot}" if plot else ""))
    if comparison:
        out.print("  backtest MAE: " + ", ".join(f"{k} {v:.4g}" for k, v in comparison.items()))
    for note in notes:
        out.print(f"[yellow]note[/yellow]: {note}")


def _step_text(step) -> str:
    from pandas.tseries.frequencies import to_offset

    return to_offset(step).freqstr


_UNITS = {"ms": "millisecond", "s": "second", "min": "minute", "h": "hour", "D": "day", "W": "week",
          "MS": "month", "ME": "month", "QS": "quarter", "QE": "quarter", "YS": "year", "YE": "year"}


def _step_words(step) -> str:
    """'1 minute', '5 minutes', '1 month' for a person; ``_step_text`` ('min', '5min', 'MS') stays in --json."""
    from pandas.tseries.frequencies import to_offset

    offset = to_offset(step)
    unit = _UNITS.get(offset.name.split("-")[0])
    if unit is None:
        return offset.freqstr
    if unit == "day" and offset.n % 7 == 0:
        unit, n = "week", offset.n // 7
    else:
        n = offset.n
    return f"{n} {unit}{'' if n == 1 else 's'}"

