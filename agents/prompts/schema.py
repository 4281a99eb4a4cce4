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
