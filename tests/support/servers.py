"""Local servers the tests start, and waiting for them."""
from __future__ import annotations

import socket
import time
from typing import Self


def free_port() -> int:
    """A port nothing listens on now (the OS picks it)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Wait until a server accepts connections (the only waiting these tests do)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class ThreadedHttpServer:
    """Base of the tests' stand-in HTTP servers: ``_serve(Handler)`` runs a ``ThreadingHTTPServer`` on a free
    loopback port in a daemon thread and returns its base URL; leaving the ``with`` block stops it."""

    def _serve(self, handler) -> str:
        import threading
        from http.server import ThreadingHTTPServer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        wait_for_port(host, port)
        return f"http://{host}:{port}"

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class WebhookReceiver(ThreadedHttpServer):
    """A real HTTP server on 127.0.0.1 (a free port, in a thread) that records the JSON POSTed to it and
    answers ``status``: a stand-in for a Slack incoming webhook.

        with WebhookReceiver() as hook:
            ...  # post to hook.url
        hook.posts  # [{"path": "/services/T0/B0/secret", "json": {"text": "..."}}]
    """

    def __init__(self, status: int = 200):
        self.status = status
        self.posts: list[dict] = []

    def __enter__(self) -> Self:
        import json
        from http.server import BaseHTTPRequestHandler

        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.posts.append({"path": self.path, "json": json.loads(body or b"null")})
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):  # keep the test output quiet
                pass

        # A Slack-like path: the secret part of a real webhook URL.
        self.url = self._serve(Handler) + "/services/T0CEREBRO/B0ALERTS/s3cr3tW3bh00kT0k3n"
        return self
