"""Keyword search: BM25 (bm25s, sparse matrices) with English stop words and Snowball stemming.

bm25s is maintained, fast (it scores with a sparse matrix product) and has no server. Stemming
(PyStemmer) lets "leaking" match "leak" and "timeouts" match "timeout". BM25 statistics depend on the
whole corpus, so the index is rebuilt from every chunk after each update: about a second for 10,000
chunks, far less than embedding the changed ones. Alert names such as ``ConnectionPoolExhausted`` are
split at case changes as well as kept whole, so both "ConnectionPoolExhausted" and "pool exhausted" hit.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD = re.compile(r"[A-Za-z0-9_]+(?:[-.][A-Za-z0-9_]+)*")


def expand_identifiers(text: str) -> str:
    """Add the parts of CamelCase, snake_case and hyphenated words next to the words themselves."""
    extra = []
    for word in _WORD.findall(text):
        parts = [p for p in re.split(r"[-_.]", _CAMEL.sub(" ", word).replace(" ", "_")) if p]
        if len(parts) > 1:
            extra.append(" ".join(parts))
    return f"{text} {' '.join(extra)}" if extra else text


class BM25Store:
    DIR = "bm25"

    def __init__(self, directory: Path):
        self.dir = Path(directory) / self.DIR
        self.retriever = None
        self.ids: list[str] = []
        self._stemmer = None

    @property
    def stemmer(self):
        if self._stemmer is None:
            import Stemmer

            self._stemmer = Stemmer.Stemmer("english")
        return self._stemmer

    def _tokens(self, texts: list[str]):
        import bm25s

        return bm25s.tokenize([expand_identifiers(t) for t in texts], stopwords="en", stemmer=self.stemmer,
                              show_progress=False)

    def build(self, chunk_ids: list[str], texts: list[str]) -> None:
        import bm25s

        self.ids = list(chunk_ids)
        if not texts:
            self.retriever = None
            return
        self.retriever = bm25s.BM25()
        self.retriever.index(self._tokens(texts), show_progress=False)

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        import bm25s
        import numpy as np

        if self.retriever is None or not self.ids:
            return []
        words = bm25s.tokenize([expand_identifiers(query)], stopwords="en", stemmer=self.stemmer,
                               return_ids=False, show_progress=False)[0]
        words = [w for w in words if w in self.retriever.vocab_dict]  # words no chunk has score nothing
        if not words:
            return []
        # get_scores + argpartition: the same BM25 scores as retrieve(), without its per-call thread pool.
        scores = self.retriever.get_scores(words)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((top, -scores[top]))]
        return [(self.ids[int(i)], float(scores[i])) for i in top if scores[i] > 0]

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "ids.json").write_text(json.dumps(self.ids))
        if self.retriever is not None:
            self.retriever.save(str(self.dir))

    def load(self) -> BM25Store:
        import bm25s

        ids = self.dir / "ids.json"
        if ids.exists():
            self.ids = json.loads(ids.read_text())
            if self.ids:
                self.retriever = bm25s.BM25.load(str(self.dir))
        return self
