"""A user's own series: one CSV or Parquet file, read for `cerebro detect` and `cerebro forecast`.

Unlike ingest, nothing goes to a lake or a quarantine: the file is read with the file source's loose
header matching (long or wide form), timestamps and values are parsed, and anything that makes the file
unusable ends the read with a :class:`UserSeriesError` naming the file, the rows and what to fix.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd


class UserSeriesError(ValueError):
    """The file cannot be read as series; the message names the file and what to fix."""


def read_user_series(path: Path, time_col: str | None = None, value_cols: list[str] | None = None) -> pd.DataFrame:
    """The file as long rows (``timestamp, service, metric, value, source_row`` ...) with parsed ``ts`` (UTC)
    and ``val`` (float, NaN where unreadable). A wide file's rows belong to the service ``series``.

    Raises :class:`UserSeriesError` when the file is missing, its layout cannot be mapped onto telemetry,
    or a row's timestamp cannot be read (the first five such rows are quoted).
    """
    from telemetry.sources.files import SchemaError, not_a_file, read_table, to_raw_telemetry, units_in
    from telemetry.validation import parse_timestamps, parse_values

    if (why := not_a_file(path, "a CSV or Parquet file of timestamps and values, or a saved Prometheus range "
                                 "query (.json)")) is not None:
        raise UserSeriesError(why)
    try:
        raw = to_raw_telemetry(read_table(path), str(path), time_col=time_col, value_cols=value_cols,
                               default_service="series")
    except SchemaError as exc:
        raise UserSeriesError(str(exc)) from exc
    ts = parse_timestamps(raw["timestamp"])
    bad = raw.loc[ts.isna(), "source_row"].unique()
    if len(bad):
        examples = ", ".join(f"row {r}: {raw.loc[raw['source_row'] == r, 'timestamp'].iloc[0]!r}" for r in bad[:5])
        raise UserSeriesError(f"{path}: {len(bad)} row(s) have no readable timestamp ({examples}); expected ISO "
                              "8601 or epoch seconds. Fix or remove them, or name the column with --time-col")
    out = raw.assign(ts=ts, val=parse_values(raw["value"]))
    with_numbers = set(out.loc[out["val"].notna(), "metric"].unique())
    for metric, rows in out[~out["metric"].isin(with_numbers)].groupby("metric", sort=False):
        if len(units := units_in(rows["value"])) > 1:
            examples = ", ".join(repr(v) for v in list(units.values())[:3])
            raise UserSeriesError(f"{path}: column {metric!r} holds numbers in different units ({', '.join(units)}: "
                                  f"{examples}); expected plain numbers. Export them unformatted (Grafana: turn "
                                  "off 'Formatted data' when downloading the CSV)")
        text = rows["value"].astype(str).str.strip()
        seen = text[(text != "") & (text.str.lower() != "nan")].drop_duplicates().head(3).tolist()
        if seen:  # text where numbers were expected: show what is there (an all-empty column is named later)
            raise UserSeriesError(f"{path}: column {metric!r} holds no numbers (values such as "
                                  f"{', '.join(repr(v) for v in seen)}); expected plain numbers such as 12.5, "
                                  "without thousands separators. Choose the value columns with --value-col")
    return out


def select_series(raw: pd.DataFrame, path: Path, series: str | None = None) -> pd.Series:
    """One series of :func:`read_user_series`'s rows, named ``SERVICE/METRIC``, as values indexed by time (in file
    order). ``series`` names it; without it the file must hold exactly one.

    Raises :class:`UserSeriesError` for an unknown name or, without one, a file that holds several.
    """
    keys = raw["service"].astype(str) + "/" + raw["metric"].astype(str)
    available = list(dict.fromkeys(keys))
    if series is not None:
        if series not in available:
            raise UserSeriesError(f"{path}: no series {series!r}; the file has {', '.join(available[:20])}")
        chosen = series
    elif len(available) == 1:
        chosen = available[0]
    else:
        raise UserSeriesError(f"{path}: {len(available)} series ({', '.join(available[:10])}); forecast one at a "
                              "time: name it with --value-col (wide file) or --series SERVICE/METRIC (long file)")
    rows = raw[keys == chosen]
    return pd.Series(rows["val"].to_numpy(), index=pd.DatetimeIndex(rows["ts"]), name=chosen)


def service_frames(raw: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame, pd.DataFrame]]:
    """Per service of :func:`read_user_series`'s rows, in file order: ``(service, rows, wide)``, where ``wide``
    has a column per metric and a row per distinct timestamp in first-seen order (duplicates averaged)."""
    for service, rows in raw.groupby(raw["service"].astype(str), sort=False):
        wide = rows.pivot_table(index="ts", columns="metric", values="val", aggfunc="mean", dropna=False)
        wide = wide.reindex(pd.Index(rows["ts"].drop_duplicates().to_numpy(), name="ts"))
        yield service, rows, wide
