"""`cerebro serve --workers N`: real worker processes behind one port sharing the token file and leaving nothing
behind; the options refused clearly; a rollback that replicas do once between them; workers that end with
their parent."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.filterwarnings("ignore")

DETECTOR = "cerebro-detector-zscore"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pid_runs(pid: int) -> bool:
    """Alive and not a zombie (an ended child lingers as one until it is collected, and signal 0 reaches it)."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state not in ("Z", "X")


def _until(check, seconds: float, what: str):
    """Poll ``check()`` until it returns something truthy; fail naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {seconds:g} s")


def test_two_workers_answer_on_one_port_share_the_token_and_leave_nothing_behind(served, body, cerebro_home,
                                                                                  tmp_path):
    import httpx

    from serving.replicas import WORKER_HEADER, process_tree

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CEREBRO_HOME": str(cerebro_home),
           "CEREBRO_SERVING__MODELS": json.dumps({"detector": DETECTOR, "forecaster": "", "failure": ""})}
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", "from flows.cli import app; app()", "serve", "--port",
                                 str(port), "--workers", "2", "--poll", "3600", "--log-level", "warning"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    tree: list[int] = []
    try:
        def ready_pids():
            """Worker pids that answered /readyz 200, over new connections (each goes to one worker)."""
            if proc.poll() is not None:
                pytest.fail(f"the service exited with {proc.returncode}:\n{log.read_text()}")
            seen = set()
            for _ in range(20):
                try:
                    r = httpx.get(f"{base}/readyz", timeout=2)
                except httpx.TransportError:
                    return None
                if r.status_code == 200:
                    seen.add(r.headers[WORKER_HEADER])
            return seen if len(seen) == 2 else None

        _until(ready_pids, 120, "both workers ready")
        tree = process_tree(proc.pid)
        workers = {p for p in tree if p != proc.pid}

        answered = set()
        for _ in range(60):  # new connections: the kernel hands each to one worker
            r = httpx.post(f"{base}/v1/score", json=body, timeout=10)
            assert r.status_code == 200 and r.json()["model"] == DETECTOR and r.json()["rows"]
            answered.add(int(r.headers[WORKER_HEADER]))
            if len(answered) == 2:
                break
        assert len(answered) == 2 and answered <= workers and proc.pid not in answered

        models = httpx.get(f"{base}/models", timeout=5)
        assert models.json()["pid"] == int(models.headers[WORKER_HEADER])

        token = (cerebro_home / "serving" / "token").read_text().strip()
        assert httpx.post(f"{base}/admin/reload", timeout=10).status_code == 401
        reloaded = set()
        for _ in range(60):  # the one token file works on every worker
            r = httpx.post(f"{base}/admin/reload", headers={"Authorization": f"Bearer {token}"}, timeout=10)
            assert r.status_code == 200 and r.json() == {"changes": []}
            reloaded.add(int(r.headers[WORKER_HEADER]))
            if len(reloaded) == 2:
                break
        assert reloaded == answered
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0, log.read_text()
    _until(lambda: not any(_pid_runs(p) for p in tree), 10, f"every process of {tree} ended")


def test_workers_are_refused_with_a_clear_message(wide_console):
    from typer.testing import CliRunner

    from flows.cli import app

    zero = CliRunner().invoke(app, ["serve", "--workers", "0"])
    assert zero.exit_code == 2 and "Invalid value for '--workers'" in zero.output
    assert "greater than or equal to 1" in zero.output
    assert "Traceback" not in zero.output
    no_poll = CliRunner().invoke(app, ["serve", "--workers", "2", "--poll", "0"])
    assert no_poll.exit_code == 2 and "Traceback" not in no_poll.output
    assert "--workers 2 needs alias polling" in no_poll.output and "/admin/reload" in no_poll.output


def test_the_command_hands_its_settings_to_the_workers_and_writes_the_token_first(home, monkeypatch):
    """What `cerebro serve` gives uvicorn, and what a worker builds from it, in this process (uvicorn.run
    replaced): one process is served as an app object, as always; replicas as the factory's import path."""
    import uvicorn
    from typer.testing import CliRunner

    import serving.app
    import serving.replicas
    from flows.cli import app as cli
    from serving.replicas import SPEC_ENV, WORKER_HEADER

    calls, threads, blas = [], [], []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    monkeypatch.setattr(serving.app, "limit_torch_threads", lambda n: threads.append(n))  # this process's torch
    monkeypatch.setattr(serving.app, "limit_blas_threads", lambda n: blas.append(n))  # and its BLAS
    monkeypatch.setattr(serving.replicas, "exit_with_parent", lambda: None)  # this process's parent is pytest's
    monkeypatch.setattr(serving.replicas, "cores", lambda: 4)

    one = CliRunner().invoke(cli, ["serve", "--port", "0"])
    assert one.exit_code == 0, one.output
    assert not isinstance(calls[0]["app"], str) and "workers" not in calls[0] and threads == [1] and blas == [1]

    token_file = home / "serving" / "token"
    token_file.unlink(missing_ok=True)
    many = CliRunner().invoke(cli, ["serve", "--port", "0", "--workers", "2", "--max-batch", "4", "--poll", "7",
                                    "--token", "s3cret"])
    assert many.exit_code == 0, many.output
    run = calls[1]
    assert (run["app"], run["factory"], run["workers"], run["port"]) == ("flows.cli.serve:replica_app", True, 2, 0)
    assert "s3cret" not in json.dumps(run) and "s3cret" not in many.output  # the token travels in the environment
    spec = json.loads(os.environ[SPEC_ENV])
    assert spec["overrides"] == {"serving.port": 0, "serving.token": "s3cret", "serving.poll_seconds": 7.0,
                                 "serving.max_batch": 4, "serving.workers": 2}
    assert not token_file.exists()  # a configured token: no file

    from fastapi.testclient import TestClient

    from flows.cli.serve import replica_app

    service = replica_app()  # what each worker runs
    assert threads[-1] == 1 and service.state.coalescer.max_batch == 4
    with TestClient(service) as client:
        assert client.get("/models").status_code == 401  # the configured token, everywhere
        r = client.get("/models", headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200 and r.headers[WORKER_HEADER] == str(os.getpid()) == str(r.json()["pid"])

    generated = CliRunner().invoke(cli, ["serve", "--port", "0", "--workers", "2"])
    assert generated.exit_code == 0, generated.output
    assert token_file.exists() and str(token_file) in generated.output  # written before any worker starts
    monkeypatch.setenv("CEREBRO_SERVING__TORCH_THREADS", "0")  # torch's default: the 4 cores split over 2 workers
    replica_app()
    assert threads[-1] == 2


def test_torch_threads_are_shared_between_workers():
    from serving.replicas import torch_threads_per_worker

    assert torch_threads_per_worker(1, 1) == 1 and torch_threads_per_worker(0, 1) == 0  # one process: as set
    assert torch_threads_per_worker(4, 2) == 2 and torch_threads_per_worker(1, 4) == 1  # at least one
    assert torch_threads_per_worker(0, 2, available=8) == 4 and torch_threads_per_worker(0, 3, available=2) == 1


def test_a_worker_ends_when_its_parent_is_killed():
    """uvicorn's parent stops its workers on SIGTERM; killed outright, it cannot: each worker watches it."""
    child = ("import time; from serving.replicas import exit_with_parent; exit_with_parent(0.05); "
             "print('watching', flush=True); time.sleep(120)")
    parent = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', {child!r}]); "
              "print(p.pid, flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    try:
        worker = int(proc.stdout.readline())
        assert proc.stdout.readline().strip() == "watching" and _pid_runs(worker)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    _until(lambda: not _pid_runs(worker), 10, f"worker {worker} ended after its parent was killed")


def test_replicas_rolling_back_the_same_version_move_the_alias_once(served):
    """Each replica judges its own requests, so several may roll the same version back: the alias moves once,
    the ML team hears it once, and a version promoted since is left where it is."""
    from mlflow import MlflowClient

    from configs.settings import load_settings
    from serving.live import LiveModels
    from serving.metrics import ServingMetrics
    from serving.router import Router
    from training.tracking import log_bundle, use_experiment

    settings = load_settings()
    settings.serving.poll_seconds = 0
    name = "test-replica-rollback"
    settings.serving.models = {"detector": name}
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    import mlflow

    use_experiment(settings)
    versions = []
    for i in range(3):
        with mlflow.start_run(run_name=f"replica-rollback-{i}"):
            versions.append(log_bundle(served["bundle"], name, served["example"], {}, {}, {}))
    v1, v2, v3 = versions
    alerts: list[dict] = []
    replicas = []
    for _ in range(3):
        live = LiveModels(settings, Router.from_settings(settings.serving), ServingMetrics())
        live.alert = lambda event, **details: alerts.append(details)
        replicas.append(live)
    client.set_registered_model_alias(name, "champion", v1)
    for live in replicas:
        live.reload()
    client.set_registered_model_alias(name, "champion", v2)
    for live in replicas:
        live.reload()
        assert live.get("detector").version == v2
    a, b, c = replicas

    assert a.rollback(a.get("detector"), "error rate 50% over 20 requests").version == v1
    assert b.rollback(b.get("detector"), "p95 latency 300 ms over 20 requests").version == v1
    a.wait_idle(), b.wait_idle()
    assert str(client.get_model_version_by_alias(name, "champion").version) == v1
    assert [e["alias"] for e in (a.events[-1], b.events[-1])] == [f"moved to v{v1}", f"already on v{v1}"]
    assert [(d["from_version"], d["to_version"]) for d in alerts] == [(v2, v1)]  # once
    assert client.get_model_version(name, v2).tags["cerebro.rolled_back"] == "error rate 50% over 20 requests"

    client.set_registered_model_alias(name, "champion", v3)  # promoted while the third replica still served v2
    assert c.rollback(c.get("detector"), "error rate 60% over 20 requests").version == v1
    c.wait_idle()
    assert c.events[-1]["alias"] == f"left on v{v3}"
    assert str(client.get_model_version_by_alias(name, "champion").version) == v3
    assert c.reload()[0]["version"] == v3 and c.get("detector").version == v3  # it follows the alias
    for live in replicas:
        live.stop()
