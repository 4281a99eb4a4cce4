"""Chunking by structure: headings make sections, paragraphs and list items make blocks.

A section that fits ``max_words`` is one chunk, whatever its length below that: a runbook's "Mitigation"
stays whole. Only a longer section is packed block by block into several chunks, and only those carry an
overlap (the tail of the previous chunk), so that a step split across two chunks keeps its context.
Sizes are counted in words: MiniLM reads at most 256 word pieces, about 190 English words, and 160 words
leaves room for the title and section that are embedded with every chunk.

Chunk ids hash the document id, the section path, the section's occurrence and the part number: indexing
the same corpus again gives the same ids, and an edit inside one section changes only that section's text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from rag.documents import Chunk, Document, stable_id

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_ITEM = re.compile(r"^\s{0,3}([-*+]|\d{1,3}[.)])\s+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`\"'(])")


@dataclass(frozen=True)
class Section:
    path: tuple[str, ...]  # heading titles from the top, the document's H1 left out
    blocks: tuple[str, ...]  # paragraphs, list items, code blocks, in order


def split_sections(text: str, title: str = "") -> list[Section]:
    """Markdown -> sections. Text before the first heading is a section with an empty path."""
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    blocks: list[str] = []
    current: list[str] = []
    in_fence = False
    # A document's only H1 names the document (its title), not a section.
    h1s, fence = 0, False
    for line in text.splitlines():
        fence = fence != bool(_FENCE.match(line))
        h1s += bool(not fence and re.match(r"^#\s+\S", line))

    def flush_block() -> None:
        if current and any(line.strip() for line in current):
            blocks.append("\n".join(current).strip("\n"))
        current.clear()

    def flush_section() -> None:
        flush_block()
        if blocks:
            sections.append(Section(tuple(h for _, h in stack), tuple(blocks)))
        blocks.clear()

    for line in text.splitlines():
        if _FENCE.match(line):
            if not in_fence:
                flush_block()
            current.append(line)
            in_fence = not in_fence
            if not in_fence:
                flush_block()
            continue
        if in_fence:
            current.append(line)
            continue
        heading = _HEADING.match(line)
        if heading:
            flush_section()
            level, name = len(heading.group(1)), heading.group(2).strip()
            while stack and stack[-1][0] >= level:
                stack.pop()
            if not (level == 1 and (h1s == 1 or name.strip().lower() == title.strip().lower())):
                stack.append((level, name))
            continue
        if not line.strip():
            flush_block()
        elif _ITEM.match(line):
            flush_block()
            current.append(line)
        else:
            current.append(line)
    flush_section()
    return sections


def _words(text: str) -> int:
    return len(text.split())


def _split_long_block(block: str, max_words: int, overlap: int) -> list[str]:
    """A block longer than a chunk: by sentences, then by a word window if one sentence is too long."""
    pieces: list[str] = []
    for sentence in _SENTENCE.split(block):
        words = sentence.split()
        if len(words) <= max_words:
            pieces.append(sentence)
            continue
        step = max(1, max_words - overlap)
        pieces.extend(" ".join(words[i:i + max_words]) for i in range(0, len(words), step)
                      if i == 0 or i + overlap < len(words))
    return pieces


def pack_blocks(blocks: list[str], max_words: int = 160, overlap_words: int = 30) -> list[str]:
    """Blocks -> chunk texts. One chunk when everything fits; otherwise packed with a tail overlap."""
    if _words("\n\n".join(blocks)) <= max_words:
        return ["\n\n".join(blocks)] if blocks else []
    units: list[str] = []
    for block in blocks:
        units.extend([block] if _words(block) <= max_words else _split_long_block(block, max_words, overlap_words))
    chunks: list[list[str]] = [[]]
    for unit in units:
        size = sum(_words(u) for u in chunks[-1])
        if chunks[-1] and size + _words(unit) > max_words:
            # Carry the previous chunk's last units (up to overlap_words) into the next one.
            carry: list[str] = []
            for prev in reversed(chunks[-1]):
                if sum(_words(c) for c in carry) + _words(prev) > overlap_words:
                    break
                carry.insert(0, prev)
            if sum(_words(c) for c in carry) + _words(unit) > max_words:
                carry = []
            chunks.append(carry)
        chunks[-1].append(unit)
    return ["\n\n".join(c) for c in chunks if c]


def chunk_document(doc: Document, max_words: int = 160, overlap_words: int = 30) -> list[Chunk]:
    """One document -> its chunks, in reading order, with stable ids."""
    out: list[Chunk] = []
    seen: dict[tuple[str, ...], int] = {}
    for section in split_sections(doc.text, doc.title):
        occurrence = seen.get(section.path, 0)
        seen[section.path] = occurrence + 1
        name = " > ".join(section.path)
        for part, text in enumerate(pack_blocks(list(section.blocks), max_words, overlap_words)):
            out.append(Chunk(
                chunk_id=stable_id(doc.doc_id, name, str(occurrence), str(part)),
                doc_id=doc.doc_id, source=doc.source, title=doc.title, kind=doc.kind, section=name,
                text=text, services=doc.services, position=len(out), updated=doc.updated,
                metadata={k: v for k, v in doc.metadata.items() if k in ("service", "fault_kind", "severity",
                                                                          "relpath", "incident_id", "channel")}
                | ({"created": doc.created} if doc.created else {}),
            ))
    return out
