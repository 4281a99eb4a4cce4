"""What travels between the pipeline and a training job: the detection stage's training data as files, and
the fitted zoo as the job's model folder.

    write_training_data(data, folder)   ->  frame.parquet, incidents.parquet, [telemetry|events].parquet, meta.json
    read_training_data(folder)          ->  TrainingData
    write_model(splits, result, folder) ->  zoo.joblib, summary.json
    read_model(folder)                  ->  (splits, result)

The model folder holds a pickle (joblib): load it only from the job's own output in your own bucket.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

MODEL_FILE = "zoo.joblib"
SUMMARY_FILE = "summary.json"
META_FILE = "meta.json"
_TABLES = ("frame", "incidents", "telemetry", "events")


def write_training_data(data, folder: Path) -> list[Path]:
    """``data`` (``TrainingData``) as Parquet tables and a JSON file in ``folder``; returns the files."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name in _TABLES:
        table = getattr(data, name)
        if table is None:
            continue
        path = folder / f"{name}.parquet"
        table.to_parquet(path)
        files.append(path)
    meta = {
        "edges": [list(e) for e in data.edges],
        "dataset": data.dataset,
        "data_version": data.data_version,
        "feature_report": data.feature_report,
    }
    (folder / META_FILE).write_text(json.dumps(meta, default=str))
    return files + [folder / META_FILE]


def read_training_data(folder: Path):
    from training.detectors.stage import TrainingData

    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"{meta_path}: missing; the train channel holds no training data written by "
            "training.backends.payload"
        )
    meta = json.loads(meta_path.read_text())
    tables = {
        name: pd.read_parquet(folder / f"{name}.parquet") if (folder / f"{name}.parquet").is_file() else None
        for name in _TABLES
    }
    if tables["frame"] is None or tables["incidents"] is None:
        raise FileNotFoundError(f"{folder}: frame.parquet and incidents.parquet are both needed")
    incidents = tables["incidents"]
    if "affected_services" in incidents:  # Parquet gives lists back as arrays
        incidents["affected_services"] = [
            list(a) if a is not None else [] for a in incidents["affected_services"]
        ]
    return TrainingData(
        frame=tables["frame"],
        incidents=incidents,
        edges=[tuple(e) for e in meta["edges"]],
        dataset=meta["dataset"],
        data_version=meta["data_version"],
        feature_report=meta.get("feature_report") or {},
        telemetry=tables["telemetry"],
        events=tables["events"],
    )


def write_model(splits, result, folder: Path) -> Path:
    import joblib

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MODEL_FILE
    joblib.dump({"splits": splits, "result": result}, path)
    summary = {
        "best": result.best,
        "models": sorted(result.models),
        "ensemble_members": result.ensemble_members,
        "skipped": result.skipped,
        "fit_seconds": {n: round(t["fit"], 3) for n, t in result.timings.items()},
    }
    (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    return path


def read_model(folder: Path):
    import joblib

    path = folder / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{MODEL_FILE} is not in the model artifact")
    bundle = joblib.load(path)
    return bundle["splits"], bundle["result"]
