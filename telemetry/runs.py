"""Simulated datasets under the home folder, named by what made them so a rerun can reuse them."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from telemetry.dataset import write_simulation
from telemetry.simulator import FleetSimulator, default_end


def simulator_from_settings(settings) -> FleetSimulator:
    s = settings.simulator
    return FleetSimulator(days=s.days, seed=s.seed, end=s.end, incidents_per_day=s.incidents_per_day,
                          deploys_per_service_per_day=s.deploys_per_service_per_day)


def simulate_to_raw(settings) -> tuple[Path, bool]:
    """Write the configured simulation to ``<home>/raw/fleet-...``; reuse it if it is already there."""
    s = settings.simulator
    end = pd.Timestamp(s.end) if s.end else default_end()
    end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
    name = f"fleet-seed{s.seed}-{s.days:g}d-until-{end:%Y%m%dT%H%M}"
    out = settings.raw_dir / name
    manifest = out / "manifest.json"
    if manifest.exists():
        meta = json.loads(manifest.read_text())
        if meta.get("incidents_per_day") == s.incidents_per_day and \
                meta.get("deploys_per_service_per_day") == s.deploys_per_service_per_day:
            return out, True
    sim = simulator_from_settings(settings)
    sim.end = end
    write_simulation(sim.run(), out)
    return out, False
