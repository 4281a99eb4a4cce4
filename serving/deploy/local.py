"""The scoring service as a managed local process: ``cerebro serve`` started detached, one model per port.

    <home>/run/serve-<port>.json    pid, port, host, model, kind, workers, started_at, log (the state file)
    <home>/logs/serve-<port>.log    the service's own output

A deploy to a port whose service is running does not restart it: the alias moves, ``POST /admin/reload``
asks the service to switch (its own blue-green swap), and ``/models`` is read until the version is live or
refused. A state file whose pid is gone (or is another program now) is stale: it is removed and said so.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from configs.settings import PROJECT_ROOT
from serving.deploy import DeployError, give_back, kind_of, resolve
from training import kinds


def state_path(settings, port: int) -> Path:
    return settings.home / "run" / f"serve-{port}.json"


def log_path(settings, port: int) -> Path:
    return settings.home / "logs" / f"serve-{port}.log"


def _port(settings, port: int | None) -> int:
    port = settings.serving.port if port is None else port
    if port:
        return port
    with socket.socket() as s:  # 0: a free port now, so that the state file has a name
        s.bind((settings.serving.host, 0))
        return s.getsockname()[1]


def _reaped(pid: int) -> bool:
    """Collect ``pid`` when it is our own child that has ended (tests, flows); True when it was."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:  # not our child: init collects it
        return False


def _exists(pid: int) -> bool:
    """``pid`` is a process that has not ended (an ended child of ours is collected on the way)."""
    if _reaped(pid):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):  # no /proc (macOS): the signal test is all there is
        return True


def _own_group(pid: int) -> bool:
    """Whether ``pid`` leads its own process group, as the service this module starts does (its own session):
    the group is then the service's parent and its workers, and nothing else."""
    try:
        return os.getpgid(pid) == pid
    except (ProcessLookupError, PermissionError, AttributeError):
        return False


def _group_runs(pid: int) -> bool:
    """The service or any process of its group (its workers) still runs; the parent is collected on the way,
    and a member that has ended but is not yet collected (a zombie) does not count."""
    if _exists(pid):
        return True
    proc = Path("/proc")
    if not proc.is_dir():  # no /proc (macOS): the signal test is all there is
        try:
            os.killpg(pid, 0)
        except (ProcessLookupError, PermissionError, AttributeError):
            return False
        return True
    for entry in proc.glob("[0-9]*"):
        try:
            state, _ppid, pgrp = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(pgrp) == pid and state not in ("Z", "X"):
            return True
    return False


def _kill_group(pid: int, sig: int) -> None:
    try:
        if _own_group(pid) or not _exists(pid):
            os.killpg(pid, sig)
        else:  # not started by this module (an older state file): the process alone
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int, port: int) -> bool:
    """Is ``pid`` running, and is it still a `serve` on ``port`` (a reused pid is another program)?"""
    if not _exists(pid):
        return False
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc
    return b"serve" in args and str(port).encode() in args


def _read_state(settings, port: int) -> dict | None:
    path = state_path(settings, port)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"pid": -1, "port": port}  # unreadable: treated as stale


def _running(settings, port: int, notes: list[str]) -> dict | None:
    """The state of the service on ``port`` when it runs; a stale state file is removed (and noted)."""
    state = _read_state(settings, port)
    if state is None:
        return None
    if int(state.get("pid", -1)) > 0 and _alive(int(state["pid"]), port):
        return state
    state_path(settings, port).unlink(missing_ok=True)
    notes.append(f"removed a stale state file {state_path(settings, port)} (pid {state.get('pid')} was not "
                 "running)")
    return None


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else host


def _url(host: str, port: int) -> str:
    return f"http://{_client_host(host)}:{port}"


def _headers(settings) -> dict:
    """The bearer token the service wants: the configured one, else the one it generated in the home folder."""
    from serving.auth import client_headers

    return client_headers(settings)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _live_version(models: dict, name: str, kind: str) -> str | None:
    for m in models.get("live", []):
        if m["kind"] == kind and m["variant"] == "champion" and m["model"] == name:
            return str(m["version"])
    return None


def _refusal(models: dict, name: str, version: str) -> str | None:
    for r in models.get("refused", []):
        if r["model"] == name and str(r["version"]) == version:
            return r["reason"]
    return None


