"""The two records the knowledge base is made of: a :class:`Document` (what a loader reads) and a
:class:`Chunk` (what is embedded and searched), plus the errors loaders raise.

Every document keeps where it came from (``source``), a title, its ``kind``, the services it mentions and
its timestamps, so that every passage the retriever returns can be cited.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

KINDS = ("runbook", "incident", "doc", "chat", "advisory", "code", "graph")


class LoadError(ValueError):
    """A source could not be read; the message names the file (row, field) and what was expected."""


@dataclass(frozen=True)
class Document:
    doc_id: str  # stable: the same source gives the same id on every run
    source: str  # path (or path#record) the text came from
    title: str
    kind: str  # one of KINDS
    text: str  # Markdown-ish body; headings drive the chunking
    services: tuple[str, ...] = ()
    created: str | None = None  # ISO 8601, UTC
    updated: str | None = None
    metadata: dict = field(default_factory=dict)  # front matter, incident fields ... (JSON-serialisable)

    @property
    def content_hash(self) -> str:
        """Changes whenever anything that ends up in the index changes (text, title or metadata)."""
        payload = json.dumps([self.title, self.kind, self.text, list(self.services), self.metadata],
                             sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class Chunk:
    chunk_id: str  # 16 hex digits: doc id + section path + position, stable across re-indexing
    doc_id: str
    source: str
    title: str
    kind: str
    section: str  # heading path, "Diagnosis" or "Mitigation > Database"
    text: str
    services: tuple[str, ...] = ()
    position: int = 0  # order within the document
    updated: str | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def search_text(self) -> str:
        """What is embedded and keyword-indexed: title and section give a passage its context."""
        head = f"{self.title} — {self.section}" if self.section else self.title
        return f"{head}\n{self.text}"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["services"] = list(self.services)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Chunk:
        return cls(**{**data, "services": tuple(data.get("services") or ())})


def stable_id(*parts: str, length: int = 16) -> str:
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:length]


@dataclass
class LoadReport:
    """What a loader produced, and every file or record it skipped with the reason."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def extend(self, other: LoadReport) -> LoadReport:
        self.documents.extend(other.documents)
        self.skipped.extend(other.skipped)
        return self
