"""The caller -> callee graph as the ranking needs it: validated, with self-loops dropped and cycles kept."""
from __future__ import annotations

from collections.abc import Iterable


class ServiceGraph:
    """A directed call graph. Self-loops say nothing about where a fault came from, so they are dropped (and
    noted); cycles are allowed, since the ranking only looks at direct neighbours and shortest paths."""

    def __init__(self, edges: Iterable[tuple[str, str]]):
        import networkx as nx

        self.g = nx.DiGraph()
        self.notes: list[str] = []
        loops = []
        for caller, callee in edges:
            caller, callee = str(caller), str(callee)
            if caller == callee:
                loops.append(caller)
                self.g.add_node(caller)
                continue
            self.g.add_edge(caller, callee)
        if loops:
            self.notes.append(f"ignored {len(loops)} self-loop(s): {', '.join(sorted(set(loops))[:10])}")
        if not nx.is_directed_acyclic_graph(self.g):
            cycle = nx.find_cycle(self.g)
            self.notes.append("the graph has cycles (kept), e.g. " + " -> ".join([c for c, _ in cycle] + [cycle[0][0]]))

    @property
    def nodes(self) -> set[str]:
        return set(self.g.nodes)

    def add_services(self, names: Iterable[str]) -> None:
        self.g.add_nodes_from(names)

    def callers(self, name: str) -> list[str]:
        return list(self.g.predecessors(name)) if name in self.g else []

    def callees(self, name: str) -> list[str]:
        return list(self.g.successors(name)) if name in self.g else []

    def descendants(self, name: str) -> set[str]:
        import networkx as nx

        return set(nx.descendants(self.g, name)) if name in self.g else set()

    def ancestors(self, name: str) -> set[str]:
        import networkx as nx

        return set(nx.ancestors(self.g, name)) if name in self.g else set()

    def related(self, target: str) -> set[str]:
        """Services whose fault can reach ``target``: itself, its callees (their latency and errors flow up to
        it), its callers (their load flows down to it) and the other callers of its callees (load on a shared
        dependency slows it for everyone)."""
        import networkx as nx

        down = nx.descendants(self.g, target)
        up = nx.ancestors(self.g, target)
        shared = set().union(*(self.g.predecessors(d) for d in down)) if down else set()
        return {target} | down | up | shared

    def path(self, source: str, target: str) -> list[str]:
        """From a cause to the target: along the calls it answers (target calls ... calls source), else along
        the calls it makes, else through a shared dependency; [] when unconnected."""
        import networkx as nx

        if source == target:
            return [target]
        for a, b, rev in ((target, source, True), (source, target, False)):
            try:
                p = nx.shortest_path(self.g, a, b)
                return p[::-1] if rev else p
            except nx.NetworkXNoPath:
                pass
        try:
            return nx.shortest_path(self.g.to_undirected(as_view=True), source, target)
        except nx.NetworkXNoPath:
            return []
