"""`cerebro deploy --target local`: a real `cerebro serve` process over a small registered detector, swapped to
a new version without a restart, a refused version, a stale state file, and clear errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.filterwarnings("ignore")

NAME = "cerebro-detector-zscore"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A home of its own with the demo z-score detector registered (v1); the service polls no aliases."""
    from support.demo_models import register_demo_models

    from configs.settings import load_settings

    home = tmp_path_factory.mktemp("deploy-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CEREBRO_HOME", str(home))
        mp.setenv("CEREBRO_SERVING__POLL_SECONDS", "0")  # only a deploy's POST /admin/reload can swap
        settings = load_settings()
        out = register_demo_models(settings, days=2, detectors=("zscore",), forecaster=None)
        yield settings, out["versions"][NAME]


def _register_again(settings) -> str:
    """The same detector as a new version."""
    import mlflow

    from training.tracking import log_bundle, use_experiment

    model = mlflow.pyfunc.load_model(f"models:/{NAME}/1")
    use_experiment(settings)
    with mlflow.start_run(run_name="deploy-test-v2"):
        return log_bundle(model.unwrap_python_model().bundle, NAME, model.input_example, {}, {}, {})


def _register_broken(settings, tmp_path) -> str:
    """A version whose artifact does not load: the service refuses it."""
    import mlflow

    from training.tracking import PYFUNC_FILE, use_experiment

    broken = tmp_path / "bundle.joblib"
    broken.write_text("this is not a joblib file")
    use_experiment(settings)
    with mlflow.start_run(run_name="deploy-test-broken"):
        info = mlflow.pyfunc.log_model(name="model", python_model=str(PYFUNC_FILE), artifacts={"bundle": str(broken)},
                                       registered_model_name=NAME, pip_requirements=["pandas"])
    return str(info.registered_model_version)


def _champion(settings) -> str:
    from mlflow import MlflowClient

    return str(MlflowClient(tracking_uri=settings.mlflow_tracking_uri).get_model_version_by_alias(NAME, "champion").version)


