"""Hybrid retrieval: vector, keyword and graph search fused by reciprocal rank fusion, near-duplicates
removed, then re-ranked.

* **Fusion.** Each retriever contributes its top ``candidates``; a chunk scores
  ``sum(weight_r / (rrf_k + rank_r))`` (Cormack et al., 2009). RRF needs no score calibration between a
  cosine, a BM25 score and a graph distance, which is why it is used; the weights come from configuration.
* **Near-duplicates.** Word 3-shingles with digits masked; a chunk whose Jaccard overlap with a better one
  reaches ``dedup_threshold`` is dropped (two incidents of the same kind differ only in ids and times).
* **Re-ranking.** No cross-encoder is available offline, so the fused list is re-scored by features the
  retrievers do not each see: the normalised RRF score (weight 1), the cosine similarity of the query
  and the passage (0.25), a match between the services the query names and the passage's service (0.15),
  the share of the query's words found in the title and section (0.1), a section that fits the intent
  (Mitigation for an action request, Diagnosis for an investigation, Meaning for a question: 0.05) and an
  incident or chat whose time overlaps the query's time range (0.05). The weights were fixed from these
  roles (RRF leads, the rest break near-ties) before the evaluation set was run.
"""
from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from rag.documents import Chunk
from rag.query import QueryAnalysis, analyse_query

RETRIEVERS = ("vector", "keyword", "graph")
RERANK_WEIGHTS = {"rrf": 1.0, "similarity": 0.25, "entity": 0.15, "title": 0.1, "section": 0.05, "time": 0.05}
_INTENT_SECTIONS = {
    "action_request": ("mitigation", "resolution"),
    "investigation": ("diagnosis", "summary", "details", "impact"),
    "knowledge_question": ("meaning", "calls", "callers", "blast radius", "depends on"),
}
_STOP = frozenset({"a", "an", "the", "is", "are", "was", "were", "be", "been", "of", "on", "in", "at",
    "to", "for", "from", "by", "with", "and", "or", "not", "no", "do", "does", "did", "i", "we", "you",
    "it", "its", "this", "that", "what", "why", "how", "which", "who", "when", "where", "there", "our",
    "my", "me", "us", "can", "should"})


@dataclass
class Hit:
    chunk: Chunk
    score: float
    retrievers: dict[str, int] = field(default_factory=dict)  # retriever -> rank it gave (1 = best)
    features: dict[str, float] = field(default_factory=dict)

    def to_dict(self, snippet_chars: int = 280) -> dict:
        text = " ".join(self.chunk.text.split())
        return {"chunk_id": self.chunk.chunk_id, "source": self.chunk.source, "title": self.chunk.title,
                "section": self.chunk.section, "kind": self.chunk.kind, "score": round(self.score, 4),
                "snippet": text[:snippet_chars] + ("…" if len(text) > snippet_chars else ""),
                "services": list(self.chunk.services), "retrievers": self.retrievers,
                "features": {f: round(v, 4) for f, v in self.features.items()}}


@dataclass
class SearchResult:
    query: str
    analysis: QueryAnalysis
    hits: list[Hit]
    mode: str
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"query": self.query, "mode": self.mode, "analysis": self.analysis.to_dict(),
                "hits": [h.to_dict() for h in self.hits], "timings_ms": self.timings_ms}


