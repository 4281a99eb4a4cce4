"""The simulated fleet: services, what each is like, and who calls whom.

The graph is a list of ``caller -> callee`` edges with a call ratio (calls to the callee per request
the caller serves). Traffic flows down the edges; latency and errors flow back up them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import networkx as nx


@dataclass(frozen=True)
class Service:
    name: str
    tier: str  # edge | app | data
    base_latency_ms: float  # own processing time at low load
    capacity_rps: float  # request rate at which the CPU is saturated
    idle_cpu_pct: float
    base_memory_pct: float
    pool_size: int  # connection-pool limit
    base_disk_pct: float
    disk_growth_pct_per_day: float
    base_queue_depth: float = 0.0


@dataclass(frozen=True)
class Edge:
    caller: str
    callee: str
    ratio: float  # callee requests per caller request


@dataclass(frozen=True)
class Topology:
    services: tuple[Service, ...]
    edges: tuple[Edge, ...]
    entrypoints: tuple[str, ...] = ("frontend",)
    entry_rps: float = 180.0  # peak requests per second at the entry points
    _graph: nx.DiGraph = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        graph = nx.DiGraph()
        graph.add_nodes_from(s.name for s in self.services)
        for e in self.edges:
            graph.add_edge(e.caller, e.callee, ratio=e.ratio)
        if not nx.is_directed_acyclic_graph(graph):
            raise ValueError("the service graph must not have cycles")
        object.__setattr__(self, "_graph", graph)

    @property
    def graph(self) -> nx.DiGraph:
        return self._graph

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.services]

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    def callers_order(self) -> list[str]:
        """Callers before callees: the order in which traffic propagates."""
        return list(nx.topological_sort(self._graph))

    def upstream(self, name: str) -> set[str]:
        """Every service whose requests pass through ``name`` (its transitive callers)."""
        return set(nx.ancestors(self._graph, name))

    def downstream(self, name: str) -> set[str]:
        return set(nx.descendants(self._graph, name))

    def callers(self, name: str) -> list[str]:
        return sorted(self._graph.predecessors(name))

    def to_dict(self) -> dict:
        return {
            "services": [asdict(s) for s in self.services],
            "edges": [asdict(e) for e in self.edges],
            "entrypoints": list(self.entrypoints),
        }


# What the spans of each service are called in traces (kept out of Service so the graph file stays as it was).
OPERATIONS: dict[str, tuple[str, ...]] = {
    "frontend": ("GET /", "GET /product", "GET /cart", "POST /checkout"),
    "api-gateway": ("route /api/v1",),
    "auth": ("VerifyToken",),
    "catalog": ("GetProduct", "ListProducts"),
    "cart": ("GetCart", "AddItem"),
    "checkout": ("PlaceOrder",),
    "payment": ("Charge",),
    "inventory": ("Reserve", "CheckStock"),
    "shipping": ("Quote", "CreateShipment"),
    "notification": ("SendEmail",),
    "database": ("SELECT", "INSERT", "UPDATE"),
    "cache": ("GET", "SET"),
    "queue": ("publish",),
}


def operations(name: str) -> tuple[str, ...]:
    """Span names of a service; a service of a custom topology without its own gets a generic one."""
    return OPERATIONS.get(name, ("handle",))


def default_topology() -> Topology:
    """A 13-service web shop: an edge tier, business services, and a database, a cache and a queue."""
    S = Service
    services = (
        S("frontend", "edge", 12, 400, 8, 35, 400, 30, 0.15),
        S("api-gateway", "edge", 4, 380, 6, 30, 600, 25, 0.10),
        S("auth", "app", 6, 340, 5, 40, 200, 20, 0.05),
        S("catalog", "app", 9, 230, 7, 45, 200, 25, 0.10),
        S("cart", "app", 7, 150, 6, 40, 150, 20, 0.08),
        S("checkout", "app", 15, 30, 5, 42, 120, 22, 0.08),
        S("payment", "app", 35, 32, 4, 38, 100, 20, 0.06),
        S("inventory", "app", 10, 36, 5, 36, 120, 30, 0.10),
        S("shipping", "app", 14, 32, 4, 34, 80, 25, 0.08),
        S("notification", "app", 20, 35, 3, 30, 60, 35, 0.20, base_queue_depth=4),
        S("database", "data", 3, 300, 12, 60, 300, 55, 0.35),
        S("cache", "data", 0.6, 1100, 6, 55, 500, 15, 0.02),
        S("queue", "data", 1.5, 90, 8, 45, 250, 40, 0.30, base_queue_depth=25),
    )
    E = Edge
    edges = (
        E("frontend", "api-gateway", 1.0),
        E("api-gateway", "auth", 0.9),
        E("api-gateway", "catalog", 0.6),
        E("api-gateway", "cart", 0.3),
        E("api-gateway", "checkout", 0.08),
        E("checkout", "payment", 1.0),
        E("checkout", "inventory", 1.2),
        E("checkout", "shipping", 1.0),
        E("checkout", "cart", 1.0),
        E("checkout", "queue", 1.0),
        E("payment", "database", 2.0),
        E("inventory", "database", 1.5),
        E("shipping", "database", 1.0),
        E("shipping", "queue", 0.5),
        E("catalog", "cache", 1.5),
        E("catalog", "database", 0.4),
        E("cart", "cache", 2.0),
        E("auth", "cache", 1.0),
        E("auth", "database", 0.2),
        E("notification", "queue", 1.0),
        E("notification", "database", 0.3),
    )
    return Topology(services=services, edges=edges)
