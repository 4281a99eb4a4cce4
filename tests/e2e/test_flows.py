"""Whole flows under a temporary Prefect server: the pipeline end to end, its artifacts, idempotence."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pandas as pd
import pytest

from telemetry.lake import lake_stats, read_table

pytestmark = pytest.mark.e2e


def _artifact_keys(flow_run_ids=None) -> set[str]:
    from prefect.client.orchestration import get_client

    async def _read():
        async with get_client() as client:
            return await client.read_artifacts()

    return {a.key for a in asyncio.run(_read()) if a.key}


def _artifact_data(key: str):
    """The newest artifact of ``key``'s data (markdown text, or a table's rows as JSON text)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def _read():
        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))

    found = sorted(asyncio.run(_read()), key=lambda a: a.created)
    data = found[-1].data
    return data if isinstance(data, str) else json.dumps(data)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Secret values set for the pipeline run below: none may reach a file it writes (MLflow's database and artifacts,
# the lake, the quarantine, reports, service logs, Prefect's database with its logs and artifacts).
CANARIES = {
    "CEREBRO_SERVING__TOKEN": "canary-token-e2e-5b1c",
    "CEREBRO_RAG__PGVECTOR_DSN": "postgresql://rag:canary-pgpass-e2e-77@127.0.0.1:5432/cerebro",
    "CEREBRO_LIFECYCLE__STREAMING__REDIS_URL": "redis://:canary-redispass-e2e-31@127.0.0.1:6379/0",
    "CEREBRO_SOURCES__PROMETHEUS__URL": "http://ops:canary-prompass-e2e-90@127.0.0.1:9090",
}


def _files_holding(roots: list[Path], needles: list[str]) -> list[str]:
    """Every file under ``roots`` whose bytes hold one of ``needles``, as 'path: needle'."""
    found = []
    for root in roots:
        for path in (p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            found += [f"{path}: {n}" for n in needles if n.encode() in data]
    return found


def test_pipeline_end_to_end_and_idempotent(prefect_server, home, monkeypatch):
    import re

    from mlflow import MlflowClient
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL

    from flows.pipeline import pipeline_flow

    for key, value in CANARIES.items():  # the service then wants the token; clients below send it
        monkeypatch.setenv(key, value)
    token = {"Authorization": f"Bearer {CANARIES['CEREBRO_SERVING__TOKEN']}"}

    # Two forecasters keep this test short; every forecaster is exercised in test_forecasting.py. So are the
    # detectors in tests/training: here each family (statistical, classical, deep, graph) and a member too
    # short of data (holt_winters). No serving-cost measurement: it times the service under the suite's load,
    # and the second run's decisions are compared with the first's (tests/e2e/test_own_data.py keeps it on).
    monkeypatch.setenv("CEREBRO_DETECTION__INCLUDE",
                       '["zscore", "mad", "holt_winters", "pca", "lof", "random_cut_forest", "vae", "graph"]')
    monkeypatch.setenv("CEREBRO_DETECTION__SERVING_COST", "false")
    monkeypatch.setenv("CEREBRO_FORECASTING__MODELS", '["seasonal_naive", "arima", "lstm"]')
    # A fixed window, so that the day's incidents (and so the failure labels) are the same on every run.
    monkeypatch.setenv("CEREBRO_SIMULATOR__END", "2026-11-20T00:00:00Z")
    # A day holds no week of reference: compare its last 6 hours with the 12 before them.
    monkeypatch.setenv("CEREBRO_DRIFT__REFERENCE_DAYS", "0.5")
    monkeypatch.setenv("CEREBRO_DRIFT__CURRENT_HOURS", "6")
    port = _free_port()
    monkeypatch.setenv("CEREBRO_SERVING__PORT", str(port))

    summary = pipeline_flow(days=1, seed=3)
    rows = 1440 * 13 * 9
    ingest = summary["ingest"]
    assert [s["stage"] for s in summary["stages"]] == ["simulate", "ingest + validate",
                                                       "features + detectors + register",
                                                       "forecast + capacity + register",
                                                       "failure predictor + register", "deploy", "drift check",
                                                       "knowledge base", "investigations"]

    assert ingest["rows_in"] == rows and ingest["rows_clean"] == rows and ingest["rows_quarantined"] == 0
    assert ingest["rows_new_in_lake"] == rows
    stats = lake_stats(home / "lake")
    assert stats["rows"] == rows and len(stats["services"]) == 13
    incidents = read_table("incidents", home / "lake")
    assert len(incidents) >= 1

    detection = summary["detection"]
    assert "holt_winters" in detection["skipped"]  # a day is too little for a daily season: said, not hidden
    assert detection["ttl_dropped"] == 0
    registered = detection["registered"]
    assert {"zscore", "mad", "pca", "lof", "random_cut_forest", "vae", "graph", "ensemble"} <= set(registered)
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    assert client.get_registered_model("cerebro-detector-ensemble").name
    assert detection["best"] in registered
    # A first version becomes champion only if it meets the targets or is the model put forward; the others are
    # registered without an alias, and the registry says why in words.
    meeting = set(detection["models_meeting_targets"]) | {detection["best"]}
    decisions = {p["model"]: p["decision"] for p in detection["promotions"]}
    assert decisions == {m: "first" if m in meeting else "below-target" for m in registered}
    assert client.get_model_version_by_alias("cerebro-detector-ensemble", "champion").version in ("1", 1)
    for model, decision in decisions.items():
        name = f"cerebro-detector-{model}"
        aliases = {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}
        assert aliases == ({"champion": "1"} if decision == "first" else {}), (model, aliases)
        mv = client.get_model_version(name, "1")
        assert mv.tags["cerebro.decision"] == decision and "Standing:" in mv.description
        assert "{" not in mv.tags["cerebro.reason"]  # a sentence, not JSON
    assert client.get_registered_model("cerebro-detector-ensemble").description
    assert {"pipeline-summary", "ingest-summary", "ingest-data-quality", "detector-comparison",
            "detection-report", "forecast-backtest", "capacity-plan", "forecasting-report",
            "failure-report", "detection-scores-plot", "forecast-plot-database-disk-pct"} <= _artifact_keys()
    # Artifacts for people: rounded numbers, blanks not nan/NaT/None, no data: URI as an image URL, no file:// link.
    for key in ("capacity-plan", "detector-comparison", "detector-promotions", "forecast-backtest", "drift-metrics",
                "detection-report", "drift-report", "pipeline-summary"):
        text = _artifact_data(key)
        assert not re.search(r"\bnan\b|\bNaT\b|\bNone\b|\d\.\d{9}", text), (key, text[:400])
        assert "file://" not in text, key
    summary_md = _artifact_data("pipeline-summary")
    assert "/artifacts/key/detection-report" in summary_md and "/#/experiments/" in summary_md
    assert "**Verdict:" in _artifact_data("drift-report") and "What was done:" in _artifact_data("drift-report")

    # Forecasting: a day of hourly means (24 points) is too short for the LSTM (30): said, not hidden; the others
    # are backtested against the baseline, registered, and answer through the pyfunc adapter.
    forecasting = summary["forecasting"]
    assert set(forecasting["registered"]) == {"seasonal_naive", "arima"}
    assert "30 points" in forecasting["failed"]["lstm"]
    backtest = {(r["model"], r["horizon"]): r for r in forecasting["backtest"]}
    assert {m for m, _ in backtest} == {"seasonal_naive", "arima", "lstm"}
    # Backtest windows are shorter still: the baseline runs, the others' failed runs are counted, not dropped.
    assert backtest[("seasonal_naive", 1)]["runs"] > 0 and backtest[("seasonal_naive", 1)]["failed"] == 0
    assert backtest[("lstm", 1)]["failed"] > 0
    assert all(Path(p).exists() for p in forecasting["plots"]) and len(forecasting["plots"]) == 2
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    served = mlflow.pyfunc.load_model("models:/cerebro-forecaster-arima/latest").predict(
        pd.DataFrame({"series": ["database/disk_pct"], "horizon": [4]}))
    assert len(served) == 4 and (served["yhat_lower"] <= served["yhat_upper"]).all()

    failure = summary["failure"]
    assert client.get_registered_model("cerebro-failure-predictor").name
    assert 0 <= failure["pr_auc"] <= 1 and failure["registered_version"] == "1"
    line = next(s["result"] for s in summary["stages"] if s["stage"] == "failure predictor + register")
    assert line.startswith(f"test PR-AUC {failure['pr_auc']:.3f}")
    if failure["foreseeable_pr_auc"] is not None:  # the failures with a precursor, said apart
        assert f"of those with a precursor: PR-AUC {failure['foreseeable_pr_auc']:.3f}" in line

    # The champion is served by a real process on the port, which answers with the version the registry names.
    import httpx

    deployed = summary["deploy"]
    assert deployed["action"] == "started" and deployed["version"] == "1", deployed
    live = httpx.get(f"http://127.0.0.1:{port}/models", headers=token, timeout=10).json()
    assert "cerebro-detector-ensemble" in json.dumps(live)

    # The drift check judged the live detector's scores too, and left its Evidently report.
    drift = summary["drift"]
    assert drift["model"].startswith("cerebro-detector-ensemble/") and "psi" in drift["prediction"]
    assert drift["compared"] == f"inputs of {drift['model'].replace('/', ' v')}"  # what the detector reads
    assert Path(drift["html"]).is_file() and not drift["action"]["applied"]
    assert {"drift-report", "drift-metrics", "drift-evidently-report"} <= _artifact_keys()

    # `cerebro predict-failure` reads that model and Feast's online store the pipeline materialised.
    from typer.testing import CliRunner

    from flows.cli import app

    res = CliRunner().invoke(app, ["predict-failure", "--service", "payment", "--service", "nope", "--top", "2",
                                   "--json"], terminal_width=200)
    assert res.exit_code == 0, res.output
    answer = json.loads(res.output)
    assert [p["service"] for p in answer["predictions"]] == ["payment"] and answer["unknown_services"] == ["nope"]
    pred = answer["predictions"][0]
    assert 0 <= pred["failure_probability"] <= 1 and len(pred["top_factors"]) == 2
    assert {"feature", "value", "contribution"} <= set(pred["top_factors"][0])

    assert forecasting["aliases"]["seasonal_naive"] == "first" and failure["promotion"]["decision"] == "first"
    arima_ratio = sum(r["mase_vs_naive"] for r in forecasting["backtest"] if r["model"] == "arima") / sum(
        r["model"] == "arima" for r in forecasting["backtest"])
    assert forecasting["aliases"]["arima"] == ("first" if arima_ratio < 1 else "below-target")

    # Investigations: the test period's incidents ranked without their root cause, scored, logged as an rca run.
    rca = summary["investigations"]
    line = next(s["result"] for s in summary["stages"] if s["stage"] == "investigations")
    assert rca["cases"] == len(rca["rows"]) >= 1 and all(r["root"] for r in rca["rows"])  # the simulator's truth
    assert line.startswith(f"AC@1 {rca['ac@1']:.3f}, AC@3 {rca['ac@3']:.3f} on {rca['cases']} test incidents")
    # a day's test period leaves no five quiet hours for a baseline: said as n/a, not hidden
    spec = "n/a" if rca["specificity"] is None else f"{rca['specificity']:.3f}"
    assert f"specificity {spec} on {rca['quiet_windows']} fault-free windows" in line
    run = client.get_run(rca["mlflow_run"])
    assert run.data.tags["cerebro.stage"] == "rca" and run.data.metrics["ac_at_1"] == rca["ac@1"]
    assert "rca-evaluation" in _artifact_keys()
    # An investigation on the pipeline's lake uses every registered model and the knowledge base it indexed.
    from flows.investigate import investigate_flow

    answer = investigate_flow(question="why is checkout slow?")
    bundle = answer["bundle"]
    assert bundle["question"]["service"] == "checkout" and bundle["target_metric"] == "latency_p99_ms"
    assert {m["role"] for m in bundle["models"]} >= {"detector", "failure predictor", "capacity forecast"}
    assert {(m["name"], m["version"]) for m in bundle["models"] if m["role"] == "detector"} == {
        ("cerebro-detector-ensemble", "1")}
    assert bundle["runbooks"] and all(h["citation"] for h in bundle["runbooks"])
    assert bundle["spans"] and Path(answer["json"]).is_file() and Path(answer["report"]).is_file()

    try:
        again = pipeline_flow(days=1, seed=3)
    finally:
        from configs.settings import load_settings
        from serving.deploy.local import stop_local

        stopped = stop_local(load_settings(), port)
    assert again["deploy"]["action"] == "unchanged" and stopped["action"] == "stopped"
    # The same data and seeds retrain the same models: no new version beats its champion by the margin.
    # (members below the targets stay below them: still no champion, still no alias)
    assert {p["model"]: p["decision"] for p in again["detection"]["promotions"]} == {
        m: "rejected" if d == "first" else "below-target" for m, d in decisions.items()}
    assert str(client.get_model_version_by_alias("cerebro-detector-ensemble", "champion").version) == "1"
    assert again["forecasting"]["aliases"] == {
        m: "challenger" if d == "first" else "below-target" for m, d in forecasting["aliases"].items()}
    for m in (m for m, d in again["forecasting"]["aliases"].items() if d == "challenger"):  # its standing, tagged
        waiting = client.get_model_version_by_alias(f"cerebro-forecaster-{m}", "challenger")
        assert waiting.tags["cerebro.status"] == "challenger" and "cerebro models promote" in waiting.tags["cerebro.reason"]
    assert again["ingest"]["rows_new_in_lake"] == 0 and again["ingest"]["rows_updated_in_lake"] == 0
    assert lake_stats(home / "lake")["rows"] == rows
    assert len(read_table("incidents", home / "lake")) == len(incidents)

    # The canary: no secret in anything the two runs wrote, MLflow's config.json included (it is there, redacted).
    prefect_db = Path(PREFECT_API_DATABASE_CONNECTION_URL.value().split("///", 1)[1])
    assert prefect_db.is_file() and _files_holding([prefect_db.parent], ["pipeline-summary"])  # the grep reaches it
    configs = list((home / "mlartifacts").rglob("config.json"))
    assert configs and json.loads(configs[0].read_text())["serving"]["token"] == "**********"
    needles = [re.search(r"canary-[a-z0-9-]+", v).group(0) for v in CANARIES.values()]
    assert _files_holding([home, prefect_db.parent], needles) == []


def test_ingest_flow_quarantines_and_fails_unusable_batches(prefect_server, home, tmp_path):
    from flows.ingest import IngestFailed, ingest_flow

    now = pd.Timestamp.now(tz="UTC").floor("min")
    good = [f"{(now - pd.Timedelta(minutes=m)).isoformat()},cart,cpu_pct,{10 + m}" for m in range(1, 9)]
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("timestamp,service,metric,value\n" + "\n".join(good + [
        f"{now.isoformat()},cart,cpu_pct,abc", f"{now.isoformat()},cart,request_rate,-3"]) + "\n")
    summary = ingest_flow(source=str(mixed))
    assert (summary["rows_clean"], summary["rows_quarantined"]) == (8, 2)
    assert summary["quarantine_reasons"] == {"value": 1, "range": 1}
    q = pd.read_parquet(summary["quarantine_files"][0])
    assert sorted(q["source_row"]) == [9, 10] and q["reason"].str.len().gt(10).all()

    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,service,metric,value\nnope,cart,cpu_pct,1\nnever,cart,cpu_pct,2\n")
    with pytest.raises(IngestFailed, match=r"bad\.csv.*2 of 2 rows rejected.*row 1: timestamp 'nope'"):
        ingest_flow(source=str(bad))
    files = sorted((home / "quarantine").rglob("bad-*.parquet"))
    assert files and len(pd.read_parquet(files[-1])) == 2


def test_ingest_on_a_dask_cluster_reads_files_side_by_side(prefect_server, home, tmp_path, monkeypatch):
    """The scale-out profile's task runner: each file of a folder is a Dask task in its own process."""
    from configs.settings import load_settings
    from flows.ingest import ingest_flow
    from flows.runners import task_runner_for

    now = pd.Timestamp.now(tz="UTC").floor("min")
    folder = tmp_path / "exports"
    folder.mkdir()
    for svc in ("cart", "payment", "auth"):
        rows = [f"{(now - pd.Timedelta(minutes=m)).isoformat()},{m % 50}" for m in range(1, 31)]
        (folder / f"{svc}.csv").write_text("Time,CPU_PCT\n" + "\n".join(rows) + "\n")
    monkeypatch.setenv("CEREBRO_PREFECT__TASK_RUNNER", "dask")
    runner = task_runner_for(load_settings())
    assert type(runner).__name__ == "DaskTaskRunner"
    summary = ingest_flow.with_options(task_runner=runner)(source=str(folder))
    assert summary["batches"] == 3 and summary["rows_clean"] == 90 and summary["rows_quarantined"] == 0
    assert lake_stats(home / "lake")["services"] == ["auth", "cart", "payment"]
