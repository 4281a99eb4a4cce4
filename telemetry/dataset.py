"""A simulated dataset on disk: the folder ``cerebro simulate`` writes and the pipeline ingests.

    telemetry.parquet (or .csv)   long form: timestamp, service, metric, value
    events.parquet                deploys and rollbacks
    incidents.parquet, incidents.json   the ground truth
    logs.parquet                  log lines around deploys and incidents
    traces.parquet                sampled request spans (telemetry.schema.SPAN_COLUMNS)
    graph.json                    services and caller -> callee edges
    manifest.json                 seed, window, counts
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from telemetry.simulator import SimulationResult

SIDE_TABLES = ("events", "incidents", "logs", "traces")


def write_simulation(result: SimulationResult, out_dir: str | Path, fmt: str = "parquet") -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if fmt == "parquet":
        paths["telemetry"] = out / "telemetry.parquet"
        result.telemetry.to_parquet(paths["telemetry"], index=False)
    elif fmt == "csv":
        paths["telemetry"] = out / "telemetry.csv"
        result.telemetry.to_csv(paths["telemetry"], index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    else:
        raise ValueError(f"format {fmt!r}: expected parquet or csv")
    for name in SIDE_TABLES:
        paths[name] = out / f"{name}.parquet"
        getattr(result, name).to_parquet(paths[name], index=False)
    paths["incidents_json"] = out / "incidents.json"
    paths["incidents_json"].write_text(
        result.incidents.to_json(orient="records", date_format="iso", indent=2)
    )
    paths["graph"] = out / "graph.json"
    paths["graph"].write_text(json.dumps(result.topology.to_dict(), indent=2, sort_keys=True))
    paths["manifest"] = out / "manifest.json"
    paths["manifest"].write_text(json.dumps({
        "generator": "cerebro-fleet-simulator",
        "dataset": result.dataset,
        "seed": result.seed,
        "start": result.start.isoformat(),
        "end": result.end.isoformat(),
        "services": result.topology.names,
        "rows": {"telemetry": len(result.telemetry), **{n: len(getattr(result, n)) for n in SIDE_TABLES}},
        **result.meta,
    }, indent=2, sort_keys=True))
    return paths


def read_side_tables(folder: str | Path) -> dict[str, pd.DataFrame | dict]:
    """Events, incidents, logs, traces and the graph of a simulated dataset folder (what exists of them)."""
    folder = Path(folder)
    out: dict[str, pd.DataFrame | dict] = {}
    if not folder.is_dir():
        return out
    for name in SIDE_TABLES:
        path = folder / f"{name}.parquet"
        if path.exists():
            out[name] = pd.read_parquet(path)
    if (folder / "graph.json").exists():
        out["graph"] = json.loads((folder / "graph.json").read_text())
    return out