def reciprocal_rank_fusion(rankings: dict[str, list[str]], weights: dict[str, float], k: int = 60) -> dict[str, float]:
    scores: dict[str, float] = {}
    for name, ids in rankings.items():
        w = weights.get(name, 0.0)
        for rank, chunk_id in enumerate(ids, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + w / (k + rank)
    return scores


def shingles(text: str, n: int = 3) -> set[str]:
    words = re.sub(r"\d+", "0", text.lower()).split()
    return {" ".join(words[i:i + n]) for i in range(max(1, len(words) - n + 1))}


def drop_near_duplicates(ranked: list[str], text_of: dict[str, str], threshold: float,
                         limit: int | None = None) -> list[str]:
    """``ranked`` without the chunks that repeat a better one; stops once ``limit`` are kept."""
    kept: list[tuple[str, set[str]]] = []
    for chunk_id in ranked:
        if limit is not None and len(kept) >= limit:
            break
        sh = shingles(text_of[chunk_id])
        if all(len(sh & other) / max(1, len(sh | other)) < threshold for _, other in kept):
            kept.append((chunk_id, sh))
    return [c for c, _ in kept]


def _content_words(text: str, stem) -> frozenset[str]:
    return frozenset(stem([w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP]))


@functools.lru_cache(maxsize=65536)
def _title_words(title: str, section: str, stem) -> frozenset[str]:
    return _content_words(f"{title} {section}", stem)


def rerank_features(chunk: Chunk, analysis: QueryAnalysis, similarity: float, query_words: set[str], stem) -> dict:
    primary = chunk.metadata.get("service")
    if analysis.services and primary in analysis.services:
        entity = 1.0
    elif analysis.services and len(chunk.services) <= 3 and set(chunk.services) & set(analysis.services):
        entity = 0.3
    else:
        entity = 0.0
    title_words = _title_words(chunk.title, chunk.section, stem)
    title = len(query_words & title_words) / len(query_words) if query_words else 0.0
    last = chunk.section.split(" > ")[-1].lower() if chunk.section else ""
    section = 1.0 if last in _INTENT_SECTIONS.get(analysis.intent, ()) else 0.0
    timed = 0.0
    tr = analysis.time_range
    if tr and chunk.kind in ("incident", "chat") and chunk.updated:
        span = tr.to_dict()
        start = chunk.metadata.get("created") or chunk.updated
        timed = 1.0 if start <= span["end"] and chunk.updated >= span["start"] else 0.0
    return {"similarity": similarity, "entity": entity, "title": title, "section": section, "time": timed}


class HybridRetriever:
    def __init__(self, kb, embedder=None, rag_settings=None):
        self.kb = kb
        self.embedder = embedder or kb.embedder
        self.settings = rag_settings or kb.settings
        self._stemmer = None
        self._query_vectors: dict[str, np.ndarray] = {}

    def embed_query(self, query: str) -> np.ndarray:
        """The query's embedding, remembered for the last few hundred queries (a repeated search is free)."""
        if query not in self._query_vectors:
            if len(self._query_vectors) >= 512:
                self._query_vectors.pop(next(iter(self._query_vectors)))
            one = getattr(self.embedder, "embed_one", None)
            self._query_vectors[query] = one(query) if one else self.embedder.embed([query])[0]
        return self._query_vectors[query]

    def _stem(self, words: list[str]) -> list[str]:
        if self._stemmer is None:
            import Stemmer

            self._stemmer = Stemmer.Stemmer("english")
        return self._stemmer.stemWords(words)

    def _setting(self, name: str, default):
        return getattr(self.settings, name, default) if self.settings is not None else default

    def rankings(self, analysis: QueryAnalysis, query_vector: np.ndarray | None, n: int,
                 which=RETRIEVERS) -> tuple[dict[str, list[tuple[str, float]]], dict[str, float]]:
        """Each retriever's own ranking: (chunk_id, score) lists, best first, and their timings in ms."""
        out, timings = {}, {}
        for name in which:
            t0 = time.perf_counter()
            if name == "vector":
                out[name] = self.kb.vector.search(query_vector, n) if query_vector is not None else []
            elif name == "keyword":
                out[name] = self.kb.keyword.search(analysis.text, n)
            elif name == "graph":
                out[name] = self.kb.graph.rank_chunks(analysis.services, self.kb.service_index, n)
            else:
                raise ValueError(f"retriever {name!r}: expected one of {', '.join(RETRIEVERS)}")
            out[name] = [(c, s) for c, s in out[name] if c in self.kb.chunks]
            timings[name] = round(1000 * (time.perf_counter() - t0), 2)
        return out, timings

    def search(self, query: str, k: int | None = None, now: datetime | None = None,
               mode: str = "hybrid") -> SearchResult:
        """``mode`` is ``hybrid`` (fusion + dedup + re-rank) or one retriever alone (``vector``, ``keyword``,
        ``graph``), which is how the evaluation measures each of them."""
        k = k or self._setting("k", 5)
        t0 = time.perf_counter()
        analysis = analyse_query(query, self.kb.catalog, now)
        timings: dict[str, float] = {}
        qvec = None
        if mode in ("hybrid", "vector"):
            t1 = time.perf_counter()
            qvec = self.embed_query(query)
            timings["embed"] = round(1000 * (time.perf_counter() - t1), 2)
        n = self._setting("candidates", 40)
        which = RETRIEVERS if mode == "hybrid" else (mode,)
        ranked, t_search = self.rankings(analysis, qvec, max(n, k), which)
        timings.update(t_search)
        if mode != "hybrid":
            hits = [Hit(self.kb.chunks[c], s, {mode: i}) for i, (c, s) in enumerate(ranked[mode][:k], start=1)]
            return SearchResult(query, analysis, hits, mode, timings)

        t2 = time.perf_counter()
        fused = reciprocal_rank_fusion({r: [c for c, _ in ranked[r]] for r in ranked},
                                       self._setting("fusion_weights", {"vector": 1.0, "keyword": 1.0, "graph": 0.5}),
                                       self._setting("rrf_k", 60))
        ids = sorted(fused, key=lambda c: -fused[c])
        top = max(fused.values()) if fused else 1.0
        if ids:
            vectors = self.kb.vector.vectors(ids)
            sims = vectors @ qvec
        query_words = _content_words(query, self._stem)
        scored = []
        position = {r: {c: pos for pos, (c, _) in enumerate(ranked[r], start=1)} for r in ranked}
        for i, chunk_id in enumerate(ids):
            chunk = self.kb.chunks[chunk_id]
            feats = rerank_features(chunk, analysis, float(sims[i]), query_words, self._stem)
            feats["rrf"] = fused[chunk_id] / top
            score = sum(RERANK_WEIGHTS[f] * v for f, v in feats.items())
            ranks = {r: position[r][chunk_id] for r in ranked if chunk_id in position[r]}
            scored.append(Hit(chunk, score, ranks, feats))
        scored.sort(key=lambda h: -h.score)
        order = drop_near_duplicates([h.chunk.chunk_id for h in scored], {h.chunk.chunk_id: h.chunk.text for h in scored},
                                     self._setting("dedup_threshold", 0.85), limit=k)
        by_id = {h.chunk.chunk_id: h for h in scored}
        hits = [by_id[c] for c in order[:k]]
        timings["fuse_rerank"] = round(1000 * (time.perf_counter() - t2), 2)
        timings["total"] = round(1000 * (time.perf_counter() - t0), 2)
        return SearchResult(query, analysis, hits, mode, timings)
