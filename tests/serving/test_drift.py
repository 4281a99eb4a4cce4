"""Drift checks: quiet on the simulator's normal days, loud on an injected shift, and acting on it."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from serving.drift import (
    DriftResult,
    data_drift,
    decide,
    performance_drift,
    prediction_drift,
    split_windows,
    wide,
)

END = pd.Timestamp("2026-11-20T00:00Z")


@pytest.fixture(scope="module")
def fleet():
    from telemetry.simulator import FleetSimulator

    # Few incidents: the question is whether normal days look alike, not whether incidents are drift.
    # Six days: the 24-hour baselines are a day old before the windows start (reference: the two days before
    # the last), and the detector trains on the days before them.
    return FleetSimulator(days=6, seed=5, end=END, incidents_per_day=0.3).run()


def _inject(telemetry: pd.DataFrame, since: pd.Timestamp) -> pd.DataFrame:
    """A capacity regression after ``since``: CPU a third higher, latency doubled, everywhere."""
    out = telemetry.copy()
    late = out["timestamp"] >= since
    out.loc[late & (out["metric"] == "cpu_pct"), "value"] = (out["value"] * 1.35).clip(upper=100)
    for m in ("latency_p50_ms", "latency_p99_ms"):
        out.loc[late & (out["metric"] == m), "value"] *= 2.0
    return out


def test_windows_and_a_clear_error_when_the_lake_is_too_short(fleet):
    ref, cur = split_windows(fleet.telemetry, END, reference_days=2, current_hours=24)
    assert cur["timestamp"].min() >= END - pd.Timedelta(hours=24)
    assert ref["timestamp"].max() < END - pd.Timedelta(hours=24)
    with pytest.raises(ValueError, match="30 days before the current window"):
        split_windows(fleet.telemetry[fleet.telemetry["timestamp"] > END - pd.Timedelta(hours=1)], END, 30, 12)


def test_normal_days_do_not_drift_and_an_injected_shift_does(fleet):
    metrics = ["cpu_pct", "latency_p50_ms", "latency_p99_ms", "memory_pct", "request_rate", "error_rate"]
    ref, cur = split_windows(fleet.telemetry, END, reference_days=2, current_hours=24)
    quiet = data_drift(wide(ref), wide(cur), metrics)
    assert not quiet.data_drift, quiet.metrics
    assert decide(quiet).action == "none"

    shifted = _inject(fleet.telemetry, END - pd.Timedelta(hours=24))
    ref, cur = split_windows(shifted, END, reference_days=2, current_hours=24)
    loud = data_drift(wide(ref), wide(cur), metrics)
    drifted = {m for m, v in loud.metrics.items() if v["drifted"]}
    assert {"cpu_pct", "latency_p50_ms", "latency_p99_ms"} <= drifted
    assert "request_rate" not in drifted  # untouched metrics stay put
    assert loud.data_drift and decide(loud).action == "retrain"
    assert "latency_p50_ms" in decide(loud).reasons[0]


def test_a_seasonal_reference_is_the_same_hours_in_the_weeks_before_and_falls_back_with_a_note():
    from serving.drift import plan_windows

    week = pd.Timedelta(days=7)
    cur_start = END - pd.Timedelta(hours=6)
    one = plan_windows(END, 7, 6, lake_start=END - pd.Timedelta(days=10))
    assert one.kind == "seasonal" and not one.note and one.current == (cur_start, END)
    assert one.reference == [(cur_start - week, END - week)] and "one week earlier" in one.describe()
    # three weeks asked for, two held whole: the third would start before the lake
    two = plan_windows(END, 21, 6, lake_start=END - pd.Timedelta(days=15))
    assert two.reference == [(cur_start - week, END - week), (cur_start - 2 * week, END - 2 * week)]
    ref, cur = two.masks(pd.Series([END - week - pd.Timedelta(hours=1), END - week - pd.Timedelta(hours=7),
                                    END - pd.Timedelta(hours=1)]))
    assert ref.tolist() == [True, False, False] and cur.tolist() == [False, False, True]
    # the lake holds less than a week before the current window (the end-to-end tests' one-day fleet)
    short = plan_windows(END, 0.5, 6, lake_start=END - pd.Timedelta(days=1))
    assert short.kind == "preceding" and short.reference == [(cur_start - pd.Timedelta(hours=12), cur_start)]
    assert "Seasonal reference not possible: the lake holds no week before the current window" in short.note
    assert "the 0.5 days before" in short.note and short.describe() == "the 0.5 days before the current window"
    assert "a week or longer" in plan_windows(END, 7, 24 * 8, lake_start=END - pd.Timedelta(days=30)).note
    assert plan_windows(END, 7, 24, "preceding").reference == [(END - pd.Timedelta(days=8), END - pd.Timedelta(days=1))]
    with pytest.raises(ValueError, match="seasonal or preceding"):
        plan_windows(END, 7, 24, "weekly")


@pytest.fixture(scope="module")
def ten_days():
    """Ten steady days from a Saturday to a Tuesday: a week before each of the last three days (Saturday,
    Sunday, Monday) is in the lake."""
    from telemetry.simulator import FleetSimulator

    return FleetSimulator(days=10, seed=5, end=pd.Timestamp("2026-11-24T00:00Z"), incidents_per_day=0.3).run()


@pytest.mark.parametrize("end", ["2026-11-22T00:00Z", "2026-11-23T00:00Z", "2026-11-24T00:00Z"],
                         ids=["saturday", "sunday", "monday"])
def test_a_steady_fleet_does_not_drift_against_the_same_weekday_and_a_shift_does(ten_days, end):
    end = pd.Timestamp(end)
    metrics = ["cpu_pct", "latency_p50_ms", "latency_p99_ms", "memory_pct", "request_rate", "error_rate"]
    ref, cur = split_windows(ten_days.telemetry, end, 7, 24, reference="seasonal")
    assert ref["timestamp"].dt.weekday.unique().tolist() == [(end - pd.Timedelta(days=1)).weekday()]
    quiet = data_drift(wide(ref), wide(cur), metrics)
    assert not quiet.data_drift and decide(quiet).action == "none", quiet.metrics

    shifted = _inject(ten_days.telemetry[ten_days.telemetry["timestamp"] <= end], end - pd.Timedelta(hours=24))
    ref, cur = split_windows(shifted, end, 7, 24, reference="seasonal")
    loud = data_drift(wide(ref), wide(cur), metrics)
    assert {"cpu_pct", "latency_p50_ms", "latency_p99_ms"} <= {m for m, v in loud.metrics.items() if v["drifted"]}
    assert loud.data_drift and decide(loud).action == "retrain"


def test_prediction_drift_and_performance_fallback():
    rng = np.random.default_rng(0)
    same = prediction_drift(rng.normal(0, 1, 4000), rng.normal(0, 1, 1000), np.zeros(4000), np.zeros(1000))
    moved = prediction_drift(rng.normal(0, 1, 4000), rng.normal(1.5, 1, 1000), np.zeros(4000), np.ones(1000) * 0.3)
    assert not same["drifted"] and moved["drifted"] and moved["alarm_rate_current"] == pytest.approx(0.3)
    quiet = DriftResult(metrics={"cpu_pct": {"psi": 0.01, "ks_pvalue": 0.5, "drifted": False}}, share_drifted=0.0,
                        data_drift=False, reference_rows=1, current_rows=1)
    quiet.performance = performance_drift(0.5, 0.95, max_drop=0.15, incidents=3)
    decision = decide(quiet)
    assert decision.action == "fallback" and "0.500" in decision.reasons[0]
    # no incident in the window: no verdict on performance
    assert not performance_drift(0.0, 0.95, 0.15, incidents=0)["degraded"]


def test_fall_back_serves_the_simpler_model_under_the_live_name(home, tmp_path):
    import mlflow

    from configs.settings import load_settings
    from serving import drift_io

    class Constant(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input: list[str], params=None) -> list[str]:
            return model_input

    from training.tracking import use_experiment

    use_experiment(load_settings())  # the home's store and artifact root, never ./mlruns
    client = mlflow.MlflowClient()
    for name in ("live-detector", "simple-detector"):
        with mlflow.start_run():
            mlflow.pyfunc.log_model(name="model", python_model=Constant(), registered_model_name=name)
    client.set_registered_model_alias("simple-detector", "champion", "1")
    # the simpler model's own standing, which its copy must not carry into the live name
    client.set_model_version_tag("simple-detector", "1", "cerebro.status", "below-target")
    client.set_model_version_tag("simple-detector", "1", "cerebro.decision", "below-target")
    client.set_registered_model_alias("live-detector", "champion", "1")
    live = drift_io.live_model("live-detector")
    assert (live.version, live.alias) == ("1", "champion")
    version = drift_io.fall_back(live, "simple-detector", "F1 fell")
    assert str(client.get_model_version_by_alias("live-detector", "champion").version) == version == "2"
    tags = client.get_model_version("live-detector", version).tags
    assert tags["cerebro.fallback_from"] == "live-detector/1" and tags["cerebro.fallback_reason"] == "F1 fell"
    assert (tags["cerebro.status"], tags["cerebro.decision"]) == ("champion", "fallback")
    assert "simple-detector v1" in tags["cerebro.reason"] and "F1 fell" in tags["cerebro.reason"]
    assert client.get_model_version("live-detector", "1").tags["cerebro.status"] == "former champion"
    with pytest.raises(LookupError, match="not registered"):
        drift_io.fall_back(live, "no-such-model", "x")


@pytest.mark.e2e
def test_injected_drift_triggers_the_retraining_deployment(prefect_server, home, fleet, monkeypatch):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    from configs.settings import load_settings
    from flows.drift import drift_flow
    from flows.pipeline import pipeline_flow
    from telemetry import lake

    monkeypatch.setenv("CEREBRO_DRIFT__REFERENCE_DAYS", "2")
    monkeypatch.setenv("CEREBRO_DRIFT__CURRENT_HOURS", "24")
    monkeypatch.setenv("CEREBRO_DRIFT__RETRAIN_DEPLOYMENT", "pipeline/retrain-under-test")
    settings = load_settings()
    lake.write_telemetry(_inject(fleet.telemetry, END - pd.Timedelta(hours=24)), settings.lake_dir)
    deployment_id = pipeline_flow.to_deployment(name="retrain-under-test").apply()

    result = drift_flow()
    assert result["data_drift"] and result["action"]["action"] == "retrain"
    assert result["action"]["triggered"], result["action"]
    assert result["model"] is None  # nothing registered in this home: predictions not judged, and said so
    assert list(settings.reports_dir.glob("drift-*.html"))

    async def runs():
        async with get_client() as client:
            return await client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))

    created = asyncio.run(runs())
    assert [str(r.id) for r in created] == [result["action"]["flow_run_id"]]
    assert "drift" in created[0].tags

    # report-only mode decides the same and starts nothing
    again = drift_flow(trigger=False)
    assert again["action"]["action"] == "retrain" and not again["action"]["applied"]
    assert len(asyncio.run(runs())) == 1

    # the command line: report only unless --act, one JSON document with --json
    from typer.testing import CliRunner

    from flows.cli import app

    out = CliRunner().invoke(app, ["drift", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout[out.stdout.index("{"):])
    assert doc["action"]["action"] == "retrain" and not doc["action"]["applied"]
    assert doc["compared"] == "raw metrics" and {"cpu_pct", "latency_p50_ms"} <= set(doc["drifted_metrics"])
    assert len(asyncio.run(runs())) == 1


def test_the_check_runs_end_to_end_without_prefect(home, fleet, monkeypatch):
    """The drift flow's decision, report and MLflow run come from serving; no Prefect server or run needed."""
    import mlflow

    from configs.settings import load_settings
    from serving.drift_check import run_drift_check
    from telemetry import lake

    monkeypatch.setenv("CEREBRO_DRIFT__REFERENCE_DAYS", "2")
    monkeypatch.setenv("CEREBRO_DRIFT__CURRENT_HOURS", "24")
    settings = load_settings()
    lake.write_telemetry(_inject(fleet.telemetry, END - pd.Timedelta(hours=24)), settings.lake_dir)

    check = run_drift_check(settings, act=True)  # no retrain callable: retraining is reported, not started
    assert check.decision.action == "retrain" and check.live is None
    assert check.action == {"action": "retrain", "reasons": check.decision.reasons, "applied": False}
    assert check.report_md.endswith("What was done: nothing; the decision was retrain, but this check only reports "
                                    "(the hourly `drift/hourly` deployment acts).")
    assert "{" not in check.report_md  # sentences and tables, no raw dict
    summary = check.summary()
    assert summary["compared"] == "raw metrics" and {"cpu_pct", "latency_p50_ms"} <= set(summary["drifted_metrics"])
    run = mlflow.MlflowClient().get_run(summary["mlflow_run_id"])
    assert run.info.run_name == "drift-check" and run.data.tags["cerebro.drift_action"] == "retrain"


