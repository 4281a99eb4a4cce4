"""The response cache: SQLite in the home folder by default, Redis in the scale profile.

The key is a SHA-256 of the provider, the model, the system prompt, the messages, the tools and every
parameter that changes the answer, in canonical JSON. Only answers are stored: a failure never reaches
:meth:`put`. Hits and misses are counted per provider in the same store, for `cerebro llm providers`.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

from agents.llm.types import LlmRequest, LlmResponse


def cache_key(provider: str, model: str, request: LlmRequest, max_tokens: int) -> str:
    doc = {"provider": provider, "model": model, "system": request.system,
           "messages": [m.model_dump() for m in request.messages],
           "tools": [t.model_dump() for t in request.tools],
           "params": {"max_tokens": max_tokens, "temperature": request.temperature}}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class NoCache:
    kind = "none"

    def get(self, key: str) -> LlmResponse | None:
        return None

    def put(self, key: str, response: LlmResponse) -> None:
        pass

    def count(self, provider: str, hit: bool) -> None:
        pass

    def stats(self) -> dict[str, dict[str, int]]:
        return {}


class SqliteCache(NoCache):
    kind = "sqlite"

    def __init__(self, path: str | Path, ttl_s: float):
        self.path, self.ttl_s = Path(path), ttl_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # A cache may lose its last entries in a power cut, never its integrity: no fsync per answer stored.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, body TEXT NOT NULL, "
                         "expires REAL NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS counts (provider TEXT PRIMARY KEY, hits INTEGER NOT NULL "
                         "DEFAULT 0, misses INTEGER NOT NULL DEFAULT 0)")

    def get(self, key):
        with self._lock:
            row = self._db.execute("SELECT body, expires FROM responses WHERE key = ?", (key,)).fetchone()
            if row and row[1] < time.time():
                self._db.execute("DELETE FROM responses WHERE key = ?", (key,))
                row = None
        return LlmResponse.model_validate_json(row[0]) if row else None

    def put(self, key, response):
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)",
                             (key, response.model_dump_json(), time.time() + self.ttl_s))

    def count(self, provider, hit):
        column = "hits" if hit else "misses"
        with self._lock:
            self._db.execute(f"INSERT INTO counts (provider, {column}) VALUES (?, 1) ON CONFLICT(provider) "
                             f"DO UPDATE SET {column} = {column} + 1", (provider,))

    def stats(self):
        with self._lock:
            rows = self._db.execute("SELECT provider, hits, misses FROM counts").fetchall()
        return {p: {"hits": h, "misses": m} for p, h, m in rows}


class RedisCache(NoCache):
    kind = "redis"

    def __init__(self, url: str, ttl_s: float, prefix: str = "cerebro:llm:"):
        import redis

        self.ttl_s, self.prefix = ttl_s, prefix
        self._redis = redis.Redis.from_url(url)

    def get(self, key):
        body = self._redis.get(self.prefix + "response:" + key)
        return LlmResponse.model_validate_json(body) if body else None

    def put(self, key, response):
        self._redis.set(self.prefix + "response:" + key, response.model_dump_json(), ex=max(1, int(self.ttl_s)))

    def count(self, provider, hit):
        self._redis.hincrby(self.prefix + "counts", f"{provider}:{'hits' if hit else 'misses'}", 1)

    def stats(self):
        out: dict[str, dict[str, int]] = {}
        for field, value in self._redis.hgetall(self.prefix + "counts").items():
            provider, _, which = field.decode().rpartition(":")
            out.setdefault(provider, {"hits": 0, "misses": 0})[which] = int(value)
        return out


def open_cache(llm_settings, home: Path):
    if llm_settings.cache == "redis":
        return RedisCache(llm_settings.redis_url, llm_settings.cache_ttl_s)
    if llm_settings.cache == "sqlite":
        path = llm_settings.cache_path or Path(home) / "llm" / "cache.sqlite"
        return SqliteCache(path, llm_settings.cache_ttl_s)
    return NoCache()
