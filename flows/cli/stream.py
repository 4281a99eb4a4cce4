"""`cerebro stream` (the streaming consumer) and `cerebro replay` (lake telemetry into a stream)."""
from __future__ import annotations

import typer

from flows.cli.common import ConfigOpt, console, fail, out, print_json, settings_or_exit


def stream(
    source: str = typer.Option(..., "--source", "-s", help="redis (Redis Streams, consumer group) or kinesis."),
    stream_name: str | None = typer.Option(None, "--stream", help="Redis stream or Kinesis stream name (default: "
                                           "lifecycle.streaming.stream / kinesis_stream)."),
    group: str | None = typer.Option(None, help="Redis consumer group (default: lifecycle.streaming.group)."),
    consumer: str | None = typer.Option(None, help="This consumer's name in the group (default: "
                                        "lifecycle.streaming.consumer). Restart with the same name to resume."),
    redis_url: str | None = typer.Option(None, help="redis://host:port/db (default: lifecycle.streaming.redis_url)."),
    endpoint: str | None = typer.Option(None, help="Kinesis endpoint URL (LocalStack, moto); default: AWS."),
    region: str | None = typer.Option(None, help="Kinesis region (default: lifecycle.streaming.kinesis_region)."),
    checkpoint: str | None = typer.Option(None, help="SQLite file for results, checkpoints and the feature window "
                                          "(default: <home>/streaming/<group>.sqlite)."),
    model: str | None = typer.Option(None, help="Registered detector whose champion scores (default: "
                                     "lifecycle.detector_model, falling back to lifecycle.fallback_model)."),
    failure: bool = typer.Option(False, "--failure", help="Also score the failure predictor's champion."),
    batch_size: int | None = typer.Option(None, min=1, help="Events read and committed together."),
    claim_idle_ms: int | None = typer.Option(None, min=0, help="Redis: take over entries another consumer left "
                                             "pending this long."),
    idle_exit: float | None = typer.Option(None, help="Stop after this many seconds without an event (default: "
                                           "run until Ctrl-C / SIGTERM)."),
    config: str | None = ConfigOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the final summary as JSON."),
):
    """Score telemetry events as they arrive, exactly once in the output, from Redis Streams or Kinesis.

    Each event (JSON: `timestamp`, `service`, and `metrics` {name: value} or `metric` + `value`; or an operations
    event with `kind`, e.g. a deploy) joins its service's rolling window; the features are the batch pipeline's
    (`features/transforms`), and the champion detector scores each event. Scores, malformed events (table
    `quarantine`, with the reason), the feature window and the Kinesis sequence numbers are committed in one
    SQLite transaction; Redis entries are acknowledged after it. Kill the consumer at any moment and start it
    again: nothing is lost and nothing is scored twice in the output.

    Examples:

        cerebro replay --to redis --hours 2 && cerebro stream --source redis --idle-exit 10

        cerebro stream --source kinesis --stream cerebro-telemetry --endpoint http://localhost:4566

        sqlite3 .cerebro/streaming/cerebro-scoring.sqlite 'select service, timestamp, score from results limit 5'
    """
    import signal

    from serving.checkpoints import CheckpointStore, default_path
    from serving.registry import RegistryError, load_champion
    from serving.streaming import FeatureWindow, KinesisSource, RedisSource, Scorer, consume

    if source not in ("redis", "kinesis"):
        fail(f"--source {source!r}: expected redis or kinesis", 2)
    from configs.settings import reveal  # here: pydantic-settings costs every other command 0.2 s

    settings = settings_or_exit(config)
    cfg, life = settings.lifecycle.streaming, settings.lifecycle
    store = CheckpointStore(checkpoint or default_path(settings))
    try:
        detector = load_champion(settings, model or life.detector_model, fallback=None if model else life.fallback_model)
        fail_model = load_champion(settings, life.failure_model) if failure else None
    except RegistryError as exc:
        fail(f"{exc}; register and promote a model first (cerebro run, cerebro models list)", 2)
    if source == "redis":
        src = RedisSource(redis_url or reveal(cfg.redis_url), stream_name or cfg.stream, group or cfg.group,
                          consumer or cfg.consumer, cfg.claim_idle_ms if claim_idle_ms is None else claim_idle_ms,
                          cfg.start_at, cfg.block_ms)
    else:
        src = KinesisSource(stream_name or cfg.kinesis_stream, region or cfg.kinesis_region,
                            endpoint or cfg.kinesis_endpoint, store, cfg.start_at, cfg.block_ms)
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))  # finish the batch in hand, then stop
    console.print(f"consuming {source}:{src.stream} with {detector.name} v{detector.version}; results in "
                  f"{store.path}", highlight=False)
    window = FeatureWindow(settings.feast.window_minutes, life.history_hours)
    try:
        stats = consume(src, store, Scorer(detector, fail_model), window, batch_size or cfg.batch_size,
                        should_stop=lambda: bool(stopping), idle_exit_s=idle_exit)
    except Exception as exc:  # noqa: BLE001 - a broken connection or a missing stream: say which
        fail(f"{source} consumer stopped: {type(exc).__name__}: {exc}")
    summary = {**stats.summary(), "checkpoint": str(store.path), **store.counts()}
    if as_json:
        print_json(summary)
        return
    out.print(f"{summary['records']} events read, {summary['scored']} scored ({summary['anomalies']} anomalous), "
              f"{summary['quarantined']} quarantined, {summary['other_events']} operations events; "
              f"lag p50 {summary['lag_ms_p50']} ms, p95 {summary['lag_ms_p95']} ms; store {store.path} holds "
              f"{summary['results']} results", highlight=False)


