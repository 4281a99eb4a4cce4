"""The kind table: every kind's bundle module answers the same questions, and names resolve both ways."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from training import kinds

PROTOCOL = ("predict", "check_labels", "figures", "unjudgeable", "heldout", "shadow_gap")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", kinds.KINDS, ids=kinds.NAMES)
def test_each_kind_module_answers_the_whole_protocol(kind):
    code = kind.code
    missing = [name for name in PROTOCOL if not callable(getattr(code, name, None))]
    assert not missing, f"{kind.module} lacks {missing}"
    assert list(inspect.signature(code.predict).parameters)[:3] == ["bundle", "frame", "params"]


@pytest.mark.parametrize("kind", kinds.KINDS, ids=kinds.NAMES)
def test_names_resolve_both_ways(kind):
    assert kinds.by_name(kind.name) is kind
    assert kinds.by_endpoint(kind.endpoint) is kind
    assert kinds.of_registered(kind.registered_name("some_model")) is kind
    assert kinds.of_bundle({"kind": kind.name}) is kind


def test_unknown_names_say_what_would_work():
    with pytest.raises(kinds.UnknownKind, match="cerebro-detector-<name>, cerebro-forecaster-<name> or "
                                                 "cerebro-failure-predictor"):
        kinds.of_registered("my-model")
    with pytest.raises(kinds.UnknownKind, match="expected detector, forecaster, failure"):
        kinds.predict_bundle({"kind": "classifier"}, None)
    with pytest.raises(kinds.UnknownKind, match="score, forecast, failure"):
        kinds.by_endpoint("explain")


def test_the_table_is_unambiguous():
    assert len({k.name for k in kinds.KINDS}) == len(kinds.KINDS)
    assert len({k.endpoint for k in kinds.KINDS}) == len(kinds.KINDS)
    for kind in kinds.KINDS:  # no registered name is claimed by two kinds
        assert [k for k in kinds.KINDS if k.owns(kind.registered_name("x"))] == [kind]


def test_the_metrics_a_listing_shows():
    run = {"test_f1": 0.9, "h24_mase": 0.8, "h1_mase": 0.7, "fit_seconds": 3.0}
    assert kinds.DETECTOR.shown_metrics(run) == list(kinds.DETECTOR.key_metrics)
    assert kinds.FORECASTER.shown_metrics(run) == ["h1_mase", "h24_mase"]


def test_no_code_outside_the_table_branches_on_a_kind_name():
    """A comparison or membership test against a kind's name belongs in the kind's own module, not in callers."""
    names = "|".join(kinds.NAMES)
    branch = re.compile(rf"""(==|!=|\bin\b)\s*\(?\s*["']({names})["']|["']({names})["']\s*(==|!=)""")
    offenders = []
    for package in ("training", "serving", "features", "flows", "telemetry", "rag", "agents"):
        for path in (ROOT / package).rglob("*.py"):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if branch.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