def test_clipping_to_the_reference_lets_psi_see_a_shift_past_a_spike():
    """Evidently's PSI bins the combined range in equal widths: one incident's spike squeezes every ordinary value
    into one bin and a doubled level reads as nothing. Clipped to the reference's quantiles, the shift shows."""
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"latency_p50_ms": np.r_[rng.normal(50, 5, 5000), [5000.0, 6000.0]]})
    cur = pd.DataFrame({"latency_p50_ms": rng.normal(65, 5, 2000)})
    unclipped = data_drift(ref, cur, ["latency_p50_ms"], clip=0)
    clipped = data_drift(ref, cur, ["latency_p50_ms"])
    assert unclipped.metrics["latency_p50_ms"]["psi"] < 0.2  # the blind spot clipping removes
    assert clipped.metrics["latency_p50_ms"]["psi"] > 1 and clipped.data_drift


def test_a_metric_drifts_when_half_of_its_inputs_do():
    rng = np.random.default_rng(2)
    cols = ["cpu_pct", "cpu_pct__p95_15m", "memory_pct", "memory_pct__mean_15m", "memory_pct__max_15m", "hour"]
    ref = pd.DataFrame(rng.normal(size=(4000, 6)), columns=cols)
    cur = pd.DataFrame(rng.normal(size=(2000, 6)), columns=cols)
    cur["cpu_pct__p95_15m"] += 2.0  # one of two inputs: cpu drifts
    cur["memory_pct__max_15m"] += 2.0  # one of three: memory holds
    result = data_drift(ref, cur, cols, drift_share=0.3, compared="inputs of m v1")
    assert result.groups == {"cpu_pct": {"inputs": 2, "drifted": ["cpu_pct__p95_15m"], "drift": True},
                             "memory_pct": {"inputs": 3, "drifted": ["memory_pct__max_15m"], "drift": False},
                             "hour": {"inputs": 1, "drifted": [], "drift": False}}
    assert result.share_drifted == pytest.approx(1 / 3) and result.data_drift
    reason = decide(result).reasons[0]
    assert "1 of 3 metrics drifted in the inputs of m v1: cpu_pct (1 of 2 inputs, most cpu_pct__p95_15m" in reason


