"""Which model answers a request: feature flags, A/B splits by a stable hash, shadow mode.

A key (the request's ``key``, else its services) is hashed with SHA-256, so the same key lands on the same
variant in every process and after every restart (Python's ``hash()`` is salted per process).
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

CHAMPION, CHALLENGER = "champion", "challenger"


def bucket(key: str) -> float:
    """A number in [0, 1) fixed by ``key`` alone."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def routing_key(key: str | None, services: Iterable[str] = ()) -> str:
    """The request's own key, else its services (sorted, so their order does not matter)."""
    return key if key else ",".join(sorted(set(services)))


@dataclass
class Router:
    flags: dict[str, bool] = field(default_factory=dict)
    split: dict[str, float] = field(default_factory=dict)  # kind -> challenger share
    shadow: set[str] = field(default_factory=set)

    @classmethod
    def from_settings(cls, serving) -> Router:
        return cls(flags=dict(serving.flags), split=dict(serving.split), shadow=set(serving.shadow))

    def enabled(self, endpoint: str) -> bool:
        return self.flags.get(endpoint, True)

    def variant(self, kind: str, key: str) -> str:
        share = self.split.get(kind, 0.0)
        return CHALLENGER if share > 0 and bucket(f"{kind}:{key}") < share else CHAMPION

    def wants_challenger(self, kind: str) -> bool:
        """Whether the challenger must be loaded at all (a split or shadow uses it)."""
        return self.split.get(kind, 0.0) > 0 or kind in self.shadow

    def shadows(self, kind: str, variant: str) -> bool:
        """The challenger scores in shadow only requests the champion answers."""
        return kind in self.shadow and variant == CHAMPION
