"""Where chunks are searched: vector (usearch on disk, or PostgreSQL with pgvector), keyword (BM25) and
graph (networkx). Every store answers ``search(...) -> [(chunk_id, score)]``, best first."""
