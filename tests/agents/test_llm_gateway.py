"""The LLM gateway against a real local HTTP server speaking the Messages and Chat Completions APIs
(tests/support/llm_server.py): the SDKs make real requests; nothing of theirs is mocked."""
from __future__ import annotations

import threading
import time
import uuid

import pytest
from support.llm_server import LlmServer

from agents.llm import Budget, BudgetExceeded, Gateway, LlmError, LlmRequest, Message, RoutingError, ToolSpec
from agents.llm.cache import NoCache, RedisCache, SqliteCache

MESSAGES = "/v1/messages"
CHAT = "/v1/chat/completions"
SEARCH = ToolSpec(name="search_runbooks", description="Search the runbooks.",
                  input_schema={"type": "object", "properties": {"query": {"type": "string"}},
                                "required": ["query"]})


@pytest.fixture(scope="module")
def llm():
    with LlmServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _clean(llm):
    llm.requests.clear()
    llm._faults.clear()
    llm._answers.clear()


def settings(url: str, **over):
    from configs.settings import LlmSettings

    claude = {"kind": "anthropic", "base_url": url, "api_key": "sk-test-secret", "max_retries": 2}
    llama = {"kind": "openai", "base_url": url + "/v1", "self_hosted": True, "max_retries": 2}
    claude.update(over.pop("claude", {}))
    llama.update(over.pop("llama", {}))
    providers = {"claude": claude, "llama": llama, "offline": {"kind": "offline"}, **over.pop("more", {})}
    doc = {"providers": providers,
           "tasks": {"reasoning": "claude:claude-test", "fast": "llama:llama-test", "code": "claude:claude-test",
                     "embedding": "minilm:all-MiniLM-L6-v2"},
           "fallback": ["llama:llama-test", "offline:none"],
           "prices": {"claude-test": {"input_per_mtok": 3, "output_per_mtok": 15}},
           "cache": "none", "backoff_base_s": 0.01, "backoff_max_s": 2}
    doc.update(over)
    return LlmSettings(**doc)


def gateway(llm, tmp_path, cache=None, **over) -> Gateway:
    return Gateway(settings(llm.url, **over), tmp_path, cache=cache or NoCache())


def ask(text="why is checkout slow?", **kw) -> LlmRequest:
    return LlmRequest(system="You are an SRE.", messages=[Message(role="user", content=text)], **kw)


# ---------------------------------------------------------------------------------------------- protocols
def test_anthropic_tool_use_round_trip(llm, tmp_path):
    gw = gateway(llm, tmp_path)
    llm.answer(MESSAGES, text="Let me look.", tool=("search_runbooks", {"query": "disk full"}))
    first = gw.complete(ask(tools=[SEARCH]))
    assert first.provider == "claude" and first.stop_reason == "tool_use"
    assert [(c.name, c.arguments) for c in first.tool_calls] == [("search_runbooks", {"query": "disk full"})]
    sent = llm.calls(MESSAGES)[0]
    assert sent["body"]["tools"][0]["input_schema"]["required"] == ["query"]
    assert sent["body"]["system"] == "You are an SRE."
    assert "sk-test-secret" in (sent["headers"].get("x-api-key", "") + sent["headers"].get("authorization", ""))
    # The tool's result goes back as a tool_result block; the server echoes it.
    call = first.tool_calls[0]
    follow = ask(tools=[SEARCH])
    follow.messages += [Message(role="assistant", content=[{"type": "tool_use", "id": call.id, "name": call.name,
                                                            "input": call.arguments}]),
                        Message(role="user", content=[{"type": "tool_result", "tool_use_id": call.id,
                                                       "content": "runbooks/disk.md: free space"}])]
    second = gw.complete(follow)
    assert second.text == "echo: runbooks/disk.md: free space" and not second.tool_calls


def test_anthropic_sse_streaming_text_and_tool(llm, tmp_path):
    gw = gateway(llm, tmp_path)
    pieces: list[str] = []
    llm.answer(MESSAGES, text="The database is saturated.", tool=("search_runbooks", {"query": "db cpu"}))
    response = gw.complete(ask(stream=True, tools=[SEARCH]), on_text=pieces.append)
    assert llm.calls(MESSAGES)[0]["body"]["stream"] is True
    assert len(pieces) > 1 and "".join(pieces) == response.text == "The database is saturated."
    assert response.tool_calls[0].arguments == {"query": "db cpu"}
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0


