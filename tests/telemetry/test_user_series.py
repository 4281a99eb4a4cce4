"""telemetry.sources.user_series: a user's own file read as series (what `cerebro detect` and `forecast` read)."""
from __future__ import annotations

import pandas as pd
import pytest

from telemetry.sources.user_series import UserSeriesError, read_user_series, select_series, service_frames


def _write(path, text):
    path.write_text(text)
    return path


def test_wide_file_loose_headers_epoch_and_unreadable_values(tmp_path):
    src = _write(tmp_path / "export.csv", '"Time","CPU Pct","Mem"\n'
                 "2026-01-01T00:00:00Z,1.5,10\n2026-01-01T00:01:00Z,2,11\n1767225720,x,12\n")
    raw = read_user_series(src)
    assert set(raw["service"]) == {"series"}  # a wide file without a service column
    assert list(dict.fromkeys(raw["metric"])) == ["cpu_pct", "mem"]
    assert str(raw["ts"].dt.tz) == "UTC"
    assert raw["ts"].max() == pd.Timestamp("2026-01-01T00:02Z")  # epoch seconds parsed
    cpu = raw[raw["metric"] == "cpu_pct"]
    assert cpu["val"].iloc[:2].tolist() == [1.5, 2.0] and pd.isna(cpu["val"].iloc[2])  # "x" is NaN, not an error
    assert cpu["source_row"].tolist() == [1, 2, 3]


def test_wide_file_value_cols_keep_only_those(tmp_path):
    src = _write(tmp_path / "w.csv", "ts,a,b\n2026-01-01T00:00Z,1,2\n2026-01-01T00:01Z,3,4\n")
    raw = read_user_series(src, value_cols=["b"])
    assert set(raw["metric"]) == {"b"} and raw["val"].tolist() == [2.0, 4.0]


def test_long_file_keeps_services_and_metrics(tmp_path):
    src = _write(tmp_path / "long.csv", "timestamp,service,metric,value\n"
                 "2026-01-01T00:00Z,db,cpu,1\n2026-01-01T00:00Z,api,cpu,2\n2026-01-01T00:01Z,db,cpu,3\n")
    raw = read_user_series(src)
    assert raw["service"].tolist() == ["db", "api", "db"] and raw["val"].tolist() == [1.0, 2.0, 3.0]


def test_missing_file_unmappable_layout_and_bad_timestamps_are_refused(tmp_path):
    with pytest.raises(UserSeriesError, match="no such file"):
        read_user_series(tmp_path / "missing.csv")
    src = _write(tmp_path / "s.csv", "a,b\n1,2\n")
    with pytest.raises(UserSeriesError, match="column 'when' not found"):
        read_user_series(src, time_col="when")
    bad = _write(tmp_path / "bad.csv", "timestamp,value\n2026-01-01T00:00Z,1\nnot a time,2\nyesterday,3\n")
    with pytest.raises(UserSeriesError) as err:
        read_user_series(bad)
    assert str(err.value) == (f"{bad}: 2 row(s) have no readable timestamp (row 2: 'not a time', row 3: "
                              "'yesterday'); expected ISO 8601 or epoch seconds. Fix or remove them, or name the "
                              "column with --time-col")
    assert isinstance(err.value, ValueError)


def _long(tmp_path):
    return read_user_series(_write(tmp_path / "l.csv", "timestamp,service,metric,value\n"
                                   "2026-01-01T00:01Z,db,cpu,1\n2026-01-01T00:00Z,db,disk,5\n"
                                   "2026-01-01T00:00Z,db,cpu,2\n2026-01-01T00:01Z,db,disk,6\n"))


def test_select_series_by_name_only_one_or_refused(tmp_path):
    raw = _long(tmp_path)
    disk = select_series(raw, tmp_path / "l.csv", "db/disk")
    assert disk.name == "db/disk" and disk.tolist() == [5.0, 6.0]
    assert list(disk.index) == [pd.Timestamp("2026-01-01T00:00Z"), pd.Timestamp("2026-01-01T00:01Z")]
    cpu = select_series(raw, tmp_path / "l.csv", "db/cpu")
    assert cpu.tolist() == [1.0, 2.0]  # file order: preparing the series sorts it, and says so
    with pytest.raises(UserSeriesError, match=r"2 series \(db/cpu, db/disk\); forecast one at a time"):
        select_series(raw, tmp_path / "l.csv")
    with pytest.raises(UserSeriesError, match="no series 'db/mem'; the file has db/cpu, db/disk"):
        select_series(raw, tmp_path / "l.csv", "db/mem")
    one = raw[raw["metric"] == "cpu"]
    assert select_series(one, tmp_path / "l.csv").name == "db/cpu"


def test_service_frames_wide_per_service_in_first_seen_order(tmp_path):
    src = _write(tmp_path / "l.csv", "timestamp,service,metric,value\n"
                 "2026-01-01T00:01Z,b,cpu,1\n2026-01-01T00:00Z,a,cpu,2\n2026-01-01T00:01Z,b,mem,3\n"
                 "2026-01-01T00:00Z,b,cpu,4\n2026-01-01T00:00Z,b,cpu,6\n")
    frames = list(service_frames(read_user_series(src)))
    assert [s for s, _, _ in frames] == ["b", "a"]
    _, rows, wide = frames[0]
    assert len(rows) == 4 and list(wide.columns) == ["cpu", "mem"]
    assert list(wide.index) == [pd.Timestamp("2026-01-01T00:01Z"), pd.Timestamp("2026-01-01T00:00Z")]
    assert wide.loc[pd.Timestamp("2026-01-01T00:00Z"), "cpu"] == 5.0  # duplicates averaged
    assert pd.isna(wide.loc[pd.Timestamp("2026-01-01T00:00Z"), "mem"])
