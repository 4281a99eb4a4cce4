"""A real HTTP server (127.0.0.1, a free port, in a thread) that speaks enough of two LLM APIs for the gateway's
tests and benchmark: Anthropic's Messages API (``POST /v1/messages``, SSE streaming, tool use,
``/v1/messages/count_tokens``, Bedrock's ``/model/{id}/invoke``) and OpenAI's Chat Completions
(``POST /v1/chat/completions``, tools, streaming), plus ``GET /v1/models``.

Each test scripts what goes wrong, in order, per path:

    with LlmServer() as llm:
        llm.fail("/v1/messages", status=429, retry_after=0.2)    # the next call gets a 429, then normal again
        llm.fail("/v1/messages", truncate=True)                 # a body cut short
        llm.answer("/v1/messages", tool=("search_runbooks", {"query": "disk"}))   # the next answer calls a tool
        ...  # point a client at llm.url (Anthropic) or llm.url + "/v1" (OpenAI)
    llm.requests  # [{"path", "body", "headers", "started", "server_ms"}]

A normal answer echoes the last user text ("echo: ..."); usage counts a token per four characters.
"""
from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler
from typing import Self

from support.servers import ThreadedHttpServer


class LlmServer(ThreadedHttpServer):
    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s  # time every answer takes (the "model")
        self.requests: list[dict] = []
        self._faults: dict[str, deque] = defaultdict(deque)
        self._answers: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ scripting
    def fail(self, path: str, status: int | None = None, retry_after: float | None = None,
             truncate: bool = False, bad_json: bool = False, times: int = 1) -> None:
        for _ in range(times):
            self._faults[path].append({"status": status, "retry_after": retry_after, "truncate": truncate,
                                       "bad_json": bad_json})

    def answer(self, path: str, text: str | None = None, tool: tuple[str, dict | str] | None = None) -> None:
        """The next answer on ``path``: this text, or a call of tool ``(name, arguments)`` (a str is sent as is:
        broken JSON for the malformed-tool-call case)."""
        self._answers[path].append({"text": text, "tool": tool})

    def calls(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Self:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real APIs do
            disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms delayed-ACK stall

            def do_GET(self):
                server._models(self)

            def do_POST(self):
                server._post(self)

            def log_message(self, *args):
                pass

        self.url = self._serve(Handler)
        return self

    # ------------------------------------------------------------------ handling
    def _models(self, h) -> None:
        self._send(h, 200, {"data": [{"id": "test-model", "type": "model", "object": "model", "created": 0,
                                      "owned_by": "tests", "display_name": "test model",
                                      "created_at": "2026-01-01T00:00:00Z"}],
                            "has_more": False, "first_id": "test-model", "last_id": "test-model",
                            "object": "list"})

    def _post(self, h) -> None:
        started = time.perf_counter()
        body = json.loads(h.rfile.read(int(h.headers.get("Content-Length") or 0)) or b"{}")
        path = h.path.split("?")[0]
        route = "/model/invoke" if path.startswith("/model/") else path
        record = {"path": path, "body": body, "headers": {k.lower(): v for k, v in h.headers.items()}, "started": time.monotonic()}
        with self._lock:
            self.requests.append(record)
            fault = self._faults[route].popleft() if self._faults[route] else None
            scripted = self._answers[route].popleft() if self._answers[route] else None
        if self.delay_s:
            time.sleep(self.delay_s)
        if route == "/v1/messages/count_tokens":
            self._send(h, 200, {"input_tokens": _tokens(json.dumps(body))})
        elif fault and fault["status"]:
            self._error(h, fault["status"], fault["retry_after"], route)
        elif route in ("/v1/messages", "/model/invoke"):
            model = path.split("/")[2] if route == "/model/invoke" else body["model"]
            self._anthropic(h, body, model, scripted or {}, fault or {})
        elif route == "/v1/chat/completions":
            self._openai(h, body, scripted or {}, fault or {})
        else:
            self._send(h, 404, {"error": {"message": f"no route {path}"}})
        record["server_ms"] = (time.perf_counter() - started) * 1000

    def _error(self, h, status, retry_after, route) -> None:
        kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
        headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
        doc = ({"type": "error", "error": {"type": kind, "message": kind}} if route != "/v1/chat/completions"
               else {"error": {"message": kind, "type": kind, "code": status}})
        self._send(h, status, doc, headers)

    def _anthropic(self, h, body, model, scripted, fault) -> None:
        text, tool = self._reply(body, scripted, anthropic=True)
        usage_in = _tokens(json.dumps(body.get("messages")) + json.dumps(body.get("system", "")))
        usage_out = _tokens(text or json.dumps(tool or ""))
        content = [{"type": "text", "text": text}] if text is not None else []
        if tool:
            args = tool[1]
            content.append({"type": "tool_use", "id": "toolu_01", "name": tool[0],
                            "input": args if isinstance(args, dict) else {}})
        stop = "tool_use" if tool else "end_turn"
        if not body.get("stream"):
            message = {"id": "msg_01", "type": "message", "role": "assistant", "model": model, "content": content,
                       "stop_reason": stop, "stop_sequence": None,
                       "usage": {"input_tokens": usage_in, "output_tokens": usage_out}}
            self._send(h, 200, message, truncate=fault.get("truncate"), bad_json=fault.get("bad_json"))
            return
        events = [("message_start", {"type": "message_start", "message": {
            "id": "msg_01", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": usage_in, "output_tokens": 1}}})]
        index = 0
        if text is not None:
            events.append(("content_block_start", {"type": "content_block_start", "index": 0,
                                                   "content_block": {"type": "text", "text": ""}}))
            for piece in _pieces(text):
                events.append(("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                       "delta": {"type": "text_delta", "text": piece}}))
            events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
            index = 1
        if tool:
            raw = tool[1] if isinstance(tool[1], str) else json.dumps(tool[1])
            events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": "toolu_01", "name": tool[0], "input": {}}}))
            for piece in _pieces(raw):
                events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                                                       "delta": {"type": "input_json_delta", "partial_json": piece}}))
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        events.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop,
                                                                            "stop_sequence": None},
                                         "usage": {"output_tokens": usage_out}}))
        events.append(("message_stop", {"type": "message_stop"}))
        if fault.get("truncate"):
            events = events[: len(events) // 2]
        self._sse(h, [f"event: {name}\ndata: {json.dumps(doc)}\n\n" for name, doc in events])

    def _openai(self, h, body, scripted, fault) -> None:
        text, tool = self._reply(body, scripted, anthropic=False)
        usage = {"prompt_tokens": _tokens(json.dumps(body.get("messages"))),
                 "completion_tokens": _tokens(text or json.dumps(tool or ""))}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        calls = None
        if tool:
            args = tool[1] if isinstance(tool[1], str) else json.dumps(tool[1])
            calls = [{"id": "call_01", "type": "function", "function": {"name": tool[0], "arguments": args}}]
        finish = "tool_calls" if tool else "stop"
        head = {"id": "chatcmpl-01", "created": 0, "model": body["model"]}
        if not body.get("stream"):
            doc = {**head, "object": "chat.completion", "usage": usage, "choices": [{
                "index": 0, "finish_reason": finish,
                "message": {"role": "assistant", "content": text, "tool_calls": calls}}]}
            self._send(h, 200, doc, truncate=fault.get("truncate"), bad_json=fault.get("bad_json"))
            return
        chunks = []
        for piece in _pieces(text or ""):
            chunks.append({**head, "object": "chat.completion.chunk",
                           "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        if calls:
            call = calls[0]
            chunks.append({**head, "object": "chat.completion.chunk", "choices": [{"index": 0, "finish_reason": None,
                           "delta": {"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                                     "function": {"name": call["function"]["name"],
                                                                  "arguments": ""}}]}}]})
            for piece in _pieces(call["function"]["arguments"]):
                chunks.append({**head, "object": "chat.completion.chunk", "choices": [{
                    "index": 0, "finish_reason": None,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}}]})
        chunks.append({**head, "object": "chat.completion.chunk",
                       "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        chunks.append({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        lines = [f"data: {json.dumps(c)}\n\n" for c in chunks] + ["data: [DONE]\n\n"]
        if fault.get("truncate"):
            lines = lines[: len(lines) // 2]
        self._sse(h, lines)

    @staticmethod
    def _reply(body, scripted, anthropic: bool) -> tuple[str | None, tuple | None]:
        if scripted.get("tool"):
            return scripted.get("text"), scripted["tool"]
        if scripted.get("text") is not None:
            return scripted["text"], None
        last = body["messages"][-1]["content"]
        if isinstance(last, list):
            last = " ".join(str(b.get("text") or b.get("content") or "") for b in last)
        return f"echo: {last}", None

    @staticmethod
    def _send(h, status, doc, headers=None, truncate=False, bad_json=False) -> None:
        data = json.dumps(doc).encode()
        if bad_json:
            data = data[: len(data) // 2]  # complete HTTP, broken JSON
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        if truncate:
            h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(data[: len(data) // 2] if truncate else data)
        if truncate:
            h.wfile.flush()
            h.close_connection = True

    @staticmethod
    def _sse(h, parts: list[str]) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Connection", "close")
        h.end_headers()
        for part in parts:
            h.wfile.write(part.encode())
            h.wfile.flush()
        h.close_connection = True


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _pieces(text: str, size: int = 7) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]