def test_openai_compatible_tools_and_streaming(llm, tmp_path):
    gw = gateway(llm, tmp_path)
    llm.answer(CHAT, tool=("search_runbooks", {"query": "oom"}))
    response = gw.complete(ask(task="fast", tools=[SEARCH]))
    assert response.provider == "llama" and response.tool_calls[0].arguments == {"query": "oom"}
    body = llm.calls(CHAT)[0]["body"]
    assert body["messages"][0] == {"role": "system", "content": "You are an SRE."}
    assert body["tools"][0]["function"]["parameters"]["required"] == ["query"]
    pieces: list[str] = []
    llm.answer(CHAT, tool=("search_runbooks", {"query": "disk"}))
    streamed = gw.complete(ask("hello there", task="fast", stream=True, tools=[SEARCH]), on_text=pieces.append)
    assert streamed.tool_calls[0].arguments == {"query": "disk"} and streamed.stop_reason == "tool_calls"
    text = gw.complete(ask("hello there", task="fast", stream=True), on_text=pieces.append)
    assert text.text == "echo: hello there" == "".join(pieces) and text.usage.output_tokens > 0


# ---------------------------------------------------------------------------------------------- failures
def test_429_retry_after_is_honoured(llm, tmp_path):
    gw = gateway(llm, tmp_path)
    llm.fail(MESSAGES, status=429, retry_after=0.3)
    response = gw.complete(ask())
    first, second = llm.calls(MESSAGES)
    assert second["started"] - first["started"] >= 0.3
    assert response.provider == "claude" and "rate limited (429)" in response.attempts[0]


def test_retry_after_longer_than_the_cap_falls_back_at_once(llm, tmp_path):
    gw = gateway(llm, tmp_path)
    llm.fail(MESSAGES, status=429, retry_after=60)
    started = time.monotonic()
    response = gw.complete(ask())
    assert time.monotonic() - started < 5
    assert len(llm.calls(MESSAGES)) == 1 and response.provider == "llama"


@pytest.mark.parametrize("status", [500, 503, 529])
def test_server_errors_and_overload_are_retried(llm, tmp_path, status):
    gw = gateway(llm, tmp_path)
    llm.fail(MESSAGES, status=status, times=2)
    response = gw.complete(ask())
    assert response.provider == "claude" and len(llm.calls(MESSAGES)) == 3
    assert len(response.attempts) == 2 and (status != 529 or "overloaded (529)" in response.attempts[0])


@pytest.mark.parametrize("path,task,stream", [(MESSAGES, "reasoning", False), (MESSAGES, "reasoning", True),
                                              (CHAT, "fast", False), (CHAT, "fast", True)])
def test_truncated_body_is_retried(llm, tmp_path, path, task, stream):
    gw = gateway(llm, tmp_path)
    llm.fail(path, truncate=True)
    response = gw.complete(ask(task=task, stream=stream))
    assert len(llm.calls(path)) == 2 and response.text == "echo: why is checkout slow?"
    assert response.attempts and ("connection" in response.attempts[0] or "malformed" in response.attempts[0])


def test_broken_json_and_broken_tool_arguments_are_retried(llm, tmp_path):
    gw = gateway(llm, tmp_path)
    llm.fail(CHAT, bad_json=True)
    assert gw.complete(ask(task="fast")).text == "echo: why is checkout slow?"
    llm.answer(CHAT, tool=("search_runbooks", '{"query": "disk'))  # the JSON of the arguments stops short
    llm.answer(CHAT, tool=("search_runbooks", {"query": "disk"}))
    response = gw.complete(ask(task="fast", tools=[SEARCH]))
    assert response.tool_calls[0].arguments == {"query": "disk"}
    assert "malformed tool call" in response.attempts[0]


def test_primary_failing_falls_back_to_the_second_provider(llm, tmp_path):
    gw = gateway(llm, tmp_path)
    llm.fail(MESSAGES, status=500, times=3)
    response = gw.complete(ask())
    assert response.provider == "llama" and response.model == "llama-test"
    assert len(llm.calls(MESSAGES)) == 3 and len(llm.calls(CHAT)) == 1  # 1 try + 2 retries, then the fallback


def test_client_errors_fall_back_without_retrying(llm, tmp_path):
    gw = gateway(llm, tmp_path)
    llm.fail(MESSAGES, status=401)
    assert gw.complete(ask()).provider == "llama" and len(llm.calls(MESSAGES)) == 1


