"""The one way a model's data version is written: ``<label>@<first 10 hex digits of a SHA-1>``.

The digest covers what identifies the exact data a model saw, cheaply: a Parquet file's row count and footer
(the feature data the detectors and the failure predictor read), or a telemetry window's bounds, row count and
sum (the forecasters' series). Registered versions carry it as ``cerebro.data_version``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd


def fingerprint(label: str, *parts) -> str:
    """``label@digest`` of ``parts`` joined by "|" (the label is hashed only when it is one of the parts)."""
    digest = hashlib.sha1("|".join(str(p) for p in parts).encode())
    return f"{label}@{digest.hexdigest()[:10]}"


def of_parquet(parquet: Path, dataset: str) -> str:
    """A feature file as written for one dataset (its footer changes with any change to its rows)."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(parquet).metadata
    return fingerprint(dataset, dataset, meta.num_rows, meta.serialized_size, Path(parquet).stat().st_size)


def of_telemetry(telemetry: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> str:
    """A long telemetry window, as read from the lake."""
    return fingerprint("telemetry", start, end, len(telemetry), f"{float(telemetry['value'].sum()):.6g}")
