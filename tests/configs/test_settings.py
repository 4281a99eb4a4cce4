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
    assert s.prefect.database_url.startswith("postgresql+asyncpg://")
    assert s.mlflow_tracking_uri.startswith("postgresql")
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
