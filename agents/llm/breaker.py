"""A circuit breaker per provider: after ``failures`` failed calls in a row the provider is skipped for
``reset_s``; then one trial call goes through, and its outcome closes or reopens the circuit.

A small class rather than ``pybreaker``: pybreaker 1.4 holds one lock for the whole wrapped call, which would
let only one request at a time reach a provider. Here the lock guards the counters only.
"""
from __future__ import annotations

import threading
import time


class CircuitBreaker:
    def __init__(self, failures: int = 5, reset_s: float = 30.0, clock=time.monotonic):
        self.failures, self.reset_s, self._clock = failures, reset_s, clock
        self._lock = threading.Lock()
        self._failed = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half-open" if self._clock() - self._opened_at >= self.reset_s else "open"

    def allow(self) -> bool:
        """Whether a call may go now (in half-open, only one trial at a time)."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return True
            if state == "half-open" and not self._trial:
                self._trial = True
                return True
            return False

    def success(self) -> None:
        with self._lock:
            self._failed, self._opened_at, self._trial = 0, None, False

    def failure(self) -> None:
        with self._lock:
            self._failed += 1
            if self._trial or self._failed >= self.failures:
                self._opened_at, self._trial = self._clock(), False
