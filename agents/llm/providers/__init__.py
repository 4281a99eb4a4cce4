"""Provider adapters: one SDK call each, no retries of their own (the gateway's policy is the one in force)."""
from __future__ import annotations

from agents.llm.providers.anthropic_api import AnthropicProvider, BedrockProvider
from agents.llm.providers.base import Provider, ProviderFailure
from agents.llm.providers.offline import OfflineProvider
from agents.llm.providers.openai_compat import OpenAICompatibleProvider

KINDS: dict[str, type[Provider]] = {"anthropic": AnthropicProvider, "bedrock": BedrockProvider,
                                    "openai": OpenAICompatibleProvider, "offline": OfflineProvider}


def make_provider(name: str, config) -> Provider:
    return KINDS[config.kind](name, config)


__all__ = ["KINDS", "Provider", "ProviderFailure", "make_provider"]
