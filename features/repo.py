"""The Feast feature repository, defined in code so that every path lives under ``settings.feast_dir``.

    <feast_dir>/registry.db                     file registry (or a SQL registry: settings.feast.registry_url)
    <feast_dir>/online_store.db                 SQLite online store (or Redis: settings.feast.online_store)
    <feast_dir>/data/service_features.parquet   the batch source, written by features.store

Objects: the entity ``service``; one ``FileSource``; three feature views over it, ``service_metrics`` (current
values), ``service_rolling`` (window statistics, slope, rate of change) and ``service_context`` (hour, weekday,
minutes since deploy, week-over-week deviations); and two feature services, ``detection_v1`` (all three views)
and ``failure_v1`` (the failure predictor's fields).

Offline store: ``file`` (Feast's Dask store). It is the only built-in offline store that runs here without a
server: ``duckdb`` needs the duckdb and ibis packages, which are not installed, and the others (postgres, spark,
ray, ...) need a cluster or a database. The Dask store's point-in-time join merges every entity row with *every*
feature row of its service before it filters by time, which is quadratic in the history; ``features.store``
therefore feeds it time chunks (see ``training_frame`` there for the measurement and why that is exact).
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from features.transforms import (
    CREATED,
    ENTITY,
    TIMESTAMP,
    failure_feature_names,
    view_columns,
)
from telemetry.schema import FLEET_METRICS

if TYPE_CHECKING:  # pragma: no cover
    from configs.settings import Settings

SOURCE_NAME = "service_features_source"
SOURCE_FILE = "service_features.parquet"
VIEWS = ("service_metrics", "service_rolling", "service_context")
FEATURE_SERVICES = ("detection_v1", "failure_v1")
INT_FEATURES = {"hour", "weekday"}


def source_path(settings: Settings):
    return settings.feast_dir / "data" / SOURCE_FILE


def ttl(settings: Settings) -> timedelta:
    """The feature views' TTL; ``timedelta(0)`` means no limit (Feast then only requires rows at or before t)."""
    return timedelta(minutes=settings.feast.ttl_minutes)


# Feast's modules the local store uses (its Dask offline store, SQLite online store, local materialisation), imported
# together by ``load_feast`` below.
FEAST_MODULES = ("feast", "feast.repo_config", "feast.infra.passthrough_provider", "feast.infra.offline_stores.dask",
                 "feast.infra.online_stores.sqlite", "feast.infra.compute_engines.local.compute",
                 "feast.infra.registry.file", "feast.repo_operations")


def _unchecked(target=None, **_options):
    """``typeguard.typechecked`` as it is under ``python -O``: the target unchanged."""
    return target if target is not None else (lambda t: t)


def load_feast() -> None:
    """Import Feast (once per process) with typeguard's ``@typechecked`` a no-op while its modules load.

    Feast decorates its classes with ``@typechecked``, which re-parses and recompiles each one's module source at
    import: on the 2-core development machine ``import feast`` took 6.8-9.2 s, 3.4-3.8 s without (2026-12-05).
    typeguard documents the decorator as a no-op in optimised mode, checks meant for development and not for
    production; only Feast's imports here see the no-op, and typeguard is put back as it was afterwards.
    """
    import importlib
    import sys

    if all(m in sys.modules for m in FEAST_MODULES):
        return
    import typeguard

    real = typeguard.typechecked
    typeguard.typechecked = _unchecked
    try:
        for module in FEAST_MODULES:
            importlib.import_module(module)
    finally:
        typeguard.typechecked = real


def repo_config(settings: Settings) -> Any:
    """A ``RepoConfig`` from the settings: local provider, file or SQL registry, SQLite or Redis online store."""
    load_feast()
    from feast.repo_config import RepoConfig

    feast_dir = settings.feast_dir
    # Dicts, not RegistryConfig objects: Feast turns {"registry_type": "sql"} into the SqlRegistryConfig that
    # SqlRegistry insists on (a plain RegistryConfig fails its isinstance check).
    from configs.settings import reveal

    if reveal(settings.feast.registry_url):
        registry: dict[str, Any] = {"registry_type": "sql", "path": reveal(settings.feast.registry_url),
                                    "cache_ttl_seconds": 60}
    else:
        registry = {"registry_type": "file", "path": str(feast_dir / "registry.db"), "cache_ttl_seconds": 60}
    if settings.feast.online_store == "redis":
        online: dict[str, Any] = {"type": "redis", "connection_string": reveal(settings.feast.redis_url)}
    else:
        online = {"type": "sqlite", "path": str(feast_dir / "online_store.db")}
    return RepoConfig(
        project=settings.feast.project,
        provider="local",
        registry=registry,
        online_store=online,
        offline_store={"type": settings.feast.offline_store},
        entity_key_serialization_version=3,
        repo_path=feast_dir,
    )


def feature_store(settings: Settings) -> Any:
    load_feast()
    from feast import FeatureStore

    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    (settings.feast_dir / "data").mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=repo_config(settings))


def definitions(
    settings: Settings, metrics: Iterable[str] | None = None, window: int | None = None
) -> dict[str, Any]:
    """Every Feast object of the repository, by name (``service``, the source, the views, the services)."""
    load_feast()
    from feast import Entity, FeatureService, FeatureView, Field, FileSource
    from feast.types import Float64, Int64
    from feast.value_type import ValueType

    metrics = sorted(metrics if metrics is not None else FLEET_METRICS)
    window = window or settings.feast.window_minutes
    service = Entity(
        name=ENTITY, join_keys=[ENTITY], value_type=ValueType.STRING, description="a service of the fleet"
    )
    source = FileSource(
        name=SOURCE_NAME,
        path=str(source_path(settings)),
        timestamp_field=TIMESTAMP,
        created_timestamp_column=CREATED,
        description="one row per service and minute, from features.transforms.compute_features",
    )
    life = ttl(settings)
    views = {}
    for name, columns in view_columns(metrics, window).items():
        views[name] = FeatureView(
            name=name,
            entities=[service],
            ttl=life,
            schema=[Field(name=c, dtype=Int64 if c in INT_FEATURES else Float64) for c in columns],
            source=source,
            online=True,
            tags={"window_minutes": str(window), "owner": "cerebro"},
        )
    wanted = set(failure_feature_names(window))
    failure_parts = []
    for view in views.values():
        cols = [f.name for f in view.features if f.name in wanted]
        if cols:
            failure_parts.append(view[cols])
    services = {
        "detection_v1": FeatureService(
            name="detection_v1", features=list(views.values()), description="anomaly detection: every feature"
        ),
    }
    # The failure predictor reads the fleet's metrics by name; a user's own metrics get detection_v1 alone
    # (the pipeline says why the predictor is skipped).
    if not wanted - {f.name for part in failure_parts for f in part.features}:
        services["failure_v1"] = FeatureService(
            name="failure_v1",
            features=failure_parts,
            description="failure prediction: CPU trend, memory growth, error rate, latency p99, connections, "
            "queue depth, recent deploys, time of day and week",
        )
    return {ENTITY: service, SOURCE_NAME: source, **views, **services}
