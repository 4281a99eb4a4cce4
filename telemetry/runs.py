"""Simulated datasets under the home folder, named by what made them so a rerun can reuse them."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from telemetry.dataset import write_simulation
from telemetry.simulator import FleetSimulator, dataset_name, default_end


def simulator_from_settings(settings) -> FleetSimulator:
    s = settings.simulator
    return FleetSimulator(days=s.days, seed=s.seed, end=s.end, incidents_per_day=s.incidents_per_day,
                          deploys_per_service_per_day=s.deploys_per_service_per_day, services=s.services)


def simulate_to_raw(settings) -> tuple[Path, bool]:
    """Write the configured simulation to ``<home>/raw/<dataset>``; reuse it if it is already there.

    The pipeline's fleet runs until the start of the current hour, so that its data is as fresh as a live
    feed's; ``cerebro simulate`` defaults to the start of the day instead, for reproducible files."""
    s = settings.simulator
    end = pd.Timestamp(s.end) if s.end else default_end(freq="h")
    end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
    out = settings.raw_dir / dataset_name(s.seed, s.days, end, s.services)
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
