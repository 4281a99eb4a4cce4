"""``cerebro kb``: the knowledge base from the command line (index, search, stats).

Heavy libraries (sentence-transformers, usearch, bm25s) are imported inside the commands.
"""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table

from flows.cli.common import ConfigOpt, JsonOpt, console, fail, out, print_json, settings_or_exit

HELP = ("The knowledge base: runbooks, incidents, architecture notes, chat threads, advisories, code comments "
        "and the service graph, searched by meaning, by keywords and along the service graph at once.\n\n"
        "Start with `cerebro kb index --source knowledge/` and then `cerebro kb search \"why is checkout slow\"`.")
KINDS = ("runbook", "incident", "doc", "chat", "advisory", "code", "graph")


def index(
    source: Path = typer.Option(..., "--source", "-s", help="A file or folder to index (searched recursively), "
                                "or lake:incidents for the incidents in the lake.", show_default=False),
    kind: str | None = typer.Option(None, "--kind", "-k", help=f"What the source holds: {', '.join(KINDS)}. "
                                    "Without it: a folder is Markdown, a file is judged by its suffix and content."),
    strict: bool = typer.Option(False, "--strict", help="Fail (exit 1) when any file or record is skipped."),
    config: str | None = ConfigOpt,
    as_json: bool = JsonOpt,
):
    """Index a source incrementally: only new or changed documents are embedded; documents that this source
    no longer has leave the index. Files that cannot be read are listed with the reason.

    Examples:

        cerebro kb index --source knowledge/runbooks --kind runbook

        cerebro kb index -s exports/slack/ --kind chat

        cerebro kb index -s advisories/ --kind advisory --json

        cerebro kb index -s lake:incidents    # after cerebro ingest --incidents FILE
    """
    if kind is not None and kind not in KINDS:
        fail(f"--kind {kind!r}: expected one of {', '.join(KINDS)}", 2)
    settings = settings_or_exit(config)
    from rag import open_knowledge_base
    from rag.documents import LoadError
    from rag.embeddings import rich_progress
    from rag.loaders import load_source
    from rag.loaders.incidents import LAKE_ORIGIN, lake_incidents

    if str(source) == LAKE_ORIGIN:  # the lake's incidents, under the origin the knowledge flow uses
        report, graph, origin = lake_incidents(settings.lake_dir), None, LAKE_ORIGIN
        if not report.documents and not report.skipped:
            fail(f"the lake at {settings.lake_dir} holds no incidents; import some first: "
                 "cerebro ingest --incidents FILE", 2)
    else:
        try:
            report, graph = load_source(source, kind)
        except LoadError as exc:
            fail(str(exc))
        origin = str(source.expanduser().resolve())
    if not report.documents and not report.skipped:
        fail(f"{source}: no documents found (kind {kind or 'guessed'}); Markdown needs .md/.markdown/.txt files")
    kb, _ = open_knowledge_base(settings)
    with rich_progress(f"embedding {source.name}") as on_batch:
        result = kb.update(report, origin, graph=graph, on_batch=on_batch)
    if as_json:
        print_json({**result.to_dict(), "index_dir": str(kb.dir)})
    else:
        table = Table(title=f"Indexed {source} into {kb.dir}")
        for col in ("new", "changed", "unchanged", "removed", "chunks added", "embedded", "chunks/s", "seconds"):
            table.add_column(col, justify="right")
        table.add_row(*(str(v) for v in (result.new, result.changed, result.unchanged, result.removed,
                                          result.chunks_added, result.embedded, result.chunks_per_second,
                                          result.seconds)))
        out.print(table)
        for where, why in result.skipped:
            out.print(f"[yellow]skipped[/yellow] {where}: {why}", highlight=False, soft_wrap=True)
    if result.skipped and strict:
        raise typer.Exit(1)


