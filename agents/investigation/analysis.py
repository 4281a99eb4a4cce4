"""The LLM's analysis of an evidence bundle, held to that bundle.

The bundle goes to the gateway through the prompt templates (agents/prompts); the answer must be an
:class:`InvestigationAnalysis` whose root cause is a service the bundle contains and which cites at least one
item of it. An answer that breaks either rule gets the one repair round, with the reason; a second such answer is
rejected and the report stays evidence-only. Lesser slips are dropped and flagged: a citation the bundle does
not hold, a metric it does not show, a tool not on offer (and a next step's risk is its tool's, not the model's
word). Known secrets and credential-shaped text are masked in the prompt and the answer (:func:`scrub`).

    result = analyse(bundle, gateway, Budget(settings.llm.max_tokens_per_investigation), tools, secrets)
    result.status        # analysed | flagged | rejected | evidence-only

No LLM configured (``live=False``): nothing is sent and the report says so in one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from agents.investigation.models import EvidenceBundle
from agents.prompts.schema import InvestigationAnalysis

ANALYSIS_MAX_TOKENS = 2048  # the answer is a small JSON object; a lower output cap holds less of the budget
NO_LLM = (
    "Analysis: evidence-only, because no LLM is configured (llm.tasks.reasoning ends at offline or its "
    "provider has no API key; see docs/llm.md)."
)
MASK = "[redacted]"
# Credential shapes masked even when not configured here: API keys, AWS access keys, "password=..." pairs.
_SECRET_SHAPES = re.compile(
    r"\bsk-[A-Za-z0-9_\-]{16,}|\bAKIA[0-9A-Z]{16}\b|"
    r"(?P<name>(?i:\b(?:password|passwd|secret|token|api[_-]?key)\b)\s*[=:]\s*)[^\s,;]+"
)


class Analysis(BaseModel):
    """What the report, the artifact, MLflow and ``--json`` show of the LLM step."""

    status: Literal["analysed", "flagged", "rejected", "evidence-only"]
    note: str = Field(
        description="one line for the report: what was done, or why the analysis is evidence-only"
    )
    answer: InvestigationAnalysis | None = None
    flags: list[str] = Field(
        default_factory=list,
        description="claims dropped (not in the bundle) or corrected (a next step's risk: the tool's)",
    )
    capped: bool = Field(default=False, description="the per-investigation token cap stopped further calls")
    route: str | None = Field(default=None, description="PROVIDER:MODEL that answered")
    calls: list[dict] = Field(
        default_factory=list,
        description="one row per call: provider, model, tokens, "
        "cached, cost_usd, latency_ms (no prompt text)",
    )
    total: dict = Field(default_factory=dict, description="the investigation's calls, tokens and cost")
    mlflow_run: str | None = None


# ---------------------------------------------------------------------------------------------- the bundle's facts
def _norm(text: str) -> str:
    t = " ".join(str(text).split()).strip("[]`'\" ").lower()
    return t.removeprefix("source:").strip()


class Evidence:
    """What the answer may refer to: the bundle's services, metrics and citable sources, and the tools offered."""

    def __init__(
        self, bundle: EvidenceBundle, tools: Iterable[str] = (), risks: dict[str, str] | None = None
    ):
        b = bundle
        self.services = sorted(
            {
                s
                for s in [
                    b.target,
                    *b.suspects,
                    *(a.service for a in b.abnormal),
                    *(c.service for c in b.changes),
                    *(d.service for d in b.detector),
                    *(r.service for r in b.risks),
                    *(s.service for s in b.spans),
                    *((b.graph.suspects + [x for e in b.graph.edges for x in e]) if b.graph else []),
                ]
                if s
            }
        )
        self.metrics = sorted(
            {
                m
                for m in [
                    b.target_metric,
                    *(a.metric for a in b.abnormal),
                    *(e.metric for c in b.causes for e in c.evidence),
                ]
                if m
            }
        )
        sources = set(_sources(b.model_dump(mode="json")))
        sources |= {h.citation for h in [*b.incidents, *b.runbooks] if h.citation}
        self.citations = {_norm(s): s for s in sources if s}
        self.tools = set(tools)
        self.risks = risks or {}

    def cites(self, citation: str) -> bool:
        """Whether ``citation`` names an item of the bundle: exactly, or a file without its section."""
        c = _norm(citation)
        if not c:
            return False
        return c in self.citations or any(known.startswith((c + " ", c + "#")) for known in self.citations)

    def service(self, name: str) -> str | None:
        low = name.strip().lower()
        return next((s for s in self.services if s.lower() == low), None)


