"""Limits on what one request may hold the service with, as a plain ASGI wrapper in front of the app.

* a body larger than ``serving.max_body_mb`` gets a 413: at once when ``Content-Length`` says so (nothing is
  read), else as soon as the bytes read pass the limit;
* a body whose next part takes longer than ``serving.body_timeout_seconds`` gets a 408 (a slow upload must
  not hold a connection and its buffer forever);
* past ``serving.max_concurrent`` requests in flight, a 503 with ``Retry-After``: the service answers the ones
  it holds instead of queueing without end. The probes are never refused, so a busy service is not
  restarted for being busy.

The body is read here, whole, and handed to the app as one message: the app reads every body whole anyway
(JSON), and a refused one is never parsed. What it does not cover (slow request heads, TLS, rate limits per
client) belongs to a reverse proxy in front (docs/serving.md, Exposing the service).
"""
from __future__ import annotations

import asyncio
import json


class RequestLimits:
    def __init__(self, app, max_body_bytes: int, max_concurrent: int, body_timeout: float,
                 unlimited_paths: frozenset[str] = frozenset(), retry_after_seconds: int = 1):
        self.app = app
        self.max_body = int(max_body_bytes)
        self.max_concurrent = int(max_concurrent)
        self.body_timeout = float(body_timeout)
        self.unlimited = unlimited_paths  # never refused for concurrency (the probes)
        self.retry_after = str(retry_after_seconds)
        self.in_flight = 0  # read and written on the event loop only

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limited = scope["path"] not in self.unlimited
        if limited and self.in_flight >= self.max_concurrent:
            return await _answer(send, 503, f"the service is at its limit of {self.max_concurrent} requests in "
                                 "flight (serving.max_concurrent); retry shortly",
                                 [(b"retry-after", self.retry_after.encode())])
        self.in_flight += limited
        try:
            length = _content_length(scope)
            if length is not None and length > self.max_body:
                return await _answer(send, 413, self._too_large(length), [(b"connection", b"close")])
            body = await self._read(receive, send)
            if body is None:
                return
            delivered = False

            async def replay():
                nonlocal delivered
                if not delivered:
                    delivered = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()  # after the body: the disconnect, when it comes

            await self.app(scope, replay, send)
        finally:
            self.in_flight -= limited

    def _too_large(self, size: int) -> str:
        return (f"the body is {size / 1e6:.1f} MB or more; at most {self.max_body / 1e6:g} MB "
                "(serving.max_body_mb): split the window into several requests")

    async def _read(self, receive, send) -> bytes | None:
        """The whole body, or None once a 413 or 408 was answered (or the client went away)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout)
            except TimeoutError:
                await _answer(send, 408, f"no part of the body arrived for {self.body_timeout:g} s "
                              "(serving.body_timeout_seconds)", [(b"connection", b"close")])
                return None
            if message["type"] == "http.disconnect":
                return None
            part = message.get("body", b"")
            size += len(part)
            if size > self.max_body:
                await _answer(send, 413, self._too_large(size), [(b"connection", b"close")])
                return None
            if part:
                chunks.append(part)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before the app sees it
    return None


async def _answer(send, status: int, detail: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})
