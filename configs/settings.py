"""The one settings loader: a YAML profile, then ``CEREBRO_*`` environment overrides.

    settings = load_settings()                      # configs/default.yaml (or $CEREBRO_CONFIG)
    settings = load_settings("scale")               # configs/scale.yaml
    settings = load_settings("/etc/cerebro.yaml")   # any file

Environment variables override the file: ``CEREBRO_HOME=/data/cerebro``,
``CEREBRO_SIMULATOR__DAYS=30`` (``__`` separates nested keys). A wrong value raises
:class:`ConfigError`, which names the key and what it accepts.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

CONFIG_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = CONFIG_DIR.parent
PROFILES = {p.stem: p for p in sorted(CONFIG_DIR.glob("*.yaml"))}


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and what is allowed."""


class SecretUrl(SecretStr):
    """A connection URL that may hold a password: hidden like any ``SecretStr`` (``get_secret_value()`` gives the
    real one), but shown with only its credentials masked, so that a dump still says which host it points at."""

    def _display(self) -> str:
        return mask_url(self.get_secret_value())


# user:password@ in a URL, and key=value credentials in a query string or a Redis/libpq connection string.
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@\s]*):[^@\s/]*@", re.IGNORECASE)
_KEY_VALUE = re.compile(r"(?P<key>\b(?:password|passwd|pwd|token|secret|api_?key|access_?key|secret_?key|"
                        r"x-amz-signature|x-amz-credential|x-amz-security-token|sig|signature)=)[^&,;\s]+",
                        re.IGNORECASE)
MASK = "**********"


