"""Judging a live model on its recent requests: error rate, latency, quality, over a rolling window.

Quality without labels: the share of scored rows a model flags (anomalies, alarms) or answers with a
non-finite number. A detector that flags most of the fleet, or returns NaN, is broken whatever its code says.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Outcome:
    ok: bool
    seconds: float
    rows: int = 0
    flagged: int = 0  # rows flagged or non-finite


class Window:
    """The last ``size`` outcomes of one model version, with running totals: judged on every request, so
    ``stats`` must cost microseconds, not a pass over the window."""

    def __init__(self, size: int):
        self._items: deque[Outcome] = deque(maxlen=size)
        self._seconds: deque[float] = deque(maxlen=size)  # the same, as floats numpy reads in one go
        self._lock = threading.Lock()
        self._errors = self._rows = self._flagged = 0

    def _count(self, o: Outcome, sign: int) -> None:
        self._errors += sign * (not o.ok)
        if o.ok:
            self._rows += sign * o.rows
            self._flagged += sign * o.flagged

    def add(self, outcome: Outcome) -> None:
        with self._lock:
            if len(self._items) == self._items.maxlen:
                self._count(self._items[0], -1)  # about to fall out of the window
            self._items.append(outcome)
            self._seconds.append(outcome.seconds)
            self._count(outcome, +1)

    def stats(self) -> dict:
        with self._lock:
            n, errors, rows, flagged = len(self._items), self._errors, self._rows, self._flagged
            seconds = np.fromiter(self._seconds, dtype=float, count=n)
        if not n:
            return {"requests": 0, "error_rate": 0.0, "p95_ms": 0.0, "flag_rate": 0.0}
        return {
            "requests": n,
            "error_rate": errors / n,
            "p95_ms": float(np.percentile(seconds, 95)) * 1000,
            "flag_rate": (flagged / rows) if rows else 0.0,
        }


def breach(stats: dict, limits) -> str | None:
    """Why the window is past a limit (``limits``: ``RollbackSettings``), or None."""
    if stats["requests"] < limits.min_requests:
        return None
    if stats["error_rate"] > limits.max_error_rate:
        return f"error rate {stats['error_rate']:.1%} over {stats['requests']} requests > {limits.max_error_rate:.1%}"
    if stats["p95_ms"] > limits.max_p95_ms:
        return f"p95 latency {stats['p95_ms']:.0f} ms over {stats['requests']} requests > {limits.max_p95_ms:.0f} ms"
    if stats["flag_rate"] > limits.max_flag_rate:
        return (f"quality: {stats['flag_rate']:.1%} of rows flagged or non-finite over {stats['requests']} "
                f"requests > {limits.max_flag_rate:.1%}")
    return None
