"""Prometheus HTTP API: range queries (``/api/v1/query_range``) into raw telemetry rows.

Each configured PromQL query becomes one metric; the series label named by ``service_label`` (``service``,
``job`` ...) becomes the service. Prometheus returns values as strings; they stay strings until validation.
"""
from __future__ import annotations

import pandas as pd
import requests

from telemetry.sources.errors import SourceError, without_credentials
from telemetry.sources.files import RAW_COLUMNS


class PrometheusError(SourceError):
    """Prometheus did not answer, or not as the API does; the message names the endpoint (no credentials)."""


def check_reachable(url: str, timeout: float = 5.0) -> None:
    """Fail at once, naming the server, when nothing answers HTTP at ``url`` (any HTTP answer will do: the
    queries themselves judge the rest)."""
    try:
        requests.get(url.rstrip("/") + "/api/v1/status/buildinfo", timeout=timeout)
    except requests.RequestException as exc:
        raise PrometheusError(f"prometheus:{without_credentials(url)}: cannot connect ({_reason(exc)}); expected a "
                              "Prometheus server at that address (prometheus://host:9090)") from None


def _reason(exc: requests.RequestException) -> str:
    """The last line of requests' nested message ('[Errno 111] Connection refused'), not its whole chain."""
    text = str(exc)
    for marker in ("] ", ": "):
        if marker in text:
            text = text.rsplit(marker, 1)[-1]
    return text.strip(" ')\"") or type(exc).__name__


def query_range(url: str, query: str, start: pd.Timestamp, end: pd.Timestamp, step: str = "60s",
                timeout: float = 30.0, session: requests.Session | None = None) -> list[dict]:
    """The ``result`` list of one range query (matrix of series), or a clear error."""
    endpoint = url.rstrip("/") + "/api/v1/query_range"
    shown = without_credentials(endpoint)
    params = {"query": query, "start": start.timestamp(), "end": end.timestamp(), "step": step}
    http = session or requests
    try:
        resp = http.get(endpoint, params=params, timeout=timeout)
    except requests.RequestException as exc:
        raise PrometheusError(f"{shown}: cannot reach Prometheus ({_reason(exc)}); expected a Prometheus server there") from exc
    try:
        body = resp.json()
    except ValueError:
        raise PrometheusError(f"{shown}: HTTP {resp.status_code}, not a Prometheus API answer: {resp.text[:200]!r}")
    if resp.status_code != 200 or body.get("status") != "success":
        raise PrometheusError(
            f"{shown}: query {query!r} failed ({resp.status_code}): {body.get('errorType')}: {body.get('error')}"
        )
    data = body.get("data", {})
    if data.get("resultType") != "matrix":
        raise PrometheusError(f"{shown}: query {query!r} returned {data.get('resultType')!r}, expected a matrix")
    return data.get("result", [])


def read_prometheus(url: str, queries: dict[str, str], start: pd.Timestamp, end: pd.Timestamp,
                    step: str = "60s", service_label: str = "service") -> pd.DataFrame:
    """Raw telemetry rows for every (metric -> PromQL) query over [start, end]."""
    if not queries:
        raise PrometheusError(
            "no Prometheus queries configured: set sources.prometheus.queries (metric name -> PromQL) in the config"
        )
    frames = []
    with requests.Session() as session:
        for metric, promql in queries.items():
            for series in query_range(url, promql, start, end, step, session=session):
                labels = series.get("metric", {})
                service = labels.get(service_label) or labels.get("job") or labels.get("instance") or "unknown"
                values = series.get("values", [])
                if not values:
                    continue
                frame = pd.DataFrame(values, columns=["timestamp", "value"])
                frame["service"] = service
                frame["metric"] = metric
                frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=RAW_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    out["source"] = f"prometheus:{without_credentials(url)}"
    out["source_row"] = range(1, len(out) + 1)
    out["problem"] = None
    return out[RAW_COLUMNS]
