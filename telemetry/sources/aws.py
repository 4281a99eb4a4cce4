"""AWS sources through boto3: CloudWatch ``GetMetricData`` and telemetry files stored in S3.

``endpoint_url`` points boto3 at any S3/CloudWatch-compatible endpoint (LocalStack, moto, MinIO).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from telemetry.sources.files import RAW_COLUMNS, read_file


def _client(service: str, region: str, endpoint_url: str | None):
    import boto3

    return boto3.client(service, region_name=region, endpoint_url=endpoint_url)


def read_cloudwatch(
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
    """One row per datapoint for each (service, metric) pair; services are listed from CloudWatch when not given."""
    if not metrics:
        raise ValueError(
            "no CloudWatch metrics configured: set sources.cloudwatch.metrics (metric name -> CloudWatch name)"
        )
    cw = _client("cloudwatch", region, endpoint_url)
    if not services:
        services = sorted({
            d["Value"]
            for page in cw.get_paginator("list_metrics").paginate(Namespace=namespace)
            for m in page["Metrics"] for d in m.get("Dimensions", []) if d["Name"] == dimension
        })
    queries, ids = [], {}
    for s_i, service in enumerate(services):
        for m_i, (metric, cw_name) in enumerate(metrics.items()):
            qid = f"q{s_i}_{m_i}"
            ids[qid] = (service, metric)
            queries.append({
                "Id": qid,
                "MetricStat": {
                    "Metric": {"Namespace": namespace, "MetricName": cw_name,
                               "Dimensions": [{"Name": dimension, "Value": service}]},
                    "Period": period, "Stat": stat,
                },
                "ReturnData": True,
            })
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


def list_s3(uri: str, region: str = "us-east-1", endpoint_url: str | None = None) -> list[str]:
    """The CSV/Parquet object keys at ``s3://bucket/key`` or under ``s3://bucket/prefix/``."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    s3 = _client("s3", region, endpoint_url)
    keys = [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
        if obj["Key"].lower().endswith((".csv", ".csv.gz", ".parquet", ".tsv"))
    ]
    if not keys:
        raise FileNotFoundError(f"{uri}: no .csv or .parquet objects there")
    return sorted(keys)


def read_s3_object(bucket: str, key: str, region: str = "us-east-1", endpoint_url: str | None = None,
                   **mapping) -> pd.DataFrame:
    """Download one object to a temporary file and read it like a local file; provenance says s3://."""
    s3 = _client("s3", region, endpoint_url)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / Path(key).name
        s3.download_file(bucket, key, str(local))
        frame = read_file(local, **mapping)
    frame["source"] = f"s3://{bucket}/{key}"
    if mapping.get("default_service") is None and not (frame["service"] != local.stem).any():
        frame["service"] = Path(key).stem
    return frame


__all__ = ["RAW_COLUMNS", "list_s3", "read_cloudwatch", "read_s3_object"]
