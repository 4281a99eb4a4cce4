"""Progress of long work, for whoever is watching: the CLI's progress bar and Prefect's progress artifact.

Tasks call :func:`advance`; the CLI installs a listener with :func:`listen` for the duration of a
command. A listener only hears work done in this process (the thread-pool runner); on Dask the CLI falls
back to its spinner, and the Prefect UI's progress artifact still moves.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager

Listener = Callable[[str, int, int, str], None]  # (stage, done, total, detail)
_listeners: list[Listener] = []
_lock = threading.Lock()


@contextmanager
def listen(listener: Listener):
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


def advance(stage: str, done: int, total: int, detail: str = "") -> None:
    for listener in _listeners:
        listener(stage, done, total, detail)


class ProgressArtifact:
    """A Prefect progress artifact that follows ``done / total``; silent outside a flow run."""

    def __init__(self, description: str):
        self._id = None
        try:
            from prefect.artifacts import create_progress_artifact

            self._id = create_progress_artifact(progress=0.0, description=description)
        except Exception:  # noqa: BLE001 - progress display must never break the work
            self._id = None

    def update(self, done: int, total: int) -> None:
        if self._id is None or total <= 0:
            return
        from prefect.artifacts import update_progress_artifact

        update_progress_artifact(self._id, progress=100.0 * done / total)