def _start(settings, name: str, kind: str, port: int, config: str | None) -> tuple[dict, subprocess.Popen]:
    log = log_path(settings, port)
    log.parent.mkdir(parents=True, exist_ok=True)
    state_path(settings, port).parent.mkdir(parents=True, exist_ok=True)
    host = settings.serving.host
    with socket.socket() as s:
        s.settimeout(0.5)
        if s.connect_ex((_client_host(host), port)) == 0:
            raise DeployError(f"port {port} is in use by a process this command did not start; pick another "
                              "with --port (or stop that process)")
    models = {k: (name if k == kind else "") for k in kinds.NAMES}  # only NAME: the others are switched off
    env = {**os.environ, "CEREBRO_HOME": str(settings.home), "CEREBRO_SERVING__MODELS": json.dumps(models)}
    cmd = [sys.executable, "-c", "from flows.cli import app; app()", "serve", "--host", host, "--port", str(port)]
    if settings.serving.workers > 1:  # replicas only when the settings ask for them
        cmd += ["--workers", str(settings.serving.workers)]
    if config:
        cmd += ["--config", config]
    with open(log, "ab") as out:
        out.write(f"\n--- {datetime.now(UTC).isoformat(timespec='seconds')} cerebro deploy: serving {name} "
                  f"({kind}) on port {port}\n".encode())
        out.flush()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=PROJECT_ROOT, start_new_session=True)  # detached: outlives this command
    state = {"pid": proc.pid, "port": port, "host": host, "model": name, "kind": kind,
             "workers": settings.serving.workers,
             "started_at": datetime.now(UTC).isoformat(timespec="seconds"), "log": str(log), "config": config}
    state_path(settings, port).write_text(json.dumps(state, indent=2))
    return state, proc


def _each_worker(url: str, headers: dict, workers: int, method: str = "GET", **request) -> dict[str, object]:
    """Send the request until each of the service's ``workers`` processes has answered it: {worker pid:
    response}. A new connection each time, since replicas (``cerebro serve --workers N``) share the port and
    the kernel hands each connection to one of them; a few tries per worker, so a worker that never answers
    shows as missing rather than as a hang. One worker: one request."""
    import httpx

    from serving.replicas import WORKER_HEADER

    request.setdefault("timeout", 5)
    seen: dict[str, object] = {}
    for _ in range(1 if workers <= 1 else 20 * workers):
        r = httpx.request(method, url, headers=headers, **request)
        seen.setdefault(r.headers.get(WORKER_HEADER, ""), r)
        if len(seen) >= workers:
            break
    return seen


def _wait_ready(settings, state: dict, proc: subprocess.Popen, name: str, version: str) -> dict:
    """Poll /readyz until it answers 200; returns /models. Fails (stopping the process) on exit or timeout."""
    import httpx

    base, log = _url(state["host"], state["port"]), Path(state["log"])
    timeout = settings.deploy.local.ready_timeout_seconds
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:  # (its /proc cmdline is this process's until it has exec'ed)
            state_path(settings, state["port"]).unlink(missing_ok=True)
            raise DeployError(f"the service exited before it was ready; see {log}:\n{_tail(log)}")
        try:
            ready = _each_worker(f"{base}/readyz", {}, int(state.get("workers", 1)))
            if len(ready) >= int(state.get("workers", 1)) and all(r.status_code == 200 for r in ready.values()):
                return httpx.get(f"{base}/models", headers=_headers(settings), timeout=5).json()
            models = httpx.get(f"{base}/models", headers=_headers(settings), timeout=5).json()
            reason = _refusal(models, name, version)
            if reason:
                stop_local(settings, state["port"])
                raise DeployError(f"the service refused {name} v{version}: {reason}; it was stopped, see {log}")
        except (httpx.TransportError, ValueError):
            pass
        if time.monotonic() > deadline:
            stop_local(settings, state["port"])
            raise DeployError(f"the service was not ready after {timeout:g} s (deploy.local.ready_timeout_seconds)"
                              f"; it was stopped, see {log}:\n{_tail(log)}")
        time.sleep(0.5)


def _switch(settings, state: dict, name: str, kind: str, version: str) -> tuple[str, str | None, dict]:
    """Ask the running service to check its aliases; wait until ``version`` is live or refused."""
    base, headers = _url(state["host"], state["port"]), _headers(settings)
    timeout = settings.deploy.local.ready_timeout_seconds
    deadline = time.monotonic() + timeout
    workers = int(state.get("workers", 1))
    # Replicas: each reload reaches the worker that takes its connection, so it is sent until every worker
    # has switched (a reload that finds the alias where the worker is already changes nothing).
    def reload() -> None:
        for r in _each_worker(f"{base}/admin/reload", headers, workers, "POST", params={"retry_refused": "true"},
                              timeout=timeout).values():
            if r.status_code != 200:
                raise DeployError(f"POST {base}/admin/reload answered {r.status_code}: {r.text[:300]}")

    reload()
    while True:
        answers = [r.json() for r in _each_worker(f"{base}/models", headers, workers).values()]
        reason = next((r for r in (_refusal(m, name, version) for m in answers) if r), None)
        if reason:
            return "refused", reason, answers[0]
        if len(answers) >= workers and all(_live_version(m, name, kind) == version for m in answers):
            return "switched", None, answers[0]
        if time.monotonic() > deadline:
            raise DeployError(f"v{version} of {name} was neither live nor refused after {timeout:g} s; see "
                              f"{base}/models and {state['log']}")
        time.sleep(0.5)
        if workers > 1:  # the kernel may have handed every reload to the same worker (the other busy): again
            reload()