def test_the_report_explains_a_verdict_of_none_beside_drifted_inputs_and_leaves_out_flat_columns():
    """The headline, the action and the tables use one meaning of "drifted": two inputs of two metrics drifted,
    neither metric did, so the verdict is none, and the report says why. A column with the same value in both
    windows (week-over-week inputs without a week of history) is left out with a note, not shown as KS 1, PSI 0."""
    from serving.drift import report_markdown

    rng = np.random.default_rng(3)
    cols = ["cpu_pct", "cpu_pct__p95_15m", "cpu_pct__mean_15m", "cpu_pct__wow", "memory_pct", "memory_pct__mean_15m",
            "memory_pct__max_15m", "latency_p99_ms", "latency_p99_ms__mean_15m", "latency_p99_ms__max_15m"]
    ref = pd.DataFrame(rng.normal(size=(4000, len(cols))), columns=cols)
    cur = pd.DataFrame(rng.normal(size=(2000, len(cols))), columns=cols)
    ref["cpu_pct__wow"] = cur["cpu_pct__wow"] = 0.0
    cur["cpu_pct__p95_15m"] += 2.0
    cur["memory_pct__max_15m"] += 2.0
    result = data_drift(ref, cur, cols, drift_share=0.3, compared="inputs of m v1")
    assert "cpu_pct__wow" not in result.metrics and "same value" in result.excluded["cpu_pct__wow"]
    assert result.groups["cpu_pct"] == {"inputs": 3, "drifted": ["cpu_pct__p95_15m"], "drift": False}
    assert result.share_drifted == 0 and not result.data_drift
    md = report_markdown(result, decide(result), {"reference": "a", "current": "b"})
    assert "**Verdict: the data did not drift. Action: none.**" in md
    assert "Here 2 of 9 inputs drifted" in md and "0 of 3 (0%)" in md
    assert "| cpu_pct__p95_15m | " in md and md.count("| yes |") == 2  # the drifted rows, said as such
    assert "Not compared (1): cpu_pct__wow: the same value (0) on every row of both windows" in md
    assert "nan" not in md and "None" not in md and "{" not in md


