"""Folders of Markdown and text (runbooks, architecture notes): front matter and headings kept.

Front matter is the YAML block between two ``---`` lines at the top. Its ``title``, ``kind``, ``service``,
``services``, ``created``/``date`` and ``updated`` fields are read; the rest is kept as metadata. A front
matter that is not valid YAML, or not a mapping, is an error naming the file, never silently ignored.
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from rag.documents import Document, LoadError, LoadReport, stable_id
from rag.loaders._common import as_list, iso_utc, load_files, mtime_utc, relpath

SUFFIXES = (".md", ".markdown", ".txt")
_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_H1 = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


def split_front_matter(text: str, where: str) -> tuple[dict, str]:
    match = _FRONT.match(text)
    if not match:
        return {}, text
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 2})" if mark is not None else ""
        raise LoadError(f"{where}: front matter{line} is not valid YAML: "
                        f"{getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise LoadError(f"{where}: front matter must be a mapping of keys (title: ..., services: [...]), "
                        f"got {type(data).__name__}")
    return data, text[match.end():]


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)  # dates and anything else YAML produced


def parse_markdown(text: str, path: Path, rel: str, default_kind: str | None = None) -> Document:
    """One Markdown/text file's content -> a Document (pure: the caller reads the file)."""
    where = str(path)
    meta, body = split_front_matter(text, where)
    h1 = _H1.search(body) if path.suffix.lower() != ".txt" else None
    title = str(meta.get("title") or (h1.group(1) if h1 else path.stem.replace("-", " ").replace("_", " ")))
    kind = str(meta.get("kind") or default_kind or ("runbook" if "runbook" in str(path).lower() else "doc"))
    services = as_list(meta.get("service"), f"{where}: front matter `service`") + \
        as_list(meta.get("services"), f"{where}: front matter `services`")
    created = iso_utc(meta.get("created") or meta.get("date"), f"{where}: front matter `created`")
    updated = iso_utc(meta.get("updated"), f"{where}: front matter `updated`") or created
    if not body.strip():
        raise LoadError(f"{where}: no text after the front matter")
    metadata = {**_jsonable(meta), "relpath": rel}
    return Document(doc_id=stable_id("file", str(path.resolve())), source=str(path.resolve()), title=title,
                    kind=kind, text=body, services=tuple(dict.fromkeys(services)), created=created,
                    updated=updated, metadata=metadata)


def load_markdown(root: str | Path, kind: str | None = None) -> LoadReport:
    root = Path(root)

    def one(path: Path, base: Path) -> LoadReport:
        doc = parse_markdown(path.read_text(encoding="utf-8"), path, relpath(path, base), kind)
        if doc.updated is None:
            doc = Document(**{**doc.__dict__, "updated": mtime_utc(path)})
        return LoadReport(documents=[doc])

    return load_files(root, SUFFIXES, one)