def deploy_local(settings, name: str, version: str | int | None = None, kind: str | None = None,
                 port: int | None = None, config: str | None = None) -> dict:
    """Serve ``name`` (``version`` or its champion) on ``port`` (default ``serving.port``): start the service,
    or switch the running one to the version without a restart."""
    import httpx

    kind = kind_of(name, kind)
    port = _port(settings, port)
    notes: list[str] = []
    state = _running(settings, port, notes)
    if state is not None and (state.get("model") != name or state.get("kind") != kind):
        raise DeployError(f"port {port} serves {state.get('model')} ({state.get('kind')}), pid {state['pid']}; "
                          f"stop it first (cerebro deploy {state.get('model')} --target local --stop --port {port})"
                          " or pick another --port")
    target = resolve(settings, name, version, kind)
    out = {"target": "local", "model": name, "kind": kind, "version": target.version, "port": port,
           "url": _url(settings.serving.host, port), "notes": notes}
    if state is None:
        state, proc = _start(settings, name, kind, port, config)
        try:
            models = _wait_ready(settings, state, proc, name, target.version)
        except DeployError:
            give_back(settings, target)
            raise
        live = _live_version(models, name, kind)
        action = "started"
        if live != target.version:  # the alias moved again while it started: it follows the alias anyway
            notes.append(f"v{live} is live (the {settings.serving.champion_alias} alias moved while it started)")
        out.update(action=action, live_version=live)
    else:
        try:
            before = _live_version(httpx.get(f"{_url(state['host'], port)}/models", headers=_headers(settings),
                                             timeout=5).json(), name, kind)
        except (httpx.TransportError, ValueError) as exc:
            give_back(settings, target)
            raise DeployError(f"the service on port {port} (pid {state['pid']}) does not answer /models ({exc}); "
                              f"see {state.get('log')}") from None
        if before == target.version:
            action, reason = "unchanged", None
        else:
            try:
                action, reason, _ = _switch(settings, state, name, kind, target.version)
            except (DeployError, httpx.HTTPError):
                give_back(settings, target)
                raise
        out.update(action=action, previous_version=before, live_version=target.version if action != "refused"
                   else before)
        if action == "refused":
            back = give_back(settings, target)
            out["reason"] = reason
            notes.append(f"the service refused v{target.version}: {reason}; v{before} stays live"
                         + (f"; the {settings.serving.champion_alias} alias is back on v{back}" if back else ""))
    out.update({k: state[k] for k in ("pid", "started_at", "log")}, state=str(state_path(settings, port)))
    return out


def stop_local(settings, port: int | None = None, name: str | None = None) -> dict:
    """SIGTERM the service on ``port``, SIGKILL after ``deploy.local.stop_grace_seconds``; remove its state."""
    port = settings.serving.port if port is None else port
    notes: list[str] = []
    state = _running(settings, port, notes)
    out = {"target": "local", "port": port, "notes": notes}
    if state is None:
        return {**out, "action": "stale" if notes else "not running"}
    if name and state.get("model") != name:
        raise DeployError(f"port {port} serves {state.get('model')}, not {name}; nothing was stopped")
    pid = int(state["pid"])
    sent = "SIGTERM"
    os.kill(pid, signal.SIGTERM)  # uvicorn's parent stops its workers itself
    deadline = time.monotonic() + settings.deploy.local.stop_grace_seconds
    while _group_runs(pid) and time.monotonic() < deadline:  # (it was checked to be our service above)
        time.sleep(0.2)
    if _group_runs(pid):
        sent = "SIGKILL"
        _kill_group(pid, signal.SIGKILL)  # the parent, its workers and multiprocessing's resource tracker
        deadline = time.monotonic() + 10
        while _group_runs(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    state_path(settings, port).unlink(missing_ok=True)
    return {**out, "action": "stopped", "signal": sent, "pid": pid, "model": state.get("model"),
            "log": state.get("log")}


def status_local(settings, port: int | None = None) -> dict:
    """The state file, whether its pid runs, /readyz and what /models says is live."""
    import httpx

    port = settings.serving.port if port is None else port
    notes: list[str] = []
    state = _running(settings, port, notes)
    if state is None:
        return {"target": "local", "port": port, "running": False, "notes": notes}
    base = _url(state["host"], port)
    out = {"target": "local", "running": True, **state, "url": base, "notes": notes}
    try:
        out["ready"] = httpx.get(f"{base}/readyz", timeout=5).status_code == 200
        out["live"] = httpx.get(f"{base}/models", headers=_headers(settings), timeout=5).json().get("live", [])
    except httpx.TransportError as exc:
        out["ready"] = False
        notes.append(f"the process runs but {base} does not answer: {exc}")
    return out
