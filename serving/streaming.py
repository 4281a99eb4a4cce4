"""Streaming inference: score each telemetry event as it arrives, from Redis Streams or Kinesis, exactly once
in the output.

    source = RedisSource(url, stream, group, consumer)      # or KinesisSource(stream, region, endpoint, store)
    stats = consume(source, CheckpointStore(path), Scorer(detector), FeatureWindow(15, 169))

**Events.** A JSON object per stream entry (Redis: field ``event``; Kinesis: the record's data)::

    {"event_id": "cart@2026-11-19T10:03:00Z", "timestamp": "2026-11-19T10:03:00Z", "service": "cart",
     "metrics": {"cpu_pct": 41.2, "latency_p99_ms": 180.0, ...}}           # a service's minute: scored
    {"timestamp": ..., "service": "cart", "metric": "cpu_pct", "value": 41.2}  # one sample: scored
    {"event_id": "EVT-...", "timestamp": ..., "service": "cart", "kind": "deploy"}  # an operations event

``event_id`` defaults to the entry id (Redis) or shard:sequence (Kinesis); give a stable one so that a producer's
retry is not a second event. Deploys and rollbacks feed ``minutes_since_deploy``; other kinds are counted and
acknowledged. A malformed event goes to the store's ``quarantine`` table with the field at fault and what was
expected, and is acknowledged: it never blocks the stream and is never dropped silently.

**Features.** ``FeatureWindow`` keeps, per service, the last minutes of raw samples (the rolling window) and the
hourly means of the last ``history_hours`` (the 24-hour baseline and week-over-week). Per batch it calls
``features.transforms.compute_features`` on the recent samples and fills the baseline and week-over-week columns
from the hourly means, with the same definitions, so a minute scores as it would in batch over the same data.

**Delivery.** At least once from the source, exactly once in the output: a batch's scores (keyed by event id),
quarantine, window changes and Kinesis sequence numbers are one SQLite transaction (``serving.checkpoints``);
Redis entries are acknowledged after it. Killed before the commit, the batch is read again (Redis: this
consumer's pending entries, or XAUTOCLAIM of a dead consumer's; Kinesis: after the committed sequence number);
killed between commit and XACK, the re-read events replace their own rows. One consumer per stream (or per
Kinesis shard set): consumers sharing a group would each see only part of a service's minutes.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

DEPLOY_KINDS = ("deploy", "rollback")
WEEK_HOURS = 168
WEEK_MINUTES = 10080


class MalformedEvent(ValueError):
    """An event that cannot be scored; the message names the field and what was expected."""


@dataclass
class Record:
    source_id: str  # Redis entry id, or "<shard>:<sequence number>"
    payload: Any  # bytes / str (JSON) or None when the entry was deleted before it was read
    arrived_at: float  # epoch seconds the stream accepted it
    problem: str | None = None  # what is wrong with the entry itself (it is quarantined with this reason)


@dataclass
class Event:
    event_id: str
    source_id: str
    service: str
    timestamp: pd.Timestamp
    minute: int  # epoch minutes, the sample's minute (ceiled, as compute_features does)
    metrics: dict[str, float] | None
    kind: str | None
    arrived_at: float


def _number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MalformedEvent(f"{name}: expected a finite number, got {value!r}")
    return float(value)


def parse_event(payload, source_id: str, arrived_at: float, problem: str | None = None) -> Event:
    if problem:
        raise MalformedEvent(problem)
    if payload is None:
        raise MalformedEvent("the entry was deleted from the stream before it was read (no payload)")
    try:
        data = json.loads(payload) if isinstance(payload, (bytes, str)) else payload
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedEvent(f"payload: expected a JSON object, got text that is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise MalformedEvent(f"payload: expected a JSON object, got {type(data).__name__}")
    service = data.get("service")
    if not isinstance(service, str) or not service.strip():
        raise MalformedEvent(f"service: expected a non-empty service name, got {service!r}")
    raw_ts = data.get("timestamp")
    try:
        if isinstance(raw_ts, bool) or raw_ts is None:
            raise ValueError
        ts = pd.Timestamp(raw_ts, unit="s") if isinstance(raw_ts, (int, float)) else pd.Timestamp(raw_ts)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    except (ValueError, TypeError, OverflowError):
        raise MalformedEvent(f"timestamp: expected ISO 8601 text or epoch seconds, got {raw_ts!r}") from None
    minute = -((-ts.value) // 60_000_000_000)
    kind = data.get("kind")
    if kind is not None and not isinstance(kind, str):
        raise MalformedEvent(f"kind: expected text such as 'deploy', got {kind!r}")
    metrics = None
    if kind is None or kind == "telemetry":
        kind = None
        if "metrics" in data:
            if not isinstance(data["metrics"], dict) or not data["metrics"]:
                raise MalformedEvent(f"metrics: expected an object of metric name -> number, got {data['metrics']!r}")
            metrics = {str(k): _number(f"metrics.{k}", v) for k, v in data["metrics"].items()}
        elif "metric" in data:
            if not isinstance(data["metric"], str) or not data["metric"]:
                raise MalformedEvent(f"metric: expected a metric name, got {data['metric']!r}")
            metrics = {data["metric"]: _number("value", data.get("value"))}
        else:
            raise MalformedEvent("metrics: a telemetry event needs 'metrics' {name: value} or 'metric' and 'value' "
                                 "(or 'kind' for an operations event)")
    event_id = data.get("event_id") or source_id
    return Event(str(event_id), source_id, service.strip(), ts, int(minute), metrics, kind, arrived_at)


# ------------------------------------------------------------------------------------------------ the window
class FeatureWindow:
    """Per-service state for features: raw samples of the recent minutes, hourly means, deploys."""

    def __init__(self, window_minutes: int = 15, history_hours: float = 169):
        from features.transforms import ROC_LAG

        self.window = int(window_minutes)
        self.pad = max(self.window, ROC_LAG)  # minutes of raw samples a scored minute looks back
        self.history_hours = math.ceil(history_hours)
        self.raw: dict[str, dict[int, dict[str, float]]] = {}
        self.hourly: dict[str, dict[int, dict[str, float]]] = {}
        self.deploys: dict[str, dict[float, str]] = {}
        self.newest: dict[str, int] = {}
        self._delta_raw: list[tuple] = []
        self._delta_deploys: list[tuple] = []
        self._delta_hourly: list[tuple] = []
        self._dirty: set[tuple[str, int]] = set()

    def load(self, raw_rows: Iterable, hourly_rows: Iterable, deploy_rows: Iterable) -> None:
        """Rebuild from the store's rows (after a restart)."""
        for service, minute, metric, value in raw_rows:
            self.raw.setdefault(service, {}).setdefault(int(minute), {})[metric] = value
            self.newest[service] = max(self.newest.get(service, int(minute)), int(minute))
        for service, hour, metric, mean in hourly_rows:
            self.hourly.setdefault(service, {}).setdefault(int(hour), {})[metric] = mean
        for service, at, kind in deploy_rows:
            self.deploys.setdefault(service, {})[float(at)] = kind

    def add(self, events: Iterable[Event]) -> None:
        for e in events:
            if e.metrics:
                slot = self.raw.setdefault(e.service, {}).setdefault(e.minute, {})
                for metric, value in e.metrics.items():
                    slot[metric] = value
                    self._delta_raw.append((e.service, e.minute, metric, value))
                self._dirty.add((e.service, e.minute // 60))
                self.newest[e.service] = max(self.newest.get(e.service, e.minute), e.minute)
            elif e.kind in DEPLOY_KINDS:
                at = e.timestamp.value / 1e9
                self.deploys.setdefault(e.service, {})[at] = e.kind
                self._delta_deploys.append((e.service, at, e.kind))

    def _long(self, wanted: dict[str, set[int]]) -> pd.DataFrame:
        parts = {"timestamp": [], "service": [], "metric": [], "value": []}
        for service, minutes in wanted.items():
            lo, hi = min(minutes) - self.pad, max(minutes)
            for minute, values in self.raw.get(service, {}).items():
                if lo <= minute <= hi:
                    for metric, value in values.items():
                        parts["timestamp"].append(minute)
                        parts["service"].append(service)
                        parts["metric"].append(metric)
                        parts["value"].append(value)
        frame = pd.DataFrame(parts)
        frame["timestamp"] = pd.to_datetime(np.asarray(frame["timestamp"], dtype="int64") * 60, unit="s", utc=True)
        return frame

    def _deploy_frame(self, services: Iterable[str]) -> pd.DataFrame:
        rows = [(s, at, kind) for s in services for at, kind in self.deploys.get(s, {}).items()]
        frame = pd.DataFrame(rows, columns=["service", "at", "kind"])
        return pd.DataFrame({"service": frame["service"], "kind": frame["kind"],
                             "timestamp": pd.to_datetime(frame["at"].astype(float), unit="s", utc=True)})

    def _hourly_stats(self, service: str, hour: int) -> tuple[dict[str, float], dict[str, float]]:
        """(baseline, week-ago mean) per metric for minutes of ``hour``: the median of the hourly means of the
        24 hours before it (completed hours only) and the mean of the same hour a week earlier."""
        from features.transforms import BASELINE_HOURS

        hours = self.hourly.get(service, {})
        values: dict[str, list[float]] = {}
        for h in range(hour - BASELINE_HOURS, hour):
            for metric, mean in hours.get(h, {}).items():
                if mean is not None and not math.isnan(mean):
                    values.setdefault(metric, []).append(mean)
        base = {m: float(np.median(v)) for m, v in values.items()}
        return base, dict(hours.get(hour - WEEK_HOURS, {}))

    def features(self, keys: list[tuple[str, int]]) -> pd.DataFrame:
        """Feature rows (``service``, ``timestamp`` and the feature columns) for each (service, minute) key, in
        the order given. Call after :meth:`add` of the events the keys come from."""
        from features.from_lake import features_of
        from features.transforms import baseline_column, metrics_of

        self._refresh_hourly()
        wanted: dict[str, set[int]] = {}
        for service, minute in keys:
            wanted.setdefault(service, set()).add(minute)
        feats = features_of(self._long(wanted), self._deploy_frame(wanted), self.window)
        minutes = (feats["timestamp"].astype("int64") // 60_000_000_000).to_numpy()
        pos = {(s, int(m)): i for i, (s, m) in enumerate(zip(feats["service"].astype(str), minutes))}
        feats = feats.iloc[[pos[k] for k in keys]].reset_index(drop=True)
        metrics = metrics_of(feats)
        cache: dict[tuple[str, int], tuple[dict, dict]] = {}
        base = {m: np.full(len(keys), np.nan) for m in metrics}
        week = {m: np.full(len(keys), np.nan) for m in metrics}
        for i, (service, minute) in enumerate(keys):
            key = (service, minute // 60)
            if key not in cache:
                cache[key] = self._hourly_stats(*key)
            b, w = cache[key]
            for m in metrics:
                base[m][i] = b.get(m, np.nan)
                week[m][i] = w.get(m, np.nan)
        for m in metrics:
            feats[baseline_column(m)] = base[m]
            feats[f"{m}__wow"] = feats[m].to_numpy(dtype=float) - week[m]
        return feats

    def _refresh_hourly(self) -> list[tuple]:
        rows = []
        for service, hour in sorted(self._dirty):
            sums: dict[str, list[float]] = {}
            for minute in range(hour * 60, hour * 60 + 60):
                for metric, value in self.raw.get(service, {}).get(minute, {}).items():
                    sums.setdefault(metric, []).append(value)
            means = {m: float(np.mean(v)) for m, v in sums.items()}
            self.hourly.setdefault(service, {})[hour] = means
            rows += [(service, hour, m, v) for m, v in means.items()]
        self._dirty.clear()
        self._delta_hourly += rows
        return rows

    def take_delta(self) -> dict:
        """What changed since the last call, for the store, after pruning what no future minute needs."""
        self._refresh_hourly()
        prune = []
        for service, newest in self.newest.items():
            raw_from = min(newest // 60 * 60 - 60, newest - self.pad)  # the previous hour, whole: its mean
            hour_from = newest // 60 - self.history_hours
            deploy_from = (newest - WEEK_MINUTES - 60) * 60.0  # older deploys count as "none" (capped)
            raw = self.raw.get(service, {})
            for minute in [m for m in raw if m < raw_from]:
                del raw[minute]
            hourly = self.hourly.get(service, {})
            for hour in [h for h in hourly if h < hour_from]:
                del hourly[hour]
            deploys = self.deploys.get(service, {})
            for at in [a for a in deploys if a < deploy_from]:
                del deploys[at]
            prune.append((service, raw_from, hour_from, deploy_from))
        delta = {"raw": self._delta_raw, "hourly": self._delta_hourly, "deploys": self._delta_deploys,
                 "prune": prune}
        self._delta_raw, self._delta_hourly, self._delta_deploys = [], [], []
        return delta


# ------------------------------------------------------------------------------------------------ scoring
class Scorer:
    """The champion detector (and optionally the failure predictor) on feature rows."""

    def __init__(self, detector, failure=None):
        self.detector, self.failure = detector, failure
        self.inputs = list(dict.fromkeys(
            (detector.bundle.get("inputs") or detector.bundle["columns"])
            + (list(failure.bundle["columns"]) if failure is not None else [])))

    def score(self, feats: pd.DataFrame) -> pd.DataFrame:
        from features.detector_inputs.columns import TIME_OF_DAY
        from serving.batch import score_features

        missing = [c for c in self.inputs if c not in feats.columns and c not in TIME_OF_DAY]
        if missing:  # a metric no event has carried yet: NaN reads as "at the baseline"
            feats = feats.assign(**{c: np.nan for c in missing})
        return score_features(feats, self.detector, self.failure)

    @property
    def label(self) -> str:
        return f"{self.detector.name}/{self.detector.version}"


# ------------------------------------------------------------------------------------------------ sources
class RedisSource:
    """A Redis stream read through a consumer group: this consumer's pending entries first (a restart), then
    entries other consumers left pending longer than ``claim_idle_ms`` (XAUTOCLAIM), then new ones."""

    def __init__(self, url: str, stream: str, group: str, consumer: str, claim_idle_ms: int = 60000,
                 start_at: str = "oldest", block_ms: int = 1000):
        self.url, self.stream, self.group, self.consumer = url, stream, group, consumer
        self.claim_idle_ms, self.start_at, self.block_ms = claim_idle_ms, start_at, block_ms
        self.key = f"redis:{stream}"

    def open(self) -> None:
        import redis

        self.r = redis.Redis.from_url(self.url)
        try:
            self.r.xgroup_create(self.stream, self.group, id="0" if self.start_at == "oldest" else "$", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._own_pending, self._next_claim = True, 0.0

    def _records(self, entries) -> list[Record]:
        out = []
        for entry_id, fields in entries:
            eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            payload = (fields or {}).get(b"event")
            problem = None
            if fields and payload is None:
                payload = json.dumps({k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()})
                problem = f"entry fields {sorted(k.decode() for k in fields)}: expected a field 'event' holding the JSON"
            out.append(Record(eid, payload, int(eid.split("-")[0]) / 1000, problem))
        return out

    def read(self, count: int) -> list[Record]:
        if self._own_pending:  # delivered to this consumer before a restart, never acknowledged
            resp = self.r.xreadgroup(self.group, self.consumer, {self.stream: "0"}, count=count)
            entries = resp[0][1] if resp else []
            if entries:
                return self._records(entries)
            self._own_pending = False
        if time.monotonic() >= self._next_claim:
            resp = self.r.xautoclaim(self.stream, self.group, self.consumer, min_idle_time=self.claim_idle_ms,
                                     start_id="0-0", count=count)
            claimed = resp[1] if len(resp) > 1 else []
            if claimed:
                return self._records(claimed)
            self._next_claim = time.monotonic() + max(self.claim_idle_ms / 1000, 1.0)
        resp = self.r.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=count, block=self.block_ms)
        return self._records(resp[0][1]) if resp else []

    def positions(self) -> dict:
        return {}  # the group's own offset and pending list are the checkpoint

    def ack(self, records: list[Record]) -> None:
        if records:
            self.r.xack(self.stream, self.group, *[r.source_id for r in records])


class KinesisSource:
    """Every shard of a Kinesis stream, resumed after the sequence numbers committed with the results."""

    def __init__(self, stream: str, region: str, endpoint: str | None, store, start_at: str = "oldest",
                 poll_ms: int = 1000):
        self.stream, self.region, self.endpoint, self.store = stream, region, endpoint, store
        self.start_at, self.poll_ms = start_at, poll_ms
        self.key = f"kinesis:{stream}"

    def open(self) -> None:
        import boto3

        self.client = boto3.client("kinesis", region_name=self.region, endpoint_url=self.endpoint)
        shards, token = [], None
        while True:
            resp = self.client.list_shards(NextToken=token) if token else self.client.list_shards(StreamName=self.stream)
            shards += [s["ShardId"] for s in resp["Shards"]]
            token = resp.get("NextToken")
            if not token:
                break
        self.read_pos: dict[str, str] = {}
        self.iterators = {s: self._iterator(s, self.store.checkpoint(self.key, s)) for s in shards}

    def _iterator(self, shard: str, after: str | None) -> str:
        if after:
            kw = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after}
        else:
            kw = {"ShardIteratorType": "TRIM_HORIZON" if self.start_at == "oldest" else "LATEST"}
        return self.client.get_shard_iterator(StreamName=self.stream, ShardId=shard, **kw)["ShardIterator"]

    def read(self, count: int) -> list[Record]:
        out: list[Record] = []
        for shard, iterator in list(self.iterators.items()):
            if iterator is None or len(out) >= count:
                continue
            try:
                resp = self.client.get_records(ShardIterator=iterator, Limit=count - len(out))
            except self.client.exceptions.ExpiredIteratorException:
                self.iterators[shard] = self._iterator(shard, self.read_pos.get(shard)
                                                       or self.store.checkpoint(self.key, shard))
                continue
            self.iterators[shard] = resp.get("NextShardIterator")  # None: the shard was closed (resharding)
            for rec in resp["Records"]:
                seq = rec["SequenceNumber"]
                out.append(Record(f"{shard}:{seq}", rec["Data"], rec["ApproximateArrivalTimestamp"].timestamp()))
                self.read_pos[shard] = seq
        if not out:
            time.sleep(self.poll_ms / 1000)
        return out

    def positions(self) -> dict:
        return {(self.key, shard): seq for shard, seq in self.read_pos.items()}

    def ack(self, records: list[Record]) -> None:
        pass  # the sequence numbers went into the same transaction as the results


# ------------------------------------------------------------------------------------------------ the loop
@dataclass
class ConsumerStats:
    batches: int = 0
    records: int = 0
    scored: int = 0
    quarantined: int = 0
    other_events: int = 0
    anomalies: int = 0
    lag_ms: list[float] = field(default_factory=list)  # per scored event: commit time - stream arrival
    seconds: float = 0.0

    def summary(self) -> dict:
        lag = np.asarray(self.lag_ms[-100000:], dtype=float)
        pct = (lambda q: round(float(np.percentile(lag, q)), 1) if len(lag) else None)
        return {"batches": self.batches, "records": self.records, "scored": self.scored,
                "quarantined": self.quarantined, "other_events": self.other_events, "anomalies": self.anomalies,
                "seconds": round(self.seconds, 2),
                "events_per_second": round(self.records / self.seconds, 1) if self.seconds else None,
                "lag_ms_p50": pct(50), "lag_ms_p95": pct(95)}


def _text(payload) -> str:
    if payload is None:
        return ""
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)


def process_batch(records: list[Record], source, store, scorer: Scorer, window: FeatureWindow,
                  stats: ConsumerStats) -> None:
    events, bad = [], []
    for rec in records:
        try:
            events.append(parse_event(rec.payload, rec.source_id, rec.arrived_at, rec.problem))
        except MalformedEvent as exc:
            bad.append({"source_id": rec.source_id, "reason": str(exc), "raw": _text(rec.payload)[:2000]})
    window.add(events)
    telemetry = [e for e in events if e.metrics]
    results = []
    if telemetry:
        keys = [(e.service, e.minute) for e in telemetry]
        scores = scorer.score(window.features(keys))
        now = time.time()
        fail = "failure_probability" in scores
        for e, row in zip(telemetry, scores.itertuples(index=False)):
            results.append({"event_id": e.event_id, "source_id": e.source_id, "service": e.service,
                            "timestamp": row.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ"), "score": float(row.score),
                            "calibrated": float(row.calibrated), "is_anomaly": int(row.is_anomaly),
                            "failure_probability": float(row.failure_probability) if fail else None,
                            "failure_alarm": int(row.failure_alarm) if fail else None, "model": scorer.label,
                            "arrived_at": e.arrived_at, "scored_at": now})
    store.commit(results, bad, source.positions(), window.take_delta())
    source.ack(records)  # after the commit: a crash in between only means the batch is scored again
    done = time.time()
    stats.batches += 1
    stats.records += len(records)
    stats.scored += len(results)
    stats.quarantined += len(bad)
    stats.other_events += len(events) - len(telemetry)
    stats.anomalies += sum(r["is_anomaly"] for r in results)
    stats.lag_ms += [(done - r["arrived_at"]) * 1000 for r in results]


def consume(source, store, scorer: Scorer, window: FeatureWindow, batch_size: int = 200,
            should_stop: Callable[[], bool] = lambda: False, idle_exit_s: float | None = None,
            on_batch: Callable[[ConsumerStats], None] | None = None) -> ConsumerStats:
    """Read, score and commit until ``should_stop()`` or ``idle_exit_s`` seconds without an event."""
    window.load(*store.window_rows())
    source.open()
    stats = ConsumerStats()
    t0 = idle_since = time.monotonic()
    while not should_stop():
        records = source.read(batch_size)
        if not records:
            if idle_exit_s is not None and time.monotonic() - idle_since >= idle_exit_s:
                break
            continue
        process_batch(records, source, store, scorer, window, stats)
        idle_since = time.monotonic()
        stats.seconds = idle_since - t0
        if on_batch:
            on_batch(stats)
    return stats


# ------------------------------------------------------------------------------------------------ producing
def telemetry_events(telemetry: pd.DataFrame, events: pd.DataFrame | None = None) -> list[dict]:
    """Long telemetry (and deploy events) as stream events in time order: one per service and minute."""
    wide = telemetry.pivot_table(index=["timestamp", "service"], columns="metric", values="value",
                                 observed=True, aggfunc="last").sort_index()
    cols = [str(c) for c in wide.columns]
    out = []
    for (ts, service), values in zip(wide.index, wide.to_numpy()):
        stamp = pd.Timestamp(ts).strftime("%Y-%m-%dT%H:%M:%SZ")
        metrics = {c: float(v) for c, v in zip(cols, values) if not np.isnan(v)}
        out.append({"event_id": f"{service}@{stamp}", "timestamp": stamp, "service": str(service), "metrics": metrics})
    if events is not None and not events.empty:
        ops = events[events["kind"].astype(str).isin(DEPLOY_KINDS)]
        for e in ops.itertuples():
            stamp = pd.Timestamp(e.timestamp).strftime("%Y-%m-%dT%H:%M:%SZ")
            out.append({"event_id": str(getattr(e, "event_id", f"{e.service}@{stamp}:{e.kind}")), "timestamp": stamp,
                        "service": str(e.service), "kind": str(e.kind)})
        out.sort(key=lambda ev: (ev["timestamp"], "metrics" in ev))  # a deploy before its minute's telemetry
    return out


def lake_events(settings, start, end, services: list[str] | None = None) -> list[dict]:
    """Telemetry and deploys of [start, end) from the lake, as stream events (for replays and benchmarks)."""
    from features.from_lake import deploy_events, utc
    from telemetry import lake

    start, end = utc(start), utc(end)
    telemetry = lake.read_telemetry(settings.lake_dir, start=start, end=end, services=services)
    if telemetry.empty:
        raise ValueError(f"the lake holds no telemetry between {start} and {end}")
    deploys = deploy_events(settings)
    deploys = deploys[(deploys["timestamp"] >= start) & (deploys["timestamp"] < end)]
    if services:
        deploys = deploys[deploys["service"].isin(services)]
    return telemetry_events(telemetry, deploys)


def _paced(events: list[dict], rate: float | None, chunk: int) -> Iterator[list[dict]]:
    t0 = time.perf_counter()
    for i in range(0, len(events), chunk):
        if rate:
            wait = t0 + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        yield events[i:i + chunk]


def publish_redis(url: str, stream: str, events: list[dict], rate: float | None = None, chunk: int = 200) -> int:
    """XADD each event (field ``event``, JSON), ``rate`` events per second (None: as fast as possible)."""
    import redis

    r = redis.Redis.from_url(url)
    sent = 0
    for part in _paced(events, rate, chunk if not rate else max(1, min(chunk, int(rate // 20) or 1))):
        pipe = r.pipeline(transaction=False)
        for ev in part:
            pipe.xadd(stream, {"event": json.dumps(ev)})
        pipe.execute()
        sent += len(part)
    return sent


def publish_kinesis(stream: str, region: str, endpoint: str | None, events: list[dict], rate: float | None = None,
                    create: bool = False, shards: int = 1) -> int:
    """PutRecords with the service as partition key (a service's events stay on one shard, in order)."""
    import boto3

    client = boto3.client("kinesis", region_name=region, endpoint_url=endpoint)
    if create:
        try:
            client.create_stream(StreamName=stream, ShardCount=shards)
        except client.exceptions.ResourceInUseException:
            pass
        client.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    sent = 0
    for part in _paced(events, rate, 500 if not rate else max(1, min(500, int(rate // 20) or 1))):
        entries = [{"Data": json.dumps(ev).encode(), "PartitionKey": ev["service"]} for ev in part]
        for _ in range(10):  # PutRecords can fail single records (throttling): retry only those
            resp = client.put_records(StreamName=stream, Records=entries)
            if not resp.get("FailedRecordCount"):
                break
            entries = [e for e, r in zip(entries, resp["Records"]) if r.get("ErrorCode")]
            time.sleep(0.2)
        else:
            raise RuntimeError(f"kinesis {stream}: {len(entries)} records still failing after 10 tries")
        sent += len(part)
    return sent
