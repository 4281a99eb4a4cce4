"""What a caller sends the gateway and what comes back, independent of any provider's SDK."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Task = Literal["reasoning", "fast", "code"]


class ToolSpec(BaseModel):
    """A tool the model may call: its name, what it does, and a JSON schema of its arguments."""
    name: str
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ToolCall(BaseModel):
    id: str
    name: str
    arguments: dict[str, Any]


class Message(BaseModel):
    """One turn. ``content`` is text, or for a tool round trip the provider-neutral blocks:
    ``{"type": "tool_use", "id", "name", "input"}`` (assistant) and ``{"type": "tool_result", "tool_use_id",
    "content"}`` (user)."""
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class LlmRequest(BaseModel):
    task: Task = "reasoning"
    system: str = ""
    messages: list[Message]
    tools: list[ToolSpec] = Field(default_factory=list)
    max_tokens: int | None = Field(default=None, ge=1, description="output cap; empty: llm.max_tokens_per_call")
    temperature: float | None = Field(default=None, ge=0, le=2, description="empty: the model's default (newer "
                                      "Claude models take none)")
    sensitive: bool = Field(default=False, description="may reach self-hosted providers only")
    stream: bool = False
    templates: dict[str, str] = Field(default_factory=dict, description="template name -> hash, logged per call")


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0


class LlmResponse(BaseModel):
    provider: str
    model: str
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    stop_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    cached: bool = False
    offline: bool = Field(default=False, description="no LLM answered: fall back to the evidence-only report")
    latency_ms: float = 0.0
    attempts: list[str] = Field(default_factory=list, description="what was tried before this answer, and why "
                                "each try failed")


class LlmError(RuntimeError):
    """The gateway could not answer; the message says what was tried."""


class RoutingError(LlmError):
    """No provider may take the request (e.g. a sensitive request and no self-hosted provider)."""


class BudgetExceeded(LlmError):
    """A call or an investigation would spend more tokens than its cap."""