def replay(
    to: str = typer.Option(..., "--to", help="redis or kinesis."),
    start: str | None = typer.Option(None, help="First minute (ISO 8601, UTC); default: end minus --hours."),
    end: str | None = typer.Option(None, help="End of the window; default: the lake's newest minute."),
    hours: float = typer.Option(1.0, help="Window length when --start is not given."),
    service: list[str] | None = typer.Option(None, "--service", help="Only these services (repeatable)."),
    rate: float | None = typer.Option(None, help="Events per second (default: as fast as possible)."),
    stream_name: str | None = typer.Option(None, "--stream", help="Stream name (default from lifecycle.streaming)."),
    endpoint: str | None = typer.Option(None, help="Kinesis endpoint URL."),
    create: bool = typer.Option(False, help="Kinesis: create the stream (1 shard) if it does not exist."),
    config: str | None = ConfigOpt,
):
    """Replay lake telemetry (one event per service and minute, plus deploys) into a stream, for demos and
    benchmarks. Event ids are `service@minute`, so replaying the same window twice scores nothing twice.

    Example:

        cerebro replay --to redis --hours 6 --rate 500
    """
    from features.from_lake import lake_window
    from serving.streaming import lake_events, publish_kinesis, publish_redis

    if to not in ("redis", "kinesis"):
        fail(f"--to {to!r}: expected redis or kinesis", 2)
    from configs.settings import reveal

    settings = settings_or_exit(config)
    cfg = settings.lifecycle.streaming
    try:
        lo, hi = lake_window(settings, start, end, hours=hours)
        events = lake_events(settings, lo, hi, services=service or None)
    except ValueError as exc:
        fail(str(exc), 2)
    if to == "redis":
        sent = publish_redis(reveal(cfg.redis_url), stream_name or cfg.stream, events, rate)
    else:
        sent = publish_kinesis(stream_name or cfg.kinesis_stream, cfg.kinesis_region, endpoint or cfg.kinesis_endpoint,
                               events, rate, create=create)
    out.print(f"sent {sent} events ({lo:%Y-%m-%d %H:%M} .. {hi:%Y-%m-%d %H:%M} UTC) to {to}:"
              f"{stream_name or (cfg.stream if to == 'redis' else cfg.kinesis_stream)}", highlight=False)
