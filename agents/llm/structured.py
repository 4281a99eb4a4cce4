"""Answers that must be a pydantic model: validate, one repair round, then the caller's fallback.

    result = ask_structured(gateway, request, InvestigationAnswer, budget)
    if result.value is None:          # offline, no provider, or two invalid answers
        report = evidence_only_report(bundle)   # the investigation's own report
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from pydantic import BaseModel, ValidationError

from agents.llm.types import LlmError, LlmRequest, LlmResponse, Message


@dataclass
class Structured:
    value: BaseModel | None
    fell_back: bool
    reason: str = ""
    responses: list[LlmResponse] = field(default_factory=list)
    error: LlmError | None = None  # what stopped the calls (a BudgetExceeded: the token cap), when one did


def parse_answer(text: str, model: type[BaseModel]) -> BaseModel:
    """The JSON object in ``text`` (a fenced ```json block or the outermost braces) validated as ``model``."""
    body = text.strip()
    if "```" in body:
        body = body.split("```")[1].removeprefix("json").strip()
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end < start:
        raise ValueError("the answer holds no JSON object")
    return model.model_validate(json.loads(body[start:end + 1]))


def ask_structured(gateway, request: LlmRequest, model: type[BaseModel], budget=None) -> Structured:
    from agents.prompts import render

    responses: list[LlmResponse] = []
    try:
        response = gateway.complete(request, budget)
    except LlmError as exc:
        return Structured(None, True, f"no LLM answer: {exc}", responses, exc)
    responses.append(response)
    if response.offline:
        return Structured(None, True, "offline: no LLM configured or reachable", responses)
    try:
        return Structured(parse_answer(response.text, model), False, "", responses)
    except (ValueError, ValidationError) as exc:
        errors = str(exc)[:2000]
    repair_text, repair_hash = render("repair", errors=errors)
    repair = request.model_copy(update={
        "messages": [*request.messages, Message(role="assistant", content=response.text or "(empty)"),
                     Message(role="user", content=repair_text)],
        "templates": {**request.templates, "repair": repair_hash}})
    try:
        second = gateway.complete(repair, budget)
    except LlmError as exc:
        return Structured(None, True, f"repair round failed: {exc}", responses, exc)
    responses.append(second)
    try:
        return Structured(parse_answer(second.text, model), False, "", responses)
    except (ValueError, ValidationError) as exc:
        return Structured(None, True, f"invalid after one repair: {str(exc)[:300]}", responses)
