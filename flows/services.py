"""Start and stop the Prefect and MLflow UIs as child processes over the home folder, register prefect.yaml's
deployments on the Prefect server, and run a process worker for them.

    procs = start_uis(settings)                          # Prefect server (:4200) and MLflow (:5000)
    register_deployments(settings, "http://127.0.0.1:4200/api")   # work pool cerebro-local + every deployment
    procs.append(start_worker(settings, "http://127.0.0.1:4200/api"))
    stop_detached(settings)                              # what `cerebro ui --stop` calls
"""
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


ROOT = Path(__file__).resolve().parents[1]  # where prefect.yaml lies
POOL = "cerebro-local"


class DeploymentsFailed(RuntimeError):
    """``prefect deploy`` did not register the deployments; the message holds the end of its output."""


def _prefect_env(settings, api_url: str) -> dict[str, str]:
    from configs.runtime import engine_environment

    return {**os.environ, **engine_environment(settings), "PREFECT_API_URL": api_url}


def server_up(api_url: str) -> bool:
    """Whether a Prefect server answers at ``api_url`` (``http://host:port/api``)."""
    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/health", timeout=2) as resp:
            return resp.status < 500
    except OSError:
        return False


def register_deployments(settings, api_url: str, timeout: float = 600) -> str:
    """Create the ``cerebro-local`` process work pool if missing and register every deployment of prefect.yaml
    on the server at ``api_url``; returns the end of ``prefect deploy``'s output. Running it again updates them."""
    env = _prefect_env(settings, api_url)
    log = settings.home / "run" / "deployments.log"
    log.parent.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([_bin("prefect"), *args], check=False, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)

    if run("work-pool", "inspect", POOL).returncode != 0:
        made = run("work-pool", "create", POOL, "--type", "process")
        if made.returncode != 0:
            raise DeploymentsFailed(f"could not create work pool {POOL}: {(made.stdout + made.stderr)[-800:]}")
    done = run("deploy", "--all", "--no-prompt")
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise DeploymentsFailed(f"`prefect deploy --all` failed (exit {done.returncode}); see {log}: "
                                f"{(done.stdout + done.stderr)[-800:]}")
    return (done.stdout + done.stderr)[-2000:]


def start_worker(settings, api_url: str) -> subprocess.Popen:
    """A process worker on ``cerebro-local`` in the background (pid in <home>/run, stopped by stop_detached)."""
    run_dir = settings.home / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "worker-ui.log"
    proc = subprocess.Popen([_bin("prefect"), "worker", "start", "--pool", POOL], cwd=ROOT,
                            env=_prefect_env(settings, api_url), stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    (run_dir / "worker-ui.pid").write_text(f"{proc.pid}\n")
    return proc


def start_uis(settings, prefect_port: int = 4200, mlflow_port: int = 5000, timeout: float = 120) -> list:
    run_dir = settings.home / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)  # the server itself must not point at another API
    # In the environment, not on the command line, where `ps` would show the database password to every user.
    env["MLFLOW_BACKEND_STORE_URI"] = settings.mlflow_tracking_uri
    artifacts = settings.mlflow_artifact_root or (settings.home / "mlartifacts").as_uri()
    commands = {
        "prefect": ([_bin("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(prefect_port)],
                    f"http://127.0.0.1:{prefect_port}/api/health"),
        "mlflow": ([_bin("mlflow"), "server",
                    "--default-artifact-root", artifacts, "--host", "127.0.0.1", "--port", str(mlflow_port),
                    "--workers", "1"],
                   f"http://127.0.0.1:{mlflow_port}/health"),
    }
    if settings.mlflow_tracking_uri.startswith(("http://", "https://")):
        commands.pop("mlflow")  # a tracking server of the team's own (the scale profile): its UI is there
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


def point_prefect_command(api_url: str, folder: Path | None = None) -> Path | None:
    """Write the prefect.toml that points the `prefect` command typed in ``folder`` (default: the working
    directory) at ``api_url``; never over a prefect.toml of the user's own (then None)."""
    from configs.runtime import UI_PREFECT_TOML_MARK, ui_prefect_toml

    path = (folder or Path.cwd()) / "prefect.toml"
    if path.exists() and ui_prefect_toml(path.parent) is None:
        return None
    path.write_text(f'{UI_PREFECT_TOML_MARK}\n[api]\nurl = "{api_url}"\n')
    return path


def unpoint_prefect_command(folder: Path | None = None) -> bool:
    """Remove the prefect.toml that :func:`point_prefect_command` wrote; True when there was one."""
    from configs.runtime import ui_prefect_toml

    path = ui_prefect_toml(folder)
    if path is None:
        return False
    path.unlink(missing_ok=True)
    return True


def stop_detached(settings, timeout: float = 30) -> int:
    """Stop the UIs and the worker whose pid files were left in <home>/run, and wait until every process of
    their groups has exited (MLflow's server forks several); returns how many were running."""
    import signal

    groups = []
    for pid_file in (settings.home / "run").glob("*-ui.pid"):
        try:
            pgid = int(pid_file.read_text().strip())
            os.killpg(pgid, signal.SIGTERM)
            groups.append(pgid)
        except (ProcessLookupError, ValueError, PermissionError):
            pass
        pid_file.unlink(missing_ok=True)
    deadline = time.monotonic() + timeout
    for pgid in groups:
        while _group_alive(pgid):
            if time.monotonic() > deadline:
                os.killpg(pgid, signal.SIGKILL)
                break
            time.sleep(0.2)
    return len(groups)


def _group_alive(pgid: int) -> bool:
    try:
        os.waitpid(pgid, os.WNOHANG)  # reap it if it is our own child, so it does not linger as a zombie
    except ChildProcessError:
        pass
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def stop_uis(procs: list) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
