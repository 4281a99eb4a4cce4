"""Claude through the Anthropic Messages API, and on Amazon Bedrock through the same SDK's Bedrock client.

Bedrock uses ``anthropic.AnthropicBedrock`` (the Anthropic SDK signs requests with SigV4 from the usual AWS
credential chain and speaks Bedrock's ``/model/{id}/invoke`` with the Messages body) rather than boto3's
``bedrock-runtime``: Anthropic maintains it beside the API client, so requests, tool use, streaming events and
errors have one shape and one adapter here, where boto3's Converse API would need a second translation.
"""
from __future__ import annotations

import os
from collections.abc import Callable

from agents.llm.providers.base import Provider, ProviderFailure, classify, tool_arguments
from agents.llm.types import LlmRequest, LlmResponse, ToolCall, Usage


class AnthropicProvider(Provider):
    kind = "anthropic"

    def configured(self) -> str | None:
        key = self.config.api_key.get_secret_value() if self.config.api_key else os.environ.get("ANTHROPIC_API_KEY")
        return None if key else f"no API key (llm.providers.{self.name}.api_key or ANTHROPIC_API_KEY)"

    def _make_client(self):
        import anthropic

        key = self.config.api_key.get_secret_value() if self.config.api_key else None
        # max_retries=0: the gateway retries, backs off and falls back; the SDK must not retry underneath it.
        return anthropic.Anthropic(api_key=key, base_url=self.config.base_url, max_retries=0,
                                   timeout=self.config.timeout_s)

    def _params(self, request: LlmRequest, model: str, max_tokens: int) -> dict:
        params = {"model": model, "max_tokens": max_tokens, "messages": [m.model_dump() for m in request.messages]}
        if request.temperature is not None:
            # This SDK's signature has no temperature any more; the API still takes it for older models.
            params["extra_body"] = {"temperature": request.temperature}
        if request.system:
            params["system"] = request.system
        if request.tools:
            params["tools"] = [t.model_dump() for t in request.tools]
        return params

    def complete(self, request, model, max_tokens, on_text=None) -> LlmResponse:
        import anthropic

        params = self._params(request, model, max_tokens)
        try:
            if request.stream:
                return self._stream(params, model, on_text)
            message = self.client.messages.create(**params)
            return self._answer(message, model)
        except ProviderFailure:
            raise
        except Exception as exc:
            raise classify(self.name, exc, anthropic) from exc

    def _answer(self, message, model: str) -> LlmResponse:
        if not hasattr(message, "content") or not hasattr(message, "usage"):
            raise ProviderFailure(self.name, "malformed response: not a message", True)
        text, calls = [], []
        for block in message.content:
            if block.type == "text":
                text.append(block.text)
            elif block.type == "tool_use":
                if not isinstance(block.input, dict):
                    raise ProviderFailure(self.name, "malformed tool call: input is not an object", True)
                calls.append(ToolCall(id=block.id, name=block.name, arguments=block.input))
        return LlmResponse(provider=self.name, model=getattr(message, "model", None) or model, text="".join(text),
                           tool_calls=calls, stop_reason=message.stop_reason,
                           usage=Usage(input_tokens=message.usage.input_tokens or 0,
                                       output_tokens=message.usage.output_tokens or 0))

    def _stream(self, params: dict, model: str, on_text: Callable[[str], None] | None) -> LlmResponse:
        """Read the SSE events one by one: text goes to ``on_text`` as it arrives; a tool call's arguments
        arrive as JSON fragments and are parsed once the block closes."""
        blocks: dict[int, dict] = {}
        usage = Usage()
        stop_reason, finished, answered_model = None, False, model
        for event in self.client.messages.create(stream=True, **params):
            kind = event.type
            if kind == "message_start":
                usage.input_tokens = event.message.usage.input_tokens or 0
                answered_model = event.message.model or model
            elif kind == "content_block_start":
                block = event.content_block
                blocks[event.index] = {"type": block.type, "text": "", "json": "",
                                       "id": getattr(block, "id", None), "name": getattr(block, "name", None)}
            elif kind == "content_block_delta":
                delta, block = event.delta, blocks.get(event.index)
                if block is None:
                    raise ProviderFailure(self.name, "malformed stream: a delta before its block", True)
                if delta.type == "text_delta":
                    block["text"] += delta.text
                    if on_text:
                        on_text(delta.text)
                elif delta.type == "input_json_delta":
                    block["json"] += delta.partial_json
            elif kind == "message_delta":
                stop_reason = event.delta.stop_reason
                usage.output_tokens = event.usage.output_tokens or 0
            elif kind == "message_stop":
                finished = True
        if not finished:
            raise ProviderFailure(self.name, "malformed stream: ended before message_stop", True)
        text, calls = [], []
        for index in sorted(blocks):
            block = blocks[index]
            if block["type"] == "text":
                text.append(block["text"])
            elif block["type"] == "tool_use":
                calls.append(ToolCall(id=block["id"], name=block["name"],
                                      arguments=tool_arguments(self.name, block["json"])))
        return LlmResponse(provider=self.name, model=answered_model, text="".join(text), tool_calls=calls,
                           stop_reason=stop_reason, usage=usage)

    def count_tokens(self, request, model) -> int | None:
        params = self._params(request, model, 1)
        params.pop("max_tokens"), params.pop("extra_body", None)
        return self.client.messages.count_tokens(**params).input_tokens

    def probe(self) -> tuple[bool, str]:
        import anthropic

        try:
            self.client.models.list(limit=1)
            return True, "answers"
        except anthropic.APIStatusError as exc:
            # Any HTTP answer means the endpoint is there (a 401 says the key is wrong, not the network).
            return exc.status_code < 500, f"HTTP {exc.status_code}"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return False, type(exc).__name__


class BedrockProvider(AnthropicProvider):
    kind = "bedrock"

    def configured(self) -> str | None:
        return None if (self.config.region or os.environ.get("AWS_REGION")) else f"no region (llm.providers.{self.name}.region)"

    def _make_client(self):
        import anthropic

        return anthropic.AnthropicBedrock(aws_region=self.config.region, base_url=self.config.base_url,
                                          max_retries=0, timeout=self.config.timeout_s)

    def count_tokens(self, request, model) -> int | None:
        return None  # the Bedrock client has no token counter: the gateway estimates

    def probe(self) -> tuple[bool, str]:
        try:
            import boto3

            found = boto3.Session(region_name=self.config.region).get_credentials() is not None
            return found, "AWS credentials found" if found else "no AWS credentials"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return False, type(exc).__name__