def _live(url: str) -> list[tuple]:
    import httpx

    return [(m["kind"], m["model"], m["version"]) for m in httpx.get(f"{url}/models", timeout=5).json()["live"]]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid_runs(pid: int) -> bool:
    """Alive and not a zombie: this test process started the service, so an exited one lingers as a zombie
    until it is reaped, and signal 0 still reaches it."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z"


def test_deploy_starts_the_service_swaps_versions_without_a_restart_and_stops(registry, tmp_path):
    import httpx

    from serving.deploy.local import deploy_local, log_path, state_path, status_local, stop_local

    settings, v1 = registry
    first = deploy_local(settings, NAME, v1, port=0)
    port, url = first["port"], first["url"]
    try:
        assert first["action"] == "started" and first["live_version"] == v1 and first["kind"] == "detector"
        state = json.loads(state_path(settings, port).read_text())
        assert state["pid"] == first["pid"] and state["port"] == port and state["model"] == NAME
        assert state["started_at"] and Path(state["log"]) == log_path(settings, port) == settings.home / "logs" / \
            f"serve-{port}.log"
        assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        assert _live(url) == [("detector", NAME, v1)]

        v2 = _register_again(settings)
        second = deploy_local(settings, NAME, v2, port=port)
        assert second["action"] == "switched" and second["previous_version"] == v1
        assert second["pid"] == first["pid"] and _pid_runs(first["pid"])  # the same process: no restart
        assert _live(url) == [("detector", NAME, v2)] and _champion(settings) == v2

        v3 = _register_broken(settings, tmp_path)
        third = deploy_local(settings, NAME, v3, port=port)
        assert third["action"] == "refused" and third["live_version"] == v2 and third["reason"]
        assert any(f"v{v2} stays live" in n for n in third["notes"])
        assert _live(url) == [("detector", NAME, v2)] and _champion(settings) == v2  # the alias was given back

        again = deploy_local(settings, NAME, port=port)  # the champion, already live
        assert again["action"] == "unchanged" and again["pid"] == first["pid"]
        status = status_local(settings, port)
        assert status["running"] and status["ready"] and status["pid"] == first["pid"]
        assert [m["version"] for m in status["live"]] == [v2]
    finally:
        stopped = stop_local(settings, port)
    assert stopped["action"] == "stopped" and stopped["signal"] == "SIGTERM" and stopped["pid"] == first["pid"]
    assert not state_path(settings, port).exists() and not _pid_runs(first["pid"])
    assert "cerebro deploy: serving" in log_path(settings, port).read_text()
    assert stop_local(settings, port)["action"] == "not running"


def test_replicas_are_deployed_swapped_together_and_stopped_with_their_group(registry, monkeypatch):
    """serving.workers = 2: ready when both workers are, a deploy switches both (not only the one its reload
    reached), and a parent that ignores SIGTERM is killed with its whole process group."""
    import httpx

    monkeypatch.setenv("CEREBRO_SERVING__POLL_SECONDS", "3600")  # replicas want polling on; the deploy's reloads
    # must switch both workers well before it

    from serving.deploy.local import deploy_local, state_path, stop_local
    from serving.replicas import WORKER_HEADER, process_tree

    settings, v1 = registry
    settings = settings.model_copy(deep=True)
    settings.serving.workers = 2
    settings.deploy.local.stop_grace_seconds = 1
    first = deploy_local(settings, NAME, v1, port=0)
    port, url, tree = first["port"], first["url"], process_tree(first["pid"])
    try:
        assert first["action"] == "started" and first["live_version"] == v1
        assert json.loads(state_path(settings, port).read_text())["workers"] == 2
        v2 = _register_again(settings)
        second = deploy_local(settings, NAME, v2, port=port)
        assert second["action"] == "switched" and second["pid"] == first["pid"]
        seen = {}
        for _ in range(40):  # new connections reach either worker: both serve v2
            r = httpx.get(f"{url}/models", timeout=5)
            seen[r.headers[WORKER_HEADER]] = [m["version"] for m in r.json()["live"]]
        assert len(seen) == 2 and all(v == [v2] for v in seen.values()), seen
        os.kill(first["pid"], signal.SIGSTOP)  # the parent cannot act on SIGTERM: the group gets SIGKILL
    finally:
        stopped = stop_local(settings, port)
    assert stopped["action"] == "stopped" and stopped["signal"] == "SIGKILL"
    assert len(tree) >= 3 and not any(_pid_runs(p) for p in tree)


def test_a_stale_state_file_is_removed_and_said_so(registry):
    from typer.testing import CliRunner

    from flows.cli import app
    from serving.deploy.local import state_path, status_local

    settings, _ = registry
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    port = _free_port()
    state_path(settings, port).parent.mkdir(parents=True, exist_ok=True)
    state_path(settings, port).write_text(json.dumps({"pid": dead.pid, "port": port, "host": "127.0.0.1",
                                                      "model": NAME, "kind": "detector"}))
    result = CliRunner().invoke(app, ["deploy", NAME, "--target", "local", "--stop", "--port", str(port), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["action"] == "stale" and f"pid {dead.pid} was not running" in report["notes"][0]
    assert not state_path(settings, port).exists()
    assert status_local(settings, port) == {"target": "local", "port": port, "running": False, "notes": []}


def test_an_unregistered_name_is_a_clear_error_and_starts_nothing(registry):
    from serving.deploy import DeployError
    from serving.deploy.local import deploy_local, state_path

    settings, _ = registry
    port = _free_port()
    with pytest.raises(DeployError, match="no registered model 'cerebro-detector-nope'"):
        deploy_local(settings, "cerebro-detector-nope", port=port)
    with pytest.raises(DeployError, match="no version 99; it has versions"):
        deploy_local(settings, NAME, "99", port=port)
    with pytest.raises(DeployError, match="not a CEREBRO model.*--kind"):
        deploy_local(settings, "my-model", port=port)
    assert not state_path(settings, port).exists() and not (settings.home / "logs" / f"serve-{port}.log").exists()


def test_a_service_that_is_not_ready_in_time_is_stopped_and_the_log_named(registry):
    from serving.deploy import DeployError
    from serving.deploy.local import deploy_local, log_path, state_path

    settings, v1 = registry
    settings = settings.model_copy(deep=True)
    settings.deploy.local.ready_timeout_seconds = 0.5
    port = _free_port()
    with pytest.raises(DeployError, match=rf"not ready after 0.5 s .*it was stopped, see .*serve-{port}\.log"):
        deploy_local(settings, NAME, v1, port=port)
    assert not state_path(settings, port).exists() and log_path(settings, port).exists()


def test_the_kind_comes_from_the_registered_name():
    from serving.deploy import kind_of

    assert [kind_of(n) for n in ("cerebro-detector-ensemble", "cerebro-forecaster-prophet",
                                 "cerebro-failure-predictor")] == ["detector", "forecaster", "failure"]
    assert kind_of("my-model", "forecaster") == "forecaster"
