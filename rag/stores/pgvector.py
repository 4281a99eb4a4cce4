"""The vector index in PostgreSQL with pgvector, for when one machine's index is not enough.

Same interface as :class:`rag.stores.vector.UsearchStore`. Vectors travel as pgvector's text form
(``'[0.1,0.2,...]'::vector``), so psycopg needs no adapter package. An HNSW index with cosine distance
(``vector_cosine_ops``) serves the search. ``CREATE EXTENSION vector`` needs the extension's files on the
database server (the ``postgresql-NN-pgvector`` package); without them :class:`PgVectorUnavailable` says so.
"""
from __future__ import annotations

import re

import numpy as np

from rag.stores.vector import chunk_key, key_chunk


class PgVectorUnavailable(RuntimeError):
    """The database cannot be reached, or the pgvector extension cannot be created there."""


def _literal(vector) -> str:
    return "[" + ",".join(f"{float(x):.7g}" for x in vector) + "]"


class PgVectorStore:
    def __init__(self, dsn: str, dim: int, table: str = "cerebro_chunks"):
        import psycopg

        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", table):
            raise ValueError(f"table {table!r}: expected a plain SQL identifier")
        self.dim, self.table = dim, table
        try:
            self.conn = psycopg.connect(dsn, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            raise PgVectorUnavailable(f"cannot connect to {dsn!r}: {exc}".strip()) from exc
        try:
            self.conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as exc:
            self.conn.close()
            raise PgVectorUnavailable(f"the pgvector extension cannot be created on {dsn!r} ({exc}".strip()
                                      + "); install the server package, e.g. postgresql-15-pgvector") from exc
        self.conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (key BIGINT PRIMARY KEY, "
                          f"embedding vector({dim}) NOT NULL)")
        self.conn.execute(f"CREATE INDEX IF NOT EXISTS {table}_hnsw ON {table} "
                          "USING hnsw (embedding vector_cosine_ops)")

    # chunk ids are 64-bit unsigned; BIGINT is signed: shift into its range and back.
    @staticmethod
    def _key(chunk_id: str) -> int:
        return chunk_key(chunk_id) - 2**63

    def __len__(self) -> int:
        return self.conn.execute(f"SELECT count(*) FROM {self.table}").fetchone()[0]

    def add(self, chunk_ids: list[str], vectors: np.ndarray) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {self.table} (key, embedding) VALUES (%s, %s::vector) "
                "ON CONFLICT (key) DO UPDATE SET embedding = EXCLUDED.embedding",
                [(self._key(c), _literal(v)) for c, v in zip(chunk_ids, vectors, strict=True)])

    def remove(self, chunk_ids: list[str]) -> None:
        if chunk_ids:
            self.conn.execute(f"DELETE FROM {self.table} WHERE key = ANY(%s)", [[self._key(c) for c in chunk_ids]])

    def search(self, vector, k: int) -> list[tuple[str, float]]:
        rows = self.conn.execute(
            f"SELECT key, 1 - (embedding <=> %s::vector) FROM {self.table} ORDER BY embedding <=> %s::vector "
            "LIMIT %s", [_literal(vector), _literal(vector), k]).fetchall()
        return [(key_chunk(key + 2**63), float(score)) for key, score in rows]

    def vectors(self, chunk_ids: list[str]) -> np.ndarray:
        rows = dict(self.conn.execute(f"SELECT key, embedding::text FROM {self.table} WHERE key = ANY(%s)",
                                      [[self._key(c) for c in chunk_ids]]).fetchall())
        return np.array([np.array(rows[self._key(c)].strip("[]").split(","), dtype=np.float32)
                         for c in chunk_ids], dtype=np.float32).reshape(len(chunk_ids), -1)

    def save(self) -> None:  # every write is already committed
        pass

    def drop(self) -> None:
        self.conn.execute(f"DROP TABLE IF EXISTS {self.table}")

    def close(self) -> None:
        self.conn.close()