def mask_url(text: str) -> str:
    """``text`` with the password of any ``scheme://user:password@host`` and any ``password=``/``token=``-like
    value replaced by ``***``: ``postgresql://app:***@db:5432/mlflow``, ``127.0.0.1:6379,password=***``."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:***@", text)
    return _KEY_VALUE.sub(lambda m: f"{m['key']}***", text)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PrefectSettings(_Section):
    # Empty api_url: flows start Prefect's temporary local server on the SQLite database in the home folder.
    api_url: str | None = None
    database_url: SecretUrl | None = Field(
        default=None, description="PREFECT_API_DATABASE_CONNECTION_URL; empty means SQLite in the home folder"
    )
    task_runner: Literal["thread", "dask"] = "thread"
    dask_address: str | None = Field(default=None, description="tcp://scheduler:8786; empty starts a local cluster")
    work_pool: str = "cerebro-local"


class MlflowSettings(_Section):
    tracking_uri: SecretUrl | None = Field(default=None, description="empty means sqlite:///<home>/mlflow.db")
    artifact_root: str | None = Field(default=None, description="empty means <home>/mlartifacts, or the tracking "
                                      "server's own store when tracking_uri is http(s)://")
    experiment: str = "cerebro"
    ui_url: str = Field(default="http://127.0.0.1:5000",
                        description="the MLflow UI that reports link to (what `cerebro ui` starts)")


class FeastSettings(_Section):
    project: str = "cerebro"
    online_store: Literal["sqlite", "redis"] = "sqlite"
    redis_url: SecretUrl = Field(default=SecretUrl("127.0.0.1:6379"),
                                 description="Feast's Redis connection string: host:port[,password=...]")
    registry_url: SecretUrl | None = Field(default=None, description="SQL registry URL; empty means a file registry")
    offline_store: Literal["file"] = Field(
        default="file", description="Feast offline store; file (Dask over Parquet) is the one installed"
    )
    ttl_minutes: float = Field(
        default=60, ge=0, description="how old a feature row may be at an entity row's time; 0 means no limit"
    )
    window_minutes: int = Field(default=15, ge=2, le=1440, description="trailing window of the rolling features")


class SimulatorSettings(_Section):
    days: float = Field(default=14, gt=0, le=366)
    seed: int = 42
    end: str | None = Field(default=None, description="ISO timestamp; empty means the start of the current hour (UTC)")
    incidents_per_day: float = Field(default=3, ge=0, le=24)
    deploys_per_service_per_day: float = Field(default=0.5, ge=0, le=24)
    services: int = Field(default=13, ge=6, le=5000,
                          description="13: the web shop; another number: a generated fleet of that many services")


class DetectionSettings(_Section):
    include: list[str] = Field(default_factory=list, description="zoo members to train; empty means all")
    profile: Literal["default", "large"] = Field(default="default", description="large trains deep members longer")
    split: tuple[float, float, float] = Field(default=(0.5, 0.2, 0.3), description="train, validation, test shares")
    buffer_minutes: int = Field(default=30, ge=0, description="training rows this close to an incident are left out")
    ensemble_size: int = Field(default=5, ge=1, le=20)
    put_forward: str = Field(
        default="ensemble", description="the model put forward: ensemble, a zoo member, or best (top on validation)")
    planted_per_service: int = Field(
        default=5, ge=1, le=50,
        description="anomalies planted per service in the validation period to choose a model without labels")
    serving_cost: bool = Field(
        default=True, description="measure each model's scoring cost and let it shape the ensemble: members the spec's "
        "latency (p50 < 50 ms, p99 < 200 ms at 8 clients) cannot afford are left out, and a cheaper composition that "
        "meets ours (p50 < 10 ms, p99 < 50 ms) is preferred within serving_margin of F1")
    serving_margin: float = Field(
        default=0.02, ge=0, le=1, description="F1 a composition that meets our latency targets may give up")
    serving_cost_patience_s: float = Field(
        default=60.0, ge=0, le=3600,
        description="seconds the serving-cost measurement may wait, in all, for moments when other processes leave "
        "the cores alone (a block measured beside a busy process is taken again after a pause; 0: never wait)")
    train_workers: int = Field(
        default=1, ge=1, le=64, description="zoo members fitted at once, in threads (torch members take turns)")

    @field_validator("split")
    @classmethod
    def _shares(cls, value):
        if abs(sum(value) - 1) > 1e-6 or min(value) <= 0:
            raise ValueError("three positive shares that add up to 1, e.g. [0.5, 0.2, 0.3]")
        return value


class SageMakerTrainingSettings(_Section):
    region: str = "us-east-1"
    endpoint_url: str | None = Field(default=None, description="e.g. a moto or LocalStack URL; empty means AWS")
    image_uri: str | None = Field(default=None, description="training image (ECR) holding this project; the job "
                                 "runs `python -m training.entrypoint` in it")
    role_arn: str | None = Field(default=None, description="role the training job assumes (S3 read/write)")
    instance_type: str = "ml.m5.xlarge"
    volume_size_gb: int = Field(default=30, ge=1, description="the job's EBS volume")
    bucket: str | None = Field(default=None, description="S3 bucket for the training frame and the model artifact")
    prefix: str = Field(default="cerebro/training", description="S3 key prefix: <prefix>/<job>/input|output")
    poll_seconds: float = Field(default=30.0, gt=0, description="DescribeTrainingJob polling interval")
    max_wait_seconds: float = Field(default=7200.0, gt=0, description="how long the pipeline waits for the job; "
                                    "past it the job is stopped")
    max_runtime_seconds: int = Field(default=86400, ge=60, description="the job's StoppingCondition")


class TrainingSettings(_Section):
    backend: Literal["local", "sagemaker"] = Field(
        default="local", description="where the detector zoo is fitted: in this process, or a SageMaker training job")
    sagemaker: SageMakerTrainingSettings = SageMakerTrainingSettings()


class ForecastingSettings(_Section):
    models: list[str] = Field(
        default_factory=lambda: ["seasonal_naive", "arima", "auto", "prophet", "lstm", "deepar"],
        description="forecasters to backtest and register; seasonal_naive always runs as the baseline")
    profile: Literal["default", "large"] = Field(default="default", description="large trains LSTM/DeepAR longer")
    freq: str = Field(default="1h", description="the grid forecasts are made on (means of each interval)")
    series: list[str] = Field(
        default_factory=lambda: ["frontend/request_rate", "database/disk_pct"],
        description="SERVICE/METRIC series the pipeline backtests and registers forecasters for")
    horizons: list[int] = Field(default_factory=lambda: [1, 6, 24], description="backtest horizons, in steps of freq")
    origins: int = Field(default=2, ge=1, le=20, description="rolling origins per backtest")
    stride: int | None = Field(default=None, ge=1, description="steps of freq between origins (empty: the longest "
                               "horizon, so scored windows never overlap; 7 with hourly data spreads origins "
                               "over the hours of the day)")
    capacity_model: str = Field(default="auto", description="the forecaster capacity planning uses")
    capacity_horizon_hours: float = Field(default=168, gt=0, description="how far ahead capacity is planned")
    cpu_limit_pct: float = Field(default=85, gt=0, le=100)
    disk_limit_pct: float = Field(default=90, gt=0, le=100)
    memory_limit_pct: float | None = Field(default=None, gt=0, le=100, description="empty: memory not planned")
    connections_at_pool_size: bool = Field(default=True, description="connections limited by each pool's size")
    limits: dict[str, float | dict[str, float]] = Field(
        default_factory=dict, description="capacity limit per metric name (one number, or {service: number}); "
        "percentages of CPU, disk and memory default to the *_limit_pct above")


class FailureSettings(_Section):
    horizon_minutes: int = Field(default=60, ge=5, le=1440, description="a failure within this many minutes")
    step_minutes: int = Field(default=5, ge=1, le=60, description="one training row per service every N minutes")
    split: tuple[float, float, float] = Field(default=(0.5, 0.2, 0.3), description="train, validation, test shares")
    failure_at: Literal["failed_at", "start"] = Field(
        default="failed_at", description="the failure moment: when the root cause gave out, or the incident start")
    top_factors: int = Field(default=3, ge=1, le=20, description="SHAP factors shown per prediction")

    _shares = field_validator("split")(DetectionSettings._shares.__func__)


class DriftSettings(_Section):
    reference: Literal["seasonal", "preceding"] = Field(
        default="seasonal", description="seasonal: the current window's hours of the week in the weeks before "
        "(reference_days / 7 of them, at least one), so daily and weekly cycles cancel; preceding: the "
        "reference_days just before the current window (seasonal falls back to it when the lake is short)")
    reference_days: float = Field(default=7, gt=0, description="the reference: this many days (seasonal: "
                                  "rounded to whole weeks) before the current window")
    current_hours: float = Field(
        default=24, gt=0, description="the current window: the last N hours of the lake (with a preceding "
        "reference, whole days, or the daily cycle alone reads as drift)")
    compare: Literal["inputs", "metrics"] = Field(
        default="inputs", description="inputs: what the live detector reads, as it reads them (raw metrics when none "
        "is live); metrics: the raw metrics pooled over services")
    metrics: list[str] = Field(default_factory=list, description="raw metrics compared; empty: every fleet metric")
    clip_quantile: float = Field(default=0.005, ge=0, lt=0.5, description="both windows are clipped to the "
                                 "reference's quantiles q and 1 - q before KS and PSI (0: no clipping)")
    ks_pvalue: float = Field(default=0.05, gt=0, lt=1, description="a metric drifts when its KS p-value is below this ...")
    psi: float = Field(default=0.2, gt=0, description="... and its PSI (a distance) above this")
    drift_share: float = Field(default=0.3, gt=0, le=1, description="the window drifts when this share of metrics do (a metric drifts when half its inputs do)")
    prediction_psi: float = Field(default=0.2, gt=0, description="PSI of the live model's scores that counts as drift")
    max_f1_drop: float = Field(default=0.15, ge=0, le=1,
                               description="fall back when F1 on recent incidents drops this far below the registered F1")
    model: str = Field(default="cerebro-detector-ensemble", description="the live detector whose predictions are watched")
    fallback_model: str = Field(default="cerebro-detector-zscore",
                                description="the simpler detector served when the live one degrades")
    retrain_deployment: str = Field(default="pipeline/retrain", description="Prefect deployment run when drift is found")
    keep_reports: int = Field(default=48, ge=0, description="the newest N drift HTML reports kept in the reports "
                              "folder (about 9 MB each; MLflow keeps its own copy per run); 0: keep all")


class LocalDeploySettings(_Section):
    ready_timeout_seconds: float = Field(default=120.0, gt=0, description="how long to wait for /readyz (and a swap)")
    stop_grace_seconds: float = Field(default=10.0, ge=0, description="SIGTERM, then SIGKILL after this long")


class AutoScalingSettings(_Section):
    enabled: bool = Field(default=True, description="register a target-tracking policy on the endpoint's variants")
    min_capacity: int = Field(default=1, ge=1, description="fewest instances per variant")
    max_capacity: int = Field(default=4, ge=1, description="most instances per variant")
    target_invocations_per_instance: float = Field(
        default=100.0, gt=0, description="SageMakerVariantInvocationsPerInstance (per minute) the policy holds")
    scale_in_cooldown_s: int = Field(default=300, ge=0, description="seconds after a scale-in before the next one")
    scale_out_cooldown_s: int = Field(default=60, ge=0, description="seconds after a scale-out before the next one")

    @model_validator(mode="after")
    def _bounds(self):
        if self.max_capacity < self.min_capacity:
            raise ValueError(f"max_capacity ({self.max_capacity}) must be at least min_capacity ({self.min_capacity})")
        return self


class SageMakerSettings(_Section):
    region: str = "us-east-1"
    endpoint_url: str | None = Field(default=None, description="e.g. a moto or LocalStack URL; empty means AWS")
    execution_role_arn: str | None = Field(default=None, description="role SageMaker assumes to pull the model")
    image_uri: str | None = Field(default=None, description="serving image (ECR) that serves an MLflow pyfunc model")
    bucket: str | None = Field(default=None, description="S3 bucket for model.tar.gz")
    prefix: str = Field(default="cerebro/models", description="S3 key prefix: <prefix>/<name>/<version>/model.tar.gz")
    endpoint_name: str | None = Field(default=None, description="empty: the registered name, sanitised")
    instance_type: str = "ml.m5.large"
    instance_count: int = Field(default=1, ge=1)
    strategy: Literal["variants", "canary"] = Field(
        default="variants", description="variants: blue/green production variants, weights moved in steps; "
        "canary: UpdateEndpoint with a BlueGreenUpdatePolicy (real AWS only)")
    traffic_steps: list[float] = Field(default_factory=lambda: [10.0, 100.0],
                                       description="percent of traffic on the new variant, step by step")
    step_wait_seconds: float = Field(default=300.0, ge=0, description="alarms watched after each step but the last")
    alarms: list[str] = Field(default_factory=list, description="CloudWatch alarms: one in ALARM rolls back")
    canary_percent: float = Field(default=10.0, gt=0, le=100, description="canary strategy: CanarySize")
    termination_wait_seconds: int = Field(default=300, ge=0, description="canary strategy: old fleet kept this long")
    wait_timeout_seconds: float = Field(default=1800.0, gt=0, description="how long an endpoint may take to be InService")
    poll_seconds: float = Field(default=15.0, gt=0, description="describe_endpoint / alarm polling interval")
    autoscaling: AutoScalingSettings = AutoScalingSettings()

    @field_validator("traffic_steps")
    @classmethod
    def _steps(cls, value):
        if not value or value[-1] != 100 or any(not 0 < v <= 100 for v in value) or value != sorted(set(value)):
            raise ValueError("increasing percentages in (0, 100] that end at 100, e.g. [10, 100]")
        return value


class DeploySettings(_Section):
    target: Literal["local", "sagemaker"] = Field(default="local", description="`cerebro deploy` default target")
    after_pipeline: bool = Field(default=True, description="the pipeline deploys the detector champion at its end")
    local: LocalDeploySettings = LocalDeploySettings()
    sagemaker: SageMakerSettings = SageMakerSettings()


class ValidationSettings(_Section):
    future_tolerance_minutes: float = Field(default=5, ge=0)
    freshness_hours: float | None = Field(default=48, gt=0, description="newest row must be younger; empty disables")
    on_stale: Literal["warn", "fail"] = "warn"
    max_quarantine_share: float = Field(
        default=0.5, gt=0, le=1, description="fail the batch when more than this share of rows is rejected"
    )


class PrometheusSettings(_Section):
    url: SecretUrl | None = Field(default=None, description="the server a bare prometheus:// reads; may hold "
                                  "user:password@")
    service_label: str = "service"
    step: str = "60s"
    lookback_hours: float = Field(default=1, gt=0)
    queries: dict[str, str] = Field(default_factory=dict, description="metric name -> PromQL")


class CloudWatchSettings(_Section):
    region: str = "us-east-1"
    endpoint_url: str | None = None
    namespace: str = "Cerebro/Services"
    dimension: str = "Service"
    period_seconds: int = Field(default=60, ge=1)
    lookback_hours: float = Field(default=1, gt=0)
    metrics: dict[str, str] = Field(default_factory=dict, description="metric name -> CloudWatch metric name")
    stat: Literal["Average", "Sum", "Minimum", "Maximum", "SampleCount", "p50", "p90", "p99"] = "Average"


class S3Settings(_Section):
    region: str = "us-east-1"
    endpoint_url: str | None = None


class SourcesSettings(_Section):
    prometheus: PrometheusSettings = PrometheusSettings()
    cloudwatch: CloudWatchSettings = CloudWatchSettings()
    s3: S3Settings = S3Settings()


class RagSettings(_Section):
    index_dir: Path | None = Field(default=None, description="the knowledge base's index; empty means <home>/knowledge")
    knowledge_dir: Path | None = Field(
        default=None, description="the shipped runbooks and notes; empty means <checkout>/knowledge")
    sources: list[str] = Field(
        default_factory=list, description="more sources the knowledge flow indexes, as PATH or KIND:PATH")
    embedding_provider: Literal["sentence-transformers", "bedrock"] = "sentence-transformers"
    embedding_model: str = Field(default="all-MiniLM-L6-v2", description="packaged offline model, or a model folder")
    bedrock_model_id: str = "amazon.titan-embed-text-v2:0"
    bedrock_region: str = "us-east-1"
    bedrock_dimensions: int | None = Field(default=None, description="Titan v2: 256, 512 or 1024; empty: 1024")
    batch_size: int = Field(default=64, ge=1, le=4096)
    vector_store: Literal["usearch", "pgvector"] = "usearch"
    pgvector_dsn: SecretUrl | None = Field(default=None, description="postgresql://... used when vector_store is pgvector")
    fusion_weights: dict[str, float] = Field(
        default_factory=lambda: {"vector": 1.0, "keyword": 1.0, "graph": 0.5},
        description="reciprocal-rank-fusion weight of each retriever")
    rrf_k: int = Field(default=60, ge=1, description="the RRF constant: 1 / (rrf_k + rank)")
    candidates: int = Field(default=40, ge=1, le=1000, description="hits each retriever contributes to the fusion")
    k: int = Field(default=5, ge=1, le=100, description="passages a search returns")
    token_budget: int = Field(default=1500, ge=32, description="tokens of retrieved context placed in a prompt")
    dedup_threshold: float = Field(default=0.85, gt=0, le=1, description="word-shingle overlap counted as a duplicate")
    max_words: int = Field(default=160, ge=20, le=2000, description="longest chunk, in words")
    overlap_words: int = Field(default=30, ge=0, le=500, description="overlap between parts of a long section")
    service_aliases: dict[str, list[str]] = Field(
        default_factory=dict, description="more names for services, on top of the runbooks' `aliases:`")


class RollbackSettings(_Section):
    enabled: bool = True
    window: int = Field(default=200, ge=5, description="requests in the rolling window each live model is judged on")
    min_requests: int = Field(default=20, ge=1, description="requests a new model serves before it can be judged")
    max_error_rate: float = Field(default=0.05, ge=0, le=1, description="share of failed predictions that rolls back")
    max_p95_ms: float = Field(default=250.0, gt=0, description="p95 model latency (ms) that rolls back")
    max_flag_rate: float = Field(default=0.5, ge=0, le=1,
                                 description="quality: share of rows flagged (anomaly, alarm) or non-finite that rolls back")


class ServingSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    token: SecretStr | None = Field(default=None, description="bearer token clients must send on every endpoint but the "
                              "probes; empty: one is generated in token_file, wanted on /admin/* (and on every "
                              "endpoint when host is not loopback)")
    token_file: Path | None = Field(default=None, description="where the generated token is kept (owner-only); "
                                    "empty: <home>/serving/token")
    max_body_mb: float = Field(default=16, gt=0, description="largest request body (MB); larger ones get a 413 "
                               "before they are read")
    max_concurrent: int = Field(default=64, ge=1, description="requests in flight at once (probes not counted); "
                                "past it a 503 with Retry-After")
    body_timeout_seconds: float = Field(default=30, gt=0, description="longest wait for the next part of a "
                                        "request body; a slower upload gets a 408")
    keep_alive_seconds: float = Field(default=5, gt=0, description="an idle keep-alive connection is closed after "
                                      "this (uvicorn timeout_keep_alive)")
    max_header_kb: int = Field(default=64, ge=8, description="largest request head (request line and headers), KB "
                               "(uvicorn h11_max_incomplete_event_size)")
    max_abs_value: float = Field(default=1e15, gt=0, description="finite values larger in magnitude are refused "
                                 "(422): models compute in float32 and square their inputs")
    earliest_year: int = Field(default=1970, ge=1678, le=2261, description="timestamps before 1 January of this "
                               "year are refused (422): a plausibility window inside pandas' nanosecond range")
    latest_year: int = Field(default=2200, ge=1678, le=2261, description="timestamps after 31 December of this "
                             "year are refused (422)")
    poll_seconds: float = Field(default=30.0, ge=0, description="how often aliases are checked; 0: only on reload")
    models: dict[Literal["detector", "forecaster", "failure"], str] = Field(
        default_factory=lambda: {"detector": "cerebro-detector-ensemble",
                                 "forecaster": "cerebro-forecaster-seasonal_naive",
                                 "failure": "cerebro-failure-predictor"},
        description="kind -> registered model served")
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"
    fallback_latest: bool = Field(default=True, description="serve the newest version while no champion alias is set")
    torch_threads: int = Field(default=1, ge=0, description="torch intra-op threads in the service (0: torch's "
                               "default); a window is too small to split, and threads fight for the request's cores")
    blas_threads: int = Field(default=1, ge=0, description="BLAS threads (OpenBLAS, MKL) in the service (0: their "
                              "default); BLAS threads waiting on small matrices fight scikit-learn's and torch's")
    max_batch: int = Field(default=16, ge=1, description="most /v1/score requests for one model scored in one "
                           "call when they arrive while the service is busy (adaptive batching; 1: never batch)")
    workers: int = Field(default=1, ge=1, description="processes behind the port (uvicorn workers), each with "
                         "its own copy of the models: CPU-bound models on several cores; 1: one process")
    flags: dict[Literal["score", "forecast", "failure"], bool] = Field(
        default_factory=lambda: {"score": True, "forecast": True, "failure": True},
        description="feature flags: endpoints switched on or off")
    split: dict[Literal["detector", "forecaster", "failure"], float] = Field(
        default_factory=dict, description="kind -> share (0-1) of routing keys answered by the challenger")
    shadow: list[Literal["detector", "forecaster", "failure"]] = Field(
        default_factory=list, description="kinds whose challenger scores every request too (logged, not returned)")
    rollback: RollbackSettings = RollbackSettings()

    @field_validator("latest_year")
    @classmethod
    def _years_in_order(cls, latest: int, info) -> int:
        earliest = info.data.get("earliest_year")
        if earliest is not None and earliest > latest:
            raise ValueError(f"latest_year {latest} is before earliest_year {earliest}")
        return latest


class StreamingSettings(_Section):
    redis_url: SecretUrl = Field(default=SecretUrl("redis://127.0.0.1:6379/0"),
                                 description="Redis holding the telemetry stream (redis://:password@host:port/db)")
    stream: str = Field(default="cerebro:telemetry", description="Redis stream the consumer reads")
    group: str = Field(default="cerebro-scoring", description="Redis consumer group (also names the checkpoint file)")
    consumer: str = Field(default="consumer-1", description="this consumer's name inside the group")
    claim_idle_ms: int = Field(
        default=60000, ge=0, description="re-claim entries another consumer left pending this long (XAUTOCLAIM)")
    kinesis_stream: str = "cerebro-telemetry"
    kinesis_region: str = "us-east-1"
    kinesis_endpoint: str | None = Field(default=None, description="e.g. http://localhost:4566; empty means AWS")
    start_at: Literal["oldest", "latest"] = Field(
        default="oldest", description="where a consumer with no checkpoint starts (Redis group / Kinesis shard)")
    batch_size: int = Field(default=200, ge=1, le=10000, description="events read and committed together")
    block_ms: int = Field(default=1000, ge=1, description="how long one read waits for new events")
    checkpoint_path: Path | None = Field(
        default=None, description="SQLite file: results, checkpoints, window state; empty: <home>/streaming/<group>.sqlite")


class LifecycleSettings(_Section):
    margins: dict[Literal["detector", "forecaster", "failure"], float] = Field(
        default_factory=lambda: {"detector": 0.01, "forecaster": 0.02, "failure": 0.01},
        description="how much a challenger must beat the champion by: F1 (detector), MASE (forecaster, lower is "
                    "better), PR-AUC (failure)")
    heldout_hours: float = Field(default=24, gt=0, description="`cerebro models promote` judges on the lake's last N hours")
    detector_model: str = Field(default="cerebro-detector-ensemble", description="the detector batch and streaming use")
    fallback_model: str | None = Field(
        default="cerebro-detector-zscore", description="used when detector_model has no champion; empty: none")
    failure_model: str = "cerebro-failure-predictor"
    history_hours: float = Field(
        default=169, ge=1, description="feature history kept before a scored minute (169: week-over-week needs 7 days)")
    batch_output_dir: Path | None = Field(default=None, description="batch scores (Parquet); empty: <home>/scores")
    streaming: StreamingSettings = StreamingSettings()


NOTIFY_EVENTS = ("drift", "rollback", "fallback", "pipeline_failed")


class NotifySettings(_Section):
    # A Slack webhook URL is itself the credential: SecretStr keeps it out of dumps, reprs and logs.
    webhook_url: SecretStr | None = Field(
        default=None, description="Slack-compatible incoming webhook the ML team's alerts are posted to (a "
        "secret: shown as **********); empty: no alerts")
    events: list[Literal["drift", "rollback", "fallback", "pipeline_failed"]] = Field(
        default_factory=lambda: list(NOTIFY_EVENTS), description="events that alert: " + ", ".join(NOTIFY_EVENTS))
    timeout_s: float = Field(default=5, gt=0, le=60, description="how long one webhook call may take")

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value):
        if value is not None and not value.get_secret_value().strip():
            return None  # CEREBRO_NOTIFY__WEBHOOK_URL= (empty) switches alerts off
        if value is not None and not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("an http:// or https:// URL, e.g. https://hooks.slack.com/services/...")
        return value


class McpServerSettings(_Section):
    """An external MCP server whose tools join the registry (untrusted; read-only unless allowed)."""
    command: list[str] = Field(default_factory=list, description="stdio: the command that starts the server")
    url: str | None = Field(default=None, description="streamable HTTP: the server's URL (instead of command)")
    env: dict[str, str] = Field(default_factory=dict, description="stdio: environment for the server (this "
                                "process's own environment is not passed on)")
    allow_mutating: bool = Field(default=False, description="also import tools not marked read-only, as high "
                                 "risk (each call then needs an approval)")


class KubernetesToolSettings(_Section):
    host: str | None = Field(default=None, description="API server URL; empty: the kubeconfig, then in-cluster")
    kubeconfig: str | None = None
    context: str | None = None


class AwsToolSettings(_Section):
    region: str = "us-east-1"
    endpoint_url: str | None = None


class ToolsSettings(_Section):
    allow: list[str] = Field(default_factory=lambda: ["@read"], description="tools that may run: names, "
                             "patterns (k8s_*), @read for every read-only tool")
    dry_run: bool = Field(default=True, description="mutating tools only plan unless a call asks to execute")
    audit_dsn: SecretStr | None = Field(default=None, description="postgresql://... for the audit log; empty: "
                                        "SQLite at <home>/tools/audit.db")
    approval_timeout_s: int = Field(default=3600, ge=10, description="how long a flow waits for a person")
    approval_poll_s: int = Field(default=10, ge=1, le=60)
    playbook_dir: Path | None = Field(default=None, description="Ansible playbooks the tools may run; empty: none")
    inventory: str = "localhost ansible_connection=local"
    kubernetes: KubernetesToolSettings = KubernetesToolSettings()
    aws: AwsToolSettings = AwsToolSettings()
    mcp_servers: dict[str, McpServerSettings] = Field(default_factory=dict)
    max_tokens: int = Field(default=2000, ge=100, description="a tool's output is cut to this many tokens")


LLM_TASKS = ("reasoning", "fast", "code", "embedding")


class LlmProviderSettings(_Section):
    kind: Literal["anthropic", "bedrock", "openai", "offline"] = Field(
        description="anthropic: the Anthropic API; bedrock: Claude on Amazon Bedrock; openai: any OpenAI-compatible "
        "endpoint (vLLM, Ollama, llama.cpp's server); offline: no LLM (the evidence-only report)")
    base_url: str | None = Field(default=None, description="the endpoint; empty: the SDK's default (openai: required)")
    api_key: SecretStr | None = Field(default=None, description="a secret (shown as **********): set it with "
                                      "CEREBRO_LLM__PROVIDERS__<NAME>__API_KEY; empty: anthropic reads "
                                      "ANTHROPIC_API_KEY, a self-hosted endpoint needs none")
    region: str | None = Field(default=None, description="bedrock: the AWS region (credentials come from the usual "
                               "AWS chain: environment, profile, role)")
    self_hosted: bool = Field(default=False, description="runs on infrastructure you control: the only kind a "
                              "request marked sensitive may reach")
    timeout_s: float = Field(default=60, gt=0, description="one HTTP request (a stream: between two events)")
    requests_per_minute: int | None = Field(default=None, ge=1, description="empty: no request limit")
    tokens_per_minute: int | None = Field(default=None, ge=1, description="input + capped output tokens; empty: "
                                          "no token limit")
    count_tokens_api: bool = Field(default=False, description="count input tokens with the API's counter before "
                                   "sending (anthropic); off or unreachable: a local estimate")
    max_retries: int = Field(default=2, ge=0, le=10, description="retries of one call before falling back")
    breaker_failures: int = Field(default=5, ge=1, description="consecutive failures that open the circuit")
    breaker_reset_s: float = Field(default=30, gt=0, description="an open circuit lets one trial call through "
                                   "after this long")


class LlmRoute(_Section):
    provider: str
    model: str


class LlmPrice(_Section):
    input_per_mtok: float = Field(default=0, ge=0, description="USD per million input tokens")
    output_per_mtok: float = Field(default=0, ge=0, description="USD per million output tokens")


class LlmSettings(_Section):
    providers: dict[str, LlmProviderSettings] = Field(
        default_factory=lambda: {"offline": LlmProviderSettings(kind="offline", self_hosted=True)},
        description="name -> provider")
    tasks: dict[Literal["reasoning", "fast", "code", "embedding"], str] = Field(
        default_factory=lambda: {"reasoning": "offline:none", "fast": "offline:none", "code": "offline:none",
                                 "embedding": "minilm:all-MiniLM-L6-v2"},
        description="task -> PROVIDER:MODEL; embedding names the knowledge base's local MiniLM")
    fallback: list[str] = Field(default_factory=lambda: ["offline:none"],
                                description="PROVIDER:MODEL tried in order when a task's model fails")
    prices: dict[str, LlmPrice] = Field(default_factory=dict, description="model -> USD per million tokens")
    max_tokens_per_call: int = Field(default=4096, ge=1, description="most output tokens one call may ask for")
    max_input_tokens_per_call: int = Field(default=100_000, ge=1, description="a call whose input counts more "
                                           "tokens is refused before it is sent")
    max_tokens_per_investigation: int = Field(default=200_000, ge=1, description="input + output tokens one "
                                              "investigation may spend")
    cache: Literal["sqlite", "redis", "none"] = Field(default="sqlite", description="response cache")
    cache_ttl_s: float = Field(default=86400, gt=0, description="how long a cached answer is reused")
    cache_path: Path | None = Field(default=None, description="sqlite: empty means <home>/llm/cache.sqlite")
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="redis cache")
    backoff_base_s: float = Field(default=0.5, gt=0, description="first retry waits up to this (full jitter, doubling)")
    backoff_max_s: float = Field(default=20, gt=0, description="longest wait between two tries, retry-after included; "
                                 "a longer retry-after falls back at once")

    @field_validator("fallback")
    @classmethod
    def _routes(cls, value):
        for route in value:
            _split_route(route)
        return value

    @field_validator("tasks")
    @classmethod
    def _task_routes(cls, value):
        for route in value.values():
            _split_route(route)
        return value

    @model_validator(mode="after")
    def _known_providers(self):
        routes = [r for t, r in self.tasks.items() if t != "embedding"] + list(self.fallback)
        for route in routes:
            name = _split_route(route)[0]
            if name not in self.providers:
                raise ValueError(f"route {route!r} names provider {name!r}, which is not under llm.providers "
                                 f"(known: {', '.join(self.providers) or 'none'})")
        return self


def _split_route(route: str) -> tuple[str, str]:
    provider, sep, model = route.partition(":")
    if not sep or not provider or not model:
        raise ValueError(f"{route!r} is not PROVIDER:MODEL, e.g. anthropic:claude-sonnet-4-5 or offline:none")
    return provider, model


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CEREBRO_", env_nested_delimiter="__", extra="forbid", validate_assignment=True
    )

    profile: str = "default"
    home: Path = Field(default=Path(".cerebro"), description="everything the project writes lives here")
    prefect: PrefectSettings = PrefectSettings()
    mlflow: MlflowSettings = MlflowSettings()
    feast: FeastSettings = FeastSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    validation: ValidationSettings = ValidationSettings()
    detection: DetectionSettings = DetectionSettings()
    training: TrainingSettings = TrainingSettings()
    forecasting: ForecastingSettings = ForecastingSettings()
    failure: FailureSettings = FailureSettings()
    sources: SourcesSettings = SourcesSettings()
    rag: RagSettings = RagSettings()
    lifecycle: LifecycleSettings = LifecycleSettings()
    serving: ServingSettings = ServingSettings()
    drift: DriftSettings = DriftSettings()
    deploy: DeploySettings = DeploySettings()
    notify: NotifySettings = NotifySettings()
    tools: ToolsSettings = ToolsSettings()
    llm: LlmSettings = LlmSettings()

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        # The YAML profile arrives as init kwargs; the environment wins over it.
        return (env_settings, init_settings)

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        value = value.expanduser()
        return value if value.is_absolute() else (PROJECT_ROOT / value).resolve()

    # Derived locations: one home folder holds everything the project writes.
    @property
    def lake_dir(self) -> Path:
        return self.home / "lake"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @property
    def raw_dir(self) -> Path:
        return self.home / "raw"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def feast_dir(self) -> Path:
        return self.home / "feast"

    @property
    def mlflow_tracking_uri(self) -> str:
        """The real URI, password included: for MLflow, never for a message (``mask_url`` it there)."""
        return reveal(self.mlflow.tracking_uri) or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def mlflow_tracking_uri_shown(self) -> str:
        """The tracking URI for messages and tables: its password masked."""
        return mask_url(self.mlflow_tracking_uri)

    @property
    def mlflow_artifact_root(self) -> str | None:
        """Where new experiments keep their artifacts. None with a tracking server (http[s]://) and no root set:
        the server's own store (``mlflow server --artifacts-destination``), reached through it over HTTP, not a
        folder on this machine that the server and other clients cannot see."""
        if self.mlflow.artifact_root:
            return self.mlflow.artifact_root
        if self.mlflow_tracking_uri.startswith(("http://", "https://")):
            return None
        return (self.home / "mlartifacts").as_uri()

    @property
    def rag_index_dir(self) -> Path:
        path = self.rag.index_dir or Path("knowledge")
        return path if path.is_absolute() else self.home / path

    @property
    def tools_audit_target(self) -> str:
        """The audit log: the PostgreSQL DSN when set, else SQLite in the home folder."""
        dsn = self.tools.audit_dsn.get_secret_value() if self.tools.audit_dsn else ""
        return dsn or str(self.home / "tools" / "audit.db")

    @property
    def knowledge_dir(self) -> Path:
        path = self.rag.knowledge_dir or PROJECT_ROOT / "knowledge"
        return path if path.is_absolute() else PROJECT_ROOT / path


def reveal(value: SecretStr | str | None) -> str | None:
    """The real value of a secret setting (what a client connects with); ``None`` when it is not set or empty."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    return text or None


# Fields whose name says they hold a credential are hidden in a dump even while typed as plain text.
_SECRET_NAME = re.compile(r"(^|_)(token|password|passwd|secret|api_?key|access_?key|secret_?key|credentials?)$",
                          re.IGNORECASE)


def redacted_dump(model: BaseModel) -> dict[str, Any]:
    """The settings (or a section) as JSON-ready data with every secret hidden: what may be logged, stored as an
    MLflow artifact or printed. ``SecretStr`` fields and fields named like a token, password or key read
    ``**********``; connection URLs (``SecretUrl``) and any other text keep their host but lose their password."""
    return _redacted(model, "")


def _redacted(value: Any, name: str) -> Any:
    if isinstance(value, SecretUrl):
        return mask_url(value.get_secret_value())
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, BaseModel):
        return {key: _redacted(getattr(value, key), key) for key in type(value).model_fields}
    if isinstance(value, dict):
        return {str(key): _redacted(item, str(key)) for key, item in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_redacted(item, name) for item in value]
    if isinstance(value, str):
        return MASK if value and _SECRET_NAME.search(name) else mask_url(value)
    if isinstance(value, Path):
        return str(value)
    return value


