"""Loaders: every source the knowledge base reads, behind one entry point.

    report = load_source("knowledge/runbooks", kind="runbook")
    report.documents, report.skipped        # skipped: (path, reason) for every file or record left out

Kinds: ``runbook`` and ``doc`` (Markdown and text), ``incident`` (JSON, YAML, CSV), ``chat`` (Slack or
Teams exports), ``advisory`` (OSV JSON), ``code`` (Python comments and docstrings), ``graph`` (the service
graph JSON). Without a kind, a folder is read as Markdown and a file by its suffix and content.
"""
from __future__ import annotations

import json
from pathlib import Path

from rag.documents import LoadError, LoadReport
from rag.loaders.advisories import load_advisories
from rag.loaders.chat import load_chat
from rag.loaders.code import load_code
from rag.loaders.graph import graph_documents, load_graph
from rag.loaders.incidents import incidents_from_frame, load_incidents
from rag.loaders.markdown import load_markdown

SOURCE_KINDS = ("runbook", "doc", "incident", "chat", "advisory", "code", "graph")


def guess_kind(path: Path) -> str:
    """The kind of a source given without one: by suffix, and for JSON by its shape."""
    if path.is_dir():
        return "doc"
    suffix = path.suffix.lower()
    if suffix in (".md", ".markdown", ".txt"):
        return "runbook" if "runbook" in str(path).lower() else "doc"
    if suffix == ".py":
        return "code"
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LoadError(f"{path}: not valid JSON: {exc}") from None
        first = data[0] if isinstance(data, list) and data else data
        if isinstance(first, dict):
            if "edges" in first and "services" in first:
                return "graph"
            if "messages" in first or "ts" in first:
                return "chat"
            if "modified" in first and ("affected" in first or "aliases" in first):
                return "advisory"
        return "incident"
    if suffix in (".yaml", ".yml", ".csv"):
        return "incident"
    raise LoadError(f"{path}: cannot tell what kind of source this is; pass --kind "
                    f"({', '.join(SOURCE_KINDS)})")


def load_source(path: str | Path, kind: str | None = None) -> tuple[LoadReport, dict | None]:
    """Read a file or folder; returns the report and, for a graph source, the graph itself."""
    path = Path(path).expanduser()
    if not path.exists():
        raise LoadError(f"{path}: no such file or folder")
    guessed = kind is None
    kind = kind or guess_kind(path)
    if kind not in SOURCE_KINDS:
        raise LoadError(f"kind {kind!r}: expected one of {', '.join(SOURCE_KINDS)}")
    if kind in ("runbook", "doc"):
        # A folder given without a kind may mix runbooks and notes: each file's path decides.
        return load_markdown(path, None if guessed else kind), None
    if kind == "incident":
        return load_incidents(path), None
    if kind == "chat":
        return load_chat(path), None
    if kind == "advisory":
        return load_advisories(path), None
    if kind == "code":
        return load_code(path), None
    graph, report = load_graph(path)
    return report, graph


__all__ = ["SOURCE_KINDS", "LoadReport", "graph_documents", "guess_kind", "incidents_from_frame", "load_source"]