@pytest.fixture(scope="module")
def live_detector(fleet):
    """PCA and EWMA (which reads the minutes before each row) trained on the fleet's first days, the way the
    zoo trains them, as a live ensemble."""
    from features.transforms import compute_features
    from serving.drift_io import LiveModel
    from training.zoo import build_zoo, time_split, train_zoo

    feats = compute_features(fleet.telemetry, fleet.events)
    frame = (feats.drop(columns=["created"]).rename(columns={"event_timestamp": "timestamp"})
             .set_index(["service", "timestamp"]).select_dtypes("number"))
    train = frame[frame.index.get_level_values(1) < END - pd.Timedelta(days=3)]
    splits = time_split(train, fleet.incidents, fractions=(0.8, 0.1, 0.1))
    with pytest.MonkeyPatch.context() as mp:  # both members, neither left out for its calibration
        mp.setattr("training.zoo.MISCALIBRATED_SHARE", 1.0)
        result = train_zoo(splits, build_zoo(list(splits.frame.columns), [], include=["pca", "ewma"]), ensemble_size=2)
    assert sorted(result.ensemble_members) == ["ewma", "pca"]
    bundle = {"kind": "detector", "name": "drift-test", "model": result.models["ensemble"], "scaler": splits.scaler,
              "columns": list(splits.frame.columns), "inputs": list(frame.columns)}
    return LiveModel(name="drift-test", version="1", alias="champion", model=bundle, registered_f1=None)


