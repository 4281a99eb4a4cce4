"""Feature rows from the lake's telemetry: the rows batch scoring, the promotion gate's held-out data, the
drift check and the streaming consumer give the models.

    start, end = lake_window(settings, hours=24)        # the lake's last day, as UTC timestamps
    rows = read_features(settings, start, end)          # service, timestamp and every feature column

Features come from ``features.transforms.compute_features`` over the window plus ``lifecycle.history_hours``
of history before it (rolling windows, the 24-hour baseline and week-over-week need the past), so a minute
reads the same here as in training.
"""
from __future__ import annotations

import pandas as pd

from features.transforms import CREATED, DEPLOY_KINDS, TIMESTAMP, compute_features


def utc(value) -> pd.Timestamp:
    """``value`` as a UTC timestamp (a naive one is taken as UTC)."""
    ts = pd.Timestamp(value)
    return ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")


def lake_window(settings, start=None, end=None, hours: float = 24) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) as UTC timestamps; by default the last ``hours`` the lake holds (its newest minute included)."""
    from telemetry import lake

    if end is None:
        stats = lake.lake_stats(settings.lake_dir)
        if not stats["dates"]:
            raise ValueError(f"the lake at {settings.lake_dir} holds no telemetry; run `cerebro run` or ingest first")
        last_day = lake.read_telemetry(settings.lake_dir, start=stats["dates"][-1])
        end = last_day["timestamp"].max() + pd.Timedelta(minutes=1)
    end = utc(end)
    start = end - pd.Timedelta(hours=hours) if start is None else utc(start)
    if start >= end:
        raise ValueError(f"window start {start} is not before its end {end}")
    return start, end


def deploy_events(settings) -> pd.DataFrame:
    """The lake's deploys and rollbacks (every dataset): what ``minutes_since_deploy`` counts from."""
    from telemetry import lake

    events = lake.read_table("events", settings.lake_dir)
    if events.empty:
        return pd.DataFrame(columns=["service", "timestamp", "kind"])
    events = events[events["kind"].astype(str).isin(DEPLOY_KINDS)]
    return events.assign(timestamp=pd.to_datetime(events["timestamp"], utc=True))[["service", "timestamp", "kind"]]


def features_of(telemetry: pd.DataFrame, events: pd.DataFrame | None, window: int) -> pd.DataFrame:
    """Request rows for the models: ``service``, ``timestamp`` and every feature column, one per (service, minute)."""
    feats = compute_features(telemetry, events, window=window)
    return feats.drop(columns=[CREATED]).rename(columns={TIMESTAMP: "timestamp"})


def read_features(settings, start, end, services: list[str] | None = None) -> pd.DataFrame:
    """Feature rows for minutes in [start, end), computed with ``lifecycle.history_hours`` of history before."""
    from telemetry import lake

    start, end = utc(start), utc(end)
    history = pd.Timedelta(hours=settings.lifecycle.history_hours)
    telemetry = lake.read_telemetry(settings.lake_dir, start=start - history, end=end, services=services)
    if telemetry.empty:
        which = f" for services {sorted(services)}" if services else ""
        raise ValueError(f"the lake at {settings.lake_dir} holds no telemetry{which} between {start} and {end}")
    feats = features_of(telemetry, deploy_events(settings), settings.feast.window_minutes)
    # compute_features ceils samples to the minute, so a sample just before `end` may land on `end` itself.
    keep = (feats["timestamp"] >= start) & (feats["timestamp"] < end)
    return feats[keep].reset_index(drop=True)


def parse_window(window: str | float) -> pd.Timedelta:
    """A training window as a duration: ``"14d"``, ``"36h"``, ``"2w"``, or a number of days."""
    if isinstance(window, int | float) or str(window).replace(".", "", 1).isdigit():
        days = float(window)
        if days <= 0:
            raise ValueError(f"window {window!r}: expected a positive number of days")
        return pd.Timedelta(days=days)
    text = str(window).strip().lower()
    units = {"d": "days", "h": "hours", "w": "weeks"}
    try:
        value, unit = float(text[:-1]), units[text[-1]]
    except (KeyError, ValueError):
        raise ValueError(f"window {window!r}: expected a duration such as 14d, 36h or 2w") from None
    if value <= 0:
        raise ValueError(f"window {window!r}: expected a positive duration")
    return pd.Timedelta(**{unit: value})


def service_spans(settings, window: str | float = "14d") -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
    """Each service's training window: its last ``window`` of samples, up to its own newest sample.

    Per service, because the series of an export may cover different periods (one host retired last month,
    one added yesterday): every series trains on its own newest history. Reads only each service's newest
    date partition to find its end."""
    from pathlib import Path

    from telemetry import lake

    length = parse_window(window)
    root = Path(settings.lake_dir) / "telemetry"
    newest: dict[str, str] = {}
    for part in root.glob("date=*/service=*"):
        svc, day = part.name.split("=", 1)[1], part.parent.name.split("=", 1)[1]
        newest[svc] = max(newest.get(svc, day), day)
    if not newest:
        raise ValueError(f"the lake at {settings.lake_dir} holds no telemetry; ingest a source first")
    spans = {}
    for svc, day in sorted(newest.items()):
        last = lake.read_telemetry(settings.lake_dir, start=day, services=[svc])["timestamp"].max()
        end = last + pd.Timedelta(minutes=1)
        spans[svc] = (end - length, end)
    return spans
