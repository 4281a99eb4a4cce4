"""`cerebro forecast` on files it has never seen: both layouts, the output contract, awkward and bad input."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()
T0 = pd.Timestamp("2026-10-01T00:00Z")


def _hourly(n=24 * 12, seed=0, trend=0.05):
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    v = 50 + 10 * np.sin(2 * np.pi * i / 24) + trend * i + rng.normal(0, 1, n)
    return pd.DataFrame({"timestamp": T0 + pd.to_timedelta(i, unit="h"), "value": v})


def _run(*args):
    return runner.invoke(app, ["forecast", *args], terminal_width=200)


def test_wide_file_forecast_rows_intervals_and_plot(tmp_path):
    df = _hourly()
    src = tmp_path / "Disk Export.csv"
    pd.DataFrame({"Time": df["timestamp"].dt.strftime("%Y-%m-%d %H:%M"), "Disk Used %": df["value"]}).to_csv(
        src, index=False, quoting=1)
    out, png = tmp_path / "f.csv", tmp_path / "f.png"
    res = _run("--input", str(src), "--horizon", "24", "--output", str(out), "--model", "seasonal_naive",
               "--plot", str(png), "--json")
    assert res.exit_code == 0, res.output
    f = pd.read_csv(out)
    assert list(f.columns) == ["timestamp", "yhat", "yhat_lower", "yhat_upper"]
    assert len(f) == 24
    stamps = pd.to_datetime(f["timestamp"], utc=True)
    assert stamps.iloc[0] == df["timestamp"].iloc[-1] + pd.Timedelta(hours=1)
    assert (stamps.diff().dropna() == pd.Timedelta(hours=1)).all()
    assert (f["yhat_lower"] <= f["yhat"]).all() and (f["yhat"] <= f["yhat_upper"]).all()
    # A day ahead of a daily cycle: the forecast follows the cycle (within its own 95 % band of the truth).
    truth = 50 + 10 * np.sin(2 * np.pi * np.arange(len(df), len(df) + 24) / 24) + 0.05 * np.arange(len(df), len(df) + 24)
    assert np.mean((truth >= f["yhat_lower"]) & (truth <= f["yhat_upper"])) >= 0.8
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
    summary = json.loads(res.output)
    assert summary["model"] == "seasonal_naive" and summary["step"] == "h" and summary["history_points"] == len(df)


def test_level_80_is_inside_level_95(tmp_path):
    df = _hourly()
    src = tmp_path / "s.csv"
    df.to_csv(src, index=False)
    outs = {}
    for level in (80, 95):
        outs[level] = tmp_path / f"f{level}.csv"
        res = _run("-i", str(src), "-H", "12", "-o", str(outs[level]), "--model", "seasonal_naive", "--level", str(level))
        assert res.exit_code == 0, res.output
    a, b = pd.read_csv(outs[80]), pd.read_csv(outs[95])
    assert np.allclose(a["yhat"], b["yhat"])
    assert (a["yhat_lower"] >= b["yhat_lower"] - 1e-9).all() and (a["yhat_upper"] <= b["yhat_upper"] + 1e-9).all()


def test_auto_picks_a_model_by_backtest_and_says_so(tmp_path):
    src = tmp_path / "s.csv"
    _hourly().to_csv(src, index=False)
    res = _run("-i", str(src), "-H", "12", "-o", str(tmp_path / "f.csv"), "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    scores = summary["auto_comparison"]
    assert {"naive", "seasonal_naive", "ets", "theta", "arima"} <= set(scores)
    best = min(scores, key=scores.get)
    assert summary["model"].startswith("auto: ")
    assert summary["model"].endswith(best) or (best == "median" and "median of" in summary["model"])


def test_long_form_needs_a_series_when_it_holds_several(tmp_path):
    df = _hourly()
    long = pd.concat([
        pd.DataFrame({"timestamp": df["timestamp"], "service": "db", "metric": "cpu_pct", "value": df["value"]}),
        pd.DataFrame({"timestamp": df["timestamp"], "service": "db", "metric": "disk_pct", "value": df["value"] / 2}),
    ])
    src = tmp_path / "long.csv"
    long.to_csv(src, index=False)
    res = _run("-i", str(src), "-H", "6", "-o", str(tmp_path / "f.csv"), "--model", "seasonal_naive")
    assert res.exit_code == 2
    assert "db/cpu_pct" in res.output and "--series" in res.output
    res = _run("-i", str(src), "-H", "6", "-o", str(tmp_path / "f.csv"), "--model", "seasonal_naive",
               "--series", "db/disk_pct")
    assert res.exit_code == 0, res.output
    f = pd.read_csv(tmp_path / "f.csv")
    assert len(f) == 6 and f["yhat"].between(15, 40).all()  # the halved series, not the other one


def test_unsorted_duplicated_input_is_prepared_and_noted(tmp_path):
    df = _hourly()
    messy = pd.concat([df, df.iloc[[5, 9]]]).sample(frac=1, random_state=3)
    src = tmp_path / "messy.csv"
    messy.to_csv(src, index=False)
    res = _run("-i", str(src), "-H", "6", "-o", str(tmp_path / "f.csv"), "--model", "seasonal_naive", "--json")
    assert res.exit_code == 0, res.output
    notes = " ".join(json.loads(res.output)["notes"])
    assert "sorted" in notes and "averaged" in notes


def test_constant_series_gives_a_flat_forecast(tmp_path):
    src = tmp_path / "flat.csv"
    _hourly().assign(value=7.0).to_csv(src, index=False)
    res = _run("-i", str(src), "-H", "6", "-o", str(tmp_path / "f.csv"), "--model", "arima", "--json")
    assert res.exit_code == 0, res.output
    f = pd.read_csv(tmp_path / "f.csv")
    assert (f["yhat"] == 7.0).all() and (f["yhat_lower"] == 7.0).all() and (f["yhat_upper"] == 7.0).all()
    assert any("constant" in n for n in json.loads(res.output)["notes"])


def test_bad_input_is_refused_with_what_is_needed(tmp_path):
    src = tmp_path / "s.csv"
    _hourly(n=48).to_csv(src, index=False)
    res = _run("-i", str(src), "-H", "500", "-o", str(tmp_path / "f.csv"), "--model", "seasonal_naive")
    assert res.exit_code == 2 and "500" in res.output and "48" in res.output
    short = tmp_path / "short.csv"
    _hourly(n=4).to_csv(short, index=False)
    res = _run("-i", str(short), "-H", "2", "-o", str(tmp_path / "f.csv"), "--model", "seasonal_naive")
    assert res.exit_code == 2 and "4" in res.output
    res = _run("-i", str(src), "-H", "2", "-o", str(tmp_path / "f.csv"), "--model", "nope")
    assert res.exit_code == 2 and "arima" in res.output
    res = _run("-i", str(tmp_path / "missing.csv"), "-H", "2", "-o", str(tmp_path / "f.csv"))
    assert res.exit_code == 2 and "no such file" in res.output


def test_the_summary_line_names_the_step_in_words(tmp_path):
    src, out = tmp_path / "h.csv", tmp_path / "f.csv"
    _hourly().to_csv(src, index=False)
    res = _run("--input", str(src), "--horizon", "24", "--output", str(out), "--model", "seasonal_naive")
    assert res.exit_code == 0, res.output
    assert "24 steps of 1 hour ahead with seasonal_naive" in res.output

    from flows.cli.forecast import _step_words

    assert [_step_words(s) for s in (pd.Timedelta(minutes=5), pd.Timedelta(days=7), "MS", "QS-OCT")] == [
        "5 minutes", "1 week", "1 month", "1 quarter"]


def test_the_command_line_loads_no_settings_until_a_command_needs_them():
    """`cerebro forecast` and `cerebro detect` read no configuration; pydantic-settings cost every command 0.2 s
    of start-up when one subcommand's module imported it at the top."""
    import subprocess
    import sys

    code = "import sys, flows.cli\nprint([m for m in ('configs.settings', 'pydantic_settings') if m in sys.modules])\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
