"""The one way a tool runs: allow-list, argument validation, dry run by default, risk assessment, approval,
timeout, output budget and the audit log.

Approval comes only from the ``approver`` the caller injects (a person at the CLI, a Prefect pause answered
in the UI): an ``Approval`` object, never a value found in arguments, tool output or any other data, so text
in logs or documents cannot approve a change. A mutating tool with no approver is refused.
"""
from __future__ import annotations

import concurrent.futures as cf
import fnmatch
import getpass
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ValidationError

from agents.tools.audit import AuditLog, AuditRecord
from agents.tools.budget import cut_to_budget
from agents.tools.registry import Tool, ToolError, ToolRegistry
from agents.tools.risk import Assessment, transitive_callers


@dataclass(frozen=True)
class Approval:
    """A person's answer to one approval request."""

    approved: bool
    by: str
    note: str = ""


@dataclass(frozen=True)
class ApprovalRequest:
    tool: str
    arguments: dict
    assessment: Assessment
    dry_run_result: object = None

    def text(self) -> str:
        return "\n".join([f"Run {self.tool} with {self.arguments}?", *self.assessment.lines()])


Approver = Callable[[ApprovalRequest], Approval]


@dataclass
class Policy:
    """What configuration allows: ``allow`` holds tool names or patterns (``k8s_*``); ``@read`` allows every
    read-only tool. ``dry_run``: mutating tools only plan unless a call asks to execute."""

    allow: list[str] = field(default_factory=lambda: ["@read"])
    dry_run: bool = True

    def allows(self, tool: Tool) -> bool:
        for pattern in self.allow:
            if pattern == "@read" and tool.risk == "read":
                return True
            if fnmatch.fnmatchcase(tool.name, pattern):
                return True
        return False