def search(
    query: str = typer.Argument(..., help="The question, in your own words: symptoms, services, alert names."),
    k: int = typer.Option(5, "--k", "-n", min=1, max=100, help="How many passages to return."),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid (default), or one retriever alone: vector, "
                             "keyword, graph."),
    now: str | None = typer.Option(None, "--now", help="Read time expressions (\"since 14:00\") relative to "
                                   "this ISO time instead of the current time.", show_default=False),
    context: bool = typer.Option(False, "--context", help="Also print the prompt-ready context block (the "
                                 "passages within the token budget, delimited and labelled as data)."),
    config: str | None = ConfigOpt,
    as_json: bool = JsonOpt,
):
    """Search the knowledge base: vector, keyword and service-graph search fused, de-duplicated and
    re-ranked. Each hit shows where it comes from (source and section), its score and a snippet.

    The query is also analysed: intent (investigation, action request, knowledge question), the services
    and metrics it names, and any time range ("in the last 2 hours" -> a UTC range).

    Examples:

        cerebro kb search "payment pool exhausted, what do I do"

        cerebro kb search "why is checkout slow since 14:00" --k 3 --json

        cerebro kb search "who calls the database" --mode graph
    """
    if mode not in ("hybrid", "vector", "keyword", "graph"):
        fail(f"--mode {mode!r}: expected hybrid, vector, keyword or graph", 2)
    moment = None
    if now:
        try:
            moment = datetime.fromisoformat(now)
        except ValueError:
            fail(f"--now {now!r}: expected an ISO time such as 2026-11-20T15:30:00Z", 2)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    settings = settings_or_exit(config)
    from rag import open_knowledge_base

    kb, retriever = open_knowledge_base(settings)
    if not kb.chunks:
        fail(f"the knowledge base at {kb.dir} is empty; index something first: "
             "cerebro kb index --source knowledge/")
    try:
        result = retriever.search(query, k=k, now=moment, mode=mode)
    except ValueError as exc:
        fail(str(exc), 2)
    ctx = None
    if context:
        from rag.context import assemble_context, render_for_prompt
        from rag.embeddings import load_tokenizer

        ctx = assemble_context(result.hits, settings.rag.token_budget, load_tokenizer())
    if as_json:
        doc = result.to_dict()
        if ctx is not None:
            doc["context"] = {**ctx.to_dict(), "prompt_block": render_for_prompt(ctx)}
        print_json(doc)
        return
    a = result.analysis
    tr = f"; time {a.time_range.to_dict()['start']} .. {a.time_range.to_dict()['end']}" if a.time_range else ""
    console.print(f"intent [bold]{a.intent}[/bold]; services {', '.join(a.services) or '-'}; metrics "
                  f"{', '.join(a.metrics) or '-'}{tr}", highlight=False)
    table = Table(title=f"{len(result.hits)} hits for {query!r} ({mode}, {result.timings_ms.get('total', 0):.0f} ms)",
                  show_lines=True)
    for col in ("#", "score", "title / section", "source", "snippet"):
        table.add_column(col, overflow="fold")
    for i, hit in enumerate(result.hits, start=1):
        h = hit.to_dict(snippet_chars=200)
        table.add_row(str(i), f"{h['score']:.3f}", f"{h['title']}\n[dim]{h['section'] or '-'}[/dim]",
                      h["source"], h["snippet"])
    out.print(table)
    if ctx is not None:
        out.print(f"\nContext: {len(ctx.passages)} passages, {ctx.tokens}/{ctx.budget} tokens\n")
        out.print(render_for_prompt(ctx), markup=False, highlight=False)


def stats(config: str | None = ConfigOpt, as_json: bool = JsonOpt):
    """What the knowledge base holds: documents and chunks per kind, the sources indexed, the embedding
    model, and its size on disk."""
    settings = settings_or_exit(config)
    from rag.index import KnowledgeBase

    facts = KnowledgeBase(settings.rag_index_dir, None, settings.rag).stats()
    if as_json:
        print_json(facts)
        return
    table = Table(title=f"Knowledge base at {facts['index_dir']}")
    for col in ("kind", "documents", "chunks"):
        table.add_column(col, justify="left" if col == "kind" else "right")
    for kind_name, n in facts["by_kind"].items():
        table.add_row(kind_name, str(n["documents"]), str(n["chunks"]))
    table.add_row("[bold]total[/bold]", str(facts["documents"]), str(facts["chunks"]))
    out.print(table)
    out.print(f"embedder {facts['embedder'] or '-'} ({facts['dim'] or '-'} dims), vector store "
              f"{facts['vector_store']}, {facts['services_in_graph']} services in the graph, "
              f"{facts['bytes_on_disk'] / 1e6:.1f} MB on disk, updated {facts['updated_at'] or 'never'}")
    for origin, n in sorted(facts["origins"].items()):
        out.print(f"  {n:5d} documents from {origin}", highlight=False)
