"""The investigation's LLM step (agents/investigation/analysis.py, flows/investigation_llm.py) on the shared lab's
bundle, against the local Messages API server (tests/support/llm_server.py): the real Anthropic SDK makes the
requests. The analysis is held to the bundle, priced, logged to MLflow, cached, capped; offline changes nothing
but one line."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from support.lab import isolate_engine_env
from support.llm_server import LlmServer

from agents.investigation.analysis import ANALYSIS_MAX_TOKENS, NO_LLM, analysis_request
from agents.investigation.models import Change
from agents.investigation.report import report_markdown
from flows.investigation_llm import llm_analysis, secret_values, tools_on_offer

MESSAGES = "/v1/messages"
KEY = "sk-ant-test-0123456789abcdefXYZ"  # the provider's key: sent as a header, never shown anywhere else
PRICE_IN, PRICE_OUT = 3, 15  # configs/default.yaml's claude-sonnet-4-5, USD per million tokens


@pytest.fixture(scope="module")
def llm():
    with LlmServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _clean(llm, investigation_lab, monkeypatch):
    llm.requests.clear()
    llm._answers.clear()
    llm._faults.clear()
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    isolate_engine_env(monkeypatch, investigation_lab.settings)
    # The lab's MLflow store for this test; the module variable comes back after, as the session had it.
    from mlflow.tracking._tracking_service import utils as tracking

    monkeypatch.setattr(tracking, "_tracking_uri", investigation_lab.settings.mlflow_tracking_uri)


@pytest.fixture(scope="module")
def bundle(investigation_lab):
    """The lab's first slow-database incident, 20 minutes in, seen from the frontend (gathered once)."""
    from flows.investigation_data import gather

    lab = investigation_lab
    inc = lab.sim.incidents
    inc = inc[(inc["kind"] == "slow_dependency") & (inc["root_cause_service"] == "database")].iloc[0]
    with pytest.MonkeyPatch.context() as mp:
        isolate_engine_env(mp, lab.settings)
        found = gather(
            lab.settings,
            question="why is the frontend slow?",
            at=(inc["start"] + pd.Timedelta(minutes=20)).isoformat(),
            window="30m",
        )
    assert found.causes and found.causes[0].service == "database"
    return found


def with_llm(settings, llm, tmp_path, **over):
    """The lab's settings with the Anthropic provider pointed at the local server (its key set), the default
    reasoning route and prices, and a cache of this test's own."""
    doc = settings.llm.model_dump()
    doc["providers"]["anthropic"].update(base_url=llm.url, api_key=KEY, max_retries=0, count_tokens_api=False)
    doc.update({"cache": "sqlite", "cache_path": tmp_path / "llm-cache.sqlite", **over})
    return settings.model_copy(update={"llm": type(settings.llm).model_validate(doc)})


def answer(bundle, **over) -> str:
    cause = bundle.causes[0]
    doc = {
        "summary": f"{cause.service} slowed down and the frontend waits on it.",
        "root_cause": {"service": cause.service, "metric": cause.evidence[0].metric, "confidence": 0.8},
        "reasoning": ["the frontend's p99 rose", f"{cause.service} moved first"],
        "citations": [cause.source],
        "next_steps": [{"action": "look at the database's metrics", "tool": "metrics_query", "risk": "read"}],
    }
    return json.dumps({**doc, **over})


