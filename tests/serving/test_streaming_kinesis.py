"""The streaming consumer on Kinesis (moto in server mode, reached over HTTP like the real service): killed
mid-stream (SIGKILL) and restarted, it resumes after the committed sequence numbers and scores every event once."""
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


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return champion_lab(tmp_path_factory.mktemp("stream-kinesis-home"))


def test_killed_kinesis_consumer_resumes_from_its_checkpoints(lab, moto_url, tmp_path):
    import boto3

    from serving.checkpoints import CheckpointStore
    from serving.streaming import publish_kinesis

    events, expected = stream_case(lab)
    n_scored = sum("metrics" in e for e in events)
    name = f"cerebro-test-{uuid.uuid4().hex[:8]}"
    client = boto3.client("kinesis", region_name="us-east-1", endpoint_url=moto_url)
    client.create_stream(StreamName=name, ShardCount=2)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    client.put_record(StreamName=name, Data=b'{"service": "cart", "timestamp": "yesterday", "metrics": {"a": 1}}',
                      PartitionKey="cart")
    producer = threading.Thread(target=publish_kinesis, args=(name, "us-east-1", moto_url, events, 150.0))
    producer.start()
    store = tmp_path / "kinesis.sqlite"
    common = ["--source", "kinesis", "--stream", name, "--endpoint", moto_url, "--region", "us-east-1",
              "--checkpoint", str(store), "--batch-size", "10"]
    first = start_consumer(lab, *common)
    try:
        done = wait_for_results(store, n_scored // 3, first)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert done < n_scored
    producer.join()
    second = start_consumer(lab, *common, "--idle-exit", "4", "--json")
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["results"] == n_scored

    check_exactly_once(store, events, expected)
    saved = CheckpointStore(store)
    shards = {s["ShardId"] for s in client.list_shards(StreamName=name)["Shards"]}
    positions = dict(saved.db.execute("SELECT shard, position FROM checkpoints").fetchall())
    assert set(positions) == shards  # the services spread over both shards, each checkpointed
    quarantine = saved.quarantine()
    assert len(quarantine) == 1 and quarantine["reason"][0].startswith("timestamp: expected ISO 8601")
