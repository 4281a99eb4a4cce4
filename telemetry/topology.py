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
        object.__setattr__(self, "_by_name", {s.name: s for s in self.services})  # 500 services: no scans

    @property
    def graph(self) -> nx.DiGraph:
        return self._graph

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.services]

    def service(self, name: str) -> Service:
        return self._by_name[name]

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


# Tiers of a generated fleet, front to back, and the share of services in each (the rest are mid-tier).
_EDGE_SHARE, _DATA_SHARE = 0.04, 0.22
_DATA_KINDS = ("db", "cache", "queue")
_MAX_FANOUT = 4


def generate_topology(n: int, seed: int = 0) -> Topology:
    """A random but realistic fleet of ``n`` services (at least 6), the same for the same ``(n, seed)``.

    Layered like a real system: a few entry points (``gw-*``: the edge, each with its own traffic), three
    or four layers of mid-tier services (``svc-*``) that call only deeper layers, a handful of background
    workers that nobody calls (``worker-*``: fed by queues), and datastores, caches and queues (``db-*``,
    ``cache-*``, ``queue-*``) that call nothing. Each caller draws 1 to 4 callees (one more where a service
    nobody called is given a caller; a gateway routes to the first layer); datastores are shared by several
    callers, and mid-tier callees are drawn with a preference for popular ones, as real fleets have
    hubs. The graph is a DAG (``Topology`` insists). Capacities, pools and latencies are sized from the
    traffic each service receives, so a healthy fleet runs at 25-60 % CPU and no pool sits at its limit:
    only injected faults saturate anything."""
    import numpy as np

    if n < 6:
        raise ValueError(f"a generated topology needs at least 6 services, got {n}")
    rng = np.random.default_rng([seed, n, 17])
    n_edge = max(1, round(n * _EDGE_SHARE))
    n_data = max(3, round(n * _DATA_SHARE))
    n_workers = max(0, round(n * 0.03)) if n >= 30 else 0
    n_mid = n - n_edge - n_data - n_workers
    depth = 3 if n_mid < 60 else 4
    mid_layer = np.sort(rng.integers(1, depth + 1, n_mid))
    mid_layer[: min(n_mid, depth)] = np.arange(1, min(n_mid, depth) + 1)  # no layer left empty
    mid_layer = np.sort(mid_layer)

    names: list[str] = [f"gw-{i:02d}" for i in range(n_edge)]
    layer = [0] * n_edge
    names += [f"svc-{i:03d}" for i in range(n_mid)]
    layer += [int(x) for x in mid_layer]
    names += [f"worker-{i:02d}" for i in range(n_workers)]
    layer += [depth] * n_workers  # they call the deepest mid-tier layer or data directly
    kinds = [_DATA_KINDS[i % 3] if i >= 3 else _DATA_KINDS[i] for i in range(n_data)]
    counters = dict.fromkeys(_DATA_KINDS, 0)
    for kind in kinds:
        names.append(f"{kind}-{counters[kind]:02d}")
        counters[kind] += 1
    layer += [depth + 1] * n_data
    layer_of = dict(zip(names, layer, strict=True))
    data_names = names[n - n_data:]
    popularity = dict.fromkeys(names, 1.0)

    edges: list[Edge] = []
    called: set[str] = set()
    for name in names[: n - n_data]:
        deeper = [m for m in names if layer_of[m] > layer_of[name] and not m.startswith("worker-")]
        mids = [m for m in deeper if not m.startswith(_DATA_KINDS) and layer_of[m] <= layer_of[name] + 2]
        datas = [m for m in deeper if m in data_names]
        fanout = int(min(_MAX_FANOUT, 1 + rng.poisson(1.2)))
        picks: list[str] = []
        if name.startswith("gw-"):
            pool = [m for m in mids if layer_of[m] == 1] or mids
        elif layer_of[name] >= depth:
            pool = []
        else:
            pool = mids
        n_mid_calls = 0 if not pool else int(min(fanout, max(1, round(fanout * 0.6))))
        if pool and n_mid_calls:
            w = np.array([popularity[m] for m in pool])
            picks += list(rng.choice(pool, size=min(n_mid_calls, len(pool)), replace=False, p=w / w.sum()))
        if not name.startswith("gw-") and datas:
            k = max(1, fanout - len(picks))
            picks += list(rng.choice(datas, size=min(k, len(datas)), replace=False))
        for callee in picks:
            popularity[callee] += 1.0
            called.add(callee)
            ratio = float(rng.uniform(0.8, 1.2)) if name.startswith("gw-") else float(rng.uniform(0.15, 0.9))
            edges.append(Edge(name, str(callee), round(ratio, 3)))
    fanout_of: dict[str, int] = {}
    for e in edges:
        fanout_of[e.caller] = fanout_of.get(e.caller, 0) + 1
    # nobody is orphaned: a mid-tier service or datastore nobody calls gets a caller one layer up
    for name in names[n_edge:]:
        if name in called or name.startswith("worker-"):
            continue
        above = [m for m in names[: n - n_data] if layer_of[m] < layer_of[name] and not m.startswith("worker-")
                 and (layer_of[m] >= 1 or layer_of[name] == 1)]
        roomy = [m for m in above if fanout_of.get(m, 0) < _MAX_FANOUT]
        caller = str(rng.choice(roomy or above))
        fanout_of[caller] = fanout_of.get(caller, 0) + 1
        edges.append(Edge(caller, name, round(float(rng.uniform(0.15, 0.9)), 3)))
        called.add(name)
    entry = tuple(names[:n_edge])
    return _sized(names, layer_of, edges, entry, rng)