def _sources(doc) -> Iterable[str]:
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "source" and isinstance(value, str):
                yield value
            else:
                yield from _sources(value)
    elif isinstance(doc, list):
        for item in doc:
            yield from _sources(item)


def grounded(evidence: Evidence) -> type[InvestigationAnalysis]:
    """The answer model with the two hard rules: a validation error, so the repair round tells the model why."""

    class GroundedAnalysis(InvestigationAnalysis):
        @model_validator(mode="after")
        def _in_the_bundle(self):
            problems = []
            if self.root_cause is not None and evidence.service(self.root_cause.service) is None:
                problems.append(
                    f"root_cause.service {self.root_cause.service!r} is not in the evidence; name one "
                    f"of {', '.join(evidence.services) or 'none'} or null"
                )
            if not any(evidence.cites(c) for c in self.citations):
                problems.append(
                    "no citation names an item of the evidence; cite a `source: ...` or a [citation] "
                    "exactly as the evidence shows it"
                )
            if problems:
                raise ValueError("; ".join(problems))
            return self

    return GroundedAnalysis


def check(answer: InvestigationAnalysis, evidence: Evidence) -> tuple[InvestigationAnalysis, list[str]]:
    """The answer with what the bundle does not hold dropped, and a flag for each thing dropped."""
    flags = []
    kept = [c for c in answer.citations if evidence.cites(c)]
    flags += [f"citation {c!r} is not in the evidence: dropped" for c in answer.citations if c not in kept]
    root = answer.root_cause
    if root is not None:
        root = root.model_copy(update={"service": evidence.service(root.service) or root.service})
        if root.metric and root.metric not in evidence.metrics:
            flags.append(f"metric {root.metric!r} is not among the evidence's abnormal metrics: dropped")
            root = root.model_copy(update={"metric": None})
    steps = []
    for step in answer.next_steps:
        if step.tool and step.tool not in evidence.tools:
            flags.append(
                f"next step {step.action!r} names tool {step.tool!r}, which is not on offer: tool dropped"
            )
            step = step.model_copy(update={"tool": None})
        elif step.tool and evidence.risks.get(step.tool, step.risk) != step.risk:
            # The registry's risk, not the model's word: a step must not look safer than its tool is.
            real = evidence.risks[step.tool]
            flags.append(
                f"next step {step.action!r}: tool {step.tool!r} is {real!r} risk, not {step.risk!r}: corrected"
            )
            step = step.model_copy(update={"risk": real})
        steps.append(step)
    return answer.model_copy(update={"citations": kept, "root_cause": root, "next_steps": steps}), flags


