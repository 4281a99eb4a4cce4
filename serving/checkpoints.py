"""The streaming consumer's one SQLite file: results, quarantine, source checkpoints and the feature window.

Everything a batch of events changes is written in **one transaction**: the scores (upserted by event id), the
malformed events (upserted by their source id), the source position (Kinesis sequence numbers) and the rolling
window's new samples. A consumer killed at any instant therefore restarts from a state where either the whole
batch happened or none of it did; events read again are scored again and replace their own rows, so the
output holds each event once (``deliveries`` counts how often it was scored).
"""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pandas as pd

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    event_id TEXT PRIMARY KEY, source_id TEXT, service TEXT, timestamp TEXT, score REAL, calibrated REAL,
    is_anomaly INTEGER, failure_probability REAL, failure_alarm INTEGER, model TEXT,
    arrived_at REAL, scored_at REAL, deliveries INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS quarantine (
    source_id TEXT PRIMARY KEY, reason TEXT NOT NULL, raw TEXT, at REAL);
CREATE TABLE IF NOT EXISTS checkpoints (
    source TEXT, shard TEXT, position TEXT, at REAL, PRIMARY KEY (source, shard));
CREATE TABLE IF NOT EXISTS window_raw (
    service TEXT, minute INTEGER, metric TEXT, value REAL, PRIMARY KEY (service, minute, metric));
CREATE TABLE IF NOT EXISTS window_hourly (
    service TEXT, hour INTEGER, metric TEXT, mean REAL, PRIMARY KEY (service, hour, metric));
CREATE TABLE IF NOT EXISTS window_deploys (
    service TEXT, at REAL, kind TEXT, PRIMARY KEY (service, at));
"""

RESULT_FIELDS = ["event_id", "source_id", "service", "timestamp", "score", "calibrated", "is_anomaly",
                 "failure_probability", "failure_alarm", "model", "arrived_at", "scored_at"]


def default_path(settings) -> Path:
    cfg = settings.lifecycle.streaming
    return Path(cfg.checkpoint_path or settings.home / "streaming" / f"{cfg.group.replace(':', '_')}.sqlite")


class CheckpointStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # WAL: readers (a dashboard, `results()`) never block the consumer's commits.
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # ---------------------------------------------------------------------------------------- reads
    def checkpoint(self, source: str, shard: str) -> str | None:
        row = self.db.execute("SELECT position FROM checkpoints WHERE source=? AND shard=?", (source, shard)).fetchone()
        return row[0] if row else None

    def window_rows(self) -> tuple[list, list, list]:
        return (self.db.execute("SELECT service, minute, metric, value FROM window_raw").fetchall(),
                self.db.execute("SELECT service, hour, metric, mean FROM window_hourly").fetchall(),
                self.db.execute("SELECT service, at, kind FROM window_deploys").fetchall())

    def results(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM results ORDER BY service, timestamp, event_id", self.db)

    def quarantine(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM quarantine ORDER BY at", self.db)

    def counts(self) -> dict[str, int]:
        return {t: self.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("results", "quarantine")}

    # ---------------------------------------------------------------------------------------- the commit
    def commit(self, results: list[dict], quarantined: list[dict], checkpoints: dict[tuple[str, str], str],
               window_delta: dict) -> None:
        """One transaction: scores, quarantine, source positions and the window's changes."""
        now = time.time()
        cur = self.db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            cur.executemany(
                f"INSERT INTO results ({', '.join(RESULT_FIELDS)}) VALUES ({', '.join('?' * len(RESULT_FIELDS))}) "
                "ON CONFLICT(event_id) DO UPDATE SET " + ", ".join(f"{f}=excluded.{f}" for f in RESULT_FIELDS[1:])
                + ", deliveries = results.deliveries + 1",
                [tuple(r.get(f) for f in RESULT_FIELDS) for r in results])
            cur.executemany("INSERT OR REPLACE INTO quarantine (source_id, reason, raw, at) VALUES (?, ?, ?, ?)",
                            [(q["source_id"], q["reason"], q["raw"], now) for q in quarantined])
            cur.executemany("INSERT OR REPLACE INTO checkpoints (source, shard, position, at) VALUES (?, ?, ?, ?)",
                            [(src, shard, pos, now) for (src, shard), pos in checkpoints.items()])
            cur.executemany("INSERT OR REPLACE INTO window_raw VALUES (?, ?, ?, ?)", window_delta.get("raw", []))
            cur.executemany("INSERT OR REPLACE INTO window_hourly VALUES (?, ?, ?, ?)", window_delta.get("hourly", []))
            cur.executemany("INSERT OR REPLACE INTO window_deploys VALUES (?, ?, ?)", window_delta.get("deploys", []))
            for service, raw_from, hour_from, deploy_from in window_delta.get("prune", []):
                cur.execute("DELETE FROM window_raw WHERE service=? AND minute<?", (service, raw_from))
                cur.execute("DELETE FROM window_hourly WHERE service=? AND hour<?", (service, hour_from))
                cur.execute("DELETE FROM window_deploys WHERE service=? AND at<?", (service, deploy_from))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