def _resolve_profile(config: str | Path | None) -> Path:
    config = config or os.environ.get("CEREBRO_CONFIG") or "default"
    if str(config) in PROFILES:
        return PROFILES[str(config)]
    path = Path(config).expanduser()
    if path.is_file():
        return path
    raise ConfigError(
        f"config {str(config)!r}: no such profile or file; profiles are {', '.join(PROFILES)} "
        "or give the path of a YAML file"
    )


def _describe(error: dict[str, Any], source: Path) -> str:
    key = ".".join(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden":
        parent = error["loc"][:-1]
        model: Any = Settings
        for part in parent:
            model = model.model_fields[part].annotation
        allowed = ", ".join(model.model_fields)
        return f"{source}: unknown key `{key}`; allowed keys here: {allowed}"
    if _is_secret(error["loc"]):
        return f"{source}: key `{key}`: {error['msg']} (value not shown: it is a secret)"
    shown = error.get("input")
    return f"{source}: key `{key}`: {error['msg']} (got {mask_url(shown) if isinstance(shown, str) else shown!r})"


def _is_secret(loc: tuple) -> bool:
    """Whether the key at ``loc`` holds a secret (a ``SecretStr`` or ``SecretUrl``, or a field named like a token),
    whose value an error message must not repeat."""
    model: Any = Settings
    for part in loc:
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return False
        model = fields[part].annotation
    return "Secret" in str(model) or bool(_SECRET_NAME.search(str(loc[-1])))


def load_settings(config: str | Path | None = None, **overrides: Any) -> Settings:
    """Load a profile (name or path), apply ``CEREBRO_*`` environment variables, then ``overrides``."""
    path = _resolve_profile(config)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    # A profile's name, or a file's path: CEREBRO_CONFIG is set from it for child processes, which must find it.
    data.setdefault("profile", path.stem if PROFILES.get(path.stem) == path else str(path))
    try:
        settings = Settings(**data)
        for key, value in overrides.items():
            target: Any = settings
            *parents, leaf = key.split(".")
            for part in parents:
                target = getattr(target, part)
            setattr(target, leaf, value)
    except ValidationError as exc:
        raise ConfigError("\n".join(_describe(e, path) for e in exc.errors())) from None
    return settings
