"""Shared fixtures: a throw-away home folder for the session and one Prefect test server."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# `make test` runs two workers on two cores: the other is always busy, so the serving-cost measurement would wait
# its whole patience for a quiet moment in every pipeline a test runs. The tests of that wait set their own.
os.environ.setdefault("CEREBRO_DETECTION__SERVING_COST_PATIENCE_S", "0")


def pytest_collection_modifyitems(config, items):
    """The longest files first. `make test` gives each of its two workers whole files, in collection order
    (``--no-loadscope-reorder``); the scale profile's module alone runs two pipelines on real servers for about
    nine minutes, and started last, as xdist's default order of most-tests-first put it, it ran on one worker
    for minutes after the other had finished. Started first, the other worker gets through the rest meanwhile.
    Then the other end-to-end files; the order within a file is kept."""
    def rank(item) -> int:
        path = str(item.path)
        if any(m.name == "services" for m in item.iter_markers()) and "/e2e/" in path:
            return 0
        return 1 if "/e2e/" in path else 2

    items[:] = sorted(items, key=rank)  # stable: files and tests keep their order within a rank


@pytest.fixture(scope="session", autouse=True)
def cerebro_home(tmp_path_factory):
    """Everything the code under test writes goes to a temporary home, never to the checkout's .cerebro."""
    home = tmp_path_factory.mktemp("cerebro-home")
    old = os.environ.get("CEREBRO_HOME")
    os.environ["CEREBRO_HOME"] = str(home)
    os.environ["PREFECT_HOME"] = str(home / "prefect")
    yield home
    if old is None:
        os.environ.pop("CEREBRO_HOME", None)
    else:
        os.environ["CEREBRO_HOME"] = old


@pytest.fixture(autouse=True)
def _environment_restored():
    """Whatever a test leaves in os.environ is undone: the CLI points every engine at its configuration through
    the environment (configs.runtime), and one test's --config or home must not become the next test's."""
    saved = dict(os.environ)
    yield
    if dict(os.environ) != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def wide_console(monkeypatch):
    """The CLI's rich consoles at 300 columns: their width is fixed when flows.cli is first imported (from
    $COLUMNS then), so a table or a long path would wrap wherever that import happened in a narrow terminal."""
    from flows.cli import common

    for console in (common.console, common.out):
        monkeypatch.setattr(console, "_width", 300)  # the private field: undone exactly, unset or not


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh home folder for one test (lake, quarantine ...)."""
    monkeypatch.setenv("CEREBRO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="session")
def prefect_server():
    """One temporary Prefect server (SQLite) for every flow test; it takes several seconds to start."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def small_fleet():
    """Two days of the simulated fleet, shared by the read-only tests."""
    from telemetry.simulator import FleetSimulator

    return FleetSimulator(days=2, seed=11, end="2026-11-20T00:00:00Z", incidents_per_day=4).run()


@pytest.fixture(scope="session")
def investigation_lab(tmp_path_factory):
    """Two simulated days in a lake (graph, traces, logs), a z-score detector registered as champion; built
    once for the modules that only read it (rca and investigate CLI, the read-only tools)."""
    from support.lab import investigation_lab

    return investigation_lab(tmp_path_factory.mktemp("investigation-home"))


@pytest.fixture(scope="module")
def moto_url():
    """moto in server mode on a free local port, with fake credentials, for this module (AWS sources, Kinesis)."""
    from moto.server import ThreadedMotoServer
    from support.servers import wait_for_port

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            mp.delenv(name, raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        wait_for_port(host, port)
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()
