"""Where telemetry comes from. ``resolve`` turns a path or URL into batches that load raw rows; ``check`` does
the same and also fails at once, by name, on what can be known before reading (see :func:`check`).

    path/to/file.csv | .parquet | folder/     files (long or wide form)
    s3://bucket/key-or-prefix                  objects in S3 (boto3)
    prometheus://host:9090  (prometheus+https://...)   Prometheus range queries from the config
    prometheus://                              the same, at sources.prometheus.url
    cloudwatch://[namespace]                   CloudWatch GetMetricData, metrics from the config
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from telemetry.sources.errors import SourceError, without_credentials


@dataclass
class SourceBatch:
    name: str  # the file, object or endpoint, used in every message about this batch
    load: Callable[[], pd.DataFrame]  # raw telemetry rows (see telemetry.sources.files.RAW_COLUMNS)


def _window(lookback_hours: float, now: pd.Timestamp | None = None) -> tuple[pd.Timestamp, pd.Timestamp]:
    end = (now or pd.Timestamp.now(tz="UTC")).floor("min")
    return end - pd.Timedelta(hours=lookback_hours), end


def _secret(value) -> str | None:
    """The text of a setting that may be a secret (pydantic ``SecretStr``) or plain text."""
    text = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    return text or None


def resolve(uri: str, settings, **mapping) -> list[SourceBatch]:
    """Batches for a source; ``mapping`` (time_col, service_col, value_cols, default_service) is for files."""
    from telemetry.sources import aws, files, prometheus

    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme == "s3":
        cfg = settings.sources.s3
        bucket = parsed.netloc
        return [
            SourceBatch(f"s3://{bucket}/{key}",
                        lambda key=key: aws.read_s3_object(bucket, key, cfg.region, cfg.endpoint_url, **mapping))
            for key in aws.list_s3(uri, cfg.region, cfg.endpoint_url)
        ]
    if scheme.startswith("prometheus"):
        cfg = settings.sources.prometheus
        if parsed.netloc:
            http = "https" if scheme.endswith("https") else "http"
            url = f"{http}://{parsed.netloc}{parsed.path}".rstrip("/")
        elif _secret(cfg.url):  # a bare prometheus:// means the configured server
            url = _secret(cfg.url).rstrip("/")
        else:
            raise SourceError(f"{uri}: no Prometheus host; write prometheus://host:9090 or set sources.prometheus.url")
        start, end = _window(cfg.lookback_hours)
        return [SourceBatch(f"prometheus:{without_credentials(url)}", lambda: prometheus.read_prometheus(
            url, cfg.queries, start, end, cfg.step, cfg.service_label))]
    if scheme == "cloudwatch":
        cfg = settings.sources.cloudwatch
        namespace = (parsed.netloc + parsed.path).strip("/") or cfg.namespace
        start, end = _window(cfg.lookback_hours)
        return [SourceBatch(f"cloudwatch:{namespace}", lambda: aws.read_cloudwatch(
            None, cfg.metrics, start, end, namespace=namespace, dimension=cfg.dimension,
            period=cfg.period_seconds, stat=cfg.stat, region=cfg.region, endpoint_url=cfg.endpoint_url))]
    if scheme in ("http", "https"):
        raise SourceError(f"{uri}: for Prometheus write prometheus://{parsed.netloc} (or prometheus+https://)")
    if scheme and len(scheme) > 1 and scheme != "file":
        raise SourceError(f"{uri}: unknown source scheme {scheme!r}; use a path, s3://, prometheus:// or cloudwatch://")
    path = Path(parsed.path if scheme == "file" else uri).expanduser()
    return [SourceBatch(str(p), lambda p=p: files.read_file(p, **mapping)) for p in files.discover(path)]


def check(uri: str, settings) -> list[SourceBatch]:
    """The batches of :func:`resolve`, once whatever can be known before reading is known: the file or folder
    exists, the bucket lists with the credentials at hand, Prometheus has queries and answers, CloudWatch has
    metrics. Raises :class:`SourceError` (or ``FileNotFoundError``) naming the source, so that a command can say
    so in one line before any flow starts."""
    from telemetry.sources import prometheus

    batches = resolve(uri, settings)
    scheme = urlparse(uri).scheme.lower()
    if scheme.startswith("prometheus"):
        url = batches[0].name.removeprefix("prometheus:")
        if not settings.sources.prometheus.queries:
            raise SourceError(f"{batches[0].name}: no Prometheus queries configured; expected "
                              "sources.prometheus.queries (metric name -> PromQL) in the config")
        prometheus.check_reachable(url)
    if scheme == "cloudwatch" and not settings.sources.cloudwatch.metrics:
        raise SourceError(f"{batches[0].name}: no CloudWatch metrics configured; expected sources.cloudwatch.metrics "
                          "(metric name -> CloudWatch metric name) in the config")
    return batches
