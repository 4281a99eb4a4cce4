"""A local HTTP server that answers ``GET /api/v1/query_range`` the way Prometheus does (matrix results, values
as strings, error bodies with ``errorType``), generating its samples from the requested start/end/step:
Prometheus itself cannot run here.

    with FakePrometheus() as prom:
        ...  # query prom.url; prom.requests holds the parameters of every query
"""
from __future__ import annotations

import json
import re
from http.server import BaseHTTPRequestHandler
from typing import Self
from urllib.parse import parse_qs, urlparse

import pandas as pd

from support.servers import ThreadedHttpServer

CPU_Q = "100 * avg by (service) (rate(process_cpu_seconds_total[1m]))"
P99_Q = "histogram_quantile(0.99, sum by (service, le) (rate(http_request_duration_seconds_bucket[5m]))) * 1000"
JOB_Q = "avg by (job) (up)"

# PromQL -> series: (labels, base). Sample k of a range (at start + k*step) has the value base + k.
SERIES = {
    CPU_Q: [({"service": "payment", "job": "api", "instance": "10.0.0.1:9100"}, 12.5),
            ({"service": "cart", "job": "api", "instance": "10.0.0.2:9100"}, 40.0)],
    P99_Q: [({"service": "payment"}, 180.25)],
    JOB_Q: [({"job": "node-exporter"}, 1.0)],
}


def _duration(text: str) -> float:
    """A Prometheus duration (``60s``, ``1m``, ``1h30m``) or a float number of seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(text)
    return sum(int(n) * units[u] for n, u in parts)


def _time(text: str) -> float:
    """A Prometheus time parameter: unix seconds (float) or RFC 3339."""
    try:
        return float(text)
    except ValueError:
        return pd.Timestamp(text).timestamp()


def _fmt(value: float) -> str:
    return f"{value:.15g}"  # Prometheus writes sample values as strings, without a trailing .0


def expected_samples(base: float, start: float, end: float, step: float) -> list[tuple[float, float]]:
    out, k = [], 0
    while start + k * step <= end:
        out.append((start + k * step, base + k))
        k += 1
    return out


class _PromHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output quiet
        pass

    def _send(self, status: int, body: str, ctype: str = "application/json") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, error_type: str, error: str) -> None:
        self._send(status, json.dumps({"status": "error", "errorType": error_type, "error": error}))

    def do_GET(self):
        url = urlparse(self.path)
        if url.path != "/api/v1/query_range":
            return self._send(404, "<html><body>404 page not found</body></html>", "text/html")
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.server.requests.append(params)
        for name in ("query", "start", "end", "step"):
            if name not in params:
                return self._error(400, "bad_data", f'invalid parameter "{name}": missing')
        try:
            start, end = _time(params["start"]), _time(params["end"])
        except ValueError as exc:
            return self._error(400, "bad_data", f'invalid parameter "start" or "end": {exc}')
        try:
            step = _duration(params["step"])
        except ValueError:
            return self._error(400, "bad_data", f'invalid parameter "step": cannot parse "{params["step"]}"')
        if end < start:
            return self._error(400, "bad_data", 'invalid parameter "end": end timestamp must not be before start time')
        if step <= 0:
            return self._error(400, "bad_data", "zero or negative query resolution step widths are not accepted")
        if (end - start) / step > 11000:
            return self._error(400, "bad_data", "exceeded maximum resolution of 11,000 points per timeseries")
        query = params["query"]
        if query not in SERIES:
            return self._error(400, "bad_data", f'1:1: parse error: unknown query "{query}"')
        result = [
            {"metric": labels, "values": [[t, _fmt(v)] for t, v in expected_samples(base, start, end, step)]}
            for labels, base in SERIES[query]
        ]
        self._send(200, json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}}))


class FakePrometheus(ThreadedHttpServer):
    """The server on a free port of 127.0.0.1, in a thread, for the ``with`` block."""

    def __enter__(self) -> Self:
        self.requests = []
        self.url = self._serve(_PromHandler)
        self._server.requests = self.requests  # what the handler appends each query's parameters to
        return self
