"""AWS sources through boto3: CloudWatch ``GetMetricData`` and telemetry files stored in S3.

``endpoint_url`` points boto3 at any S3/CloudWatch-compatible endpoint (LocalStack, moto, MinIO).
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from telemetry.sources.errors import SourceError
from telemetry.sources.files import RAW_COLUMNS, SchemaError, read_file

TELEMETRY_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet")
# Like a local folder (telemetry.sources.files.discover): the lake's other tables are not telemetry.
NOT_TELEMETRY = {"events", "incidents", "logs", "traces", "graph", "manifest"}


def _client(service: str, region: str, endpoint_url: str | None):
    import boto3

    # A session of its own: boto3's default session keeps the first credentials it resolved for the life of the
    # process, so a long-lived worker would never see rotated or newly set ones.
    return boto3.session.Session().client(service, region_name=region, endpoint_url=endpoint_url)


@contextmanager
def _named_errors(source: str) -> Iterator[None]:
    """botocore's errors (no credentials, no endpoint, access denied ...) as a :class:`SourceError` that names the
    source and what it needs; the ones this module gives a meaning first (a missing bucket) pass through."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    try:
        yield
    except (NoCredentialsError, PartialCredentialsError):
        raise SourceError(f"{source}: no AWS credentials found; expected AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY, a profile (AWS_PROFILE) or an instance role") from None
    except EndpointConnectionError as exc:
        raise SourceError(f"{source}: cannot reach {exc.kwargs.get('endpoint_url', 'the endpoint')}; expected a "
                          "reachable AWS endpoint (check the region and sources.*.endpoint_url)") from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise SourceError(f"{source}: AWS refused the request ({error.get('Code', '?')}: "
                          f"{error.get('Message', exc)}); expected credentials allowed to read it") from None
    except BotoCoreError as exc:
        raise SourceError(f"{source}: {type(exc).__name__}: {exc}") from None


def read_cloudwatch(services: list[str] | None, metrics: dict[str, str], start: pd.Timestamp, end: pd.Timestamp,
                    *, namespace: str, **options) -> pd.DataFrame:
    """One row per datapoint for each (service, metric) pair (see :func:`_read_cloudwatch`); AWS's errors name
    the source."""
    with _named_errors(f"cloudwatch:{namespace}"):
        return _read_cloudwatch(services, metrics, start, end, namespace=namespace, **options)


def _read_cloudwatch(
    services: list[str] | None,
    metrics: dict[str, str],
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    namespace: str,
    dimension: str = "Service",
    period: int = 60,
    stat: str = "Average",
    region: str = "us-east-1",
    endpoint_url: str | None = None,
) -> pd.DataFrame:
    """One row per datapoint for each (service, metric) pair.

    Without ``services``, the services are those listed (ListMetrics) with ``dimension`` on a configured metric,
    and each is read with the dimension set it was published with (the ``dimension``-only set if there is one).
    """
    if not metrics:
        raise SourceError(
            f"cloudwatch:{namespace}: no CloudWatch metrics configured: set sources.cloudwatch.metrics (metric name -> CloudWatch name)"
        )
    cw = _client("cloudwatch", region, endpoint_url)
    # (service, metric, CloudWatch name, exact dimensions): CloudWatch only answers a query whose dimension
    # set matches the published one exactly.
    targets: list[tuple[str, str, str, list[dict]]] = []
    if services:
        targets = [(service, metric, cw_name, [{"Name": dimension, "Value": service}])
                   for service in services for metric, cw_name in metrics.items()]
    else:
        wanted = set(metrics.values())
        found: dict[tuple[str, str], list[list[dict]]] = {}
        for page in cw.get_paginator("list_metrics").paginate(Namespace=namespace):
            for m in page["Metrics"]:
                dims = m.get("Dimensions", [])
                service = next((d["Value"] for d in dims if d["Name"] == dimension), None)
                if service is not None and m["MetricName"] in wanted:
                    found.setdefault((service, m["MetricName"]), []).append(dims)
        for (service, cw_name), dim_sets in sorted(found.items()):
            # Prefer the series published with the service dimension alone; otherwise read every set.
            exact = [d for d in dim_sets if len(d) == 1]
            for dims in exact or dim_sets:
                targets.extend((service, metric, cw_name, dims) for metric, name in metrics.items() if name == cw_name)
    queries, ids = [], {}
    for i, (service, metric, cw_name, dims) in enumerate(targets):
        qid = f"q{i}"
        ids[qid] = (service, metric)
        queries.append({
            "Id": qid,
            "MetricStat": {
                "Metric": {"Namespace": namespace, "MetricName": cw_name, "Dimensions": dims},
                "Period": period, "Stat": stat,
            },
            "ReturnData": True,
        })
    if not queries:  # nothing in the namespace: GetMetricData refuses an empty query list
        return pd.DataFrame(columns=RAW_COLUMNS)
    rows = []
    for chunk in range(0, len(queries), 500):  # GetMetricData takes at most 500 queries a call
        paginator = cw.get_paginator("get_metric_data")
        for page in paginator.paginate(MetricDataQueries=queries[chunk:chunk + 500],
                                       StartTime=start.to_pydatetime(), EndTime=end.to_pydatetime()):
            for res in page["MetricDataResults"]:
                service, metric = ids[res["Id"]]
                rows.extend((t, service, metric, v) for t, v in zip(res["Timestamps"], res["Values"]))
    out = pd.DataFrame(rows, columns=["timestamp", "service", "metric", "value"])
    out["source"] = f"cloudwatch:{namespace}"
    out["source_row"] = range(1, len(out) + 1)
    out["problem"] = None
    return out[RAW_COLUMNS]


