"""`cerebro detect` on files it has never seen: both layouts, one output row per input row, awkward input."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from flows.cli import app
from training.series_detection import detect_series

runner = CliRunner()
T0 = pd.Timestamp("2026-11-01T00:00Z")


def _series(n=2000, anomaly=(1600, 1630), seed=0, size=20.0):
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    v = 40 + 8 * np.sin(2 * np.pi * i / 1440) + rng.normal(0, 1, n)
    v[anomaly[0]:anomaly[1]] += size
    return pd.DataFrame({"timestamp": T0 + pd.to_timedelta(i, unit="min"), "value": v})


def _run(*args):
    return runner.invoke(app, ["detect", *args], terminal_width=200)


def test_wide_file_one_row_per_input_row_and_the_anomaly_found(tmp_path):
    df = _series()
    src = tmp_path / "Latency Export.csv"
    pd.DataFrame({"TIME": df["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S"), "p99 ms": df["value"]}).to_csv(
        src, index=False, quoting=1)
    out = tmp_path / "scores.csv"
    res = _run("--input", str(src), "--output", str(out), "--json")
    assert res.exit_code == 0, res.output
    scored = pd.read_csv(out)
    assert list(scored.columns) == ["timestamp", "score", "is_anomaly"]
    assert len(scored) == len(df)
    assert scored["score"].between(0, 1).all()
    flagged = np.flatnonzero(scored["is_anomaly"].to_numpy())
    assert len(flagged) and set(range(1600, 1630)) & set(flagged)
    assert (scored["is_anomaly"].iloc[:1500] == 0).mean() > 0.99
    summary = json.loads(res.stdout)
    anomaly = (T0 + pd.Timedelta(minutes=1600), T0 + pd.Timedelta(minutes=1630))
    assert summary["rows"] == len(df)
    assert any(pd.Timestamp(w["start"]) <= anomaly[1] and pd.Timestamp(w["end"]) >= anomaly[0]
               for w in summary["series"][0]["windows"])


def test_long_form_with_two_services_keeps_input_order(tmp_path):
    a, b = _series(seed=1), _series(seed=2, anomaly=(1500, 1540), size=40.0)
    long = pd.concat([
        a.assign(service="a", metric="cpu_pct"), b.assign(service="b", metric="cpu_pct"),
        a.assign(service="a", metric="mem_pct", value=a["value"] * 0.5),
    ]).sample(frac=1.0, random_state=0)  # shuffled rows
    src = tmp_path / "long.parquet"
    long[["timestamp", "service", "metric", "value"]].to_parquet(src)
    out = tmp_path / "o.csv"
    res = _run("-i", str(src), "-o", str(out), "--model", "zscore")
    assert res.exit_code == 0, res.output
    scored = pd.read_csv(out)
    assert len(scored) == len(long)
    assert list(scored["timestamp"]) == list(long["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    b_rows = (long["service"] == "b").to_numpy()
    t = ((long["timestamp"] - T0).dt.total_seconds() // 60).to_numpy()
    in_b_anomaly = b_rows & (t >= 1500) & (t < 1540)
    assert scored["is_anomaly"].to_numpy()[in_b_anomaly].mean() > 0.5


def test_awkward_input_is_handled_as_documented():
    df = _series(n=1500, anomaly=(1200, 1230)).set_index("timestamp")
    shuffled = df.sample(frac=1.0, random_state=3)
    shuffled.iloc[5, 0] = np.nan
    res = detect_series(shuffled, model="mad")
    assert list(res.frame["timestamp"]) == list(shuffled.index)  # input order kept
    assert any("not in order" in n for n in res.notes) and any("filled" in n for n in res.notes)
    ordered = detect_series(df, model="mad")
    by_time = res.frame.set_index("timestamp")["score"].sort_index()
    np.testing.assert_allclose(by_time.drop(shuffled.index[5]).to_numpy(),
                               ordered.frame.set_index("timestamp")["score"].drop(shuffled.index[5]).to_numpy())

    const = detect_series(pd.DataFrame({"v": np.full(100, 3.0)}, index=df.index[:100]))
    assert (const.frame["score"] == 0).all() and "constant" in const.notes[0]


def test_too_short_and_unreadable_input_are_refused_with_reasons(tmp_path):
    short = tmp_path / "short.csv"
    _series(n=30, anomaly=(0, 0)).to_csv(short, index=False)
    res = _run("--input", str(short), "--output", str(tmp_path / "o.csv"), "--model", "lstm_autoencoder")
    assert res.exit_code == 2 and "needs at least" in res.output and "training rows" in res.output
    res = _run("--input", str(short), "--output", str(tmp_path / "o.csv"))  # the default, auto
    assert res.exit_code == 2 and "needs at least 20 training rows" in res.output and "30 rows is 15" in res.output

    bad = tmp_path / "bad.csv"
    bad.write_text("when,value\n2026-11-01T00:00:00Z,1\nyesterday,2\n")
    res = _run("--input", str(bad), "--output", str(tmp_path / "o.csv"), "--time-col", "when")
    assert res.exit_code == 2 and "row 2: 'yesterday'" in res.output

    text = tmp_path / "text.csv"
    text.write_text("timestamp,value\n2026-11-01T00:00:00Z,high\n2026-11-01T00:01:00Z,low\n")
    res = _run("--input", str(text), "--output", str(tmp_path / "o.csv"))
    assert res.exit_code == 2 and "column 'value' holds no numbers (values such as 'high', 'low')" in res.output
    thousands = tmp_path / "thousands.csv"
    thousands.write_text('timestamp,value\n2026-11-01T00:00:00Z,"1,250"\n2026-11-01T00:01:00Z,"1,300"\n')
    res = _run("--input", str(thousands), "--output", str(tmp_path / "o.csv"))
    assert res.exit_code == 2 and "'1,250'" in res.output and "without thousands separators" in res.output

    header_only = tmp_path / "header.csv"
    header_only.write_text("timestamp,value\n")
    res = _run("--input", str(header_only), "--output", str(tmp_path / "o.csv"))
    assert res.exit_code == 2 and "header.csv: no data rows" in res.output

    assert _run("--input", str(tmp_path / "nope.csv"), "--output", "x.csv").exit_code == 2


def test_a_folder_is_scored_into_one_file_per_input_under_the_same_name(tmp_path):
    src, dst = tmp_path / "exports", tmp_path / "scores"
    src.mkdir()
    a, b = _series(n=2000, seed=4), _series(n=1800, seed=5, anomaly=(1500, 1520), size=30.0)
    a.to_csv(src / "api-p99.csv", index=False)
    b.to_parquet(src / "cpu.parquet")
    (src / "README.txt").write_text("not a series")
    res = _run("--input", str(src), "--output", str(dst), "--json")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in dst.iterdir()) == ["api-p99.csv", "cpu.parquet"]
    sa, sb = pd.read_csv(dst / "api-p99.csv"), pd.read_parquet(dst / "cpu.parquet")
    assert list(sa.columns) == list(sb.columns) == ["timestamp", "score", "is_anomaly"]
    assert (len(sa), len(sb)) == (2000, 1800)
    assert sb["is_anomaly"].iloc[1500:1520].any()
    summary = json.loads(res.stdout)
    assert [f["input"] for f in summary["files"]] == [str(src / "api-p99.csv"), str(src / "cpu.parquet")]
    assert all(s["threshold"] is not None and s["chosen"] for f in summary["files"] for s in f["series"])


def test_a_bad_file_in_a_folder_is_named_and_the_others_are_still_scored(tmp_path):
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    _series(n=1500, seed=6).to_csv(src / "good.csv", index=False)
    (src / "bad.csv").write_text("timestamp,value\n2026-11-01T00:00:00Z,1\nnot a time,2\n")
    res = _run("-i", str(src), "-o", str(dst))
    assert res.exit_code == 2
    assert "bad.csv" in res.output and "row 2" in res.output and "Traceback" not in res.output
    assert (dst / "good.csv").is_file() and not (dst / "bad.csv").exists()
    res = _run("-i", str(src / "good.csv"), "-o", str(dst))  # a file into a folder: refused with the reason
    assert res.exit_code == 2 and "is a folder" in res.output


def test_the_default_reports_its_threshold_and_scores_rank_anomalies_by_size(tmp_path):
    df = _series(n=3000, anomaly=(2000, 2001), size=15.0)
    df.loc[2500, "value"] += 60.0
    src, out = tmp_path / "s.csv", tmp_path / "o.csv"
    df.to_csv(src, index=False)
    res = _run("-i", str(src), "-o", str(out), "--json")
    assert res.exit_code == 0, res.output
    series = json.loads(res.stdout)["series"][0]
    scored = pd.read_csv(out)
    assert scored["score"].iloc[2000] > series["threshold"] and scored["score"].iloc[2500] > series["threshold"]
    assert scored["score"].iloc[2000] < scored["score"].iloc[2500] < 1.0
    assert series["model"] == "auto" and series["step_seconds"] == 60.0


def test_row_numbers_for_timestamps_are_scored_and_the_summary_says_what_they_were_read_as(tmp_path):
    """Numbers are epoch seconds (documented); 1..n put every row in 1970, which the summary points out, while
    real epoch seconds pass without that note."""
    df = _series(n=600, anomaly=(500, 510))
    src, out = tmp_path / "rows.csv", tmp_path / "scores.csv"
    pd.DataFrame({"timestamp": np.arange(1, 601), "value": df["value"]}).to_csv(src, index=False)
    res = _run("--input", str(src), "--output", str(out), "--json")
    assert res.exit_code == 0, res.output
    notes = json.loads(res.stdout)["series"][0]["notes"]
    assert any("row numbers" in n for n in notes) and len(pd.read_csv(out)) == 600
    epoch = tmp_path / "epoch.csv"
    pd.DataFrame({"timestamp": df["timestamp"].astype("int64") // 10**9, "value": df["value"]}).to_csv(epoch,
                                                                                                      index=False)
    res = _run("--input", str(epoch), "--output", str(out), "--json")
    assert res.exit_code == 0, res.output
    assert not any("row numbers" in n for n in json.loads(res.stdout)["series"][0]["notes"])


def test_a_label_column_is_left_out_with_a_note_unless_named(tmp_path):
    """An exported benchmark carries its labels beside the values: scored as a metric, a 0/1 column that is
    all 0 in the training part would flag its first 1. It is left out (the scores are those of the values
    alone) and the summary says so; named with --value-col it is scored."""
    df = _series(n=1200, anomaly=(1000, 1010))
    labels = np.zeros(len(df), dtype=int)
    labels[1000:1010] = 1
    plain, labelled, out = tmp_path / "plain.csv", tmp_path / "labelled.csv", tmp_path / "scores.csv"
    df.to_csv(plain, index=False)
    df.assign(is_anomaly=labels).to_csv(labelled, index=False)
    assert _run("--input", str(plain), "--output", str(out)).exit_code == 0
    expected = pd.read_csv(out)
    res = _run("--input", str(labelled), "--output", str(out), "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)["series"][0]
    assert list(summary["chosen"]) == ["value"]
    assert any("is_anomaly" in n and "--value-col" in n for n in summary["notes"])
    pd.testing.assert_frame_equal(pd.read_csv(out), expected)
    res = _run("--input", str(labelled), "--output", str(out), "--json", "--value-col", "value",
               "--value-col", "is_anomaly")
    assert res.exit_code == 0, res.output
    assert sorted(json.loads(res.stdout)["series"][0]["chosen"]) == ["is_anomaly", "value"]


def test_a_saved_prometheus_query_is_scored_and_mixed_units_are_refused_by_name(tmp_path):
    df = _series(n=1200, anomaly=(1000, 1010))
    stamps = (df["timestamp"].astype("int64") // 10**9).tolist()
    answer = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"__name__": "latency"}, "values": [[s, f"{v:.3f}"] for s, v in zip(stamps, df["value"])]}]}}
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "latency.json").write_text(json.dumps(answer))
    res = _run("--input", str(folder), "--output", str(tmp_path / "scores"), "--json")
    assert res.exit_code == 0, res.output
    scored = pd.read_csv(tmp_path / "scores" / "latency.json.csv")  # a CSV, named after its input
    assert len(scored) == 1200 and scored["is_anomaly"].iloc[1000:1010].any()
    src = tmp_path / "formatted.csv"
    pd.DataFrame({"Time": df["timestamp"].iloc[:200],
                  "p99": [f"{v * 22:.0f} ms" if v * 22 < 1000 else f"{v * 22 / 1000:.2f} s"
                          for v in df["value"].iloc[:200]]}).to_csv(src, index=False)
    res = _run("--input", str(src), "--output", str(tmp_path / "o.csv"))
    assert res.exit_code == 2
    assert "'p99' holds numbers in different units (ms, s" in res.output and "Formatted data" in res.output


def test_dates_that_read_both_ways_are_read_in_the_order_that_keeps_rows_together_and_named(tmp_path):
    df = _series(n=3000, anomaly=(2500, 2510))
    src, out = tmp_path / "uk.csv", tmp_path / "scores.csv"
    # November 1-3 written day first; month first they would be January, February and March 11
    df.assign(timestamp=df["timestamp"].dt.strftime("%d/%m/%Y %H:%M")).to_csv(src, index=False)
    res = _run("--input", str(src), "--output", str(out), "--json")
    assert res.exit_code == 0, res.output
    assert any("read day first" in n for n in json.loads(res.stdout)["series"][0]["notes"])
    assert pd.read_csv(out)["timestamp"].iloc[[0, -1]].tolist() == ["2026-11-01T00:00:00Z", "2026-11-03T01:59:00Z"]
