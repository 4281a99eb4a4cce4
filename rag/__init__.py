"""The knowledge base: loaders, structural chunking, embeddings, vector + keyword + graph search, fusion,
re-ranking and context assembly within a token budget. Domain code: no Prefect, heavy imports inside.

    from rag import open_knowledge_base
    kb, retriever = open_knowledge_base(settings)
    result = retriever.search("why is checkout timing out since 14:00")
"""
from __future__ import annotations


def open_knowledge_base(settings, embedder=None):
    """The configured knowledge base (``settings.rag_index_dir``) and a hybrid retriever over it."""
    from rag.embeddings import make_embedder
    from rag.index import KnowledgeBase
    from rag.retrieval import HybridRetriever

    embedder = embedder or make_embedder(settings.rag)
    kb = KnowledgeBase(settings.rag_index_dir, embedder, settings.rag)
    return kb, HybridRetriever(kb, embedder, settings.rag)
