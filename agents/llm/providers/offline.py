"""The ``offline`` provider: no language model. Its answer is empty and marked ``offline``, so a caller falls
back to the evidence-only investigation report (agents.investigation.report)."""
from __future__ import annotations

from agents.llm.providers.base import Provider
from agents.llm.types import LlmResponse


class OfflineProvider(Provider):
    kind = "offline"

    @property
    def self_hosted(self) -> bool:
        return True  # nothing leaves the machine

    def complete(self, request, model, max_tokens, on_text=None) -> LlmResponse:
        return LlmResponse(provider=self.name, model=model, offline=True, stop_reason="offline")

    def probe(self) -> tuple[bool, str]:
        return True, "no LLM: evidence-only reports"
