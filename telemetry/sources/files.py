"""CSV and Parquet files, in long form (timestamp, service, metric, value) or wide form.

Wide form is a timestamp column, optionally a service column, and one column per metric. Headers are
matched loosely: case, surrounding quotes and spaces, and a handful of common names
(``time``, ``ts``, ``@timestamp``, ``app``, ``metric_name`` ...) are all understood.

A file source does not judge values: it maps the layout onto the canonical columns, keeps the raw text
and records where each row came from (``source``, ``source_row``) so that validation can quarantine a
bad row by name. Lines that CSV cannot split into the header's fields are kept too, flagged in
``problem``.
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pandas as pd

from telemetry.schema import LABEL_NAMES, PROVENANCE_COLUMNS, TELEMETRY_COLUMNS

ALIASES = {
    "timestamp": ("timestamp", "time", "ts", "datetime", "date_time", "date", "@timestamp", "event_time",
                  "time_stamp", "_time", "timestamp_utc", "time_utc", "period", "minute"),
    "service": ("service", "service_name", "svc", "app", "application", "job", "component", "host", "instance",
                "entity"),
    "metric": ("metric", "metric_name", "name", "__name__", "series", "signal"),
    "value": ("value", "val", "metric_value", "reading", "measurement"),
}
RAW_COLUMNS = TELEMETRY_COLUMNS + PROVENANCE_COLUMNS + ["problem"]
# A wide file with thousands of metrics has lines of a few hundred kB; a longer one is not a table
# (and parsing a multi-megabyte field costs minutes).
MAX_LINE_CHARS = 1_000_000


class SchemaError(ValueError):
    """The file's columns cannot be mapped onto telemetry; the message names the file and the columns."""


def normalise_header(name: object) -> str:
    text = str(name).replace("\ufeff", "").strip().strip("\"'` ").strip()
    text = re.sub(r"[\s\-/]+", "_", text)
    return text.lower()


def find_column(columns: list[str], role: str, explicit: str | None = None) -> str | None:
    """The column that plays ``role`` (after normalisation), or the explicitly named one."""
    if explicit:
        want = normalise_header(explicit)
        if want not in columns:
            raise SchemaError(f"column {explicit!r} not found; columns are {columns}")
        return want
    for alias in ALIASES[role]:
        if alias in columns:
            return alias
    return None


def not_a_file(path: Path, expected: str = "a CSV or Parquet file") -> str | None:
    """Why ``path`` cannot be read as a file (``None`` when it can): it is a folder, or it does not exist."""
    if path.is_dir():
        return f"{path}: is a directory; expected {expected}"
    if not path.is_file():
        return f"{path}: no such file; expected {expected}"
    return None


_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:.]*)?\{(.*)\}")
_LABEL = re.compile(r"_?([A-Za-z_][A-Za-z0-9_]*)=\"((?:[^\"\\]|\\.)*)\"")


def services_from_labels(labels: list[dict]) -> list[str]:
    """Per series, the values of the labels that tell the series apart (``a:9100``; ``a:9100/api`` for two, in the
    labels' alphabetical order; ``__name__`` aside), or "" for every series when none do."""
    keys = {k for lab in labels for k in lab if k != "__name__"}
    varying = sorted(k for k in keys if len({lab.get(k) for lab in labels}) > 1)
    return ["/".join(lab.get(k, "") for k in varying) for lab in labels]