def _input_drift(live, telemetry, events):
    from features.from_lake import features_of
    from serving.drift_io import input_windows

    feats = features_of(telemetry, events, 15)
    ref, cur, used = input_windows(live, feats[feats["timestamp"] >= END - pd.Timedelta(days=2, hours=24)],
                                   END - pd.Timedelta(hours=24))
    return data_drift(ref, cur, used, compared="inputs of drift-test v1"), used


def test_the_detectors_inputs_decide_quiet_on_a_steady_fleet_loud_on_a_shift(fleet, live_detector):
    quiet, used = _input_drift(live_detector, fleet.telemetry, fleet.events)
    assert {c.split("__")[0] for c in used} >= {"cpu_pct", "latency_p50_ms", "memory_pct"}
    assert len(quiet.metrics) + len(quiet.excluded) == len(used) and quiet.reference_rows > 0 and quiet.current_rows > 0
    # the fleet holds less than a week before its reference window: the week-over-week inputs are one value in
    # both windows (they read KS p = 1, PSI 0), so they are left out and said to be
    assert quiet.excluded and all(c.endswith("__wow") and "same value" in why for c, why in quiet.excluded.items())
    assert not {"hour", "tod_sin", "minutes_since_deploy"} & set(quiet.groups)  # the clock is context
    assert not quiet.data_drift and decide(quiet).action == "none", quiet.groups

    loud, _ = _input_drift(live_detector, _inject(fleet.telemetry, END - pd.Timedelta(hours=24)), fleet.events)
    drifted = {name for name, g in loud.groups.items() if g["drift"]}
    assert {"cpu_pct", "latency_p50_ms", "latency_p99_ms"} <= drifted
    assert not {"memory_pct", "disk_pct", "connections", "queue_depth"} & drifted  # untouched metrics stay put
    assert loud.data_drift and decide(loud).action == "retrain"


