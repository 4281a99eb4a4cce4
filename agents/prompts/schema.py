"""The answer an investigation agent must give, validated before anyone reads it."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class NextStep(BaseModel):
    action: str = Field(min_length=1)
    tool: str | None = Field(default=None, description="the tool that would carry it out")
    risk: Literal["read", "low", "high"] = "read"


class InvestigationAnswer(BaseModel):
    summary: str = Field(min_length=1, description="one or two sentences for the engineer on call")
    root_cause: str | None = Field(description="the service most likely at fault; null when nothing is abnormal")
    confidence: float = Field(ge=0, le=1)
    reasoning: list[str] = Field(default_factory=list, description="the steps that led there, short")
    citations: list[str] = Field(min_length=1, description="sources of the claims (evidence `source` or citation)")
    next_steps: list[NextStep] = Field(default_factory=list)


class RootCause(BaseModel):
    service: str = Field(min_length=1, description="a service named in the evidence (a ranked cause, an abnormal "
                         "metric's service, a changed service); never one the evidence does not contain")
    metric: str | None = Field(default=None, description="the abnormal metric that shows it, as the evidence names it")
    confidence: float = Field(ge=0, le=1)


class InvestigationAnalysis(BaseModel):
    """What the ``investigate`` flow asks the model for: checked against the evidence bundle before the report
    shows it (agents/investigation/analysis.py)."""
    summary: str = Field(min_length=1, description="one or two sentences for the engineer on call")
    root_cause: RootCause | None = Field(description="null when nothing is abnormal")
    reasoning: list[str] = Field(default_factory=list, description="the steps that led there, short")
    citations: list[str] = Field(min_length=1, description="the items the answer rests on: each a `source: ...` "
                                 "or a [citation] exactly as the evidence shows it")
    next_steps: list[NextStep] = Field(default_factory=list, description="safest first; `tool`: one of the "
                                       "tools on offer, or null")