def test_the_analysis_is_held_to_the_bundle_priced_and_logged(bundle, investigation_lab, llm, tmp_path):
    import mlflow

    settings = with_llm(investigation_lab.settings, llm, tmp_path)
    tools = {t.name for t in tools_on_offer(settings)[0]}
    assert "metrics_query" in tools and "reboot_datacenter" not in tools
    # A change whose detail holds credentials: the prompt must carry neither.
    leaky = bundle.model_copy(deep=True)
    leaky.changes.insert(
        0,
        Change(
            source="lake:events",
            at=bundle.window.start,
            service="database",
            kind="config",
            detail=f"rotated: password=hunter2 key {KEY}",
        ),
    )
    reply = answer(
        bundle,
        citations=[bundle.causes[0].source, "incidents/INC-404.md § Made up"],
        next_steps=[
            {"action": "look at the database's metrics", "tool": "metrics_query", "risk": "read"},
            {"action": "reboot everything", "tool": "reboot_datacenter", "risk": "high"},
            {"action": "scale the database up", "tool": "k8s_scale", "risk": "read"},  # it is not read-only
        ],
    )
    llm.answer(MESSAGES, text="```json\n" + reply + "\n```")
    result = llm_analysis(settings, leaky)

    assert result.status == "flagged" and result.route == "anthropic:claude-sonnet-4-5"
    assert result.answer.root_cause.service == "database" and result.answer.citations == [
        bundle.causes[0].source
    ]
    steps = [(s.tool, s.risk) for s in result.answer.next_steps]
    assert steps == [("metrics_query", "read"), (None, "high"), ("k8s_scale", "high")]
    assert len(result.flags) == 3 and "INC-404" in result.flags[0] and "reboot_datacenter" in result.flags[1]
    assert "'k8s_scale' is 'high' risk, not 'read': corrected" in result.flags[2]
    sent = llm.calls(MESSAGES)
    assert len(sent) == 1
    prompt = json.dumps(sent[0]["body"])
    assert (
        "database" in prompt
        and "metrics_query" in prompt
        and "[source: agents.rca over lake:telemetry]" in prompt
    )
    assert sent[0]["body"]["max_tokens"] == ANALYSIS_MAX_TOKENS and "tools" not in sent[0]["body"]
    assert "password=[redacted]" in prompt and KEY not in prompt and "hunter2" not in prompt

    # The cost from the price table and the tokens the server counted.
    body = sent[0]["body"]
    tokens_in = max(1, len(json.dumps(body["messages"]) + json.dumps(body["system"])) // 4)
    call = result.calls[0]
    assert (call["provider"], call["model"], call["cached"]) == ("anthropic", "claude-sonnet-4-5", False)
    assert call["input_tokens"] == tokens_in and call["output_tokens"] > 0
    cost = (tokens_in * PRICE_IN + call["output_tokens"] * PRICE_OUT) / 1e6
    assert call["cost_usd"] == pytest.approx(cost, abs=1e-6) and result.total["cost_usd"] == pytest.approx(
        cost, abs=1e-6
    )

    md = report_markdown(leaky, analysis=result, secrets=secret_values(settings))
    metric = bundle.causes[0].evidence[0].metric
    assert (
        "## Analysis (LLM)" in md
        and f"| database | {metric} | 0.8 |" in md
        and "### LLM calls and cost" in md
    )
    assert (
        f"| anthropic | claude-sonnet-4-5 | {tokens_in:,} | {call['output_tokens']:,} | no | {cost:.4f} |"
        in md
    )
    assert f"| **total** | 1 call | {tokens_in:,} |" in md and "Dropped or corrected" in md
    assert md.index("## Analysis (LLM)") < md.index("## Most likely root causes")  # beside the evidence
    assert KEY not in md and "hunter2" not in md and " nan " not in md

    run = mlflow.MlflowClient(investigation_lab.settings.mlflow_tracking_uri).get_run(result.mlflow_run)
    assert run.data.metrics["llm_calls"] == 1 and run.data.metrics["llm_input_tokens"] == tokens_in
    assert run.data.metrics["llm_cost_usd"] == pytest.approx(cost, abs=1e-6)
    assert (
        run.data.tags["cerebro.stage"] == "investigation" and run.data.tags["cerebro.analysis"] == "flagged"
    )
    logged = json.dumps(mlflow.artifacts.load_dict(f"runs:/{result.mlflow_run}/llm_calls.json"))
    assert KEY not in logged and "hunter2" not in logged and "frontend slow" not in logged
    assert KEY not in result.model_dump_json() and "hunter2" not in result.model_dump_json()


def test_a_second_run_is_answered_from_the_cache_at_no_cost(bundle, investigation_lab, llm, tmp_path):
    settings = with_llm(investigation_lab.settings, llm, tmp_path)
    llm.answer(MESSAGES, text=answer(bundle))
    first = llm_analysis(settings, bundle)
    second = llm_analysis(settings, bundle)
    assert first.status == second.status == "analysed" and first.answer == second.answer
    assert len(llm.calls(MESSAGES)) == 1  # the second never reached the server
    assert first.total["cost_usd"] > 0 and not first.calls[0]["cached"]
    assert second.calls[0]["cached"] and second.total["cost_usd"] == 0 and second.total["cached"] == 1
    assert second.total["input_tokens"] == second.total["output_tokens"] == 0  # nothing spent
    md = report_markdown(bundle, analysis=second)
    assert "| yes | 0.0000 |" in md and "| **total** | 1 call | 0 | 0 | 1 cached | 0.0000 |" in md


def test_the_token_cap_stops_further_calls(bundle, investigation_lab, llm, tmp_path):
    from agents.llm.tokens import estimate_tokens

    # A cap below the first call: nothing is sent, and the report says why in its one line.
    settings = with_llm(investigation_lab.settings, llm, tmp_path, max_tokens_per_investigation=500)
    capped = llm_analysis(settings, bundle)
    assert capped.capped and capped.status == "evidence-only" and not capped.calls and not llm.requests
    assert "llm.max_tokens_per_investigation = 500" in capped.note
    assert capped.note in report_markdown(bundle, analysis=capped)

    # Room for the first call only: its answer is invalid, and the cap refuses the repair round.
    first = estimate_tokens(analysis_request(bundle, tools_on_offer(settings)[0], secret_values(settings)))
    settings = with_llm(
        investigation_lab.settings,
        llm,
        tmp_path,
        cache="none",
        max_tokens_per_investigation=first + ANALYSIS_MAX_TOKENS + 50,
    )
    llm.answer(MESSAGES, text="the database, probably")
    stopped = llm_analysis(settings, bundle)
    assert stopped.capped and stopped.status == "evidence-only" and len(llm.calls(MESSAGES)) == 1
    assert len(stopped.calls) == 1 and stopped.total["cost_usd"] > 0
    md = report_markdown(bundle, analysis=stopped)
    assert "stopped further calls" in md and "### LLM calls and cost" in md


def test_a_reply_naming_a_service_not_in_the_bundle_is_repaired_or_rejected(
    bundle, investigation_lab, llm, tmp_path
):
    settings = with_llm(investigation_lab.settings, llm, tmp_path, cache="none")
    invented = answer(bundle, root_cause={"service": "mainframe-9000", "metric": None, "confidence": 0.9})
    # Named once, then corrected in the repair round, which said why.
    llm.answer(MESSAGES, text=invented)
    llm.answer(MESSAGES, text=answer(bundle))
    repaired = llm_analysis(settings, bundle)
    assert repaired.status == "analysed" and repaired.answer.root_cause.service == "database"
    repair_turn = llm.calls(MESSAGES)[1]["body"]["messages"][-1]["content"]
    assert "'mainframe-9000' is not in the evidence" in repair_turn
    # Named twice: rejected, the report keeps the evidence-only findings and shows no such root cause.
    llm.answer(MESSAGES, text=invented)
    llm.answer(
        MESSAGES,
        text=answer(
            bundle, root_cause={"service": "mainframe-9000", "confidence": 0.9}, citations=["my intuition"]
        ),
    )
    rejected = llm_analysis(settings, bundle)
    assert rejected.status == "rejected" and rejected.answer is None and len(rejected.calls) == 2
    md = report_markdown(bundle, analysis=rejected)
    assert "Analysis rejected" in md and "| mainframe-9000 |" not in md and "## Most likely root causes" in md


def test_offline_changes_nothing_but_one_line(bundle, investigation_lab, llm, tmp_path):
    settings = investigation_lab.settings  # the default profile: Anthropic without a key, then offline
    result = llm_analysis(settings, bundle)
    assert result.status == "evidence-only" and result.note == NO_LLM and not result.calls
    assert result.mlflow_run is None and not llm.requests
    before = report_markdown(bundle).splitlines()
    after = report_markdown(bundle, analysis=result).splitlines()
    assert [line for line in after if line not in before] == [NO_LLM] and len(after) == len(before) + 2
    # A route to offline itself is the same.
    offline = with_llm(settings, llm, tmp_path, tasks={**settings.llm.tasks, "reasoning": "offline:none"})
    assert llm_analysis(offline, bundle).note == NO_LLM and not llm.requests


def test_no_answer_from_the_provider_says_what_was_tried(bundle, investigation_lab, llm, tmp_path):
    settings = with_llm(investigation_lab.settings, llm, tmp_path, cache="none")
    llm.fail(MESSAGES, status=500)
    result = llm_analysis(settings, bundle)  # anthropic fails (no retry here), the chain ends at offline
    assert result.status == "evidence-only" and result.answer is None and not result.capped
    assert result.note.startswith("Analysis: evidence-only; no LLM answered") and "HTTP 500" in result.note
    assert [c["provider"] for c in result.calls] == ["offline"] and result.total["cost_usd"] == 0
    assert result.note in report_markdown(bundle, analysis=result)
