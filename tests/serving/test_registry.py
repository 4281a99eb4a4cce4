"""Champion / challenger in the MLflow registry: the promotion gate on held-out data, logged decisions, rollback."""
from __future__ import annotations

import json

import numpy as np
import pytest
from support.lab import isolate_engine_env, make_lab

from serving import promotion, registry


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return make_lab(tmp_path_factory.mktemp("registry-home"))


def _client(lab):
    return registry.client_for(lab.settings)


def test_gate_promotes_a_better_challenger_refuses_a_worse_one_and_logs_the_figures(lab):
    name = "cerebro-detector-gate"
    frame, incidents = lab.heldout()
    v1 = lab.register(name, lab.weak)
    first = promotion.promote_if_better(lab.settings, name, v1, frame, incidents, recovery_minutes=15)
    assert first.decision == "first" and first.figures is None and "first" in first.reason

    v2 = lab.register(name, lab.good)
    better = promotion.promote_if_better(lab.settings, name, v2, frame, incidents, recovery_minutes=15)
    f = better.figures
    assert better.decision == "promoted", better.reason
    assert f.challenger - f.champion >= lab.settings.lifecycle.margins["detector"]
    # The figures are those of the two models on the frame the caller passed, computed here without MLflow.
    from training.evaluation import evaluate

    test = lab.splits.masks["test"]
    index = lab.splits.frame.index[test]
    for det, figure in ((lab.weak, f.champion), (lab.good, f.challenger)):
        direct = evaluate(index, det.score(lab.splits.frame[test]), det.threshold_, incidents, recovery_minutes=15)
        assert figure == pytest.approx(direct["f1"])

    v3 = lab.register(name, lab.weak)
    worse = promotion.promote_if_better(lab.settings, name, v3, frame, incidents, recovery_minutes=15)
    assert worse.decision == "rejected" and "does not beat" in worse.reason
    assert worse.figures.challenger < worse.figures.champion

    client = _client(lab)
    model = client.get_registered_model(name)
    assert {k: str(v) for k, v in model.aliases.items()} == {"champion": v2}  # the challenger alias lives only while a version is judged
    assert registry.champion_history(client, name) == [v1, v2]
    for version, decision, status in ((v1, "first", "former champion"), (v2, "promoted", "champion"),
                                      (v3, "rejected", "not promoted")):
        mv = client.get_model_version(name, version)
        # readable tags and a description line, not a JSON blob
        assert mv.tags["cerebro.decision"] == decision and mv.tags["cerebro.status"] == status
        assert mv.tags["cerebro.reason"] in mv.description and f": {decision}." in mv.description
        run = client.get_run(mv.tags["cerebro.decision_run"])
        assert run.data.tags["cerebro.decision"] == decision and run.data.params["model"] == name
    v3_tags = client.get_model_version(name, v3).tags
    assert float(v3_tags["cerebro.challenger_f1"]) == pytest.approx(worse.figures.challenger, abs=1e-3)
    run = client.get_run(worse.run_id)
    assert run.data.metrics["champion_f1"] == pytest.approx(worse.figures.champion)
    assert run.data.metrics["challenger_f1"] == pytest.approx(worse.figures.challenger)
    assert run.data.params["heldout_rows"] == str(len(frame))
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.name == promotion.PROMOTIONS_EXPERIMENT


def test_a_version_below_its_targets_is_never_champion(lab):
    """A first version that misses its targets gets no alias (serving never finds it as champion nor routes to
    it as challenger); a later one that meets them becomes the first champion; a below-target version that beats
    the champion on the gate is still refused."""
    name = "cerebro-detector-short"
    frame, incidents = lab.heldout()
    v1, v2, v3 = (lab.register(name, d) for d in (lab.weak, lab.weak, lab.good))
    low = promotion.promote_if_better(lab.settings, name, v1, frame, incidents, below_target="test f1 0.400 <= 0.92")
    assert low.decision == "below-target" and low.champion_after is None and "test f1 0.400" in low.reason
    client = _client(lab)
    assert not client.get_registered_model(name).aliases
    assert client.get_model_version(name, v1).tags["cerebro.status"] == "below-target"
    assert promotion.promote_if_better(lab.settings, name, v2, frame, incidents).decision == "first"
    refused = promotion.promote_if_better(lab.settings, name, v3, frame, incidents, recovery_minutes=15,
                                          below_target="test recall 0.5 <= 0.95")
    assert refused.decision == "rejected" and "challenger wins" in refused.reason and "misses" in refused.reason
    assert {k: str(v) for k, v in client.get_registered_model(name).aliases.items()} == {"champion": v2}


def test_a_version_too_slow_to_serve_never_replaces_the_champion(lab):
    """The serving cost the detection stage measured (the version tag): a better version whose latency at 8
    clients misses the spec's is refused with the figures; one that meets it goes through the F1 gate as usual;
    --force still promotes."""
    import json

    from training.detectors.serving_cost import SERVING_COST_TAG, ServingCost

    name = "cerebro-detector-slow"
    frame, incidents = lab.heldout()
    v1, v2, v3 = (lab.register(name, d) for d in (lab.weak, lab.good, lab.good))
    client = _client(lab)

    def tag(version, p50):
        cost = ServingCost(alone_ms=p50 / 4, window_ms=p50 / 8, cycle_max_ms=p50 * 1.2, batching=True,
                           p50_ms=p50, p99_ms=p50 * 1.2)
        client.set_model_version_tag(name, version, SERVING_COST_TAG, json.dumps(cost.as_dict()))

    tag(v1, 120.0)  # a first version: its caller (the pipeline) decides, it is the model put forward
    assert promotion.promote_if_better(lab.settings, name, v1, frame, incidents).decision == "first"
    tag(v2, 80.0)
    slow = promotion.promote_if_better(lab.settings, name, v2, frame, incidents, recovery_minutes=15)
    assert slow.decision == "rejected" and "challenger wins" in slow.reason
    assert "serving: estimated p50 80.0 ms" in slow.reason and "p50 < 50 ms" in slow.reason
    tag(v3, 30.0)
    fast = promotion.promote_if_better(lab.settings, name, v3, frame, incidents, recovery_minutes=15)
    assert fast.decision == "promoted", fast.reason
    forced = promotion.promote(lab.settings, name, v2, frame, incidents, force=True, recovery_minutes=15)
    assert forced.decision == "forced"


