"""Validate raw telemetry with Great Expectations; split it into clean rows and a quarantine.

Raw rows (from any source) are first parsed: timestamps to UTC, values to floats. Great Expectations
then judges the parsed batch, rule by rule, and returns the index of every row that breaks a rule. A
row that breaks any rule goes to the quarantine with one reason per broken rule, naming the field and
the value that was wrong; the rest is the clean canonical frame. Nothing is dropped silently.

Rules:
  schema           the source produced the canonical columns
  timestamp        parses as a time (ISO 8601, epoch seconds/ms, or a naive time taken as UTC)
  service, metric  present and well-formed names
  value            a finite number
  range            within the metric's physical range (utilisation 0-100, rates and counts >= 0 ...)
  future           not later than now plus a small tolerance
  duplicate        one row per (timestamp, service, metric): the first is kept, later ones quarantined
  freshness        (batch level) the newest row is recent enough; a warning or a failure, by configuration
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from telemetry.schema import (
    KEY_COLUMNS,
    METRIC_NAME,
    SERVICE_NAME,
    TELEMETRY_COLUMNS,
    canonical,
    physical_range,
)

log = logging.getLogger(__name__)


class UnusableBatchError(ValueError):
    """Too much of a batch is bad to go on; the message names the source and the first problems."""


@dataclass
class RuleOutcome:
    rule: str
    expectation: str
    checked: int
    failed: int
    example: str = ""

    @property
    def passed(self) -> bool:
        return self.failed == 0


@dataclass
class ValidationResult:
    clean: pd.DataFrame
    quarantine: pd.DataFrame
    rules: list[RuleOutcome] = field(default_factory=list)
    rows_in: int = 0
    newest: pd.Timestamp | None = None
    stale: bool = False
    warnings: list[str] = field(default_factory=list)
    on_stale: str = "warn"  # a stale batch is a warning, or a failure

    @property
    def rows_clean(self) -> int:
        return len(self.clean)

    @property
    def rows_quarantined(self) -> int:
        return len(self.quarantine)

    def reasons(self) -> dict[str, int]:
        """How many quarantined rows broke each rule."""
        if self.quarantine.empty:
            return {}
        rules = self.quarantine["rules"].str.split(",").explode()
        return rules.value_counts().to_dict()

    def table(self) -> list[dict]:
        """The data-quality table: one row per rule."""
        return [
            {"rule": r.rule, "expectation": r.expectation, "checked": r.checked, "failed": r.failed,
             "status": "pass" if r.passed else ("warn" if r.rule == "freshness" and self.on_stale == "warn" else "fail"),
             "example": r.example}
            for r in self.rules
        ]



# ---------------------------------------------------------------------------- parsing
def parse_timestamps(raw: pd.Series) -> pd.Series:
    """Parse to tz-aware UTC; NaT where a value is not a time. Naive times are taken as UTC."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        ts = pd.to_datetime(raw)
        return (ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")).astype("datetime64[ns, UTC]")
    if pd.api.types.is_numeric_dtype(raw):
        return _from_epoch(pd.to_numeric(raw, errors="coerce"))
    text = raw.astype("string").str.strip().str.strip("\"'")
    numeric = pd.to_numeric(text, errors="coerce")
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    is_num = numeric.notna()
    if is_num.any():
        out[is_num] = _from_epoch(numeric[is_num])
    # No time is written in more than 64 characters, and dateutil takes minutes over a field of megabytes.
    rest = ~is_num & text.notna() & (text != "") & (text.str.len() <= 64)
    if rest.any():
        parsed = pd.to_datetime(text[rest], utc=True, errors="coerce", format="ISO8601")
        retry = parsed.isna()
        if retry.any():  # slower, per-row parsing only for what ISO 8601 did not take
            other = text[rest][retry]
            parsed[retry] = pd.to_datetime(other, utc=True, errors="coerce", format="mixed", dayfirst=_day_first(other))
        out[rest] = parsed.astype("datetime64[ns, UTC]")
    return out


def _day_first(text: pd.Series) -> bool:
    """Whether dates written ``dd.mm.yyyy`` or ``dd/mm/yyyy`` put the day first, decided once for the whole
    column: per row, dateutil reads ``01.03.2024`` as January 3 and ``13.03.2024`` as March 13, so a month
    of European dates would be scattered over a year. See :func:`date_order`."""
    return date_order(text)[0] == "day first"


def date_order(text: pd.Series) -> tuple[str | None, bool]:
    """The order of a column of dotted, slash or dashed dates, ``"day first"`` or ``"month first"`` (None when
    it holds none), and whether the dates read both ways. Dotted dates put the day first wherever they are
    written; otherwise the day is first where a first part exceeds 12 anywhere in the column, the month where
    a second part does, and when neither does (``03/01/2024``) whichever order puts the rows in the shorter
    span of time: an export covers days in a row, not the same day of ten months."""
    parts = text.astype("string").str.strip().str.extract(r"^(\d{1,2})([./-])(\d{1,2})[./-](\d{2,4})\b").dropna()
    if parts.empty:
        return None, False
    first, second = parts[0].astype(int), parts[2].astype(int)
    if (parts[1] == ".").any() or (first > 12).any():
        return "day first", False
    if (second > 12).any():
        return "month first", False
    year = parts[3].astype(int)
    year = year.where(year >= 100, year + 2000)

    def span(day, month) -> pd.Timedelta:
        dates = pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": day}), errors="coerce").dropna()
        return dates.max() - dates.min() if len(dates) else pd.Timedelta.max

    return ("day first" if span(first, second) < span(second, first) else "month first"), True


def ambiguous_dates(raw: pd.Series) -> str | None:
    """For dates that read both ways (``03/01/2024``: no first or second part over 12), the order they were read
    in; None otherwise. Worth telling the user."""
    order, both_ways = date_order(raw)
    return order if both_ways else None


def _from_epoch(numbers: pd.Series) -> pd.Series:
    """Epoch numbers to UTC, the unit guessed per value from its size (s, ms, us, ns)."""
    numbers = numbers.astype("float64")
    mag = numbers.abs()
    scale = np.select([mag > 1e17, mag > 1e14, mag > 1e11], [1.0, 1e3, 1e6], default=1e9)
    ns = numbers * scale
    ns = ns.where((ns > 0) & (ns < 4.1e18))  # 1970 .. 2100
    return pd.to_datetime(ns, utc=True, unit="ns", errors="coerce")


def parse_values(raw: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        values = raw.astype("float64")
    else:
        values = pd.to_numeric(raw.astype("string").str.strip().str.strip("\"'"), errors="coerce").astype("float64")
    return values.where(np.isfinite(values))


def _names(raw: pd.Series) -> pd.Series:
    """Trimmed names as a categorical: string work happens once per distinct name, not once per row."""
    codes, uniques = pd.factorize(raw.astype("object"))  # missing -> -1
    cleaned = pd.Series(uniques, dtype="string").str.strip().str.strip("\"'")
    cleaned = cleaned.where(cleaned != "").astype("object").where(lambda c: c.notna(), None)
    categories = pd.Index(cleaned.dropna().unique(), dtype="object")
    per_unique = categories.get_indexer(cleaned) if len(cleaned) else np.array([], dtype=int)
    new_codes = np.where(codes >= 0, per_unique[codes.clip(0)] if len(per_unique) else -1, -1)
    return pd.Series(pd.Categorical.from_codes(new_codes, categories=categories), index=raw.index)


# ---------------------------------------------------------------------------- Great Expectations
@lru_cache(maxsize=1)
def _gx_batch_definition():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return (
        ctx.data_sources.add_pandas(name="telemetry")
        .add_dataframe_asset(name="batch")
        .add_batch_definition_whole_dataframe("whole")
    )


def _run_expectations(frame: pd.DataFrame, expectations: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """Validate ``frame`` against named expectations; return (rule, result) pairs with full row indices."""
    import great_expectations as gx

    # Unsaved expectations have no id: tag each with its position to pair results with rules.
    for k, (_, e) in enumerate(expectations):
        e.meta = {**(e.meta or {}), "cerebro_rule": k}
    suite = gx.ExpectationSuite(name="telemetry", expectations=[e for _, e in expectations])
    batch = _gx_batch_definition().get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, result_format={"result_format": "COMPLETE", "include_unexpected_rows": False})
    by_pos = {r.expectation_config.meta["cerebro_rule"]: r for r in result.results}
    return [(rule, by_pos[k]) for k, (rule, _) in enumerate(expectations)]


def _failed_index(result) -> list:
    idx = result.result.get("unexpected_index_list") or []
    return [i["row"] if isinstance(i, dict) else i for i in idx]


# ---------------------------------------------------------------------------- main entry
def validate_telemetry(
    raw: pd.DataFrame,
    *,
    now: pd.Timestamp | None = None,
    future_tolerance_minutes: float = 5,
    freshness_hours: float | None = 48,
    on_stale: str = "warn",
    max_quarantine_share: float = 0.5,
    source: str | None = None,
) -> ValidationResult:
    """Judge a raw telemetry batch. Raises :class:`UnusableBatchError` when it is mostly bad; the quarantine
    is in the exception's ``result`` so that the caller can still keep it."""
    import great_expectations.expectations as gxe

    now = pd.Timestamp(now or pd.Timestamp.now(tz="UTC"))
    source = source or (str(raw["source"].iloc[0]) if "source" in raw and len(raw) else "batch")
    n = len(raw)
    if n == 0:
        raise UnusableBatchError(f"{source}: the batch has no rows")

    parsed = pd.DataFrame(
        {
            "row": np.arange(n),
            "timestamp": parse_timestamps(raw["timestamp"]).array,
            "service": _names(raw["service"]).array,
            "metric": _names(raw["metric"]).array,
            "value": parse_values(raw["value"]).to_numpy(),
            "problem": raw["problem"].to_numpy() if "problem" in raw else None,
        }
    )
    parsed["ts_epoch"] = parsed["timestamp"].astype("int64").where(parsed["timestamp"].notna()) / 1e9
    horizon = (now + pd.Timedelta(minutes=future_tolerance_minutes)).timestamp()

    rules: list[tuple[str, object]] = [
        ("schema", gxe.ExpectTableColumnsToMatchSet(column_set=["row", "timestamp", "service", "metric", "value",
                                                                "problem", "ts_epoch"], exact_match=True)),
        ("line", gxe.ExpectColumnValuesToBeNull(column="problem")),
        ("timestamp", gxe.ExpectColumnValuesToNotBeNull(column="timestamp")),
        ("service", gxe.ExpectColumnValuesToNotBeNull(column="service")),
        ("service", gxe.ExpectColumnValuesToMatchRegex(column="service", regex=SERVICE_NAME.pattern)),
        ("metric", gxe.ExpectColumnValuesToNotBeNull(column="metric")),
        ("metric", gxe.ExpectColumnValuesToMatchRegex(column="metric", regex=METRIC_NAME.pattern)),
        ("value", gxe.ExpectColumnValuesToNotBeNull(column="value")),
        ("future", gxe.ExpectColumnValuesToBeBetween(column="ts_epoch", max_value=horizon)),
    ]
    # One range expectation per distinct physical range, applied to the rows of the metrics that share it.
    metrics = parsed["metric"].dropna().unique()
    groups: dict[tuple, list[str]] = {}
    for m in metrics:
        lo, hi = physical_range(str(m))
        if lo is not None or hi is not None:
            groups.setdefault((lo, hi), []).append(str(m))
    for (lo, hi), names in sorted(groups.items(), key=lambda kv: str(kv[0])):
        rules.append(("range", gxe.ExpectColumnValuesToBeBetween(
            column="value", min_value=lo, max_value=hi,
            row_condition=f"metric in {sorted(names)!r}", condition_parser="pandas",
            meta={"metrics": sorted(names)},
        )))

    outcomes: list[RuleOutcome] = []
    bad_rules: dict[int, list[str]] = {}
    for rule, res in _run_expectations(parsed, rules):
        failed = _failed_index(res) if rule != "schema" else []
        if rule == "schema" and not res.success:
            raise UnusableBatchError(f"{source}: the source did not produce the canonical columns: {res.result}")
        for i in failed:
            bad_rules.setdefault(int(i), []).append(rule)
        name = res.expectation_config.type
        example = _reason(rule, raw, parsed, int(failed[0]), now) if failed else ""
        _merge_outcome(outcomes, RuleOutcome(rule, name, res.result.get("element_count", n) or n, len(failed), example))

    # Duplicates are judged among rows that passed everything else, so a bad row never shadows a good one.
    survivors = parsed.drop(index=list(bad_rules)) if bad_rules else parsed
    dup_rule = gxe.ExpectCompoundColumnsToBeUnique(column_list=KEY_COLUMNS)
    (_, dup_res), = _run_expectations(survivors, [("duplicate", dup_rule)])
    dup_mask = survivors.duplicated(subset=KEY_COLUMNS, keep="first")
    dup_rows = survivors.index[dup_mask].tolist()
    first_of = survivors[~dup_mask].set_index(KEY_COLUMNS)["row"] if dup_rows else None
    for i in dup_rows:
        bad_rules.setdefault(int(i), []).append("duplicate")
    outcomes.append(RuleOutcome("duplicate", dup_res.expectation_config.type, len(survivors), len(dup_rows),
                                _reason("duplicate", raw, parsed, dup_rows[0], now, first_of) if dup_rows else ""))

    bad_index = np.array(sorted(bad_rules), dtype=int)
    clean = canonical(parsed.drop(index=bad_index)) if len(bad_index) < n else canonical(parsed.iloc[0:0])
    quarantine = _quarantine_frame(raw, parsed, bad_rules, now, first_of)

    result = ValidationResult(clean=clean, quarantine=quarantine, rows_in=n, on_stale=on_stale)
    if labels := raw.attrs.get("label_columns"):
        result.warnings.append(f"{source}: column(s) {', '.join(labels)} look like anomaly labels and were not "
                               "ingested as metrics; to ingest them, name the metric columns with `cerebro ingest --value-col`")

    # Freshness is a property of the batch, not of a row: the newest clean row must be recent.
    if freshness_hours is not None and len(clean):
        newest = clean["timestamp"].max()
        result.newest = newest
        fresh = gxe.ExpectColumnMaxToBeBetween(column="ts_epoch", min_value=(now - pd.Timedelta(hours=freshness_hours)).timestamp())
        (_, fres), = _run_expectations(parsed.drop(index=bad_index), [("freshness", fresh)])
        age = now - newest
        outcomes.append(RuleOutcome("freshness", fres.expectation_config.type, 1, 0 if fres.success else 1,
                                    "" if fres.success else f"newest row is {newest:%Y-%m-%d %H:%M} UTC, "
                                    f"{age.total_seconds() / 3600:.1f} h old (limit {freshness_hours:g} h)"))
        if not fres.success:
            result.stale = True
            result.warnings.append(f"{source}: stale data: the newest row is {age.total_seconds() / 3600:.1f} h "
                                   f"old, more than {freshness_hours:g} h")
    result.rules = outcomes

    share = len(bad_index) / n
    if len(clean) == 0 or share > max_quarantine_share or (result.stale and on_stale == "fail"):
        if len(clean) and share <= max_quarantine_share:  # only the freshness rule failed
            message = f"{result.warnings[0]} (validation.on_stale is 'fail')"
        else:
            problems = "; ".join(f"row {r.source_row}: {r.reason}" for r in quarantine.head(5).itertuples())
            message = (f"{source}: unusable batch: {len(bad_index)} of {n} rows rejected ({share:.0%}, limit "
                       f"{max_quarantine_share:.0%}). First problems: {problems}")
        err = UnusableBatchError(message)
        err.result = result
        raise err
    return result


def _merge_outcome(outcomes: list[RuleOutcome], new: RuleOutcome) -> None:
    for o in outcomes:
        if o.rule == new.rule:
            o.failed += new.failed
            o.example = o.example or new.example
            o.expectation = f"{o.expectation}, {new.expectation}" if new.expectation not in o.expectation else o.expectation
            return
    outcomes.append(new)


def _raw(raw: pd.DataFrame, col: str, i: int) -> str:
    value = raw[col].iloc[i]
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def _reason(rule: str, raw: pd.DataFrame, parsed: pd.DataFrame, i: int, now: pd.Timestamp, first_of=None) -> str:
    """One sentence: which field, what it held, what was expected."""
    if rule == "line":
        return f"malformed line ({parsed['problem'].iloc[i]})"
    if rule == "timestamp":
        text = _raw(raw, "timestamp", i)
        return "timestamp is missing" if not text.strip() else f"timestamp {text!r} is not a time (expected ISO 8601 or epoch)"
    if rule in ("service", "metric"):
        text = _raw(raw, rule, i)
        pattern = SERVICE_NAME if rule == "service" else METRIC_NAME
        return f"{rule} is missing" if not text.strip() else f"{rule} {text!r} is not a valid name ({pattern.pattern})"
    if rule == "value":
        text = _raw(raw, "value", i).strip()
        metric = parsed["metric"].iloc[i]
        if not text:
            return f"value of {metric} is missing"
        if text.lower().strip("+-") in ("inf", "infinity"):
            return f"value of {metric} is infinite"
        return f"value {text!r} of {metric} is not a number"
    if rule == "range":
        metric = parsed["metric"].iloc[i]
        lo, hi = physical_range(str(metric))
        bounds = f">= {lo:g}" if hi is None else f"between {lo:g} and {hi:g}" if lo is not None else f"<= {hi:g}"
        return f"value {parsed['value'].iloc[i]:g} of {metric} is out of range (expected {bounds})"
    if rule == "future":
        return f"timestamp {parsed['timestamp'].iloc[i]:%Y-%m-%d %H:%M} UTC is in the future (now {now:%Y-%m-%d %H:%M} UTC)"
    if rule == "duplicate":
        key = tuple(parsed.loc[i, KEY_COLUMNS])
        first_row = first_of.loc[key] if first_of is not None else None
        first_src = int(first_row) + 1 if first_row is not None else "?"
        return f"duplicate of row {first_src} for ({key[0]:%Y-%m-%d %H:%M}, {key[1]}, {key[2]})"
    return rule


def _quarantine_frame(raw, parsed, bad_rules, now, first_of) -> pd.DataFrame:
    columns = ["source", "source_row", "timestamp", "service", "metric", "value", "rules", "reason"]
    if not bad_rules:
        return pd.DataFrame({c: pd.Series([], dtype="string") for c in columns}).astype({"source_row": "int64"})
    idx = sorted(bad_rules)
    sub = raw.iloc[idx]
    reasons = ["; ".join(_reason(r, raw, parsed, i, now, first_of) for r in dict.fromkeys(bad_rules[i])) for i in idx]
    frame = pd.DataFrame(
        {
            "source": sub["source"].astype("string").to_numpy() if "source" in sub else "batch",
            "source_row": sub["source_row"].to_numpy() if "source_row" in sub else np.array(idx) + 1,
            **{c: sub[c].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
               .astype("string").to_numpy() for c in TELEMETRY_COLUMNS},
            "rules": [",".join(dict.fromkeys(bad_rules[i])) for i in idx],
            "reason": reasons,
        }
    )
    return frame