def series_selectors(headers: list[str]) -> dict[str, tuple[str, str]]:
    """Headers written as Prometheus series (``cpu{instance="a:9100",job="node"}``, as Grafana exports a
    panel's series side by side), each as (metric, service): the metric's name (``value`` when the header has
    none) and the values of the labels that tell the columns apart (``a:9100``, ``a:9100/api`` for two, in
    the labels' alphabetical order; empty when none do). Empty unless
    every header is written so. (Header normalising turned ``, `` between labels into ``,_``.)"""
    matches = [_SELECTOR.fullmatch(h) for h in headers]
    if not headers or None in matches:
        return {}
    services = services_from_labels([dict(_LABEL.findall(m.group(2))) for m in matches])
    return {h: (m.group(1) or "value", svc) for h, m, svc in zip(headers, matches, services)}


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file with normalised headers and a ``source_row`` (1-based data row).

    CSV values stay text so that nothing is guessed before validation; a line with the wrong number of
    fields becomes a row with ``problem`` set instead of aborting the read.
    """
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix.lower() == ".gz" else path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        frame = _read_parquet(path)
        frame["problem"] = None
    elif suffix in (".csv", ".csv.gz", ".tsv", ".txt"):
        frame = _read_csv(path, sep="\t" if suffix == ".tsv" else None)
    elif suffix == ".json":
        frame = read_prometheus_json(path)
    else:
        raise SchemaError(f"{path}: unsupported file type {suffix or '(none)'}; expected .csv, .tsv, .parquet, "
                          "or .json (a saved Prometheus range query)")
    frame.columns = [normalise_header(c) if c != "problem" else c for c in frame.columns]
    if frame.columns.duplicated().any():
        dupes = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise SchemaError(f"{path}: column names repeat after normalising case and spaces: {dupes}")
    frame.insert(0, "source_row", range(1, len(frame) + 1))
    return frame


# A number written the European way (decimal comma, optional thousands dots), as spreadsheets in many
# locales export it with ';' between fields; and a number with a unit after it ("49.3 ms", "12.5%"), as
# Grafana's CSV download writes it with "Formatted data" on
_DECIMAL_COMMA = re.compile(r"[-+]?(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d+)?")
_WITH_UNIT = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z%\u00b5/]+(?:/[A-Za-z]+)?)")
UNIT_NAMES = {"%": "percent"}


def _plain_numbers(frame: pd.DataFrame, sep: str) -> pd.DataFrame:
    """Columns whose every value is a number with a decimal comma (in a file separated by ';' or tabs) or a
    number followed by one and the same unit, rewritten as plain numbers; a unit moves into the column's
    name (``latency`` holding ``49.3 ms`` becomes ``latency_ms``), so it is not lost. A column whose units
    differ (``980 ms`` then ``1.2 s``) is left as it is: its values are refused by name later, not scaled by
    a guess."""
    renames = {}
    # names, times and services keep their text (a metric called 5xx is not 5 of a unit "xx")
    keep = {alias for role in ("timestamp", "service", "metric") for alias in ALIASES[role]}
    for col in frame.columns:
        if col == "problem" or normalise_header(col) in keep:
            continue
        head = frame[col].head(200).astype(str).str.strip()
        head = head[head != ""]
        comma = sep in (";", "\t") and head.str.fullmatch(_DECIMAL_COMMA.pattern).all()
        if head.empty or not (comma or head.str.fullmatch(_WITH_UNIT.pattern).all()):
            continue  # most columns: plain numbers or text, told apart by their first rows at no cost
        text = frame[col].astype(str).str.strip()
        filled = text[text != ""]
        if comma:  # numbers so far: rewritten only where decimal commas show up, and every value fits
            if filled.str.contains(",", regex=False).any() and filled.str.fullmatch(_DECIMAL_COMMA.pattern).all():
                frame[col] = text.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
            continue
        parts = text.str.extract(f"^{_WITH_UNIT.pattern}$")
        used = parts[text != ""]
        if used[0].notna().all() and used[1].nunique() == 1:
            unit = used[1].iloc[0]
            frame[col] = parts[0].fillna("")
            renames[col] = f"{col}_{UNIT_NAMES.get(unit, unit).replace('/', '_per_')}"
    return frame.rename(columns=renames) if renames else frame


def units_in(values: pd.Series) -> dict[str, str]:
    """The distinct units of values written as a number and a unit (``980 ms``, ``1.2 s``), each with its first
    value, in the units' order: empty when they are not written so. For an error that says why a column holds
    no numbers."""
    text = values.dropna().astype(str).str.strip()
    unit = text.str.extract(f"^{_WITH_UNIT.pattern}$")[1]
    return {u: text[unit == u].iloc[0] for u in sorted(unit.dropna().unique())}


def read_prometheus_json(path: Path) -> pd.DataFrame:
    """A saved answer of Prometheus' range query API (``curl '.../api/v1/query_range?query=...' > cpu.json``) as
    a long-form table: ``timestamp`` (epoch seconds), ``metric`` (the series' ``__name__``, else ``value``),
    ``value`` (Prometheus' text: ``NaN`` and ``+Inf`` become gaps at validation) and, when the file holds
    several series, ``service``: the values of the labels that tell them apart (``a:9100``; ``a:9100/api``
    for two, in the labels' alphabetical order). Values stay text,
    as in a CSV. The whole answer, its ``data`` object or its ``result`` list are all accepted."""
    import json

    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SchemaError(f"{path}: not JSON ({exc}); expected a saved Prometheus range query answer "
                          "(curl '.../api/v1/query_range?...' > file.json)") from None
    if isinstance(doc, dict) and doc.get("status") == "error":
        raise SchemaError(f"{path}: the saved answer is Prometheus' error: {doc.get('errorType')}: {doc.get('error')}")
    data = doc.get("data", doc) if isinstance(doc, dict) else {"resultType": "matrix", "result": doc}
    kind, result = (data.get("resultType", "matrix"), data.get("result")) if isinstance(data, dict) else ("", None)
    if not isinstance(result, list):
        raise SchemaError(f"{path}: not a Prometheus answer (no data.result list); expected a saved range query: "
                          '{"status": "success", "data": {"resultType": "matrix", "result": [...]}}')
    if kind != "matrix":
        raise SchemaError(f"{path}: holds a Prometheus {kind!r} answer; expected a range query's 'matrix' "
                          "(/api/v1/query_range, not /api/v1/query)")
    labels = [dict(s.get("metric") or {}) if isinstance(s, dict) else {} for s in result]
    services = services_from_labels(labels)
    frames = []
    for i, (series, lab, service) in enumerate(zip(result, labels, services)):
        values = series.get("values") if isinstance(series, dict) else None
        if not isinstance(values, list) or any(not isinstance(v, list) or len(v) != 2 for v in values):
            raise SchemaError(f"{path}: result[{i}] has no 'values' list of [time, value] pairs; expected a "
                              "range query's matrix")
        frame = pd.DataFrame(values, columns=["timestamp", "value"], dtype=str)
        frame.insert(1, "metric", lab.get("__name__", "value"))
        if any(services):
            frame.insert(1, "service", service)
        frames.append(frame)
    if not frames:
        raise SchemaError(f"{path}: the saved range query returned no series; expected at least one")
    out = pd.concat(frames, ignore_index=True)
    out["problem"] = None
    return out


def _sniff_sep(head: str) -> str:
    try:
        return csv.Sniffer().sniff(head.splitlines()[0], delimiters=",;\t|").delimiter
    except (csv.Error, IndexError):
        return ","


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise SchemaError(f"{path}: not a readable Parquet file ({_first_line(exc)}); expected a Parquet file, "
                          "or a CSV named .csv") from None


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _check_text(path: Path, raw: bytes) -> None:
    """Refuse what is not a text table, by name, before pandas meets it: a compressed or binary file, or a line
    too long for a table."""
    head = raw[:65536]
    if head.startswith((b"\x1f\x8b", b"PK\x03\x04", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")):
        raise SchemaError(f"{path}: a compressed file (gzip, zip, bzip2, xz or zstd); expected a plain CSV, or the "
                          "same compressed file named .csv.gz")
    if head.startswith(b"PAR1"):
        raise SchemaError(f"{path}: a Parquet file; expected a CSV, or the same file named .parquet")
    undecodable = head.decode("utf-8", errors="replace").count("\ufffd")
    if b"\x00" in head or undecodable > len(head) / 100:
        raise SchemaError(f"{path}: binary content, not text; expected a CSV file (UTF-8 text: a header line, "
                          "then one row per line)")
    longest, lineno = _longest_line(raw)
    if longest > MAX_LINE_CHARS:
        raise SchemaError(f"{path}: line {lineno} is {longest / 1e6:.1f} MB long; expected CSV lines under "
                          f"{MAX_LINE_CHARS / 1e6:g} MB (is this a table?)")


def _longest_line(raw: bytes) -> tuple[int, int]:
    """The longest line's length in bytes and its 1-based number, at numpy speed."""
    import numpy as np

    ends = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == ord("\n"))
    bounds = np.concatenate(([-1], ends, [len(raw)]))
    lengths = np.diff(bounds) - 1
    at = int(lengths.argmax())
    return int(lengths[at]), at + 1


def _read_csv(path: Path, sep: str | None) -> pd.DataFrame:
    with pd.io.common.get_handle(path, "rb", compression="infer", is_text=False) as handle:
        raw = handle.handle.read()
    _check_text(path, raw)
    text = raw.decode("utf-8-sig", errors="replace")
    if not text.strip():
        raise SchemaError(f"{path}: the file is empty; expected a header line and data rows")
    sep = sep or _sniff_sep(text[:4096])
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                            skipinitialspace=True, on_bad_lines="error")
        # More fields on the first row than in the header make pandas take the extras as an index, shifting
        # every value one column left: read it line by line instead, where such rows are flagged.
        if isinstance(frame.index, pd.RangeIndex):
            frame["problem"] = None
            return _plain_numbers(frame, sep)
    except pd.errors.ParserError:
        pass
    # Slow path, only for files with malformed lines: keep every line, flag the ones that do not fit.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, skipinitialspace=True)
    rows, problems = [], []
    try:
        header = next(reader)
        for fields in reader:
            if not fields:
                continue
            if len(fields) != len(header):
                problems.append(f"line {reader.line_num}: expected {len(header)} fields, found {len(fields)}")
                fields = (fields + [""] * len(header))[: len(header)]
            else:
                problems.append(None)
            rows.append(fields)
    except csv.Error as exc:
        raise SchemaError(f"{path}: line {reader.line_num} is not readable CSV ({exc}); expected a header line, "
                          "then one row per line") from None
    frame = pd.DataFrame(rows, columns=header)
    frame["problem"] = problems
    return _plain_numbers(frame, sep)


def to_raw_telemetry(
    frame: pd.DataFrame,
    source: str,
    *,
    time_col: str | None = None,
    service_col: str | None = None,
    value_cols: list[str] | None = None,
    default_service: str | None = None,
) -> pd.DataFrame:
    """Map a table in either layout onto raw canonical rows (values untouched), with provenance."""
    columns = [c for c in frame.columns if c not in ("source_row", "problem")]
    ts = find_column(columns, "timestamp", time_col)
    if ts is None:
        raise SchemaError(
            f"{source}: no timestamp column; expected one named like {', '.join(ALIASES['timestamp'][:6])} "
            f"(any case), found {columns}. Name it with --time-col."
        )
    svc = find_column(columns, "service", service_col)
    metric = find_column(columns, "metric")
    value = find_column(columns, "value")
    labels: list[str] = []
    if metric and value and not value_cols:
        out = pd.DataFrame({
            "timestamp": frame[ts],
            "service": frame[svc] if svc else (default_service or Path(source).stem),
            "metric": frame[metric],
            "value": frame[value],
        })
        out["source_row"] = frame["source_row"].to_numpy()
        out["problem"] = frame["problem"].to_numpy()
    else:
        metrics = [normalise_header(c) for c in value_cols] if value_cols else [
            c for c in columns if c not in (ts, svc)
        ]
        labels = [] if value_cols else [m for m in metrics if m.lower() in LABEL_NAMES]
        if labels and len(labels) < len(metrics):  # labels beside the values: not telemetry (attrs say so)
            metrics = [m for m in metrics if m not in labels]
        else:
            labels = []
        missing = [m for m in metrics if m not in frame.columns]
        if missing:
            raise SchemaError(f"{source}: value columns {missing} not found; columns are {columns}")
        if not metrics:
            raise SchemaError(
                f"{source}: no value columns; expected long form (timestamp, service, metric, value) or wide "
                f"form (a timestamp column and one column per metric), found {columns}"
            )
        ids = ["source_row", "problem", ts] + ([svc] if svc else [])
        # Private names while melting: a metric column may itself be called "value" or "metric".
        out = frame[ids + metrics].melt(id_vars=ids, value_vars=metrics, var_name="__metric", value_name="__value")
        out = out.rename(columns={ts: "timestamp", "__metric": "metric", "__value": "value"})
        if svc:
            out = out.rename(columns={svc: "service"})
        else:
            default = default_service or Path(source).stem
            out["service"] = default
            if selectors := series_selectors(metrics):  # Grafana's export of Prometheus series, one per column
                out["service"] = out["metric"].map(lambda m: selectors[m][1] or default)
                out["metric"] = out["metric"].map(lambda m: selectors[m][0])
        out = out.sort_values(["source_row"], kind="stable")
    out["source"] = source
    out = out[RAW_COLUMNS].reset_index(drop=True)
    if labels:
        # read by validation (a warning) and `cerebro detect` (a note): the columns left out, and why
        out.attrs["label_columns"] = labels
    return out


def read_file(path: str | Path, **mapping) -> pd.DataFrame:
    """Read one CSV/Parquet file into raw canonical rows (see :func:`to_raw_telemetry`)."""
    path = Path(path)
    if (why := not_a_file(path)) is not None:
        raise (IsADirectoryError if path.is_dir() else FileNotFoundError)(why)
    return to_raw_telemetry(read_table(path), str(path), **mapping)


def discover(path: str | Path) -> list[Path]:
    """The telemetry files under a path: the file itself, or every CSV/Parquet file in a folder."""
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        skip = {"events", "incidents", "logs", "traces", "graph", "manifest"}
        files = sorted(
            p for p in path.rglob("*")
            if p.is_file() and p.suffix.lower() in (".csv", ".parquet", ".tsv") and p.stem not in skip
        )
        if not files:
            raise FileNotFoundError(f"{path}: no .csv or .parquet files in this folder")
        return files
    raise FileNotFoundError(f"{path}: no such file or folder")
