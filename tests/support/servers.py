"""Waiting for a local server the tests started."""
from __future__ import annotations

import socket
import time


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
