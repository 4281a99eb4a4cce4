"""Generated fleets: layered, bounded, deterministic, and faults that show and travel as on the web shop."""
from __future__ import annotations

import networkx as nx
import pandas as pd
import pytest

from telemetry.simulator import PRIMARY_METRIC, FleetSimulator, eligible_roots
from telemetry.topology import default_topology, generate_topology


@pytest.mark.parametrize("n", [20, 50, 500])
def test_layered_dag_with_bounded_fanout_and_no_orphans(n):
    topo = generate_topology(n, seed=1)
    g = topo.graph
    assert len(topo.services) == n and nx.is_directed_acyclic_graph(g)
    tiers = {s.name: s.tier for s in topo.services}
    for name in topo.names:
        if tiers[name] == "data":
            assert g.out_degree(name) == 0, name  # datastores, caches and queues call nothing
        else:
            assert g.out_degree(name) <= (8 if tiers[name] == "edge" else 5), name
        if g.in_degree(name) == 0:
            assert name in topo.entrypoints or name.startswith("worker-"), name
    assert all(tiers[e] == "edge" for e in topo.entrypoints)
    assert max(d for _, d in g.in_degree()) >= 3  # some shared dependencies
    data = [s for s in topo.names if tiers[s] == "data"]
    assert {s.split("-")[0] for s in data} == {"db", "cache", "queue"}


def test_same_seed_same_fleet_other_seed_other_fleet():
    assert generate_topology(50, 3) == generate_topology(50, 3)
    assert generate_topology(50, 3).edges != generate_topology(50, 4).edges
    with pytest.raises(ValueError, match="at least 6"):
        generate_topology(4)


def test_the_web_shop_is_still_the_default():
    assert FleetSimulator(days=1).topology is None  # run() picks default_topology()
    assert eligible_roots(default_topology(), "traffic_surge") == ("frontend",)


def test_generated_fleet_faults_show_at_their_root_and_reach_the_callers():
    sim = FleetSimulator(days=1, seed=5, end="2024-03-01", incidents_per_day=6, services=40,
                         traces_per_minute=0).run()
    topo = sim.topology
    assert len(topo.services) == 40 and sim.dataset.startswith("fleet-seed5-40svc-")
    assert len(sim.incidents) >= 4
    tel = sim.telemetry
    spread = 0
    for inc in sim.incidents.itertuples():
        assert inc.root_cause_service in eligible_roots(topo, inc.kind)
        assert inc.root_cause_service in inc.affected_services
        metric = PRIMARY_METRIC[inc.kind]
        s = tel[(tel["service"] == inc.root_cause_service) & (tel["metric"] == metric)].set_index("timestamp")["value"]
        before = s[inc.start - pd.Timedelta(hours=2):inc.start - pd.Timedelta(minutes=1)]
        during = s[inc.start:inc.end]
        assert during.max() > before.quantile(0.99) or during.min() < before.quantile(0.01), (inc.kind, metric)
        spread += len(inc.affected_services) > 1
    assert spread >= 2  # faults travel through the generated graph, not only sit at their root
