"""The ``run-tool`` flow: one tool call through the executor, where a change waits, paused, for a person to
approve or reject it in the Prefect UI (the run's "Resume" form), and the audit trail is left as an artifact.

    run_tool_flow("k8s_scale", {"deployment": "checkout", "replicas": 4}, execute=True)   # waits for the UI

The approval hook is built here and injected into ``agents.tools.Executor``: the domain code never imports
Prefect, and only the person's answer in the form approves (no text in the data can).
"""
from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.input import RunInput

from configs.settings import load_settings


class ApprovalInput(RunInput):
    """The form a person fills in the Prefect UI to answer an approval request."""

    approve: bool = False
    approver: str = ""
    note: str = ""


def prefect_approver(timeout_s: int, poll_s: int):
    """An approver that pauses the current flow run until a person answers the form (or the pause times out:
    then the change is rejected)."""
    from prefect.flow_runs import pause_flow_run

    from agents.tools import Approval

    def approve(request):
        logger = get_run_logger()
        logger.warning("waiting for approval:\n%s", request.text())
        create_markdown_artifact(key="tool-approval-request", markdown="# Approval needed\n\n" + "\n".join(
            f"* {line}" for line in request.assessment.lines()) + "\n\nResume this run to answer.")
        try:
            answer = pause_flow_run(wait_for_input=ApprovalInput.with_initial_data(
                description=request.text()), timeout=timeout_s, poll_interval=poll_s)
        except TimeoutError:
            return Approval(False, "nobody", f"no answer within {timeout_s} s")
        return Approval(bool(answer.approve), answer.approver or "prefect-ui", answer.note)

    return approve


@flow(name="run-tool", log_prints=True)
def run_tool_flow(name: str, arguments: dict | None = None, execute: bool = False, config: str | None = None) -> dict:
    """Run one tool; with ``execute`` a mutating tool waits for approval in the UI before it changes anything."""
    from agents.tools.audit import markdown
    from flows.tools_builtin import executor

    settings = load_settings(config)
    cfg = settings.tools
    ex = executor(settings, approver=prefect_approver(cfg.approval_timeout_s, cfg.approval_poll_s),
                  who="prefect:run-tool")
    outcome = ex.run(name, arguments or {}, dry_run=not execute)
    records = ex.audit.recent(limit=20, tool=name) if ex.audit else []
    create_markdown_artifact(key="tool-audit", markdown=markdown(records, f"Tool calls: {name}"))
    get_run_logger().info("%s: %s %s", name, outcome.outcome, outcome.error or "")
    return outcome.to_dict()