@dataclass
class Outcome:
    tool: str
    outcome: str  # ok | dry-run | rejected | refused | failed | timed out
    result: object = None
    cut: bool = False
    assessment: Assessment | None = None
    approval: Approval | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("ok", "dry-run")

    def to_dict(self) -> dict:
        return {"tool": self.tool, "outcome": self.outcome, "result": self.result, "cut": self.cut,
                "assessment": self.assessment.model_dump() if self.assessment else None,
                "approval": None if self.approval is None else {"approved": self.approval.approved,
                                                               "by": self.approval.by, "note": self.approval.note},
                "error": self.error}


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass
class Executor:
    registry: ToolRegistry
    policy: Policy = field(default_factory=Policy)
    audit: AuditLog | None = None
    approver: Approver | None = None
    edges: Callable[[], list[tuple[str, str]]] | None = None  # the service graph, read when a change is assessed
    who: str = field(default_factory=_who)

    def parse(self, tool: Tool, arguments: dict | None) -> BaseModel:
        try:
            return tool.args.model_validate(arguments or {})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                                 for e in exc.errors())
            raise ToolError(f"{tool.name}: bad arguments: {problems}") from None

    def assess(self, tool: Tool, args: BaseModel, plan: str = "") -> Assessment:
        target = tool.target(args) if tool.target else None
        radius: list[str] = []
        if target and self.edges is not None:
            try:
                radius = transitive_callers(self.edges(), target)
            except Exception as exc:  # noqa: BLE001 - a missing graph must not hide the rest of the assessment
                plan = f"{plan} (blast radius unknown: {type(exc).__name__}: {exc})".strip()
        rollback = tool.rollback(args) if tool.rollback else ("none needed" if tool.reversible else "none: cannot be undone")
        return Assessment(tool=tool.name, risk=tool.risk, target=target, blast_radius=radius,
                          reversible=tool.reversible, rollback=rollback, plan=plan)

    def _call(self, tool: Tool, fn: Callable, *args, **kwargs):
        pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"tool-{tool.name}")
        try:
            return pool.submit(fn, *args, **kwargs).result(timeout=tool.timeout_s)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _record(self, tool: Tool, arguments: dict, dry_run: bool, out: Outcome) -> Outcome:
        if self.audit is not None:
            a = out.approval
            self.audit.append(AuditRecord(
                who=self.who, tool=tool.name, risk=tool.risk, arguments=arguments, dry_run=dry_run,
                outcome=out.outcome, approved=None if a is None else a.approved, approved_by=a.by if a else None,
                approval_note=a.note if a else None, result=out.result, error=out.error))
        return out

    def run(self, name: str, arguments: dict | None = None, *, dry_run: bool | None = None) -> Outcome:
        """Run one tool. Read tools run at once; a mutating tool plans (dry run) unless ``dry_run=False``,
        and then runs only after the approver approves. Refusals and failures are Outcomes, audited."""
        tool = self.registry.get(name)
        arguments = dict(arguments or {})
        dry = self.policy.dry_run if dry_run is None else dry_run
        dry = dry and tool.mutating
        if not self.policy.allows(tool):
            return self._record(tool, arguments, dry, Outcome(
                tool.name, "refused", error=f"{tool.name} is not on the allow-list (tools.allow: "
                f"{', '.join(self.policy.allow) or 'empty'}); add it to the configuration to allow it"))
        args = self.parse(tool, arguments)
        if not tool.mutating:
            return self._finish(tool, arguments, False, lambda: tool.fn(args), None, None)
        plan = self._guarded(tool, lambda: tool.fn(args, dry_run=True))
        if isinstance(plan, Outcome):  # the dry run itself failed: nothing to approve
            plan.assessment = self.assess(tool, args)
            return self._record(tool, arguments, True, plan)
        assessment = self.assess(tool, args, plan=_plan_text(plan))
        if dry:
            out = Outcome(tool.name, "dry-run", *cut_to_budget(plan, tool.max_tokens), assessment=assessment)
            return self._record(tool, arguments, True, out)
        if self.approver is None:
            return self._record(tool, arguments, False, Outcome(
                tool.name, "refused", assessment=assessment,
                error=f"{tool.name} changes systems and nobody can approve it here (no approver)"))
        approval = self.approver(ApprovalRequest(tool.name, arguments, assessment, plan))
        if not isinstance(approval, Approval):  # only the injected approver's own answer counts
            raise ToolError(f"the approver answered {type(approval).__name__}, not an Approval")
        if not approval.approved:
            return self._record(tool, arguments, False, Outcome(
                tool.name, "rejected", assessment=assessment, approval=approval,
                error=f"not approved by {approval.by}" + (f": {approval.note}" if approval.note else "")))
        return self._finish(tool, arguments, False, lambda: tool.fn(args, dry_run=False), assessment, approval)

    def _guarded(self, tool: Tool, thunk) -> object:
        try:
            return self._call(tool, thunk)
        except cf.TimeoutError:
            # A thread cannot be stopped: a change already sent may still land. Say so rather than imply it did not.
            unsure = "" if tool.risk == "read" else "; the change may still complete: check the target before retrying"
            return Outcome(tool.name, "timed out", error=f"{tool.name} took longer than {tool.timeout_s:g} s{unsure}")
        except Exception as exc:  # noqa: BLE001 - a failing tool is an audited outcome, not a crash
            return Outcome(tool.name, "failed", error=f"{type(exc).__name__}: {exc}")

    def _finish(self, tool, arguments, dry, thunk, assessment, approval) -> Outcome:
        result = self._guarded(tool, thunk)
        if isinstance(result, Outcome):
            result.assessment, result.approval = assessment, approval
            return self._record(tool, arguments, dry, result)
        value, cut = cut_to_budget(result, tool.max_tokens)
        return self._record(tool, arguments, dry, Outcome(tool.name, "ok", value, cut, assessment, approval))


def _plan_text(plan) -> str:
    if isinstance(plan, dict) and "plan" in plan:
        return str(plan["plan"])
    return "" if plan is None else str(plan)[:500]
