"""Names the knowledge base recognises in text: services (with their aliases) and metrics.

The service names come from the service graph; aliases from the runbooks' front matter (``service:`` and
``aliases:``) and from configuration, so a team that adds a runbook also teaches the query parser its
service's nicknames. Matching is on word boundaries and case-insensitive.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# Operator words for the fleet's metrics (canonical names as the telemetry schema spells them).
METRIC_ALIASES: dict[str, tuple[str, ...]] = {
    "cpu_pct": ("cpu", "cpu usage", "cpu utilisation", "cpu utilization", "throttled", "throttling"),
    "memory_pct": ("memory", "heap", "ram", "rss", "oom", "oomkilled", "out of memory"),
    "latency_p50_ms": ("latency", "slow", "slowness", "response time", "p50"),
    "latency_p99_ms": ("p99", "tail latency", "p99 latency"),
    "error_rate": ("errors", "error rate", "5xx", "500s", "http 500", "failures", "failing"),
    "request_rate": ("traffic", "rps", "requests per second", "request rate", "load", "qps"),
    "connections": ("connections", "connection pool", "pool", "db connections"),
    "queue_depth": ("queue depth", "backlog", "lag", "messages waiting"),
    "disk_pct": ("disk", "disk space", "volume", "no space left", "storage"),
}


def _pattern(words: list[str]) -> re.Pattern:
    # Longest first so "api gateway" wins over "gateway"; hyphens and spaces are interchangeable.
    alts = sorted({w.lower() for w in words if w}, key=len, reverse=True)
    body = "|".join(re.escape(a).replace(r"\-", "[- ]").replace(r"\ ", "[- ]") for a in alts)
    return re.compile(rf"(?<![\w-])({body})(?![\w-])", re.IGNORECASE)


@dataclass
class Catalog:
    """Services (name -> aliases) and metrics (name -> aliases) to find in free text."""

    services: dict[str, set[str]] = field(default_factory=dict)
    metrics: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(METRIC_ALIASES))

    def __post_init__(self) -> None:
        self._compile()

    def _compile(self) -> None:
        self._service_of = {}
        for name, aliases in self.services.items():
            for word in {name, *aliases}:
                self._service_of[word.lower().replace(" ", "-")] = name
        self._service_re = _pattern(list(self._service_of)) if self._service_of else None
        self._metric_of = {}
        for name, aliases in self.metrics.items():
            for word in (name, *aliases):
                self._metric_of[word.lower().replace(" ", "-")] = name
        self._metric_re = _pattern(list(self._metric_of))

    @classmethod
    def from_graph(cls, graph: dict | None, aliases: dict[str, list[str]] | None = None) -> Catalog:
        names = [s["name"] if isinstance(s, dict) else str(s) for s in (graph or {}).get("services", [])]
        services = {n: set() for n in names}
        for name, words in (aliases or {}).items():
            services.setdefault(name, set()).update(words)
        return cls(services=services)

    def add_aliases(self, name: str, aliases) -> None:
        self.services.setdefault(name, set()).update(a for a in aliases if isinstance(a, str))
        self._compile()

    def find_services(self, text: str) -> list[str]:
        """Services named in ``text``, in order of first mention."""
        if not self._service_re:
            return []
        found = [self._service_of[m.group(1).lower().replace(" ", "-")] for m in self._service_re.finditer(text)]
        return list(dict.fromkeys(found))

    def find_metrics(self, text: str) -> list[str]:
        found = [self._metric_of[m.group(1).lower().replace(" ", "-")] for m in self._metric_re.finditer(text)]
        return list(dict.fromkeys(found))

    def to_dict(self) -> dict:
        return {"services": {k: sorted(v) for k, v in sorted(self.services.items())}}

    @classmethod
    def from_dict(cls, data: dict) -> Catalog:
        return cls(services={k: set(v) for k, v in (data or {}).get("services", {}).items()})
