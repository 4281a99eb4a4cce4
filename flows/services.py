"""Start and stop the Prefect and MLflow UIs as child processes over the home folder."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _wait_http(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url}: no answer after {timeout:.0f} s; see {log}")


def _bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


def start_uis(settings, prefect_port: int = 4200, mlflow_port: int = 5000, timeout: float = 120) -> list:
    run_dir = settings.home / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)  # the server itself must not point at another API
    # In the environment, not on the command line, where `ps` would show the database password to every user.
    env["MLFLOW_BACKEND_STORE_URI"] = settings.mlflow_tracking_uri
    artifacts = settings.mlflow_artifact_root
    commands = {
        "prefect": ([_bin("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)],
                    f"http://127.0.0.1:{prefect_port}/api/health"),
        "mlflow": ([_bin("mlflow"), "server",
                    "--default-artifact-root", artifacts, "--host", "127.0.0.1", "--port", str(mlflow_port),
                    "--workers", "1"],
                   f"http://127.0.0.1:{mlflow_port}/health"),
    }
    procs = []
    try:
        for name, (cmd, url) in commands.items():
            log = run_dir / f"{name}-ui.log"
            proc = subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                    start_new_session=True)
            (run_dir / f"{name}-ui.pid").write_text(f"{proc.pid}\n")
            procs.append(proc)
            _wait_http(url, proc, timeout, log)
    except Exception:
        stop_uis(procs)
        raise
    return procs


def stop_detached(settings) -> int:
    """Stop the UIs whose pid files ``start_uis`` left in <home>/run; returns how many were running."""
    import signal

    stopped = 0
    for pid_file in (settings.home / "run").glob("*-ui.pid"):
        try:
            os.killpg(int(pid_file.read_text().strip()), signal.SIGTERM)
            stopped += 1
        except (ProcessLookupError, ValueError, PermissionError):
            pass
        pid_file.unlink(missing_ok=True)
    return stopped


def stop_uis(procs: list) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
