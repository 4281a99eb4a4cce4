"""Batch inference over the lake: champion scores per minute, Parquet by date, reruns replace, the Prefect flow."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support.lab import champion_lab

from serving import batch, registry


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return champion_lab(tmp_path_factory.mktemp("batch-home"))


def test_batch_scores_the_window_with_the_champion_and_reruns_replace(lab):
    start, end = pd.Timestamp("2026-11-18T22:00Z"), pd.Timestamp("2026-11-19T02:00Z")  # over midnight
    first = batch.run_batch(lab.settings, start, end)
    assert first.detector == "cerebro-detector-zscore v1"  # lifecycle.fallback_model, as configured
    out = batch.read_scores(batch.output_dir(lab.settings))
    services = lab.sim.telemetry["service"].nunique()
    assert first.rows == len(out) == services * 4 * 60 and first.replaced == 0
    assert not out.duplicated(["service", "timestamp"]).any()
    assert out["timestamp"].min() == start and out["timestamp"].max() == end - pd.Timedelta(minutes=1)
    assert sorted(p.split("/")[-2] for p in first.partitions) == ["date=2026-11-18", "date=2026-11-19"]

    # The loaded champion scores as the in-memory detector does on the same minutes' features.
    rows = lab.features[(lab.features["timestamp"] >= start) & (lab.features["timestamp"] < end)]
    expected = lab.good.score(lab.splits.frame.loc[pd.MultiIndex.from_frame(rows[["service", "timestamp"]])])
    merged = rows[["service", "timestamp"]].assign(expected=expected).merge(out, on=["service", "timestamp"])
    np.testing.assert_allclose(merged["score"], merged["expected"], rtol=1e-9)
    assert merged["is_anomaly"].sum() == (merged["expected"] > lab.good.threshold_).sum()

    again = batch.run_batch(lab.settings, start, end)
    assert again.replaced == first.rows
    assert batch.read_scores(batch.output_dir(lab.settings)).equals(out)

    # A window overlapping the earlier one: still one row per minute.
    later = batch.run_batch(lab.settings, "2026-11-19T00:00Z", "2026-11-19T04:00Z")
    both = batch.read_scores(batch.output_dir(lab.settings))
    assert later.replaced == services * 2 * 60
    assert len(both) == services * 6 * 60 and not both.duplicated(["service", "timestamp"]).any()


def test_batch_without_any_champion_or_data_says_what_is_missing(lab, tmp_path):
    from configs.settings import load_settings

    empty = load_settings(None, home=str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="holds no telemetry"):
        batch.run_batch(empty)
    nothing = load_settings(None, home=str(lab.settings.home))
    nothing.lifecycle.detector_model = "cerebro-detector-missing"
    nothing.lifecycle.fallback_model = None
    with pytest.raises(registry.RegistryError, match="cerebro-detector-missing: no alias @champion"):
        batch.run_batch(nothing, "2026-11-19T00:00Z", "2026-11-19T01:00Z")


def test_batch_flow_writes_scores_and_a_table_artifact(lab, prefect_server, monkeypatch):
    import asyncio

    from support.lab import isolate_engine_env

    from flows.batch import batch_flow

    isolate_engine_env(monkeypatch, lab.settings)
    state = batch_flow(start="2026-11-18T06:00Z", end="2026-11-18T07:00Z", return_state=True)
    report = state.result()
    assert report["rows"] == lab.sim.telemetry["service"].nunique() * 60
    assert {r["service"] for r in report["per_service"]} == set(lab.sim.telemetry["service"].astype(str))

    async def artifacts():
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["batch-scores"])))

    found = asyncio.run(artifacts())
    assert found and found[0].type == "table"


def test_cerebro_batch_writes_one_row_per_minute_and_service_as_csv_or_parquet(lab, tmp_path, monkeypatch,
                                                                              wide_console):
    """`cerebro batch` writes the champion's scores for the window, the rows the partitioned store holds for it,
    by the file's extension; a bad time, extension or service answers with exit 2 and a reason, no traceback."""
    from typer.testing import CliRunner

    from flows.cli import app

    monkeypatch.setenv("CEREBRO_HOME", str(lab.settings.home))
    runner = CliRunner()
    services = sorted(lab.sim.telemetry["service"].astype(str).unique())[:2]
    window = ["--from", "2026-11-19T10:00Z", "--to", "2026-11-19T11:30Z"]
    csv_path = tmp_path / "out" / "scores.csv"
    done = runner.invoke(app, ["batch", *window, "-s", services[0], "-s", services[1], "-o", str(csv_path)])
    assert done.exit_code == 0, done.output
    table = pd.read_csv(csv_path)
    assert list(table.columns) == ["timestamp", "service", "score", "is_anomaly"]
    assert len(table) == 2 * 90 and sorted(table["service"].unique()) == services
    assert not table.duplicated(["timestamp", "service"]).any()
    assert table["timestamp"].iloc[0] == "2026-11-19T10:00:00Z" and table["timestamp"].iloc[-1] == "2026-11-19T11:29:00Z"
    stored = batch.read_scores(batch.output_dir(lab.settings), "2026-11-19T10:00Z", "2026-11-19T11:30Z")
    stored = stored[stored["service"].isin(services)].sort_values(["timestamp", "service"], kind="stable")
    np.testing.assert_allclose(table["score"], stored["score"], rtol=1e-12)
    assert (table["is_anomaly"].to_numpy() == stored["is_anomaly"].to_numpy()).all()
    assert f"wrote {csv_path}" in " ".join(done.output.split())

    parquet = runner.invoke(app, ["batch", *window, "-o", str(tmp_path / "all.parquet"), "--json"])
    assert parquet.exit_code == 0, parquet.output
    every = pd.read_parquet(tmp_path / "all.parquet")
    assert len(every) == lab.sim.telemetry["service"].nunique() * 90
    assert str(every["timestamp"].dt.tz) == "UTC"

    for args, reason in ((["--from", "yesterday-ish"], "--from 'yesterday-ish' is not a time"),
                         (["-o", str(tmp_path / "scores.xlsx")], "expected a file name ending in .csv or .parquet"),
                         (["--from", "2026-11-19T12:00Z", "--to", "2026-11-19T11:00Z"], "is not before its end")):
        bad = runner.invoke(app, ["batch", "-o", str(tmp_path / "x.csv"), *args])
        assert bad.exit_code == 2 and reason in " ".join(bad.output.split()), bad.output
        assert "Traceback" not in bad.output
    unknown = runner.invoke(app, ["batch", *window, "-s", "no-such-service", "-o", str(tmp_path / "none.csv")])
    assert unknown.exit_code == 2 and "no-such-service" in unknown.output, unknown.output
