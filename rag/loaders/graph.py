"""The service dependency graph as documents: one card per service (calls, callers, blast radius).

The graph is ``{"services": [...], "edges": [{"caller", "callee", "ratio"}]}`` (the lake's
``graph.json``, or ``Topology.to_dict()``). The cards let the text retrievers answer "what depends on the
database" as well as the graph retriever does.
"""
from __future__ import annotations

import json
from pathlib import Path

from rag.documents import Document, LoadError, LoadReport, stable_id
from rag.stores.graph import ServiceGraph


def validate_graph(graph, where: str) -> dict:
    if not isinstance(graph, dict) or not isinstance(graph.get("services"), list) \
            or not isinstance(graph.get("edges"), list):
        raise LoadError(f"{where}: expected a service graph {{\"services\": [...], \"edges\": [...]}}")
    for i, edge in enumerate(graph["edges"], start=1):
        if not isinstance(edge, dict) or not all(isinstance(edge.get(f), str) for f in ("caller", "callee")):
            raise LoadError(f"{where}: edge {i}: fields `caller` and `callee` must be service names, got {edge!r}")
    return graph


def graph_documents(graph: dict, source: str) -> LoadReport:
    graph = validate_graph(graph, source)
    sg = ServiceGraph(graph)
    tiers = {s["name"]: s.get("tier") for s in graph["services"] if isinstance(s, dict)}
    ratio = {(e["caller"], e["callee"]): e.get("ratio") for e in graph["edges"]}

    def calls(pairs):
        return ", ".join(f"{b} ({ratio[p]:g} calls per request)" if ratio.get(p) else b
                         for p, b in pairs) or "nothing"

    docs = []
    for name in sg.services:
        callees = calls(((name, c), c) for c in sg.callees(name))
        callers = ", ".join(sg.callers(name)) or "nobody (an entry point or a consumer)"
        blast = ", ".join(sg.blast_radius(name)) or "no other service"
        deps = ", ".join(sg.dependencies(name)) or "no other service"
        tier = f" It is in the {tiers[name]} tier." if tiers.get(name) else ""
        text = (f"## Calls\n{name} calls {callees}.{tier}\n\n## Callers\n{name} is called by {callers}.\n\n"
                f"## Blast radius\nIf {name} fails or slows down, these services degrade with it: {blast}.\n\n"
                f"## Depends on\n{name} depends, directly or through others, on {deps}.\n")
        docs.append(Document(doc_id=stable_id("graph", name), source=f"{source}#{name}",
                             title=f"Service graph: {name}", kind="graph", text=text,
                             services=(name,), metadata={"service": name, "relpath": f"graph#{name}"}))
    return LoadReport(documents=docs)


def load_graph(path: str | Path) -> tuple[dict, LoadReport]:
    path = Path(path)
    try:
        graph = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LoadError(f"{path}: not valid JSON at line {exc.lineno}: {exc.msg}") from None
    except OSError as exc:
        raise LoadError(f"{path}: cannot read: {exc}") from None
    return graph, graph_documents(graph, str(path.resolve()))