def _sized(names, layer_of, edges, entry, rng) -> Topology:
    """Services whose capacity, pool and latency suit the traffic the graph sends them (peak rps)."""
    graph = nx.DiGraph()
    graph.add_nodes_from(names)
    for e in edges:
        graph.add_edge(e.caller, e.callee, ratio=e.ratio)
    entry_rps = 180.0
    peak = {}
    for name in nx.topological_sort(graph):
        preds = list(graph.predecessors(name))
        if name in entry:
            peak[name] = entry_rps
        elif not preds:
            peak[name] = entry_rps * 0.08
        else:
            peak[name] = sum(peak[p] * graph.edges[p, name]["ratio"] for p in preds)
    own = {}
    for name in names:
        kind = name.split("-")[0]
        own[name] = float({"gw": rng.uniform(3, 12), "cache": rng.uniform(0.4, 1.2), "db": rng.uniform(2, 6),
                           "queue": rng.uniform(1, 2.5)}.get(kind, rng.uniform(4, 30)))
    p50 = {}
    for name in reversed(list(nx.topological_sort(graph))):
        p50[name] = own[name] + sum(0.7 * graph.edges[name, c]["ratio"] * p50[c] for c in graph.successors(name))
    services = []
    for name in names:
        kind = name.split("-")[0]
        tier = "edge" if kind == "gw" else "data" if kind in _DATA_KINDS else "app"
        idle = float(rng.uniform(3, 10))
        busy = float(rng.uniform(25, 55))  # CPU at the daily peak
        capacity = 75 * max(peak[name], 0.5) / max(busy - idle, 10.0)
        in_flight = peak[name] * p50[name] / 1000.0
        pool = int(max(40, 2.5 * in_flight / 0.35, 0.3 * rng.integers(100, 600)))
        services.append(Service(
            name, tier, round(own[name], 3), round(capacity, 3), round(idle, 3),
            round(float(rng.uniform(30, 60)), 3), pool, round(float(rng.uniform(15, 55)), 3),
            round(float(rng.uniform(0.02, 0.35)), 3),
            base_queue_depth=round(float(rng.uniform(10, 40)), 3) if kind == "queue"
            else round(float(rng.uniform(2, 6)), 3) if kind == "worker" else 0.0))
    return Topology(services=tuple(services), edges=tuple(edges), entrypoints=entry, entry_rps=entry_rps)
