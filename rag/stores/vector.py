"""The embedded vector index: usearch (HNSW), one file on disk.

usearch is a maintained single-file HNSW library with wheels for every platform, no server and no
network; it stores the vectors with the graph, supports removing keys (what incremental indexing
needs) and saves to one file that loads at once. Keys are the chunk ids' 64-bit integer values, so no
separate id map can drift out of step. With ``expansion_search`` at 128 the HNSW answers match exact
search on the knowledge base's sizes (tested against a brute-force scan). Vectors are inserted on one thread:
usearch's parallel insert links the graph in whatever order the threads run, so the same passages gave a
different index, and different top-5 answers, on every build (a third of the queries on 3,000 vectors).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def chunk_key(chunk_id: str) -> int:
    return int(chunk_id, 16)


def key_chunk(key: int) -> str:
    return f"{int(key):016x}"


class UsearchStore:
    FILE = "vectors.usearch"

    def __init__(self, directory: Path, dim: int):
        from usearch.index import Index

        self.path = Path(directory) / self.FILE
        self.dim = dim
        if self.path.exists():
            self.index = Index.restore(str(self.path))
            if self.index.ndim != dim:
                raise ValueError(f"{self.path}: the index holds {self.index.ndim}-dimensional vectors but the "
                                 f"embedder makes {dim}; delete the index folder to re-index with the new model")
        else:
            self.index = Index(ndim=dim, metric="cos", dtype="f32", connectivity=16, expansion_add=128,
                               expansion_search=128)

    def __len__(self) -> int:
        return len(self.index)

    def add(self, chunk_ids: list[str], vectors: np.ndarray) -> None:
        if not chunk_ids:
            return
        keys = np.array([chunk_key(c) for c in chunk_ids], dtype=np.uint64)
        self.remove([c for c in chunk_ids if chunk_key(c) in self.index])
        self.index.add(keys, np.asarray(vectors, dtype=np.float32), threads=1)  # reproducible builds

    def remove(self, chunk_ids: list[str]) -> None:
        keys = [chunk_key(c) for c in chunk_ids if chunk_key(c) in self.index]
        if keys:
            self.index.remove(np.array(keys, dtype=np.uint64))

    def search(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        if len(self.index) == 0:
            return []
        matches = self.index.search(np.asarray(vector, dtype=np.float32), min(k, len(self.index)))
        # usearch's cosine metric returns a distance (1 - cosine similarity).
        return [(key_chunk(key), float(1.0 - d)) for key, d in zip(matches.keys, matches.distances, strict=True)]

    def vectors(self, chunk_ids: list[str]) -> np.ndarray:
        if not chunk_ids:
            return np.zeros((0, self.dim), dtype=np.float32)
        got = self.index.get(np.array([chunk_key(c) for c in chunk_ids], dtype=np.uint64))
        return np.vstack(got if isinstance(got, tuple) else [got]).astype(np.float32).reshape(len(chunk_ids), -1)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.index.save(str(self.path))
