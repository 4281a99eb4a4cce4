"""Read a question such as "why is checkout slow?" into a service, an aspect and the metrics it means.

Deterministic and simple on purpose: service names are matched as whole words (case-insensitive; a name
with ``-`` or ``_`` also matches written with spaces), the aspect comes from a short vocabulary, and a time
written in ISO form is taken as the moment asked about. The first service named is the symptom.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from agents.investigation.models import Question

# aspect -> (words in a question that mean it, words in a metric name that carry it)
ASPECTS: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {
    "latency": (frozenset({"slow", "slower", "slowness", "latency", "lag", "laggy", "sluggish", "timeout",
                           "timeouts", "delay", "delays", "delayed", "p99", "p95", "p90", "p50", "hang", "hangs",
                           "hanging", "response"}), ("latency", "duration", "response", "p99", "p95", "p90", "p50")),
    "errors": (frozenset({"error", "errors", "erroring", "errored", "failing", "fails", "failed", "failure", "failures", "5xx", "500",
                          "500s", "broken", "exception", "exceptions", "crash", "crashing", "down"}),
               ("error", "fault", "5xx", "fail", "availability", "success")),
    "cpu": (frozenset({"cpu", "hot", "saturated", "saturation", "throttled"}), ("cpu",)),
    "memory": (frozenset({"memory", "oom", "leak", "leaking", "heap", "ram"}), ("memory", "mem", "heap")),
    "disk": (frozenset({"disk", "disks", "storage", "space", "full"}), ("disk", "storage")),
    "connections": (frozenset({"connection", "connections", "pool", "pools", "exhausted", "exhaustion"}),
                    ("connection", "pool")),
    "traffic": (frozenset({"traffic", "load", "surge", "spike", "requests", "rps", "qps", "busy"}),
                ("request", "traffic", "rps", "qps", "throughput")),
    "queue": (frozenset({"queue", "queued", "backlog", "backed"}), ("queue", "backlog")),
}
# Symptoms first when several apply: the latency metric to report is the p99 when there is one.
_PREFERRED = ("p99", "p95", "p90", "error_rate", "rate")
_ISO = re.compile(r"\b(\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)")


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^0-9a-z]+", text.lower()) if w]


def _name_pattern(name: str) -> re.Pattern:
    """A service name as whole words: ``api-gateway`` matches "api-gateway", "api_gateway" and "api gateway"."""
    parts = [re.escape(p) for p in re.split(r"[-_\s]+", name.strip().lower()) if p]
    return re.compile(r"(?<![0-9a-z])" + r"[-_\s]?".join(parts) + r"(?![0-9a-z])")


def find_services(text: str, services: Iterable[str]) -> list[str]:
    """Services named in ``text``, in order of first appearance; a longer name wins over one inside it
    ("api-gateway" is not also "api")."""
    low = text.lower()
    found: list[tuple[int, int, str]] = []
    for name in sorted({str(s) for s in services if str(s).strip()}, key=len, reverse=True):
        for m in _name_pattern(name).finditer(low):
            if not any(a <= m.start() < b or a < m.end() <= b for a, b, _ in found):
                found.append((m.start(), m.end(), name))
                break
    return [name for _, _, name in sorted(found)]


def aspect_of(text: str) -> str | None:
    words = set(_words(text))
    for aspect, (vocab, _) in ASPECTS.items():
        if words & vocab:
            return aspect
    return None


def metrics_for(aspect: str | None, metrics: Iterable[str]) -> list[str]:
    """The metric names that carry ``aspect``, the preferred one (a p99 latency, an error rate) first."""
    if aspect is None:
        return []
    keys = ASPECTS[aspect][1]
    names = sorted({str(m) for m in metrics})
    hits = [m for m in names if any(k in m.lower() for k in keys)]

    def order(m: str) -> tuple[int, str]:
        low = m.lower()
        return next((i for i, p in enumerate(_PREFERRED) if p in low), len(_PREFERRED)), m

    return sorted(hits, key=order)


def parse_question(text: str | None, services: Iterable[str], metrics: Iterable[str] = ()) -> Question:
    """``text`` -> :class:`Question`. ``services`` and ``metrics``: the names the lake and graph know."""
    if not text or not text.strip():
        return Question(text=text)
    import pandas as pd

    named = find_services(text, services)
    aspect = aspect_of(text)
    when = None
    m = _ISO.search(text)
    if m:
        try:
            stamp = pd.Timestamp(m.group(1).replace(" ", "T"))
            when = (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()
        except ValueError:
            when = None
    return Question(text=text, service=named[0] if named else None, services=named, aspect=aspect,
                    metrics=metrics_for(aspect, metrics), at=when)
