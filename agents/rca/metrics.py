"""What a metric's name says: which way is bad, and which way through the call graph its change travels.

Names are free (``latency_p90``, ``requests_Sum``, ``availability_Average``), so they are split into words
and matched against short vocabularies; the first match in the order below wins (``error_rate`` is an error
metric, not a rate). An unknown name counts as a local resource that is abnormal either way.
"""
from __future__ import annotations

import re

# (words, family, bad direction). symptom: a slow or failing callee makes its callers slow or failing too;
# load: a caller's traffic is its callees' traffic; resource: stays on the service that owns it.
_RULES: tuple[tuple[frozenset[str], str, str], ...] = (
    (frozenset({"availability", "success", "successful", "ok", "apdex", "uptime", "healthy", "health"}),
     "symptom", "down"),
    (frozenset({"error", "errors", "err", "fault", "faults", "5xx", "4xx", "failure", "failures", "failed",
                "fail", "timeout", "timeouts", "exception", "exceptions", "throttles", "throttled"}), "symptom", "up"),
    (frozenset({"latency", "duration", "response", "responsetime", "elapsed", "time", "p50", "p75", "p90", "p95",
                "p99", "p999", "ms", "seconds", "delay", "wait", "slow"}), "symptom", "up"),
    (frozenset({"request", "requests", "req", "reqs", "rps", "qps", "traffic", "throughput", "invocations",
                "calls", "hits", "count", "sum", "ops", "tps", "messages", "bytes", "network", "in", "out"}),
     "load", "both"),
    (frozenset({"cpu", "memory", "mem", "heap", "disk", "storage", "connections", "connection", "conn", "pool",
                "queue", "backlog", "depth", "utilization", "utilisation", "saturation", "threads", "gc",
                "restarts", "restart", "swap", "iowait", "load"}), "resource", "up"),
)


def words(name: str) -> list[str]:
    # camelCase -> camel Case, then split on anything that is not a letter or a digit
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(name))
    return [w for w in re.split(r"[^0-9a-zA-Z]+", spaced.lower()) if w]


def _rule(name: str) -> int | None:
    """Index of the first rule of ``_RULES`` a metric name's words match, None when none does."""
    ws = words(name)
    return next((k for k, (vocab, _, _) in enumerate(_RULES) if any(w in vocab for w in ws)), None)


def classify(name: str) -> tuple[str, str]:
    """(family, bad direction) of a metric name: direction is "up", "down" or "both"."""
    k = _rule(name)
    return ("resource", "both") if k is None else _RULES[k][1:]


def aspect(name: str) -> str:
    """What a metric shows of a service: "errors" (availability, success, errors), "latency", or its family
    for the rest. A callee that exports latency but no error metric cannot show an error burst."""
    k = _rule(name)
    return "resource" if k is None else "errors" if k < 2 else "latency" if k == 2 else _RULES[k][1]
