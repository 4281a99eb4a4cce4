"""Local replicas of the scoring service: ``cerebro serve --workers N``, N processes behind one port.

uvicorn's own multi-process mode runs them: the parent binds the port, starts N workers (``spawn``: fresh
interpreters, not forks) that each import an app factory, and restarts a worker that dies. A worker rebuilds
the settings from what the command line resolved, handed down in one environment variable (never on a
command line, since it may hold the token):

    os.environ[SPEC_ENV] = spec(config, overrides, log_level, workers)     # the parent, before uvicorn.run
    config, overrides, log_level, workers = read_spec()                    # each worker, in the factory

What each worker owns: its copy of every live model (memory x N), its own adaptive batching, metrics,
rollback window and alias poller. What they share: the port, the token file (written once by the parent
before the workers start) and MLflow's registry, where a rollback moves an alias only while it still
points at the failing version (``serving.live.LiveModels.rollback``).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import threading

log = logging.getLogger("cerebro.serving")

SPEC_ENV = "CEREBRO_SERVE_REPLICA"
WORKER_HEADER = "x-cerebro-worker"  # every answer of a replica names its pid


def spec(config: str | None, overrides: dict, log_level: str, workers: int) -> str:
    return json.dumps({"config": config, "overrides": overrides, "log_level": log_level, "workers": workers})


def read_spec() -> tuple[str | None, dict, str, int]:
    raw = os.environ.get(SPEC_ENV)
    if not raw:
        raise RuntimeError(f"${SPEC_ENV} is not set: the replica factory is started by `cerebro serve --workers N`")
    doc = json.loads(raw)
    return doc["config"], doc["overrides"], doc["log_level"], int(doc["workers"])


def cores() -> int:
    """The cores this process may run on (its CPU affinity, where the platform says)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - macOS
        return os.cpu_count() or 1


def torch_threads_per_worker(torch_threads: int, workers: int, available: int | None = None) -> int:
    """A worker's share of torch's intra-op threads: ``serving.torch_threads`` split over the workers (0,
    torch's default of one per core: the cores split over them), at least 1. One worker keeps the setting as
    it is (0 stays torch's default)."""
    if workers <= 1:
        return torch_threads
    total = torch_threads if torch_threads > 0 else (available or cores())
    return max(1, total // workers)


def exit_with_parent(interval: float = 1.0) -> threading.Thread:
    """End this worker (SIGTERM to itself: uvicorn's graceful shutdown) once its parent is gone. uvicorn's
    parent stops its workers when it is asked to; killed outright (SIGKILL, the OOM killer), it leaves them
    serving on the port with nobody to stop them. Checked every ``interval`` seconds (re-parenting changes
    ``os.getppid()``), which works wherever Python does, unlike Linux's PR_SET_PDEATHSIG."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(interval)
        log.warning("the service's parent process %d is gone; worker %d stops", parent, os.getpid())
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="cerebro-parent-watch", daemon=True)
    thread.start()
    return thread


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux /proc; just ``pid`` elsewhere): the service's parent, its
    workers and multiprocessing's resource tracker."""
    from pathlib import Path

    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out
