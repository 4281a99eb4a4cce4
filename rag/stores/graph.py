"""Graph search over the service dependency graph (networkx, in memory, from the graph's JSON).

Edges point from caller to callee. The *blast radius* of a service is everything that calls it directly
or through others (its ancestors): what degrades when it fails. Its *dependencies* are its descendants:
where to look for a root cause when it degrades.

As a retriever, :meth:`ServiceGraph.rank_chunks` scores passages by how close the services they are about
are to the services named in the query: the named service itself first, then its direct callees (likely
root causes), then its direct callers (who feels it). Without a service in the query it returns nothing.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar


class ServiceGraph:
    # Score of a passage about a service at this relation to a queried one.
    RELATION_SCORE: ClassVar[dict[str, float]] = {"self": 1.0, "callee": 0.5, "caller": 0.35, "dependency": 0.25, "blast": 0.2}

    def __init__(self, graph: dict | None):
        import networkx as nx

        self.data = graph or {"services": [], "edges": []}
        self.g = nx.DiGraph()
        for s in self.data.get("services", []):
            self.g.add_node(s["name"] if isinstance(s, dict) else str(s))
        for e in self.data.get("edges", []):
            self.g.add_edge(e["caller"], e["callee"], ratio=e.get("ratio"))

    def __contains__(self, name: str) -> bool:
        return name in self.g

    @property
    def services(self) -> list[str]:
        return sorted(self.g.nodes)

    def callees(self, name: str) -> list[str]:
        return sorted(self.g.successors(name)) if name in self.g else []

    def callers(self, name: str) -> list[str]:
        return sorted(self.g.predecessors(name)) if name in self.g else []

    def dependencies(self, name: str) -> list[str]:
        import networkx as nx

        return sorted(nx.descendants(self.g, name)) if name in self.g else []

    def blast_radius(self, name: str) -> list[str]:
        """Services that degrade when ``name`` fails: its transitive callers."""
        import networkx as nx

        return sorted(nx.ancestors(self.g, name)) if name in self.g else []

    def dependency_path(self, source: str, target: str) -> list[str] | None:
        """The shortest call path from ``source`` down to ``target``, or None if it does not call it."""
        import networkx as nx

        try:
            return nx.shortest_path(self.g, source, target)
        except (nx.NetworkXNoPath, nx.NodeNotFound):
            return None

    def related(self, services: Iterable[str]) -> dict[str, float]:
        """Every service near the queried ones, with the best relation score it has to any of them."""
        scores: dict[str, float] = {}

        def put(names: Iterable[str], relation: str) -> None:
            for n in names:
                scores[n] = max(scores.get(n, 0.0), self.RELATION_SCORE[relation])

        for s in services:
            if s not in self.g:
                continue
            put([s], "self")
            put(self.callees(s), "callee")
            put(self.callers(s), "caller")
            put(self.dependencies(s), "dependency")
            put(self.blast_radius(s), "blast")
        return scores

    def rank_chunks(self, services: list[str], chunks, k: int) -> list[tuple[str, float]]:
        """(chunk_id, score) for passages about services related to the queried ones, best first.

        ``chunks`` is a :class:`ChunkServiceIndex` (or any chunks, indexed on the fly)."""
        related = self.related(services)
        if not related:
            return []
        index = chunks if isinstance(chunks, ChunkServiceIndex) else ChunkServiceIndex(list(chunks))
        return index.rank(related, k)


class ChunkServiceIndex:
    """Which service each chunk is about, as arrays, so that scoring every chunk is one numpy expression.

    A passage is *about* its document's primary service (a service runbook, a graph card, an incident's
    root cause) with full weight, and about the other services it mentions with a third of it, diluted
    when it mentions many (a fleet-wide note must not outrank a service's own runbook). Earlier sections
    win ties."""

    def __init__(self, chunks: list):
        import numpy as np

        self.ids = [c.chunk_id for c in chunks]
        names = sorted({s for c in chunks for s in c.services} | {c.metadata.get("service") for c in chunks
                                                                  if c.metadata.get("service")})
        self.column = {n: i for i, n in enumerate(names)}
        self.primary = np.full(len(chunks), -1, dtype=np.int64)
        self.mentions = np.zeros((len(chunks), max(1, len(names))), dtype=bool)
        for i, c in enumerate(chunks):
            primary = c.metadata.get("service")
            if primary:
                self.primary[i] = self.column[primary]
            for name in c.services:
                if name != primary:
                    self.mentions[i, self.column[name]] = True
        self.dilution = 3 * np.maximum(1.0, np.array([len(c.services) for c in chunks], dtype=float) / 3)
        self.position = np.array([c.position for c in chunks], dtype=float)

    def rank(self, related: dict[str, float], k: int) -> list[tuple[str, float]]:
        import numpy as np

        if not self.ids:
            return []
        weight = np.zeros(self.mentions.shape[1] + 1)  # the last slot scores "no primary service"
        for name, score in related.items():
            if name in self.column:
                weight[self.column[name]] = score
        primary = weight[np.where(self.primary >= 0, self.primary, len(weight) - 1)]
        mentioned = (self.mentions * weight[:-1]).max(axis=1) / self.dilution
        best = np.maximum(primary, mentioned)
        hits = np.flatnonzero(best > 0)
        scores = best[hits] - 1e-4 * self.position[hits]
        order = hits[np.lexsort((hits, -scores))][:k]
        return [(self.ids[i], float(best[i] - 1e-4 * self.position[i])) for i in order]