def test_rollback_goes_back_one_champion_at_a_time(lab):
    name = "cerebro-detector-roll"
    frame, incidents = lab.heldout()
    v1, v2, v3 = (lab.register(name, d) for d in (lab.weak, lab.good, lab.weak))
    promotion.promote(lab.settings, name, v1)
    assert promotion.promote_if_better(lab.settings, name, v2, frame, incidents).decision == "promoted"
    forced = promotion.promote(lab.settings, name, v3, frame, incidents, force=True)
    assert forced.decision == "forced" and "does not beat" in forced.reason and forced.figures is not None

    client = _client(lab)
    assert registry.champion_history(client, name) == [v1, v2, v3]
    back = promotion.rollback(lab.settings, name)
    assert (back.champion_before, back.champion_after) == (v3, v2)
    assert str(client.get_registered_model(name).aliases["champion"]) == v2
    again = promotion.rollback(lab.settings, name)
    assert (again.champion_before, again.champion_after) == (v2, v1)
    assert str(client.get_model_version_by_alias(name, "champion").version) == v1
    with pytest.raises(registry.RegistryError, match="no previous champion"):
        promotion.rollback(lab.settings, name)
    assert client.get_run(again.run_id).data.tags["cerebro.decision"] == "rollback"


def test_promotion_needs_held_out_data_unless_forced_and_names_bad_input(lab):
    name = "cerebro-detector-strict"
    v1, v2 = lab.register(name, lab.weak), lab.register(name, lab.good)
    promotion.promote(lab.settings, name, v1)
    with pytest.raises(registry.RegistryError, match="needs a held-out frame"):
        promotion.promote(lab.settings, name, v2)
    assert "challenger" not in _client(lab).get_registered_model(name).aliases
    with pytest.raises(registry.RegistryError, match="no version 99"):
        promotion.promote(lab.settings, name, 99)
    frame, _ = lab.heldout()
    with pytest.raises(registry.RegistryError, match="incidents frame"):
        promotion.promote(lab.settings, name, v2, frame, np.zeros(len(frame)))
    with pytest.raises(registry.RegistryError, match="not a CEREBRO model"):
        registry.family_of("my-model")


def test_gate_margin_direction_and_undecidable_figures():
    def figs(family, champion, challenger, **detail):
        metric, higher = promotion.FIGURES[family]
        return promotion.Figures(family, metric, higher, champion, challenger, 100, detail)

    assert promotion.gate(figs("failure", 0.30, 0.32, champion_positives=5), 0.01)[0]
    assert not promotion.gate(figs("failure", 0.30, 0.305, champion_positives=5), 0.01)[0]  # better, not by the margin
    assert promotion.gate(figs("forecaster", 1.10, 0.95), 0.02)[0]  # MASE: lower wins
    assert not promotion.gate(figs("forecaster", 0.95, 1.10), 0.02)[0]
    assert not promotion.gate(figs("forecaster", 0.95, 0.95), 0.0)[0]  # a tie does not beat anyone
    ok, why = promotion.gate(figs("detector", 0.2, 0.9, champion_incidents=0), 0.01)
    assert not ok and "no incidents" in why
    ok, why = promotion.gate(figs("failure", None, 0.4, champion_positives=3), 0.01)
    assert not ok and "could not be computed" in why


def test_cli_promotes_on_the_lake_and_lists_the_models(lab, monkeypatch):
    from typer.testing import CliRunner

    from flows.cli import app

    name = "cerebro-detector-cli"
    v1, v2 = lab.register(name, lab.weak), lab.register(name, lab.good)
    isolate_engine_env(monkeypatch, lab.settings)
    runner = CliRunner()
    res = runner.invoke(app, ["models", "promote", name, v1], terminal_width=200)
    assert res.exit_code == 0 and "first" in res.output, res.output
    res = runner.invoke(app, ["models", "promote", name, v2, "--json"], terminal_width=200)
    assert res.exit_code == 0, res.output
    decision = json.loads(res.output)
    assert decision["decision"] == "promoted" and decision["figures"]["metric"] == "f1"
    assert decision["figures"]["detail"]["challenger_incidents"] > 0  # the lake's last day held incidents
    res = runner.invoke(app, ["models", "promote", name, v1], terminal_width=200)
    assert res.exit_code == 3 and "rejected" in res.output and "f1" in res.output, res.output

    res = runner.invoke(app, ["models", "list", "--json"], terminal_width=200)
    assert res.exit_code == 0, res.output
    listed = {m["name"]: m for m in json.loads(res.output)}
    assert listed[name]["aliases"] == {"champion": v2} and listed[name]["family"] == "detector"
    assert [v["last_decision"] for v in listed[name]["versions"]] == ["rejected", "promoted"]
    res = runner.invoke(app, ["models", "rollback", name], terminal_width=200)
    assert res.exit_code == 0 and f"-> {v1}" in res.output, res.output
    res = runner.invoke(app, ["models", "list"], terminal_width=200)
    assert res.exit_code == 0 and "champion" in res.output and "promoted" in res.output, res.output
