"""Numbers for people: what every table artifact goes through (flows/reporting.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from flows import reporting


def test_numbers_are_rounded_to_meaning_and_missing_values_are_blank():
    n = reporting.number
    assert n(36.432156666666664) == 36.4 and n(0.985781990521327) == 0.986 and n(4.333333333333333) == 4.33
    assert n(12345.678) == 12346 and n(np.float64(0.000123456)) == 0.000123 and n(np.int64(7)) == 7
    assert n(3.0) == 3 and n(True) == "yes" and n(False) == "no" and n("payment") == "payment"
    for missing in (None, float("nan"), np.nan, pd.NaT, pd.NA, "nan", "NaT", "None"):
        assert n(missing) == "", missing
    assert n(pd.Timestamp("2026-11-20T03:04:05.123Z")) == "2026-11-20 03:04"


def test_a_table_keeps_its_columns_and_says_when_it_is_cut():
    frame = pd.DataFrame({"service": [f"s{i}" for i in range(39)], "limit": [100.0] * 39,
                          "crosses_upper_at": [pd.NaT] * 38 + [pd.Timestamp("2026-11-21", tz="UTC")],
                          "hours_to_upper": [np.nan] * 38 + [17.123456], "note": [None] * 39})
    rows, note = reporting.table(frame, ["service", "hours_to_upper", "crosses_upper_at"], top=20, what="resources")
    assert note == "Showing 20 of 39 resources." and len(rows) == 20
    assert list(rows[0]) == ["service", "hours_to_upper", "crosses_upper_at"]
    assert rows[0] == {"service": "s0", "hours_to_upper": "", "crosses_upper_at": ""}
    rows, note = reporting.table(frame.tail(1), top=20)
    assert note == "" and rows[0]["hours_to_upper"] == 17.1 and rows[0]["note"] == ""
    assert rows[0]["crosses_upper_at"] == "2026-11-21 00:00"
    text = repr(rows)
    assert "nan" not in text and "NaT" not in text and "None" not in text


def test_a_probability_reads_as_three_decimals_or_less_than_a_thousandth():
    p = reporting.probability
    assert p(1.6e-36) == "<0.001" and p(6.42e-7) == "<0.001" and p(0.0) == 0 and p(1.0) == 1
    assert p(0.12345) == 0.123 and p(0.0006) == 0.001 and p(None) == "" and p(float("nan")) == ""