def test_sdk_retries_are_off(llm, tmp_path):
    gw = gateway(llm, tmp_path, claude={"max_retries": 0}, fallback=["offline:none"])
    llm.fail(MESSAGES, status=500)
    assert gw.complete(ask()).offline
    assert len(llm.calls(MESSAGES)) == 1  # neither the SDK nor the gateway tried again


def test_circuit_opens_after_repeated_failures(llm, tmp_path):
    gw = gateway(llm, tmp_path, claude={"max_retries": 0, "breaker_failures": 2, "breaker_reset_s": 60})
    llm.fail(MESSAGES, status=503, times=2)
    gw.complete(ask())
    gw.complete(ask())
    third = gw.complete(ask())
    assert len(llm.calls(MESSAGES)) == 2 and third.provider == "llama"
    assert "claude: circuit open" in third.attempts and gw.breakers["claude"].state == "open"


def test_every_route_failing_is_an_error_naming_them(llm, tmp_path):
    gw = gateway(llm, tmp_path, fallback=["llama:llama-test"], claude={"max_retries": 0},
                 llama={"max_retries": 0})
    llm.fail(MESSAGES, status=500)
    llm.fail(CHAT, status=502)
    with pytest.raises(LlmError, match="claude: HTTP 500.*llama: HTTP 502"):
        gw.complete(ask())


# ---------------------------------------------------------------------------------------------- routing
def test_sensitive_requests_reach_self_hosted_providers_only(llm, tmp_path):
    gw = gateway(llm, tmp_path)
    response = gw.complete(ask(sensitive=True))
    assert response.provider == "llama" and not llm.calls(MESSAGES)
    gw = gateway(llm, tmp_path, fallback=[])
    with pytest.raises(RoutingError, match="sensitive"):
        gw.complete(ask(sensitive=True))


def test_offline_answers_nothing_and_says_so(llm, tmp_path):
    gw = gateway(llm, tmp_path, tasks={"reasoning": "offline:none", "fast": "offline:none",
                                       "code": "offline:none", "embedding": "minilm:all-MiniLM-L6-v2"})
    response = gw.complete(ask())
    assert response.offline and response.text == "" and not llm.requests
    assert gw.embedding_model() == "all-MiniLM-L6-v2"


