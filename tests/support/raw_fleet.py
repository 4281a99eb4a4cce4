"""A small simulated fleet as the zoo reads raw metrics: one column per metric, index (service, timestamp)."""
from __future__ import annotations


def raw_fleet(days: float, seed: int, incidents_per_day: float = 4, end: str = "2026-11-20T00:00Z"):
    """(simulation, wide frame of its raw metrics)."""
    from telemetry.simulator import FleetSimulator

    sim = FleetSimulator(days=days, seed=seed, end=end, incidents_per_day=incidents_per_day).run()
    wide = sim.telemetry.pivot_table(index=["service", "timestamp"], columns="metric", values="value", observed=True)
    wide.columns = [str(c) for c in wide.columns]
    return sim, wide
