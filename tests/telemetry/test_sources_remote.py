"""Remote telemetry sources against servers that speak the real wire protocols.

Prometheus cannot run here, so a small local HTTP server (tests/support/prometheus_api.py) answers
``GET /api/v1/query_range`` the way Prometheus does. AWS is faked by moto in server mode: boto3 talks HTTP to it
through ``endpoint_url``, exactly as it would to LocalStack or the real service.
"""
from __future__ import annotations

import gzip
import re
import socket
import tempfile

import pandas as pd
import pytest
from support.prometheus_api import CPU_Q, JOB_Q, P99_Q, FakePrometheus

from configs.settings import load_settings
from telemetry.sources import resolve
from telemetry.sources.files import RAW_COLUMNS, SchemaError
from telemetry.sources.prometheus import PrometheusError, read_prometheus
from telemetry.validation import validate_telemetry


# ============================================================================ fake Prometheus
@pytest.fixture(scope="module")
def prometheus():
    """A local server speaking Prometheus' HTTP API (tests/support/prometheus_api.py); ``.requests`` holds the
    parameters of every query."""
    with FakePrometheus() as server:
        yield server


def _free_port() -> int:
    """A port that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


T0 = pd.Timestamp("2026-11-20T10:00:00Z")
T1 = pd.Timestamp("2026-11-20T10:10:00Z")


# ============================================================================ Prometheus
def test_read_prometheus_two_queries_gives_raw_rows_that_validate(prometheus):
    prometheus.requests.clear()
    raw = read_prometheus(prometheus.url, {"cpu_pct": CPU_Q, "latency_p99_ms": P99_Q}, T0, T1, step="60s")

    # The window and step reached Prometheus unchanged, once per query.
    assert [r["query"] for r in prometheus.requests] == [CPU_Q, P99_Q]
    for r in prometheus.requests:
        assert float(r["start"]) == T0.timestamp() and float(r["end"]) == T1.timestamp() and r["step"] == "60s"

    assert list(raw.columns) == RAW_COLUMNS
    assert len(raw) == 3 * 11  # three series, 10:00 .. 10:10 every minute
    assert (raw["source"] == f"prometheus:{prometheus.url}").all()
    assert list(raw["source_row"]) == list(range(1, 34))
    assert raw["problem"].isna().all()
    assert raw.groupby(["service", "metric"]).size().to_dict() == {
        ("cart", "cpu_pct"): 11, ("payment", "cpu_pct"): 11, ("payment", "latency_p99_ms"): 11,
    }
    assert isinstance(raw["value"].iloc[0], str)  # values stay text until validation
    got = {(float(t), s, m): v for t, s, m, v in raw[["timestamp", "service", "metric", "value"]].itertuples(index=False)}
    assert got[(T0.timestamp(), "payment", "cpu_pct")] == "12.5"
    assert got[(T1.timestamp(), "cart", "cpu_pct")] == "50"
    assert got[(T0.timestamp() + 60, "payment", "latency_p99_ms")] == "181.25"

    result = validate_telemetry(raw, now=T1 + pd.Timedelta(minutes=1))
    assert result.rows_clean == 33 and result.rows_quarantined == 0 and not result.stale
    clean = result.clean
    assert str(clean["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert clean["timestamp"].min() == T0 and clean["timestamp"].max() == T1
    for service, metric, base in [("payment", "cpu_pct", 12.5), ("cart", "cpu_pct", 40.0),
                                  ("payment", "latency_p99_ms", 180.25)]:
        series = clean[(clean["service"] == service) & (clean["metric"] == metric)]
        assert list(series["timestamp"]) == list(pd.date_range(T0, T1, freq="min"))
        assert list(series["value"]) == [base + k for k in range(11)]


def test_prometheus_service_label_is_configurable(prometheus):
    raw = read_prometheus(prometheus.url, {"cpu_pct": CPU_Q}, T0, T0 + pd.Timedelta(minutes=2), service_label="instance")
    assert sorted(set(raw["service"])) == ["10.0.0.1:9100", "10.0.0.2:9100"]
    assert len(raw) == 2 * 3

    # A series without the configured label falls back to ``job``.
    up = read_prometheus(prometheus.url, {"up": JOB_Q}, T0, T0 + pd.Timedelta(minutes=1))
    assert list(up["service"]) == ["node-exporter", "node-exporter"]
    assert list(up["value"]) == ["1", "2"]


def test_prometheus_step_controls_the_sample_count(prometheus):
    raw = read_prometheus(prometheus.url, {"cpu_pct": CPU_Q}, T0, T1, step="5m")
    assert len(raw) == 2 * 3  # 10:00, 10:05, 10:10 for each service
    assert sorted(set(raw["timestamp"].astype(float))) == [T0.timestamp(), T0.timestamp() + 300, T1.timestamp()]


def test_prometheus_failing_query_names_the_query_and_the_error(prometheus):
    bad = 'sum(rate(no_such_metric[1m])'
    with pytest.raises(PrometheusError) as err:
        read_prometheus(prometheus.url, {"cpu_pct": CPU_Q, "broken": bad}, T0, T1)
    msg = str(err.value)
    assert bad in msg
    assert "bad_data" in msg and "parse error: unknown query" in msg
    assert "400" in msg
    assert f"{prometheus.url}/api/v1/query_range" in msg


def test_prometheus_window_too_large_is_reported(prometheus):
    with pytest.raises(PrometheusError, match="exceeded maximum resolution"):
        read_prometheus(prometheus.url, {"cpu_pct": CPU_Q}, T0 - pd.Timedelta(days=30), T1, step="60s")


def test_prometheus_unreachable_names_the_endpoint():
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(PrometheusError) as err:
        read_prometheus(url, {"cpu_pct": CPU_Q}, T0, T1)
    assert f"{url}/api/v1/query_range" in str(err.value)
    assert "cannot reach Prometheus" in str(err.value)


def test_prometheus_not_an_api_answer(prometheus):
    with pytest.raises(PrometheusError) as err:
        read_prometheus(prometheus.url + "/grafana", {"cpu_pct": CPU_Q}, T0, T1)
    assert "HTTP 404" in str(err.value) and "not a Prometheus API answer" in str(err.value)
    assert f"{prometheus.url}/grafana/api/v1/query_range" in str(err.value)


def test_prometheus_without_queries_is_a_clear_error(prometheus):
    prometheus.requests.clear()
    with pytest.raises(PrometheusError, match=r"no Prometheus queries configured.*sources\.prometheus\.queries"):
        read_prometheus(prometheus.url, {}, T0, T1)
    assert prometheus.requests == []


def test_resolve_prometheus_uses_the_configured_queries_and_window(prometheus):
    settings = load_settings("default")
    settings.sources.prometheus.queries = {"cpu_pct": CPU_Q, "latency_p99_ms": P99_Q}
    settings.sources.prometheus.lookback_hours = 0.5
    host = prometheus.url.removeprefix("http://")
    prometheus.requests.clear()

    before = pd.Timestamp.now(tz="UTC").floor("min")
    batches = resolve(f"prometheus://{host}", settings)
    after = pd.Timestamp.now(tz="UTC").floor("min")
    assert [b.name for b in batches] == [f"prometheus:{prometheus.url}"]
    raw = batches[0].load()

    assert len(prometheus.requests) == 2
    start, end = float(prometheus.requests[0]["start"]), float(prometheus.requests[0]["end"])
    assert end - start == 1800 and end % 60 == 0
    assert before.timestamp() <= end <= after.timestamp()
    assert len(raw) == 3 * 31
    assert (raw["source"] == f"prometheus:{prometheus.url}").all()
    assert set(raw["service"]) == {"payment", "cart"}
    assert set(raw["metric"]) == {"cpu_pct", "latency_p99_ms"}

    result = validate_telemetry(raw, now=pd.Timestamp.now(tz="UTC"))
    assert result.rows_clean == 93 and result.rows_quarantined == 0
    pay = result.clean[(result.clean["service"] == "payment") & (result.clean["metric"] == "cpu_pct")]
    assert pay["timestamp"].iloc[0] == pd.Timestamp(start, unit="s", tz="UTC")
    assert list(pay["value"]) == [12.5 + k for k in range(31)]


def test_resolve_prometheus_url_forms(prometheus):
    settings = load_settings("default", **{"sources.prometheus.queries": {"cpu_pct": CPU_Q}})
    host = prometheus.url.removeprefix("http://")
    # prometheus+https:// asks for TLS; a path prefix is kept.
    assert [b.name for b in resolve(f"prometheus+https://{host}/prom/", settings)] == [f"prometheus:https://{host}/prom"]
    # A bare prometheus:// takes the URL from the config.
    settings.sources.prometheus.url = prometheus.url
    batches = resolve("prometheus://", settings)
    assert [b.name for b in batches] == [f"prometheus:{prometheus.url}"]
    assert len(batches[0].load()) == 2 * 61
    # http:// is refused with the right spelling.
    with pytest.raises(ValueError, match=f"prometheus://{host}"):
        resolve(prometheus.url, settings)


def test_resolve_bare_prometheus_without_a_configured_url_is_an_error():
    settings = load_settings("default", **{"sources.prometheus.queries": {"cpu_pct": CPU_Q}})
    assert settings.sources.prometheus.url is None
    with pytest.raises(ValueError, match="sources.prometheus.url"):
        resolve("prometheus://", settings)


# ============================================================================ AWS (moto server)
def _client(service, url):
    import boto3

    return boto3.client(service, region_name="us-east-1", endpoint_url=url)


def _put_metrics(url, namespace, points):
    """points: (service, cloudwatch metric, timestamp, value)."""
    cw = _client("cloudwatch", url)
    for service, name, ts, value in points:
        cw.put_metric_data(Namespace=namespace, MetricData=[{
            "MetricName": name, "Dimensions": [{"Name": "Service", "Value": service}],
            "Timestamp": ts.to_pydatetime(), "Value": value, "Unit": "None",
        }])


# moto 5.2.5's GetMetricData ignores the namespace of a query that has dimensions, so every test that
# reads CloudWatch uses service names of its own (CloudWatch itself keeps namespaces apart).
def _cloudwatch_points(end, services=("payment", "cart")):
    """Three minutes of two metrics for two services, ending a few minutes before ``end``."""
    minutes = [end - pd.Timedelta(minutes=m) for m in (6, 5, 4)]
    points = []
    for service, cpu, lat in zip(services, (31.0, 55.5), (120.5, 80.0)):
        for k, ts in enumerate(minutes):
            points.append((service, "CPUUtilization", ts, cpu + k))
            points.append((service, "LatencyP99", ts, lat + 10 * k))
    return points


def _as_set(raw):
    return {(pd.Timestamp(t).tz_convert("UTC"), s, m, float(v))
            for t, s, m, v in raw[["timestamp", "service", "metric", "value"]].itertuples(index=False)}


CW_METRICS = {"cpu_pct": "CPUUtilization", "latency_p99_ms": "LatencyP99"}
CW_NAME = {"CPUUtilization": "cpu_pct", "LatencyP99": "latency_p99_ms"}


def test_read_cloudwatch_discovers_services_and_returns_the_datapoints(moto_url):
    from telemetry.sources.aws import read_cloudwatch

    end = pd.Timestamp.now(tz="UTC").floor("min")
    start = end - pd.Timedelta(minutes=30)
    points = _cloudwatch_points(end)
    _put_metrics(moto_url, "Cerebro/Read", points)
    # Noise that must stay out: a point before the window, another namespace, another dimension.
    _put_metrics(moto_url, "Cerebro/Read", [("payment", "CPUUtilization", start - pd.Timedelta(hours=2), 99.0)])
    _put_metrics(moto_url, "Cerebro/Other", [("inventory", "CPUUtilization", end - pd.Timedelta(minutes=5), 7.0)])
    _client("cloudwatch", moto_url).put_metric_data(Namespace="Cerebro/Read", MetricData=[{
        "MetricName": "CPUUtilization", "Dimensions": [{"Name": "InstanceId", "Value": "i-0abc"}],
        "Timestamp": (end - pd.Timedelta(minutes=5)).to_pydatetime(), "Value": 3.0}])

    raw = read_cloudwatch(None, CW_METRICS, start, end, namespace="Cerebro/Read", endpoint_url=moto_url)

    assert list(raw.columns) == RAW_COLUMNS
    assert len(raw) == 12
    assert (raw["source"] == "cloudwatch:Cerebro/Read").all()
    assert sorted(raw["source_row"]) == list(range(1, 13))
    assert _as_set(raw) == {(ts, s, CW_NAME[name], v) for s, name, ts, v in points}

    result = validate_telemetry(raw, now=end)
    assert result.rows_clean == 12 and result.rows_quarantined == 0
    cart_cpu = result.clean[(result.clean["service"] == "cart") & (result.clean["metric"] == "cpu_pct")]
    assert list(cart_cpu["value"]) == [55.5, 56.5, 57.5]
    assert list(cart_cpu["timestamp"]) == [end - pd.Timedelta(minutes=m) for m in (6, 5, 4)]

    # Given services are not listed: only they are read.
    only = read_cloudwatch(["payment"], {"cpu_pct": "CPUUtilization"}, start, end,
                           namespace="Cerebro/Read", endpoint_url=moto_url)
    assert sorted(only["value"]) == [31.0, 32.0, 33.0] and set(only["service"]) == {"payment"}


def test_read_cloudwatch_reads_services_published_with_more_dimensions(moto_url):
    """CloudWatch matches dimension sets exactly: a service found with (Service, Region) is read with both."""
    from telemetry.sources.aws import read_cloudwatch

    end = pd.Timestamp.now(tz="UTC").floor("min")
    ts = end - pd.Timedelta(minutes=5)
    cw = _client("cloudwatch", moto_url)

    def put(dims, value):
        cw.put_metric_data(Namespace="Cerebro/Dims", MetricData=[{
            "MetricName": "CPUUtilization", "Dimensions": [{"Name": k, "Value": v} for k, v in dims],
            "Timestamp": ts.to_pydatetime(), "Value": value}])

    put([("Service", "billing"), ("Region", "eu-west-1")], 21.0)  # only published with a second dimension
    put([("Service", "shipping"), ("Region", "us-east-1")], 70.0)  # both: the Service-only series wins
    put([("Service", "shipping")], 65.0)

    raw = read_cloudwatch(None, {"cpu_pct": "CPUUtilization"}, end - pd.Timedelta(minutes=30), end,
                          namespace="Cerebro/Dims", endpoint_url=moto_url)
    assert _as_set(raw) == {(ts, "billing", "cpu_pct", 21.0), (ts, "shipping", "cpu_pct", 65.0)}


def test_read_cloudwatch_empty_namespace_gives_no_rows(moto_url):
    from telemetry.sources.aws import read_cloudwatch

    end = pd.Timestamp.now(tz="UTC").floor("min")
    raw = read_cloudwatch(None, CW_METRICS, end - pd.Timedelta(hours=1), end,
                          namespace="Cerebro/Nothing", endpoint_url=moto_url)
    assert list(raw.columns) == RAW_COLUMNS and len(raw) == 0


def test_read_cloudwatch_without_metrics_is_a_clear_error(moto_url):
    from telemetry.sources.aws import read_cloudwatch

    with pytest.raises(ValueError, match=r"no CloudWatch metrics configured.*sources\.cloudwatch\.metrics"):
        read_cloudwatch(None, {}, T0, T1, namespace="Cerebro/Read", endpoint_url=moto_url)


def test_resolve_cloudwatch_reads_the_configured_metrics(moto_url):
    end = pd.Timestamp.now(tz="UTC").floor("min")
    points = _cloudwatch_points(end, services=("checkout", "search"))
    _put_metrics(moto_url, "Cerebro/Resolve", points)
    settings = load_settings("default")
    settings.sources.cloudwatch.endpoint_url = moto_url
    settings.sources.cloudwatch.metrics = CW_METRICS

    batches = resolve("cloudwatch://Cerebro/Resolve", settings)
    assert [b.name for b in batches] == ["cloudwatch:Cerebro/Resolve"]
    raw = batches[0].load()
    assert len(raw) == 12 and (raw["source"] == "cloudwatch:Cerebro/Resolve").all()
    assert _as_set(raw) == {(ts, s, CW_NAME[name], v) for s, name, ts, v in points}
    assert validate_telemetry(raw).rows_clean == 12

    # cloudwatch:// alone reads the configured namespace.
    settings.sources.cloudwatch.namespace = "Cerebro/Resolve"
    batches = resolve("cloudwatch://", settings)
    assert [b.name for b in batches] == ["cloudwatch:Cerebro/Resolve"]
    assert len(batches[0].load()) == 12


# ---------------------------------------------------------------------------- S3
LONG_CSV = ('"Timestamp","Service","Metric","Value"\n'
            '"2026-11-20T10:00:00Z","payment","cpu_pct","41.5"\n'
            '"2026-11-20T10:01:00Z","payment","cpu_pct","43"\n'
            '"2026-11-20T10:00:00Z","cart","error_rate","0.02"\n')
WIDE_CSV = ("TIME;CPU_PCT;Latency P99 MS\n"
            "2026-11-20 10:00:00;12.5;80\n"
            "2026-11-20 10:01:00;13;82.5\n")


@pytest.fixture(scope="module")
def bucket(moto_url):
    s3 = _client("s3", moto_url)
    s3.create_bucket(Bucket="cerebro-telemetry")
    objects = {
        "exports/long.csv": LONG_CSV,
        "exports/wide/orders-db.csv": WIDE_CSV,
        "exports/README.txt": "telemetry exports; see the runbook\n",
        "exports/events.csv": "timestamp,service,kind,version,detail\n2026-11-20T10:00:00Z,cart,deploy,v2,\n",
        "exports-old/stale.csv": "timestamp,service,metric,value\n2020-01-01T00:00:00Z,old,cpu_pct,1\n",
        "broken/bad.csv": "when,service,value\nyesterday,cart,1\n",
        "gz/checkout.csv.gz": gzip.compress(b"timestamp,cpu_pct\n2026-11-20T10:00:00Z,9.5\n"),
    }
    for key, body in objects.items():
        s3.put_object(Bucket="cerebro-telemetry", Key=key, Body=body if isinstance(body, bytes) else body.encode())
    return "cerebro-telemetry"


@pytest.fixture
def s3_settings(moto_url):
    settings = load_settings("default")
    settings.sources.s3.endpoint_url = moto_url
    return settings


def test_resolve_s3_prefix_reads_each_telemetry_object(bucket, s3_settings):
    batches = resolve(f"s3://{bucket}/exports/", s3_settings)
    assert [b.name for b in batches] == [f"s3://{bucket}/exports/long.csv", f"s3://{bucket}/exports/wide/orders-db.csv"]

    long_raw, wide_raw = (b.load() for b in batches)
    assert list(long_raw.columns) == RAW_COLUMNS
    assert (long_raw["source"] == f"s3://{bucket}/exports/long.csv").all()
    assert list(long_raw["service"]) == ["payment", "payment", "cart"]
    assert list(long_raw["metric"]) == ["cpu_pct", "cpu_pct", "error_rate"]
    assert list(long_raw["value"]) == ["41.5", "43", "0.02"]
    assert list(long_raw["source_row"]) == [1, 2, 3]

    assert (wide_raw["source"] == f"s3://{bucket}/exports/wide/orders-db.csv").all()
    assert set(wide_raw["service"]) == {"orders-db"}  # no service column: the object's file name
    assert sorted(zip(wide_raw["metric"], wide_raw["value"])) == [
        ("cpu_pct", "12.5"), ("cpu_pct", "13"), ("latency_p99_ms", "80"), ("latency_p99_ms", "82.5")]

    raw = pd.concat([long_raw, wide_raw], ignore_index=True)
    result = validate_telemetry(raw, now=pd.Timestamp("2026-11-20T11:00:00Z"))
    assert result.rows_clean == 7 and result.rows_quarantined == 0
    got = {(r.timestamp, r.service, r.metric): r.value for r in result.clean.itertuples()}
    assert got[(pd.Timestamp("2026-11-20T10:01:00Z"), "orders-db", "latency_p99_ms")] == 82.5
    assert got[(pd.Timestamp("2026-11-20T10:00:00Z"), "cart", "error_rate")] == 0.02


def test_resolve_s3_mapping_reaches_the_file_reader(bucket, s3_settings):
    (batch,) = [b for b in resolve(f"s3://{bucket}/exports/wide/", s3_settings, default_service="orders")]
    assert set(batch.load()["service"]) == {"orders"}


def test_resolve_s3_prefix_without_slash_is_a_folder(bucket, s3_settings):
    names = [b.name for b in resolve(f"s3://{bucket}/exports", s3_settings)]
    assert names == [f"s3://{bucket}/exports/long.csv", f"s3://{bucket}/exports/wide/orders-db.csv"]


def test_resolve_s3_single_object(bucket, s3_settings):
    (batch,) = resolve(f"s3://{bucket}/exports/long.csv", s3_settings)
    assert batch.name == f"s3://{bucket}/exports/long.csv"
    assert len(batch.load()) == 3


def test_resolve_s3_gzipped_wide_object_takes_the_name_without_extensions(bucket, s3_settings):
    (batch,) = resolve(f"s3://{bucket}/gz/", s3_settings)
    raw = batch.load()
    assert batch.name == f"s3://{bucket}/gz/checkout.csv.gz"
    assert list(zip(raw["service"], raw["metric"], raw["value"])) == [("checkout", "cpu_pct", "9.5")]
    assert (raw["source"] == batch.name).all()


def test_resolve_s3_empty_prefix_names_the_uri(bucket, s3_settings):
    with pytest.raises(FileNotFoundError, match=re.escape(f"s3://{bucket}/nothing/")):
        resolve(f"s3://{bucket}/nothing/", s3_settings)


def test_resolve_s3_missing_bucket_names_the_uri(moto_url, s3_settings):
    with pytest.raises(FileNotFoundError, match=re.escape("s3://no-such-bucket/x/")):
        resolve("s3://no-such-bucket/x/", s3_settings)


def test_s3_schema_error_names_the_object_not_a_temporary_file(bucket, s3_settings):
    (batch,) = resolve(f"s3://{bucket}/broken/", s3_settings)
    with pytest.raises(SchemaError) as err:
        batch.load()
    assert f"s3://{bucket}/broken/bad.csv" in str(err.value)
    assert "no timestamp column" in str(err.value)
    assert tempfile.gettempdir() not in str(err.value)


def test_read_s3_object_missing_key_names_the_uri(bucket, moto_url):
    from telemetry.sources.aws import read_s3_object

    with pytest.raises(FileNotFoundError, match=re.escape(f"s3://{bucket}/exports/gone.csv")):
        read_s3_object(bucket, "exports/gone.csv", endpoint_url=moto_url)