def test_unconfigured_provider_is_skipped(llm, tmp_path, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    gw = gateway(llm, tmp_path, claude={"api_key": None})
    response = gw.complete(ask())
    assert response.provider == "llama" and "claude: skipped, no API key" in response.attempts[0]


# ---------------------------------------------------------------------------------------------- tokens, costs
def test_tokens_counted_with_the_api_before_sending(llm, tmp_path):
    gw = gateway(llm, tmp_path, claude={"count_tokens_api": True})
    gw.complete(ask())
    assert [r["path"] for r in llm.requests] == ["/v1/messages/count_tokens", MESSAGES]
    gw = gateway(llm, tmp_path, claude={"count_tokens_api": True}, max_input_tokens_per_call=5)
    with pytest.raises(BudgetExceeded, match="max_input_tokens_per_call"):
        gw.complete(ask("a long question " * 20))


def test_investigation_budget_caps_tokens_and_sums_costs(llm, tmp_path):
    gw = gateway(llm, tmp_path, max_tokens_per_call=100)
    budget = Budget(max_tokens=500)
    response = gw.complete(ask(), budget=budget)
    assert response.cost_usd == pytest.approx((response.usage.input_tokens * 3 + response.usage.output_tokens * 15) / 1e6)
    with pytest.raises(BudgetExceeded, match="budget of 500"):
        gw.complete(ask("x" * 1500), budget=budget)
    summary = budget.summary()
    assert summary["calls"] == 1 and summary["cost_usd"] == pytest.approx(response.cost_usd, abs=1e-6)
    table = budget.markdown()
    assert "| claude | claude-test | 1 | 0 |" in table and "**total**" in table


def test_cache_hit_costs_nothing_sqlite(llm, tmp_path):
    gw = gateway(llm, tmp_path, cache=SqliteCache(tmp_path / "cache.sqlite", ttl_s=60))
    budget = Budget()
    first = gw.complete(ask(), budget=budget)
    second = gw.complete(ask(), budget=budget)
    assert first.cost_usd > 0 and not first.cached
    assert second.cached and second.cost_usd == 0 and second.text == first.text
    assert len(llm.calls(MESSAGES)) == 1
    assert budget.summary()["cost_usd"] == pytest.approx(first.cost_usd, abs=1e-6)
    # Another parameter is another key.
    gw.complete(ask(temperature=0.5))
    assert len(llm.calls(MESSAGES)) == 2
    assert gw.cache.stats()["claude"] == {"hits": 1, "misses": 2}


def test_cache_entries_expire(llm, tmp_path):
    gw = gateway(llm, tmp_path, cache=SqliteCache(tmp_path / "cache.sqlite", ttl_s=0.2))
    gw.complete(ask())
    time.sleep(0.3)
    assert not gw.complete(ask()).cached and len(llm.calls(MESSAGES)) == 2


def test_errors_are_never_cached(llm, tmp_path):
    gw = gateway(llm, tmp_path, cache=SqliteCache(tmp_path / "cache.sqlite", ttl_s=60))
    llm.fail(MESSAGES, status=500, times=3)
    assert gw.complete(ask()).provider == "llama"
    again = gw.complete(ask())  # claude is asked again (its failure was not stored), and now answers
    assert again.provider == "claude" and not again.cached and len(llm.calls(MESSAGES)) == 4


@pytest.mark.services
def test_cache_hit_costs_nothing_redis(llm, tmp_path):
    cache = RedisCache("redis://127.0.0.1:6379/0", ttl_s=60, prefix=f"cerebro:test:{uuid.uuid4().hex}:")
    try:
        gw = gateway(llm, tmp_path, cache=cache)
        first = gw.complete(ask())
        second = gw.complete(ask())
        assert first.cost_usd > 0 and second.cached and second.cost_usd == 0
        assert len(llm.calls(MESSAGES)) == 1 and cache.stats()["claude"] == {"hits": 1, "misses": 1}
        assert 0 < cache._redis.ttl(next(iter(cache._redis.scan_iter(cache.prefix + "response:*")))) <= 60
    finally:
        for key in cache._redis.scan_iter(cache.prefix + "*"):
            cache._redis.delete(key)


# ---------------------------------------------------------------------------------------------- limits
def test_rate_limit_holds_under_8_concurrent_callers(llm, tmp_path):
    # 4 requests per 1-second window (the same limiter as per minute, on a shorter clock to keep the test short)
    gw = Gateway(settings(llm.url, claude={"requests_per_minute": 4}), tmp_path, cache=NoCache(), limit_period_s=1)
    errors: list[BaseException] = []
    # When the limiter lets each call go: on a busy machine the server may see released calls bunched together,
    # so the window is judged where the gateway releases them.
    limiter, released = gw.limiters["claude"], []
    acquire = limiter.acquire

    def timed_acquire(*args, **kwargs):
        waited = acquire(*args, **kwargs)
        released.append(time.monotonic())
        return waited

    limiter.acquire = timed_acquire

    def caller(i):
        try:
            for j in range(2):
                gw.complete(ask(f"caller {i} call {j}"))
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(8)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors and len(llm.calls(MESSAGES)) == 16
    starts = sorted(released)
    assert len(starts) == 16
    busiest = max(sum(1 for s in starts if a <= s < a + 0.95) for a in starts)
    assert busiest <= 4
    assert time.monotonic() - started >= 3  # 16 requests at 4 a second


def test_token_limit_refuses_a_request_larger_than_the_window(llm, tmp_path):
    gw = gateway(llm, tmp_path, claude={"tokens_per_minute": 50}, max_tokens_per_call=40)
    response = gw.complete(ask("x" * 400))
    assert response.provider == "llama" and "exceeds tokens_per_minute" in response.attempts[0]


# ---------------------------------------------------------------------------------------------- Bedrock
def test_bedrock_builds_a_signed_invoke_request(llm, tmp_path, monkeypatch):
    """Bedrock through the SDK's Bedrock client, pointed at the local server: the path, the SigV4 signature
    and the body are what Bedrock expects (moto does not implement bedrock-runtime's invoke)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTTESTTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    bedrock = {"kind": "bedrock", "region": "eu-west-1", "base_url": llm.url, "max_retries": 0}
    s = settings(llm.url, more={"bedrock": bedrock},
                 tasks={"reasoning": "bedrock:anthropic.claude-test-v1:0", "fast": "llama:llama-test",
                        "code": "llama:llama-test", "embedding": "minilm:x"})
    gw = Gateway(s, tmp_path, cache=NoCache())
    llm.answer("/model/invoke", tool=("search_runbooks", {"query": "lag"}))
    response = gw.complete(ask(tools=[SEARCH]))
    assert response.provider == "bedrock" and response.tool_calls[0].arguments == {"query": "lag"}
    sent = llm.requests[-1]
    assert sent["path"] == "/model/anthropic.claude-test-v1:0/invoke"
    assert sent["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIATESTTESTTEST/")
    assert "/eu-west-1/bedrock/" in sent["headers"]["authorization"]
    assert "model" not in sent["body"] and sent["body"]["anthropic_version"]


def test_status_reports_reachability_limits_and_hit_rate(llm, tmp_path):
    gw = gateway(llm, tmp_path, cache=SqliteCache(tmp_path / "c.sqlite", ttl_s=60),
                 claude={"requests_per_minute": 50, "tokens_per_minute": 40000})
    gw.complete(ask())
    gw.complete(ask())
    rows = {r["provider"]: r for r in gw.status()}
    assert rows["claude"]["reachable"] is True and rows["claude"]["limits"] == "50 req/min, 40,000 tok/min"
    assert rows["claude"]["cache_hit_rate"] == 0.5 and rows["claude"]["models"] == ["claude-test"]
    assert rows["llama"]["reachable"] is True and rows["offline"]["kind"] == "offline"
    assert "sk-test-secret" not in repr(rows) and "sk-test-secret" not in repr(gw.settings)


def test_usage_is_logged_to_mlflow_without_prompts_or_keys(llm, tmp_path, monkeypatch):
    import json

    import mlflow

    from agents.llm import log_usage_to_mlflow

    gw = gateway(llm, tmp_path, cache=SqliteCache(tmp_path / "cache.sqlite", ttl_s=60), claude={"max_retries": 0},
                 llama={"max_retries": 0}, fallback=["llama:llama-test"])
    budget = Budget()
    question = "why is checkout slow? (a prompt MLflow must never see)"
    first = gw.complete(ask(question), budget=budget)
    gw.complete(ask(question), budget=budget)  # a cache hit: counted, costs nothing
    llm.fail(MESSAGES, status=500)
    llm.fail(CHAT, status=500)
    with pytest.raises(LlmError):  # claude, then llama fail: a failed call, recorded
        gw.complete(ask("another question"), budget=budget)
    llm.fail(MESSAGES, status=500)
    fell_back = gw.complete(ask("a third question"), budget=budget)  # claude fails, llama answers
    assert fell_back.provider == "llama" and fell_back.attempts

    from mlflow.tracking._tracking_service import utils as tracking

    # This test's own store; the module variable (not set_tracking_uri) so the session's URI comes back after.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(tracking, "_tracking_uri", uri)
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("llm-usage-test")
    with mlflow.start_run(experiment_id=experiment) as active:
        log_usage_to_mlflow(budget)
    other = client.create_run(experiment)
    log_usage_to_mlflow(budget, run_id=other.info.run_id)  # to a named run, no run active
    for run_id in (active.info.run_id, other.info.run_id):
        run = client.get_run(run_id)
        metrics = run.data.metrics
        assert metrics["llm_calls"] == 4 and metrics["llm_cached"] == 1 and metrics["llm_failed"] == 1
        assert metrics["llm_cost_usd"] == pytest.approx(first.cost_usd, abs=1e-6)  # llama has no price: free
        assert metrics["llm_input_tokens"] == first.usage.input_tokens + fell_back.usage.input_tokens
        assert metrics["llm_output_tokens"] == first.usage.output_tokens + fell_back.usage.output_tokens
        calls = mlflow.artifacts.load_dict(f"runs:/{run_id}/llm_calls.json")["calls"]
        assert [(c["provider"], c["outcome"], c["cached"]) for c in calls] == [
            ("claude", "ok", False), ("claude", "ok", True), ("", "failed", False), ("llama", "ok", False)]
        assert "500" in " ".join(calls[2]["attempts"]) and "500" in " ".join(calls[3]["attempts"])
        logged = json.dumps({"params": run.data.params, "metrics": metrics, "tags": run.data.tags, "calls": calls})
        assert "sk-test-secret" not in logged and "never see" not in logged and "third question" not in logged
