"""The gateway: one call in, the best answer the configured providers can give out.

For each call: pick the route for the task (then the fallback chain; only self-hosted providers for a
sensitive request), and for each provider in turn: skip it when it is not configured or its circuit is open,
answer from the cache when the same request was answered before, count the input tokens, hold them against
the call's and the investigation's caps, wait for the provider's rate limit, call it with bounded retries and
jittered backoff, cache the answer, price it and record it. ``offline`` answers with nothing, marked so.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from agents.llm.breaker import CircuitBreaker
from agents.llm.cache import NoCache, cache_key, open_cache
from agents.llm.providers import Provider, ProviderFailure, make_provider
from agents.llm.ratelimit import ProviderLimiter
from agents.llm.tokens import estimate_tokens
from agents.llm.types import BudgetExceeded, LlmError, LlmRequest, LlmResponse, RoutingError
from agents.llm.usage import Budget, CallRecord, cost_of

log = logging.getLogger("cerebro.llm")


def split_route(route: str) -> tuple[str, str]:
    provider, _, model = route.partition(":")
    return provider, model


class Gateway:
    def __init__(self, llm_settings, home: str | Path, cache=None, sleep: Callable[[float], None] = time.sleep,
                 limit_period_s: int = 60):
        self.settings = llm_settings
        self.providers: dict[str, Provider] = {n: make_provider(n, c) for n, c in llm_settings.providers.items()}
        self.limiters = {n: ProviderLimiter(n, c.requests_per_minute, c.tokens_per_minute, limit_period_s)
                         for n, c in llm_settings.providers.items()}
        self.breakers = {n: CircuitBreaker(c.breaker_failures, c.breaker_reset_s)
                         for n, c in llm_settings.providers.items()}
        self.cache = cache if cache is not None else open_cache(llm_settings, Path(home))
        self.records: deque[CallRecord] = deque(maxlen=1000)  # the latest calls, for `cerebro llm providers`
        self._sleep = sleep
        self._no_counter: set[str] = set()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ routing
    def routes(self, task: str, sensitive: bool = False) -> list[tuple[str, str]]:
        """The providers and models tried for ``task``, in order."""
        chain = []
        for route in [self.settings.tasks[task], *self.settings.fallback]:
            if split_route(route) not in chain:
                chain.append(split_route(route))
        if sensitive:
            chain = [r for r in chain if self.providers[r[0]].self_hosted]
            if not chain:
                raise RoutingError(f"the request is marked sensitive and no self-hosted provider is routed for "
                                   f"task {task!r} or the fallback chain (set self_hosted: true on one, e.g. a "
                                   f"vLLM endpoint)")
        return chain

    def embedding_model(self) -> str:
        """The embedder the knowledge base uses (rag's local MiniLM): embeddings never leave the machine."""
        return split_route(self.settings.tasks["embedding"])[1]

    # ------------------------------------------------------------------ one call
    def complete(self, request: LlmRequest, budget: Budget | None = None,
                 on_text: Callable[[str], None] | None = None) -> LlmResponse:
        """Answer ``request``; raises :class:`BudgetExceeded` when a cap refuses it and :class:`LlmError` when
        every route failed (the attempts are in the message)."""
        started = time.perf_counter()
        max_tokens = min(request.max_tokens or self.settings.max_tokens_per_call, self.settings.max_tokens_per_call)
        attempts: list[str] = []
        for name, model in self.routes(request.task, request.sensitive):
            provider = self.providers[name]
            why = provider.configured()
            if why:
                attempts.append(f"{name}: skipped, {why}")
                continue
            if provider.kind == "offline":
                response = provider.complete(request, model, max_tokens)
                return self._finish(request, response, attempts, started, budget, "offline")
            key = cache_key(name, model, request, max_tokens)
            hit = self.cache.get(key)
            self.cache.count(name, hit is not None)
            if hit is not None:
                response = hit.model_copy(update={"cached": True, "cost_usd": 0.0})
                if on_text and response.text:
                    on_text(response.text)
                return self._finish(request, response, attempts, started, budget, "ok")
            if not self.breakers[name].allow():
                attempts.append(f"{name}: circuit open")
                continue
            response = self._call(provider, model, request, max_tokens, budget, attempts, on_text)
            if response is not None:
                response.cost_usd = cost_of(self.settings.prices, model, response.usage)
                self.cache.put(key, response)
                return self._finish(request, response, attempts, started, budget, "ok")
        record = CallRecord(task=request.task, provider="", model="", outcome="failed", attempts=attempts,
                            latency_ms=(time.perf_counter() - started) * 1000, templates=request.templates)
        self._keep(record, budget)
        raise LlmError("no provider answered: " + "; ".join(attempts or ["no route"]))

    def _call(self, provider: Provider, model: str, request: LlmRequest, max_tokens: int, budget: Budget | None,
              attempts: list[str], on_text) -> LlmResponse | None:
        name, config = provider.name, provider.config
        tokens = self._input_tokens(provider, request, model)
        if tokens > self.settings.max_input_tokens_per_call:
            raise BudgetExceeded(f"the prompt counts {tokens:,} tokens, more than llm.max_input_tokens_per_call "
                                 f"({self.settings.max_input_tokens_per_call:,})")
        held = tokens + max_tokens
        if budget is not None:
            budget.reserve(held)
        try:
            for attempt in range(config.max_retries + 1):
                try:
                    self.limiters[name].acquire(held)
                except ValueError as exc:
                    attempts.append(str(exc))
                    return None
                try:
                    response = provider.complete(request, model, max_tokens, on_text)
                except ProviderFailure as failure:
                    self.breakers[name].failure()
                    attempts.append(f"{failure} (try {attempt + 1})")
                    wait = self._backoff(attempt, failure.retry_after)
                    if not failure.retryable or attempt == config.max_retries or wait is None:
                        return None
                    self._sleep(wait)
                    if not self.breakers[name].allow():
                        attempts.append(f"{name}: circuit open")
                        return None
                    continue
                self.breakers[name].success()
                return response
            return None
        finally:
            if budget is not None:
                budget.release(held)

    def _backoff(self, attempt: int, retry_after: float | None) -> float | None:
        """Full jitter: a random wait up to base x 2^attempt; a server's retry-after is honoured (plus a little
        jitter so callers it held do not return together); one longer than backoff_max_s means fall back now."""
        base, cap = self.settings.backoff_base_s, self.settings.backoff_max_s
        if retry_after is not None:
            return None if retry_after > cap else retry_after + random.uniform(0, base / 10)
        return random.uniform(0, min(cap, base * 2 ** attempt))

    def _input_tokens(self, provider: Provider, request: LlmRequest, model: str) -> int:
        if getattr(provider.config, "count_tokens_api", False) and provider.name not in self._no_counter:
            try:
                counted = provider.count_tokens(request, model)
                if counted is not None:
                    return counted
            except Exception as exc:  # noqa: BLE001 - an unreachable counter means an estimate, not a failure
                log.info("%s: token counter unavailable (%s); estimating locally", provider.name,
                         type(exc).__name__)
            with self._lock:
                self._no_counter.add(provider.name)
        return estimate_tokens(request)

    def _finish(self, request, response: LlmResponse, attempts, started, budget, outcome) -> LlmResponse:
        response.attempts = attempts
        response.latency_ms = (time.perf_counter() - started) * 1000
        record = CallRecord(task=request.task, provider=response.provider, model=response.model, outcome=outcome,
                            input_tokens=response.usage.input_tokens, output_tokens=response.usage.output_tokens,
                            cost_usd=response.cost_usd, cached=response.cached, latency_ms=response.latency_ms,
                            attempts=attempts, templates=request.templates)
        self._keep(record, budget)
        return response

    def _keep(self, record: CallRecord, budget: Budget | None) -> None:
        self.records.append(record)
        if budget is not None:
            budget.record(record)
        # Sizes, costs and template hashes only: prompts and keys are never logged.
        log.info("llm call %s %s/%s %s in=%d out=%d usd=%.5f cached=%s %.0fms templates=%s", record.task,
                 record.provider, record.model, record.outcome, record.input_tokens, record.output_tokens,
                 record.cost_usd, record.cached, record.latency_ms, record.templates)

    # ------------------------------------------------------------------ status
    def status(self, probe: bool = True) -> list[dict]:
        """Each provider's kind, whether it is configured and reachable, the models routed to it, its limits,
        circuit and cache hit rate (`cerebro llm providers`)."""
        counts = self.cache.stats()
        routed: dict[str, list[str]] = {}
        for route in [*(r for t, r in self.settings.tasks.items() if t != "embedding"), *self.settings.fallback]:
            name, model = split_route(route)
            if model not in routed.setdefault(name, []):
                routed[name].append(model)
        rows = []
        for name, provider in self.providers.items():
            why = provider.configured()
            reachable, detail = (None, why) if why else (provider.probe() if probe else (None, "not probed"))
            c = counts.get(name, {"hits": 0, "misses": 0})
            looked = c["hits"] + c["misses"]
            rows.append({"provider": name, "kind": provider.kind, "self_hosted": provider.self_hosted,
                         "configured": why is None, "reachable": reachable, "detail": detail,
                         "models": routed.get(name, []), "limits": self.limiters[name].describe(),
                         "circuit": self.breakers[name].state, "cache_hits": c["hits"], "cache_lookups": looked,
                         "cache_hit_rate": round(c["hits"] / looked, 3) if looked else None})
        return rows


def build_gateway(settings) -> Gateway:
    """The gateway of the loaded settings (``settings.llm`` and the home folder)."""
    return Gateway(settings.llm, settings.home)


__all__ = ["Gateway", "NoCache", "build_gateway"]
