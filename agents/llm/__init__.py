"""The LLM gateway the agents call: providers (Anthropic, Bedrock, OpenAI-compatible, offline), routing per
task and data sensitivity, rate limits, token caps, a response cache, costs, retries, fallback and a circuit
breaker per provider. It imports no other package of the project; the settings arrive as an argument
(``Gateway(settings.llm, settings.home)``). See docs/llm.md.
"""
from agents.llm.gateway import Gateway, build_gateway
from agents.llm.types import (
    BudgetExceeded,
    LlmError,
    LlmRequest,
    LlmResponse,
    Message,
    RoutingError,
    ToolCall,
    ToolSpec,
    Usage,
)
from agents.llm.usage import Budget, CallRecord, cost_of, log_usage_to_mlflow

__all__ = ["Budget", "BudgetExceeded", "CallRecord", "Gateway", "LlmError", "LlmRequest", "LlmResponse",
           "Message", "RoutingError", "ToolCall", "ToolSpec", "Usage", "build_gateway", "cost_of",
           "log_usage_to_mlflow"]
