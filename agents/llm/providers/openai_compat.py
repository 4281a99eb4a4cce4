"""Any OpenAI-compatible Chat Completions endpoint: a self-hosted Llama behind vLLM, Ollama or llama.cpp's server.

Tool calls are OpenAI's ``tools`` / ``tool_calls`` (arguments arrive as a JSON string, parsed and checked here:
small self-hosted models often write broken JSON, which counts as a malformed answer and is retried).
"""
from __future__ import annotations

import json

from agents.llm.providers.base import Provider, ProviderFailure, classify, tool_arguments
from agents.llm.types import LlmRequest, LlmResponse, ToolCall, Usage


class OpenAICompatibleProvider(Provider):
    kind = "openai"

    def configured(self) -> str | None:
        return None if self.config.base_url else f"no base_url (llm.providers.{self.name}.base_url)"

    def _make_client(self):
        import openai

        key = self.config.api_key.get_secret_value() if self.config.api_key else "not-needed"
        return openai.OpenAI(api_key=key, base_url=self.config.base_url, max_retries=0, timeout=self.config.timeout_s)

    def complete(self, request, model, max_tokens, on_text=None) -> LlmResponse:
        import openai

        params = {"model": model, "max_tokens": max_tokens, "messages": to_openai_messages(request)}
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.tools:
            params["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                                 "parameters": t.input_schema}}
                               for t in request.tools]
        try:
            if request.stream:
                return self._stream(params, model, on_text)
            return self._answer(self.client.chat.completions.create(**params), model)
        except ProviderFailure:
            raise
        except Exception as exc:
            raise classify(self.name, exc, openai) from exc

    def _answer(self, completion, model) -> LlmResponse:
        if not getattr(completion, "choices", None):
            raise ProviderFailure(self.name, "malformed response: no choices", True)
        choice = completion.choices[0]
        calls = [ToolCall(id=c.id, name=c.function.name, arguments=tool_arguments(self.name, c.function.arguments))
                 for c in (choice.message.tool_calls or [])]
        usage = completion.usage
        return LlmResponse(provider=self.name, model=completion.model or model, text=choice.message.content or "",
                           tool_calls=calls, stop_reason=choice.finish_reason,
                           usage=Usage(input_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                                       output_tokens=getattr(usage, "completion_tokens", 0) or 0))

    def _stream(self, params, model, on_text) -> LlmResponse:
        params["stream_options"] = {"include_usage": True}
        text, calls, usage = [], {}, Usage()
        finish, answered_model = None, model
        for chunk in self.client.chat.completions.create(stream=True, **params):
            answered_model = chunk.model or answered_model
            if chunk.usage:
                usage = Usage(input_tokens=chunk.usage.prompt_tokens or 0,
                              output_tokens=chunk.usage.completion_tokens or 0)
            for choice in chunk.choices:
                delta = choice.delta
                if delta.content:
                    text.append(delta.content)
                    if on_text:
                        on_text(delta.content)
                for part in delta.tool_calls or []:
                    call = calls.setdefault(part.index, {"id": None, "name": "", "args": ""})
                    call["id"] = part.id or call["id"]
                    if part.function:
                        call["name"] += part.function.name or ""
                        call["args"] += part.function.arguments or ""
                finish = choice.finish_reason or finish
        if finish is None:
            raise ProviderFailure(self.name, "malformed stream: ended without a finish reason", True)
        tool_calls = [ToolCall(id=c["id"] or f"call_{i}", name=c["name"],
                               arguments=tool_arguments(self.name, c["args"])) for i, c in sorted(calls.items())]
        return LlmResponse(provider=self.name, model=answered_model, text="".join(text), tool_calls=tool_calls,
                           stop_reason=finish, usage=usage)

    def probe(self) -> tuple[bool, str]:
        try:
            models = [m.id for m in self.client.models.list()]
            return True, ", ".join(models[:3]) or "answers"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return False, type(exc).__name__


def to_openai_messages(request: LlmRequest) -> list[dict]:
    """The neutral turns in Chat Completions form: the system prompt first, tool calls as ``tool_calls``,
    tool results as ``tool`` messages."""
    out = [{"role": "system", "content": request.system}] if request.system else []
    for message in request.messages:
        if isinstance(message.content, str):
            out.append({"role": message.role, "content": message.content})
            continue
        texts = [b.get("text", "") for b in message.content if b.get("type") == "text"]
        uses = [b for b in message.content if b.get("type") == "tool_use"]
        results = [b for b in message.content if b.get("type") == "tool_result"]
        if uses:
            out.append({"role": "assistant", "content": "".join(texts) or None,
                        "tool_calls": [{"id": u["id"], "type": "function",
                                        "function": {"name": u["name"], "arguments": json.dumps(u["input"])}}
                                       for u in uses]})
        for r in results:
            content = r.get("content")
            out.append({"role": "tool", "tool_call_id": r["tool_use_id"],
                        "content": content if isinstance(content, str) else json.dumps(content)})
        if texts and not uses:
            out.append({"role": message.role, "content": "".join(texts)})
    return out