def test_the_reference_is_scored_with_its_history_then_thinned(fleet, live_detector):
    """Prediction drift compares every 5th reference minute; those rows are scored inside the whole series
    (a sequence-aware member fed only every 5th minute says something else), and so is the current window."""
    from features.from_lake import features_of
    from serving.drift_io import score_windows
    from training.kinds import predict_bundle

    feats = features_of(fleet.telemetry, fleet.events, 15)
    feats = feats[feats["timestamp"] >= END - pd.Timedelta(days=3)].reset_index(drop=True)
    scored = score_windows(live_detector, feats, END - pd.Timedelta(hours=24))
    whole = predict_bundle(live_detector.model, feats, {})["score"].to_numpy()
    t = pd.to_datetime(feats["timestamp"], utc=True)
    thinned = ((t < END - pd.Timedelta(hours=24)) & (t.dt.minute % 5 == 0)).to_numpy()
    assert len(scored["reference"]) == thinned.sum() and len(scored["current"]) == (t >= END - pd.Timedelta(hours=24)).sum()
    np.testing.assert_allclose(scored["reference"]["score"], whole[thinned], rtol=1e-9)
    np.testing.assert_allclose(scored["current"]["score"], whole[(t >= END - pd.Timedelta(hours=24)).to_numpy()], rtol=1e-9)
    alone = predict_bundle(live_detector.model, feats[thinned].reset_index(drop=True), {})["score"].to_numpy()
    assert not np.allclose(alone, whole[thinned])  # what scoring the thinned rows alone gave


def test_evidently_is_imported_without_its_deprecation_notices_even_after_pmdarima_unhid_them():
    """pmdarima's deprecation decorator leaves a "default" filter for DeprecationWarning in front (the forecasting
    stage runs it before the drift check): importing Evidently must still print nothing."""
    import subprocess
    import sys

    code = ("import warnings; warnings.simplefilter('default', DeprecationWarning)\n"
            "from serving.drift import _evidently; _evidently(); print('imported')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0 and "imported" in out.stdout, out.stderr
    assert "DeprecationWarning" not in out.stderr, out.stderr


def test_only_the_newest_drift_reports_are_kept(tmp_path):
    import os

    from serving.drift_io import prune_reports

    for i, name in enumerate(["drift-20261126T0300.html", "drift-20261120T0000.html", "drift-20261126T0100.html",
                              "drift-20261126T0200.html", "other.html"]):
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, ns=(i * 10**9, i * 10**9))  # written in this order
    assert prune_reports(tmp_path, 0) == []
    gone = prune_reports(tmp_path, 2)
    assert sorted(os.path.basename(p) for p in gone) == ["drift-20261120T0000.html", "drift-20261126T0300.html"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drift-20261126T0100.html", "drift-20261126T0200.html",
                                                           "other.html"]
