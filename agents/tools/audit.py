"""The audit log of tool calls: who, what, when, the arguments, the result and the approval.

SQLite in the CEREBRO home by default; PostgreSQL when a DSN is configured (``tools.audit_dsn``). Records
are appended, never updated; ``markdown`` renders them for a Prefect artifact or a report.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

COLUMNS = ("at", "who", "tool", "risk", "arguments", "dry_run", "approved", "approved_by", "approval_note",
           "outcome", "result", "error")
_DDL = """CREATE TABLE IF NOT EXISTS tool_audit (
    id {serial}, at TEXT NOT NULL, who TEXT NOT NULL, tool TEXT NOT NULL, risk TEXT NOT NULL,
    arguments TEXT NOT NULL, dry_run BOOLEAN NOT NULL, approved BOOLEAN, approved_by TEXT, approval_note TEXT,
    outcome TEXT NOT NULL, result TEXT, error TEXT)"""


@dataclass
class AuditRecord:
    who: str
    tool: str
    risk: str
    arguments: dict
    dry_run: bool
    outcome: str  # ok | dry-run | rejected | refused | failed | timed out
    approved: bool | None = None  # None: no approval was needed (read tools, dry runs)
    approved_by: str | None = None
    approval_note: str | None = None
    result: object = None
    error: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def row(self) -> tuple:
        return (self.at.isoformat(timespec="seconds"), self.who, self.tool, self.risk,
                json.dumps(self.arguments, default=str, sort_keys=True), self.dry_run, self.approved,
                self.approved_by, self.approval_note, self.outcome,
                None if self.result is None else json.dumps(self.result, default=str)[:20000], self.error)


class AuditLog:
    """Append and read audit records; ``target`` is a SQLite file path or a ``postgresql://`` DSN."""

    def __init__(self, target: str | Path):
        self.target = str(target)
        self.postgres = self.target.startswith(("postgresql://", "postgres://"))
        if not self.postgres:
            Path(self.target).parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute(_DDL.format(serial="BIGSERIAL PRIMARY KEY" if self.postgres else
                                     "INTEGER PRIMARY KEY AUTOINCREMENT"))

    def _connect(self):
        if self.postgres:
            import psycopg

            return psycopg.connect(self.target, connect_timeout=5, autocommit=True)
        import sqlite3

        conn = sqlite3.connect(self.target, timeout=10)
        conn.isolation_level = None  # autocommit: one INSERT is one transaction
        return _Closing(conn)

    def append(self, record: AuditRecord) -> None:
        mark = "%s" if self.postgres else "?"
        sql = f"INSERT INTO tool_audit ({', '.join(COLUMNS)}) VALUES ({', '.join([mark] * len(COLUMNS))})"
        with self._connect() as conn:
            conn.execute(sql, record.row())

    def recent(self, limit: int = 50, tool: str | None = None) -> list[dict]:
        mark = "%s" if self.postgres else "?"
        where, params = (f" WHERE tool = {mark}", [tool]) if tool else ("", [])
        sql = f"SELECT {', '.join(COLUMNS)} FROM tool_audit{where} ORDER BY id DESC LIMIT {int(limit)}"
        with self._connect() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [dict(zip(COLUMNS, r, strict=True)) for r in rows]


class _Closing:
    """sqlite3's connection as a context manager that also closes it (its own only ends a transaction)."""

    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        return self.conn

    def __exit__(self, *exc):
        self.conn.close()


def _cell(value) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).replace("|", "\\|").replace("\n", " ")[:200]


def markdown(records: list[dict], title: str = "Tool calls") -> str:
    """The records as a Markdown table (newest first), for a Prefect artifact."""
    head = "| when (UTC) | who | tool | risk | arguments | dry run | approved | by | outcome | result |"
    lines = [f"# {title}", "", head, "|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        approved = "" if r["approved"] is None else _cell(bool(r["approved"]))
        result = r["error"] or r["result"]
        lines.append("| " + " | ".join([_cell(r["at"]), _cell(r["who"]), _cell(r["tool"]), _cell(r["risk"]),
                                          _cell(r["arguments"]), _cell(bool(r["dry_run"])), approved,
                                          _cell(r["approved_by"]), _cell(r["outcome"]), _cell(result)]) + " |")
    if not records:
        lines.append("| | | | | | | | | no calls | |")
    return "\n".join(lines) + "\n"