def _stem(key: str) -> str:
    """The object's file name without its extensions (``orders-db.csv.gz`` -> ``orders-db``)."""
    name = Path(key).name
    for suffix in TELEMETRY_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _is_missing(exc: Exception) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound")


def list_s3(uri: str, region: str = "us-east-1", endpoint_url: str | None = None) -> list[str]:
    """The CSV/Parquet object keys at ``s3://bucket/key`` or under ``s3://bucket/prefix[/]``.

    A prefix is a folder: ``s3://b/data`` reads ``data/...`` (or the object ``data`` itself), not ``data-old/``.
    """
    from botocore.exceptions import ClientError

    parsed = urlparse(uri)
    bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
    s3 = _client("s3", region, endpoint_url)
    folder = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    try:
        with _named_errors(uri):
            listed = [
                obj["Key"]
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                for obj in page.get("Contents", [])
            ]
    except SourceError as exc:
        if isinstance(exc.__context__, ClientError) and _is_missing(exc.__context__):
            raise FileNotFoundError(f"{uri}: bucket {bucket!r} does not exist") from None
        raise
    keys = [
        key for key in listed
        if (key == prefix or key.startswith(folder))
        and key.lower().endswith(TELEMETRY_SUFFIXES) and _stem(key) not in NOT_TELEMETRY
    ]
    if not keys:
        raise FileNotFoundError(f"{uri}: no .csv or .parquet objects there")
    return sorted(keys)


def read_s3_object(bucket: str, key: str, region: str = "us-east-1", endpoint_url: str | None = None,
                   **mapping) -> pd.DataFrame:
    """Download one object to a temporary file and read it like a local file; provenance says s3://.

    A wide object without a service column takes its service from the object's name; every error names
    the object, never the temporary file.
    """
    from botocore.exceptions import ClientError

    uri = f"s3://{bucket}/{key}"
    if mapping.get("default_service") is None:
        mapping["default_service"] = _stem(key)
    s3 = _client("s3", region, endpoint_url)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / Path(key).name
        try:
            with _named_errors(uri):
                s3.download_file(bucket, key, str(local))
        except SourceError as exc:
            if isinstance(exc.__context__, ClientError) and _is_missing(exc.__context__):
                raise FileNotFoundError(f"{uri}: no such object") from None
            raise
        try:
            frame = read_file(local, **mapping)
        except SchemaError as exc:
            raise SchemaError(str(exc).replace(str(local), uri)) from None
    frame["source"] = uri
    return frame


__all__ = ["RAW_COLUMNS", "list_s3", "read_cloudwatch", "read_s3_object"]
