"""The run-tool flow pauses for a person's approval; answered both ways from another thread, as the UI would."""
from __future__ import annotations

import json
import threading
import time

import pytest
from support.kube_api import FakeKubeApi


@pytest.fixture
def kube_settings(monkeypatch, home):
    with FakeKubeApi({"default/payment": 2}) as kube:
        monkeypatch.setenv("CEREBRO_TOOLS__ALLOW", json.dumps(["@read", "k8s_*"]))
        monkeypatch.setenv("CEREBRO_TOOLS__KUBERNETES__HOST", kube.url)
        monkeypatch.setenv("CEREBRO_TOOLS__APPROVAL_POLL_S", "1")
        yield kube


def answer_when_paused(run_input: dict, found: list) -> threading.Thread:
    """Resume the paused run-tool run with ``run_input`` (what a person submits in the UI's form)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateName
    from prefect.flow_runs import resume_flow_run

    def answer():
        deadline = time.monotonic() + 60
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Paused"]))))
                runs = [r for r in runs if r.id not in found]
                if runs:
                    found.append(runs[0].id)
                    resume_flow_run(runs[0].id, run_input=run_input)
                    return
                time.sleep(0.3)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("approve", [True, False])
def test_the_pause_is_answered_in_the_ui_both_ways(prefect_server, kube_settings, approve):
    from flows.tools_flow import run_tool_flow

    found: list = []
    thread = answer_when_paused({"approve": approve, "approver": "alice", "note": "checked the graph"}, found)
    result = run_tool_flow("k8s_scale", {"deployment": "payment", "replicas": 5}, execute=True)
    thread.join(timeout=5)
    assert found, "the flow never paused for approval"
    assert result["approval"] == {"approved": approve, "by": "alice", "note": "checked the graph"}
    assert result["outcome"] == ("ok" if approve else "rejected")
    assert kube_settings.deployments["default/payment"]["spec"]["replicas"] == (5 if approve else 2)
    # The real change was made only after the answer: one unsaved dry run, then (if approved) one stored patch.
    patches = [dry for method, _, dry in kube_settings.requests if method == "PATCH"]
    assert patches == ([True, False] if approve else [True])
