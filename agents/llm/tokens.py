"""A local token estimate for when the provider has no counter (or it cannot be reached).

About four characters a token for English and JSON with Claude's and Llama's tokenizers; the estimate leans
high (3.5) so caps and token limits err on the safe side.
"""
from __future__ import annotations

import json

from agents.llm.types import LlmRequest

CHARS_PER_TOKEN = 3.5


def estimate_tokens(request: LlmRequest) -> int:
    chars = len(request.system)
    for message in request.messages:
        chars += len(message.content) if isinstance(message.content, str) else len(json.dumps(message.content))
        chars += 8  # role and turn markers
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description) + len(json.dumps(tool.input_schema))
    return int(chars / CHARS_PER_TOKEN) + 1
