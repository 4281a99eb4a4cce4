"""The streaming consumer on a real Redis: killed mid-stream (SIGKILL) and restarted, every event is scored
exactly once, with the scores batch inference gives; malformed events land in the quarantine."""
from __future__ import annotations

import json
import signal
import threading
import uuid

import pytest
from support.lab import (
    champion_lab,
    check_exactly_once,
    start_consumer,
    stream_case,
    wait_for_results,
)

from serving import registry

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return champion_lab(tmp_path_factory.mktemp("stream-redis-home"))


@pytest.fixture
def stream_key():
    import redis

    key = f"cerebro-test:{uuid.uuid4().hex[:10]}"
    yield key
    redis.Redis.from_url(REDIS).delete(key)


def test_killed_consumer_restarts_and_scores_every_event_once(lab, stream_key, tmp_path):
    import redis

    from serving.streaming import publish_redis

    events, expected = stream_case(lab)
    n_scored = sum("metrics" in e for e in events)
    r = redis.Redis.from_url(REDIS)
    r.xadd(stream_key, {"event": "{not json"})
    r.xadd(stream_key, {"event": json.dumps({"timestamp": "2026-11-18T20:00:00Z", "service": "cart",
                                             "metrics": {"cpu_pct": "high"}})})
    producer = threading.Thread(target=publish_redis, args=(REDIS, stream_key, events, 150.0))
    producer.start()
    store = tmp_path / "consumer.sqlite"
    common = ["--source", "redis", "--stream", stream_key, "--group", "scoring", "--checkpoint", str(store),
              "--batch-size", "10"]
    first = start_consumer(lab, *common, "--consumer", "c1")
    try:
        done = wait_for_results(store, n_scored // 3, first)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert done < n_scored  # killed mid-stream
    producer.join()
    # Another consumer takes over what c1 left pending (XAUTOCLAIM), then reads on until the stream is quiet.
    second = start_consumer(lab, *common, "--consumer", "c2", "--claim-idle-ms", "0", "--idle-exit", "3", "--json")
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err[-3000:]
    assert json.loads(out)["results"] == n_scored

    check_exactly_once(store, events, expected)
    assert r.xpending(stream_key, "scoring")["pending"] == 0
    from serving.checkpoints import CheckpointStore

    quarantine = CheckpointStore(store).quarantine()
    reasons = sorted(quarantine["reason"])
    assert len(reasons) == 2
    assert reasons[0].startswith("metrics.cpu_pct: expected a finite number, got 'high'")
    assert reasons[1].startswith("payload: expected a JSON object")


def test_a_crash_between_commit_and_ack_rescores_the_batch_in_place(lab, stream_key, tmp_path, monkeypatch):
    from serving.checkpoints import CheckpointStore
    from serving.streaming import FeatureWindow, RedisSource, Scorer, consume, publish_redis

    events, expected = stream_case(lab, minutes=40, n_services=2)
    publish_redis(REDIS, stream_key, events)
    scorer = Scorer(registry.load_champion(lab.settings, "cerebro-detector-zscore"))
    path = tmp_path / "crash.sqlite"

    def run(crash: bool):
        source = RedisSource(REDIS, stream_key, "g", "only", claim_idle_ms=60000, block_ms=200)
        if crash:
            monkeypatch.setattr(source, "ack", lambda records: (_ for _ in ()).throw(RuntimeError("killed")))
        store = CheckpointStore(path)
        try:
            return consume(source, store, scorer, FeatureWindow(15, 169), batch_size=25, idle_exit_s=0.5)
        finally:
            store.close()

    with pytest.raises(RuntimeError, match="killed"):
        run(crash=True)  # the first batch is committed, never acknowledged
    stats = run(crash=False)  # the same consumer name: its pending entries come first
    assert stats.records == len(events)  # the pending batch was read again, then the rest
    results = check_exactly_once(path, events, expected)
    assert (results["deliveries"] == 2).sum() == sum("metrics" in e for e in events[:25])
