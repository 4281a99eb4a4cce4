"""The settings loader: profiles, environment overrides, the home folder, and errors that name the key."""
from __future__ import annotations

import pytest

from configs.settings import PROJECT_ROOT, ConfigError, load_settings


def test_default_profile_is_embedded_and_offline(monkeypatch):
    monkeypatch.delenv("CEREBRO_HOME", raising=False)
    s = load_settings("default")
    assert s.profile == "default"
    assert s.home == PROJECT_ROOT / ".cerebro"
    assert s.mlflow_tracking_uri == f"sqlite:///{PROJECT_ROOT / '.cerebro' / 'mlflow.db'}"
    assert s.mlflow_tracking_uri.startswith("sqlite:////")  # absolute path
    assert s.prefect.api_url is None and s.prefect.task_runner == "thread"
    assert s.feast.online_store == "sqlite"
    for path in (s.lake_dir, s.quarantine_dir, s.prefect_home, s.feast_dir):
        assert s.home in path.parents


def test_scale_profile_uses_real_engines():
    s = load_settings("scale")
    assert s.prefect.database_url.get_secret_value().startswith("postgresql+asyncpg://")
    assert s.mlflow_tracking_uri.startswith("http://")  # a tracking server, PostgreSQL and S3 behind it
    assert s.mlflow_artifact_root is None  # the server's own artifact store, not a folder of this machine
    assert s.feast.online_store == "redis"
    assert s.prefect.task_runner == "dask"


def test_environment_overrides_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("CEREBRO_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("CEREBRO_SIMULATOR__DAYS", "3")
    monkeypatch.setenv("CEREBRO_VALIDATION__ON_STALE", "fail")
    s = load_settings()
    assert s.home == tmp_path / "h"
    assert s.simulator.days == 3
    assert s.validation.on_stale == "fail"
    assert s.simulator.seed == 42  # untouched keys keep the file's value


def test_keyword_overrides_win(monkeypatch):
    s = load_settings("default", **{"simulator.days": 2, "simulator.seed": 9})
    assert (s.simulator.days, s.simulator.seed) == (2, 9)


def test_wrong_value_names_key_and_allowed_values(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("prefect:\n  task_runner: spark\nsimulator:\n  days: -1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(bad)
    msg = str(info.value)
    assert "prefect.task_runner" in msg and "'thread' or 'dask'" in msg and "'spark'" in msg
    assert "simulator.days" in msg and "greater than 0" in msg
    assert str(bad) in msg


def test_unknown_key_lists_the_allowed_ones(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("mlflow:\n  trackin_uri: x\n")
    with pytest.raises(ConfigError, match=r"unknown key `mlflow.trackin_uri`; allowed keys here: tracking_uri"):
        load_settings(bad)


def test_wrong_env_value_is_named(monkeypatch):
    monkeypatch.setenv("CEREBRO_FEAST__ONLINE_STORE", "memcached")
    with pytest.raises(ConfigError, match=r"feast.online_store.*'sqlite' or 'redis'"):
        load_settings()


def test_missing_profile_and_broken_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no such profile or file; profiles are default, scale"):
        load_settings("nope")
    broken = tmp_path / "broken.yaml"
    broken.write_text("prefect: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(broken)


# ---------------------------------------------------------------- secrets: one redacting dump
SECRETS = {
    "CEREBRO_SERVING__TOKEN": "canary-serving-token-7f3a",
    "CEREBRO_PREFECT__DATABASE_URL": "postgresql+asyncpg://prefect:canary-pg-pass-19@db:5432/prefect",
    "CEREBRO_MLFLOW__TRACKING_URI": "postgresql+psycopg://mlflow:canary-mlflow-pass-44@db:5432/mlflow",
    "CEREBRO_FEAST__REDIS_URL": "redis.internal:6379,password=canary-feast-redis-8,ssl=true",
    "CEREBRO_FEAST__REGISTRY_URL": "postgresql+psycopg://feast:canary-registry-pass-3@db/feast",
    "CEREBRO_RAG__PGVECTOR_DSN": "postgresql://rag:canary-rag-pass-5@db/cerebro",
    "CEREBRO_LIFECYCLE__STREAMING__REDIS_URL": "redis://:canary-stream-pass-2@cache:6379/0",
    "CEREBRO_SOURCES__PROMETHEUS__URL": "https://ops:canary-prom-pass-6@prom.internal:9090",
    "CEREBRO_NOTIFY__WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/canary-webhook-9",
}


def _canaries() -> list[str]:
    import re

    return [re.search(r"canary-[a-z0-9-]+", v).group(0) for v in SECRETS.values()]


def test_redacted_dump_hides_every_secret_but_keeps_the_hosts(monkeypatch):
    import json

    from configs.settings import redacted_dump

    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    s = load_settings()
    dumped = json.dumps(redacted_dump(s))
    leaked = [c for c in _canaries() if c in dumped or c in repr(s)]
    assert leaked == []
    doc = redacted_dump(s)
    assert doc["serving"]["token"] == "**********" and doc["notify"]["webhook_url"] == "**********"
    assert doc["mlflow"]["tracking_uri"] == "postgresql+psycopg://mlflow:***@db:5432/mlflow"  # where, not how
    assert doc["feast"]["redis_url"] == "redis.internal:6379,password=***,ssl=true"
    assert doc["lifecycle"]["streaming"]["redis_url"] == "redis://:***@cache:6379/0"
    assert doc["simulator"]["days"] == s.simulator.days and doc["home"] == str(s.home)  # the rest as it is
    assert s.mlflow_tracking_uri_shown == doc["mlflow"]["tracking_uri"]


def test_code_that_connects_still_gets_the_real_values(monkeypatch):
    from configs.runtime import engine_environment
    from features.repo import repo_config

    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CEREBRO_FEAST__ONLINE_STORE", "redis")
    s = load_settings()
    assert s.mlflow_tracking_uri == SECRETS["CEREBRO_MLFLOW__TRACKING_URI"]
    env = engine_environment(s)
    assert env["PREFECT_API_DATABASE_CONNECTION_URL"] == SECRETS["CEREBRO_PREFECT__DATABASE_URL"]
    assert env["MLFLOW_TRACKING_URI"] == SECRETS["CEREBRO_MLFLOW__TRACKING_URI"]
    config = repo_config(s)
    assert config.online_store.connection_string == SECRETS["CEREBRO_FEAST__REDIS_URL"]
    assert config.registry.path == SECRETS["CEREBRO_FEAST__REGISTRY_URL"]


def test_a_wrong_secret_value_is_not_repeated_in_the_error(monkeypatch):
    monkeypatch.setenv("CEREBRO_SERVING__PORT", "http://u:canary-in-port-1@h")  # not a port, and holds a password
    with pytest.raises(ConfigError, match="serving.port") as info:
        load_settings()
    assert "canary-in-port-1" not in str(info.value)


@pytest.mark.parametrize("text, shown", [
    ("postgresql://app:pw@db:5432/x", "postgresql://app:***@db:5432/x"),
    ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
    ("s3://bucket/key?X-Amz-Signature=abc&X-Amz-Credential=AKIA", "s3://bucket/key?X-Amz-Signature=***&X-Amz-Credential=***"),
    ("host=db user=app password=pw dbname=x", "host=db user=app password=*** dbname=x"),
    ("sqlite:////home/me/mlflow.db", "sqlite:////home/me/mlflow.db"),
    ("http://prom:9090", "http://prom:9090"),
])
def test_mask_url(text, shown):
    from configs.settings import mask_url

    assert mask_url(text) == shown
