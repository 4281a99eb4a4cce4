"""Requests and tokens per minute for one provider, on the ``limits`` library's moving window.

``limits`` answers "may I now?" without waiting; :meth:`ProviderLimiter.acquire` waits until both the request
and the token window have room, then takes from both under one lock, so concurrent callers never overshoot.
"""
from __future__ import annotations

import threading
import time


class ProviderLimiter:
    def __init__(self, name: str, requests: int | None, tokens: int | None, period_s: int = 60):
        from limits import RateLimitItemPerSecond
        from limits.storage import MemoryStorage
        from limits.strategies import MovingWindowRateLimiter

        self.name, self.requests, self.tokens, self.period_s = name, requests, tokens, period_s
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._request_item = RateLimitItemPerSecond(requests, period_s) if requests else None
        self._token_item = RateLimitItemPerSecond(tokens, period_s) if tokens else None
        self._lock = threading.Lock()

    def acquire(self, tokens: int = 0, timeout_s: float | None = None) -> float:
        """Wait for room for one request of ``tokens`` tokens; return the seconds waited. A request larger than
        the whole token window can never pass: ValueError."""
        if self._token_item and tokens > self.tokens:
            raise ValueError(f"{self.name}: a request of {tokens} tokens exceeds tokens_per_minute {self.tokens}")
        started = time.monotonic()
        while True:
            with self._lock:
                wait = self._wait(tokens)
                if wait <= 0:
                    if self._request_item:
                        self._limiter.hit(self._request_item, self.name)
                    if self._token_item and tokens:
                        self._limiter.hit(self._token_item, self.name, cost=tokens)
                    return time.monotonic() - started
            if timeout_s is not None and time.monotonic() - started + wait > timeout_s:
                raise TimeoutError(f"{self.name}: rate limit would hold this call longer than {timeout_s:g}s")
            time.sleep(min(max(wait, 0.005), 1.0))

    def _wait(self, tokens: int) -> float:
        """0 when both windows have room now, else about how long until the one that is full frees some."""
        waits = [0.0]
        for item, cost in ((self._request_item, 1), (self._token_item, tokens)):
            if item and cost and not self._limiter.test(item, self.name, cost=cost):
                reset, _ = self._limiter.get_window_stats(item, self.name)
                waits.append(max(reset - time.time(), 0.01))
        return max(waits)

    def describe(self) -> str:
        parts = []
        if self.requests:
            parts.append(f"{self.requests} req/min")
        if self.tokens:
            parts.append(f"{self.tokens:,} tok/min")
        return ", ".join(parts) or "no limit"
