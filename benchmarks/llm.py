"""The LLM gateway's own cost per call, against the local protocol server (tests/support/llm_server.py).

    python benchmarks/llm.py [--calls 300] [--json]

For each call: the gateway's total time, the server's own time handling it (recorded inside the server), and
a bare SDK call of the same request for comparison. Overhead = gateway total - server time (the target: p50
and p99 under 5 ms); "beside the SDK" = gateway total - a bare ``anthropic`` call, i.e. what the gateway adds
(routing, token estimate, rate limiter, breaker, cache lookup and store, pricing, records). Then the same
prompts again: cache hits (SQLite, and Redis when 127.0.0.1:6379 answers), which reach no server.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support.llm_server import LlmServer

from agents.llm import Gateway, LlmRequest, Message
from agents.llm.cache import RedisCache, SqliteCache
from configs.settings import LlmSettings


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def summary(values) -> dict:
    return {"p50_ms": round(pct(values, 50), 3), "p99_ms": round(pct(values, 99), 3),
            "mean_ms": round(statistics.fmean(values), 3)}


def server_ms(record: dict) -> float:
    """The server's own time for a request; it is written just after the answer, so wait for it briefly."""
    deadline = time.monotonic() + 1
    while "server_ms" not in record and time.monotonic() < deadline:
        time.sleep(0.0001)
    return record["server_ms"]


def request(i: int, run: str) -> LlmRequest:
    return LlmRequest(system="You are an SRE.", max_tokens=256,
                      messages=[Message(role="user", content=f"why is checkout slow? ({run} #{i})")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict = {"calls": args.calls}
    with LlmServer() as llm, tempfile.TemporaryDirectory() as tmp:
        settings = LlmSettings(providers={"claude": {"kind": "anthropic", "base_url": llm.url, "api_key": "k",
                                                     "requests_per_minute": 100_000,
                                                     "tokens_per_minute": 100_000_000}},
                               tasks={"reasoning": "claude:claude-test", "fast": "claude:claude-test",
                                      "code": "claude:claude-test", "embedding": "minilm:m"},
                               fallback=[], prices={"claude-test": {"input_per_mtok": 3, "output_per_mtok": 15}})
        caches = {"sqlite": SqliteCache(Path(tmp) / "cache.sqlite", ttl_s=3600)}
        try:
            redis = RedisCache("redis://127.0.0.1:6379/0", ttl_s=600, prefix=f"cerebro:bench:{uuid.uuid4().hex}:")
            redis._redis.ping()
            caches["redis"] = redis
        except Exception as exc:  # noqa: BLE001 - Redis is optional here
            print(f"Redis not reachable ({type(exc).__name__}): the Redis cache is not measured", file=sys.stderr)
        gateway = Gateway(settings, tmp, cache=caches["sqlite"])
        bare = gateway.providers["claude"].client  # the same SDK client, called directly
        run = uuid.uuid4().hex[:6]
        for i in range(20):  # warm up connections and imports
            gateway.complete(request(i, "warm"))
            bare.messages.create(model="claude-test", max_tokens=256, system="You are an SRE.",
                                 messages=[{"role": "user", "content": f"warm bare {i}"}])
        totals, server, sdk = [], [], []
        for i in range(args.calls):
            t0 = time.perf_counter()
            bare.messages.create(model="claude-test", max_tokens=256, system="You are an SRE.",
                                 messages=[{"role": "user", "content": f"bare {run} #{i}"}])
            sdk.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            gateway.complete(request(i, run))
            totals.append((time.perf_counter() - t0) * 1000)
            server.append(server_ms(llm.requests[-1]))
        results["gateway_call"] = summary(totals)
        results["server_time"] = summary(server)
        results["bare_sdk_call"] = summary(sdk)
        results["overhead_beyond_server"] = summary([t - s for t, s in zip(totals, server)])
        results["overhead_beyond_sdk"] = {"p50_ms": round(pct(totals, 50) - pct(sdk, 50), 3),
                                          "p99_ms": round(pct(totals, 99) - pct(sdk, 99), 3)}
        for name, cache in caches.items():
            gw = Gateway(settings, tmp, cache=cache)
            for i in range(args.calls):
                gw.complete(request(i, f"{run}-{name}"))
            before = len(llm.requests)
            hits = []
            for i in range(args.calls):
                t0 = time.perf_counter()
                response = gw.complete(request(i, f"{run}-{name}"))
                hits.append((time.perf_counter() - t0) * 1000)
                assert response.cached and response.cost_usd == 0
            assert len(llm.requests) == before  # no hit reached the server
            results[f"cache_hit_{name}"] = summary(hits)
        if "redis" in caches:
            r = caches["redis"]._redis
            for key in r.scan_iter(caches["redis"].prefix + "*"):
                r.delete(key)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.calls} calls against the local Messages API server")
    for key, value in results.items():
        if isinstance(value, dict):
            print(f"  {key:24s} p50 {value['p50_ms']:7.3f} ms   p99 {value['p99_ms']:7.3f} ms")
    ok = results["overhead_beyond_server"]["p50_ms"] < 5 and results["overhead_beyond_server"]["p99_ms"] < 5
    print(f"target (overhead beyond the server's own time < 5 ms at p50 and p99): {'met' if ok else 'NOT met'}"
          " (this includes the SDK's own HTTP client; the gateway's part is overhead_beyond_sdk)")


if __name__ == "__main__":
    main()
