"""The knowledge base on disk and its incremental update.

    <index_dir>/manifest.json     every indexed document: content hash, origin, chunk ids; the embedder
    <index_dir>/chunks.jsonl      every chunk (text and metadata), what search results are made of
    <index_dir>/vectors.usearch   the vector index (or PostgreSQL with pgvector, by configuration)
    <index_dir>/bm25/             the keyword index
    <index_dir>/graph.json        the service graph, when one was indexed
    <index_dir>/embeddings.sqlite the embedding cache, by content hash

An update names its *origin* (the folder or table it read). A document whose hash is unchanged is left
alone; a changed one is chunked and embedded again (the cache still spares passages whose text did not
change); a document the origin no longer has leaves the index. Documents from other origins are untouched.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rag.chunking import chunk_document
from rag.documents import Chunk, Document, LoadReport
from rag.embeddings import EmbeddingCache, embed_texts
from rag.entities import Catalog
from rag.stores.graph import ServiceGraph
from rag.stores.keyword import BM25Store

MANIFEST_VERSION = 1


@dataclass
class UpdatePlan:
    new: list[Document] = field(default_factory=list)
    changed: list[Document] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # doc ids
    removed: list[str] = field(default_factory=list)  # doc ids


def plan_update(manifest_docs: dict[str, dict], documents: list[Document], origin: str,
                hashes: dict[str, str]) -> UpdatePlan:
    """Compare what an origin holds now (``documents`` with their ``hashes``) with the manifest."""
    plan = UpdatePlan()
    present = set()
    for doc in documents:
        present.add(doc.doc_id)
        known = manifest_docs.get(doc.doc_id)
        if known is None:
            plan.new.append(doc)
        elif known["hash"] != hashes[doc.doc_id] or known["origin"] != origin:  # moved: now this origin's
            plan.changed.append(doc)
        else:
            plan.unchanged.append(doc.doc_id)
    plan.removed = sorted(d for d, info in manifest_docs.items() if info["origin"] == origin and d not in present)
    return plan


@dataclass
class IndexReport:
    origin: str
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    embedded: int = 0  # passages the model embedded (the rest came from the cache)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    chunks_per_second: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class KnowledgeBase:
    """Open (or create) the index in ``directory``; ``embedder`` is needed to update and to search."""

    def __init__(self, directory: str | Path, embedder=None, rag_settings=None):
        self.dir = Path(directory)
        self.embedder = embedder
        self.settings = rag_settings
        manifest = self.dir / "manifest.json"
        self.manifest = json.loads(manifest.read_text()) if manifest.exists() else {
            "version": MANIFEST_VERSION, "embedder": None, "dim": None, "documents": {}}
        self.chunks: dict[str, Chunk] = {}
        chunks = self.dir / "chunks.jsonl"
        if chunks.exists():
            for line in chunks.read_text(encoding="utf-8").splitlines():
                c = Chunk.from_dict(json.loads(line))
                self.chunks[c.chunk_id] = c
        graph = self.dir / "graph.json"
        self.graph = ServiceGraph(json.loads(graph.read_text()) if graph.exists() else None)
        self.keyword = BM25Store(self.dir).load()
        self._vector = None
        self._by_service = None
        self.catalog = self._catalog()

    # ------------------------------------------------------------------ parts
    @property
    def documents(self) -> dict[str, dict]:
        return self.manifest["documents"]

    @property
    def vector(self):
        if self._vector is None:
            dim = self.manifest.get("dim") or (self.embedder.dim if self.embedder else None)
            if dim is None:
                raise RuntimeError("the index is empty and no embedder was given")
            self._vector = open_vector_store(self.dir, dim, self.settings)
        return self._vector

    def _catalog(self) -> Catalog:
        catalog = Catalog.from_graph(self.graph.data, getattr(self.settings, "service_aliases", None))
        for info in self.documents.values():
            if info.get("service"):
                catalog.add_aliases(info["service"], info.get("aliases") or [])
        return catalog

    # ------------------------------------------------------------------ update
    def _tag(self, doc: Document) -> Document:
        """Add the services a document mentions (title and text) to those it declares."""
        found = self.catalog.find_services(f"{doc.title}\n{doc.text}")
        services = tuple(dict.fromkeys([*doc.services, *found]))
        return doc if services == doc.services else Document(**{**doc.__dict__, "services": services})

    def update(self, report: LoadReport, origin: str, graph: dict | None = None,
               on_batch=None) -> IndexReport:
        """Bring ``origin``'s documents up to date; returns what changed."""
        if self.embedder is None:
            raise RuntimeError("updating the knowledge base needs an embedder")
        t0 = time.perf_counter()
        self.dir.mkdir(parents=True, exist_ok=True)
        result = IndexReport(origin=origin, skipped=list(report.skipped))
        if self.manifest.get("embedder") not in (None, self.embedder.name):
            self._reembed_all(on_batch)
        if graph is not None:
            _write_atomic(self.dir / "graph.json", json.dumps(graph, indent=1, sort_keys=True))
            self.graph = ServiceGraph(graph)
        # Aliases first: they decide which services the other documents mention.
        self.catalog = self._merge_catalog(report.documents)
        docs = [self._tag(d) for d in report.documents]
        # The hash covers the services found in the text, so a document is re-chunked when a new alias
        # changes what it mentions, and only then.
        hashes = {d.doc_id: d.content_hash for d in docs}
        plan = plan_update(self.documents, docs, origin, hashes)

        stale: list[str] = []
        for doc_id in plan.removed + [d.doc_id for d in plan.changed]:
            stale.extend(self.documents[doc_id]["chunks"])
        fresh: list[Chunk] = []
        for doc in plan.new + plan.changed:
            fresh.extend(chunk_document(doc, *self._chunk_sizes()))
        fresh_ids = {c.chunk_id for c in fresh}
        gone = [c for c in stale if c not in fresh_ids]

        if gone:
            self.vector.remove(gone)
        for c in gone:
            self.chunks.pop(c, None)
        if fresh:
            result.embedded = self._embed_into_index(fresh, on_batch)
            self.chunks.update((c.chunk_id, c) for c in fresh)
        for doc_id in plan.removed:
            del self.documents[doc_id]
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        for doc in plan.new + plan.changed:
            self.documents[doc.doc_id] = {
                "hash": hashes[doc.doc_id], "origin": origin, "source": doc.source, "title": doc.title,
                "kind": doc.kind, "service": doc.metadata.get("service") or None,
                "aliases": doc.metadata.get("aliases") if isinstance(doc.metadata.get("aliases"), list) else [],
                "chunks": [c.chunk_id for c in fresh if c.doc_id == doc.doc_id], "indexed_at": now,
                "updated": doc.updated}
        self.manifest.update(embedder=self.embedder.name, dim=self.vector.dim, updated_at=now)
        self._by_service = None
        if fresh or gone or plan.removed:
            self.keyword.build(list(self.chunks), [c.search_text for c in self.chunks.values()])
        self.save()
        result.new, result.changed, result.unchanged, result.removed = (
            len(plan.new), len(plan.changed), len(plan.unchanged), len(plan.removed))
        result.chunks_added, result.chunks_removed = len(fresh), len(gone)
        result.seconds = round(time.perf_counter() - t0, 3)
        result.chunks_per_second = round(len(fresh) / result.seconds, 1) if fresh and result.seconds else 0.0
        return result

    def _merge_catalog(self, docs: list[Document]) -> Catalog:
        catalog = self._catalog()
        for doc in docs:
            service = doc.metadata.get("service")
            if isinstance(service, str):
                aliases = doc.metadata.get("aliases")
                catalog.add_aliases(service, aliases if isinstance(aliases, list) else [])
        return catalog

    def _chunk_sizes(self) -> tuple[int, int]:
        return (getattr(self.settings, "max_words", 160), getattr(self.settings, "overlap_words", 30))

    def _reembed_all(self, on_batch) -> None:
        """The embedder changed: every stored chunk is embedded again into a fresh vector index."""
        for name in ("vectors.usearch",):
            (self.dir / name).unlink(missing_ok=True)
        self.manifest["dim"] = None
        self._vector = None
        if self.chunks:
            self._embed_into_index(list(self.chunks.values()), on_batch)

    def _embed_into_index(self, chunks: list[Chunk], on_batch) -> int:
        """Embed (through the cache) and add to the vector index; returns how many the model computed."""
        cache = EmbeddingCache(self.dir / "embeddings.sqlite")
        try:
            vectors, computed = embed_texts(self.embedder, [c.search_text for c in chunks], cache,
                                            getattr(self.settings, "batch_size", 64), on_batch)
        finally:
            cache.close()
        self.vector.add([c.chunk_id for c in chunks], vectors)
        return computed

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._vector is not None:
            self._vector.save()
        self.keyword.save()
        _write_atomic(self.dir / "chunks.jsonl",
                      "".join(json.dumps(c.to_dict(), sort_keys=True) + "\n" for c in self.chunks.values()))
        _write_atomic(self.dir / "manifest.json", json.dumps(self.manifest, indent=1, sort_keys=True))

    @property
    def service_index(self):
        """Chunks by the services they are about, for the graph retriever (rebuilt after an update)."""
        if self._by_service is None:
            from rag.stores.graph import ChunkServiceIndex

            self._by_service = ChunkServiceIndex(list(self.chunks.values()))
        return self._by_service

    # ------------------------------------------------------------------ facts
    def stats(self) -> dict:
        kinds: dict[str, dict[str, int]] = {}
        for info in self.documents.values():
            entry = kinds.setdefault(info["kind"], {"documents": 0, "chunks": 0})
            entry["documents"] += 1
            entry["chunks"] += len(info["chunks"])
        origins: dict[str, int] = {}
        for info in self.documents.values():
            origins[info["origin"]] = origins.get(info["origin"], 0) + 1
        size = sum(p.stat().st_size for p in self.dir.rglob("*") if p.is_file()) if self.dir.exists() else 0
        return {"index_dir": str(self.dir), "documents": len(self.documents), "chunks": len(self.chunks),
                "by_kind": dict(sorted(kinds.items())), "origins": origins,
                "embedder": self.manifest.get("embedder"), "dim": self.manifest.get("dim"),
                "vector_store": getattr(self.settings, "vector_store", "usearch"),
                "services_in_graph": len(self.graph.services), "updated_at": self.manifest.get("updated_at"),
                "bytes_on_disk": size}


def open_vector_store(directory: Path, dim: int, rag_settings=None):
    """The configured vector store: the embedded usearch file, or PostgreSQL with pgvector."""
    if getattr(rag_settings, "vector_store", "usearch") == "pgvector":
        from rag.stores.pgvector import PgVectorStore

        dsn = rag_settings.pgvector_dsn
        dsn = dsn.get_secret_value() if hasattr(dsn, "get_secret_value") else dsn  # a secret in the settings
        if not dsn:
            raise ValueError("rag.vector_store is pgvector but rag.pgvector_dsn is empty; set "
                             "CEREBRO_RAG__PGVECTOR_DSN=postgresql://user@host:5432/db")
        return PgVectorStore(dsn, dim, table=f"cerebro_chunks_{dim}")
    from rag.stores.vector import UsearchStore

    return UsearchStore(directory, dim)