# ---------------------------------------------------------------------------------------------- secrets
def scrub(text: str, secrets: Sequence[str] = ()) -> str:
    """``text`` with every known secret and anything shaped like a credential masked (``password=[redacted]``)."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _SECRET_SHAPES.sub(lambda m: (m.group("name") or "") + MASK, text)


def _scrub_model(model: BaseModel, secrets: Sequence[str]):
    """A pydantic model with every string in it scrubbed (the answer, before anyone reads it)."""

    def walk(value):
        if isinstance(value, str):
            return scrub(value, secrets)
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    return type(model).model_validate(walk(model.model_dump()))


# ---------------------------------------------------------------------------------------------- the step
def analyse(
    bundle: EvidenceBundle,
    gateway,
    budget,
    tools: Sequence = (),
    secrets: Sequence[str] = (),
    live: bool = True,
    task: str = "reasoning",
    risks: dict[str, str] | None = None,
) -> Analysis:
    """Ask the model about ``bundle`` (one call, one repair round at most) and hold its answer to the bundle.
    ``tools``: ``ToolSpec``s listed as on offer (named in next steps; not called in this step); ``risks``: each
    tool's risk, which a next step naming it is shown with. ``live``: a
    real provider is routed for ``task``; when not, nothing is sent."""
    if not live:
        return Analysis(status="evidence-only", note=NO_LLM)
    from agents.llm import BudgetExceeded
    from agents.llm.structured import ask_structured

    evidence = Evidence(bundle, [t.name for t in tools], risks)
    request = analysis_request(bundle, tools, secrets, task)
    result = ask_structured(gateway, request, grounded(evidence), budget)
    usage = _usage(budget)
    answered = next((r for r in reversed(result.responses) if not r.offline), None)
    route = f"{answered.provider}:{answered.model}" if answered else None
    if result.value is None:
        capped = isinstance(result.error, BudgetExceeded)
        return Analysis(
            status="rejected" if "invalid after one repair" in result.reason else "evidence-only",
            note=_why_not(result, capped, budget, secrets),
            capped=capped,
            route=route,
            **usage,
        )
    answer = _scrub_model(InvestigationAnalysis.model_validate(result.value.model_dump()), secrets)
    answer, flags = check(answer, evidence)
    status = "flagged" if flags else "analysed"
    note = f"Analysis by {route}, checked against the evidence" + (
        f": {len(flags)} claim{'s' if len(flags) > 1 else ''} dropped or corrected."
        if flags
        else ": every claim cites it."
    )
    return Analysis(status=status, note=note, answer=answer, flags=flags, route=route, **usage)


def analysis_request(
    bundle: EvidenceBundle, tools: Sequence = (), secrets: Sequence[str] = (), task: str = "reasoning"
):
    """The gateway request: the templates over the bundle, the tools listed (this step calls none, so none is
    offered to the API), the answer's output cap, known secrets masked."""
    from agents.prompts import investigation_request

    question = bundle.question.text or f"What is wrong with {bundle.target or 'the fleet'}, and why?"
    request = investigation_request(bundle, question, tools, task=task, output_model=InvestigationAnalysis)
    return request.model_copy(
        update={
            "tools": [],
            "max_tokens": ANALYSIS_MAX_TOKENS,
            "system": scrub(request.system, secrets),
            "messages": [
                m.model_copy(update={"content": scrub(m.content, secrets)}) for m in request.messages
            ],
        }
    )


def _why_not(result, capped: bool, budget, secrets) -> str:
    if capped:
        return (
            f"Analysis: evidence-only; the token cap for one investigation "
            f"(llm.max_tokens_per_investigation = {budget.max_tokens:,}) stopped further calls."
        )
    if result.reason.startswith("invalid after one repair"):
        return (
            "Analysis rejected: the LLM's answer broke the schema or the evidence again after one repair round ("
            + scrub(result.reason.removeprefix("invalid after one repair: "), secrets)[:300]
            + "); the evidence-only findings stand."
        )
    attempts = next((r.attempts for r in reversed(result.responses) if r.attempts), [])
    why = "; ".join(attempts) if attempts else result.reason
    return f"Analysis: evidence-only; no LLM answered ({scrub(why, secrets)[:300]})."


def _usage(budget) -> dict:
    calls = [
        {
            "provider": r.provider,
            "model": r.model,
            "outcome": r.outcome,
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
            "cached": r.cached,
            "cost_usd": round(r.cost_usd, 6),
            "latency_ms": round(r.latency_ms, 1),
        }
        for r in budget.records
    ]
    return {"calls": calls, "total": budget.summary()}
