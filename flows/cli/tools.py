"""`cerebro tools list | run`: the tools the agents may call, run one through the executor (dry run by default;
a change runs only with --execute and an approval: --approve or a yes at the prompt)."""
from __future__ import annotations

import json

import typer

from flows.cli.common import ConfigOpt, JsonOpt, console, fail, out, print_json, settings_or_exit

HELP = "The tools the agents may call: list them, or run one through the executor (dry run, approval, audit)."


def list_cmd(as_json: bool = JsonOpt, config: str | None = ConfigOpt):
    """List every tool with its risk, reversibility, timeout and whether the allow-list lets it run."""
    settings = settings_or_exit(config)
    from flows.tools_builtin import executor

    ex = executor(settings)
    tools = ex.registry.list()
    if as_json:
        print_json([{**t.describe(), "allowed": ex.policy.allows(t)} for t in tools])
        return
    from rich.table import Table

    table = Table(title="Tools")
    table.add_column("name", no_wrap=True)
    for col in ("risk", "reversible", "timeout", "allowed", "source", "what it does"):
        table.add_column(col)
    for t in tools:
        table.add_row(t.name, t.risk, "yes" if t.reversible else "no", f"{t.timeout_s:g} s",
                      "yes" if ex.policy.allows(t) else "no", t.source, t.description)
    out.print(table)


def run(
    name: str = typer.Argument(..., help="The tool, e.g. deploy_history or k8s_scale (see `cerebro tools list`)."),
    args: str = typer.Option("{}", "--args", "-a", help="The tool's arguments as a JSON object."),
    dry_run: bool = typer.Option(True, "--dry-run/--execute", help="Plan only (the default), or make the change."),
    approve: bool = typer.Option(False, "--approve", help="Approve the change without a prompt (with --execute)."),
    as_json: bool = JsonOpt,
    config: str | None = ConfigOpt,
):
    """Run one tool through the executor: the allow-list (tools.allow), the dry run, the risk assessment (blast
    radius, reversibility, rollback), the approval and the audit log (<home>/tools/audit.db).

    Examples:

        cerebro tools run deploy_history --args '{"service": "checkout"}'

        cerebro tools run k8s_scale --args '{"deployment": "checkout", "replicas": 4}' --execute
    """
    try:
        arguments = json.loads(args)
    except json.JSONDecodeError as exc:
        fail(f"--args: not JSON ({exc.msg} at character {exc.pos}); e.g. --args '{{\"service\": \"checkout\"}}'", 2)
    if not isinstance(arguments, dict):
        fail(f"--args: expected a JSON object, got {type(arguments).__name__}", 2)
    settings = settings_or_exit(config)
    from agents.tools import Approval, ToolError
    from flows.tools_builtin import executor

    def approver(request):
        console.print("\n".join(request.assessment.lines()), highlight=False, soft_wrap=True)
        if approve:
            return Approval(True, f"{ex.who} (--approve)")
        try:
            yes = typer.confirm(f"Run {request.tool} for real?", default=False, err=True)
        except typer.Abort:
            yes = False
        return Approval(yes, f"{ex.who} (prompt)", "" if yes else "answered no at the prompt")

    ex = executor(settings, approver=approver)
    try:
        outcome = ex.run(name, arguments, dry_run=dry_run)
    except ToolError as exc:
        fail(str(exc), 2)
    if as_json:
        print_json(outcome.to_dict())
    else:
        if outcome.assessment and outcome.outcome == "dry-run":
            console.print("\n".join(outcome.assessment.lines()), highlight=False, soft_wrap=True)
        out.print(f"[bold]{outcome.tool}: {outcome.outcome}[/bold]", highlight=False)
        if outcome.result is not None:
            out.print_json(json.dumps(outcome.result, default=str))
        if outcome.error:
            console.print(f"[red]{outcome.error}[/red]", highlight=False, soft_wrap=True)
        if outcome.outcome == "dry-run":
            console.print("dry run: nothing changed; add --execute to make the change (it asks for approval)")
    if outcome.outcome in ("refused", "rejected"):
        raise typer.Exit(3)
    if not outcome.ok:
        raise typer.Exit(1)
