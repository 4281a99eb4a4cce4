"""The ``knowledge`` flow: index the knowledge base incrementally, then measure retrieval.

Sources, in order: the service graph (the lake's ``graph.json``, else the simulator's topology), the
shipped ``knowledge/`` folder (runbooks, architecture notes, the simulated fleet's incident history), the
lake's incidents when the pipeline has ingested some, the sources in ``rag.sources`` and the ``sources``
argument (``PATH`` or ``KIND:PATH``). Each source is its own origin: only its changed documents are
embedded again and the documents it no longer has leave the index.

    from flows.knowledge import knowledge_flow
    knowledge_flow(config=config)                      # from the pipeline, or on its own
"""
from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from configs.settings import load_settings
from flows import progress

SHIPPED = (("runbooks", "runbook"), ("architecture", "doc"), ("incidents", "incident"))


def parse_source(spec: str) -> tuple[str | None, str]:
    """``KIND:PATH`` or ``PATH`` -> (kind or None, path)."""
    from rag.loaders import SOURCE_KINDS

    kind, sep, path = spec.partition(":")
    return (kind, path) if sep and kind in SOURCE_KINDS else (None, spec)


def simulated_incident_records(seed: int = 42, days: float = 14, end: str = "2026-11-01T00:00:00Z") -> list[dict]:
    """The simulator's incident history as plain records (what knowledge/incidents ships)."""
    from telemetry.simulator import FleetSimulator

    frame = FleetSimulator(days=days, seed=seed, end=end).run().incidents
    records = []
    for row in frame.to_dict("records"):
        row["affected_services"] = list(row["affected_services"])
        for col in ("start", "end", "failed_at"):
            row[col] = row[col].isoformat().replace("+00:00", "Z")
        records.append(row)
    return records


def _origin_report(origin: str, report) -> dict:
    return {"source": origin, "new": report.new, "changed": report.changed, "unchanged": report.unchanged,
            "removed": report.removed, "chunks added": report.chunks_added, "embedded": report.embedded,
            "skipped": len(report.skipped), "seconds": report.seconds}


def knowledge_line(result: dict) -> str:
    """One line for the pipeline's summary table."""
    rows = result["sources"]
    line = (f"{sum(r['new'] for r in rows)} new, {sum(r['changed'] for r in rows)} changed, "
            f"{sum(r['removed'] for r in rows)} removed documents ({sum(r['embedded'] for r in rows)} passages "
            f"embedded) from {len(rows)} sources")
    if result.get("skipped"):
        line += f"; {len(result['skipped'])} files or records skipped (see the log)"
    if result.get("quality"):
        hybrid = result["quality"]["splits"]["all"]["hybrid"]
        line += (f"; hybrid retrieval recall@5 {hybrid['recall@5']:.3f}, MRR {hybrid['mrr']:.3f} on "
                 f"{result['quality']['n_queries']} queries")
    return line


@task(name="index-source", cache_policy=NO_CACHE)
def index_source(settings, origin: str, path: str | None, kind: str | None) -> dict:
    """Load one source and bring its documents in the index up to date."""
    from rag import open_knowledge_base
    from rag.loaders import graph_documents, load_source
    from rag.loaders.incidents import LAKE_ORIGIN, lake_incidents

    logger = get_run_logger()
    graph = None
    if origin == "service-graph":
        from telemetry.lake import read_graph
        from telemetry.topology import default_topology

        graph = read_graph(settings.lake_dir) or default_topology().to_dict()
        report = graph_documents(graph, str(settings.lake_dir / "graph.json"))
    elif origin == LAKE_ORIGIN:
        report = lake_incidents(settings.lake_dir)
    else:
        report, graph = load_source(path, kind)
    kb, _ = open_knowledge_base(settings)
    result = kb.update(report, origin, graph=graph,
                       on_batch=lambda done, total: progress.advance(f"embed {Path(origin).name}", done, total))
    for where, why in result.skipped:
        logger.warning("skipped %s: %s", where, why)
    logger.info("%s: %d new, %d changed, %d unchanged, %d removed; %d chunks embedded", origin, result.new,
                result.changed, result.unchanged, result.removed, result.embedded)
    return {**_origin_report(origin, result), "skipped_files": result.skipped}


@task(name="evaluate-retrieval", cache_policy=NO_CACHE)
def evaluate_retrieval(settings) -> dict:
    """Recall@3, recall@5 and MRR of each retriever and the hybrid on the shipped queries, in MLflow."""
    from rag import open_knowledge_base
    from rag.evaluation import evaluate, load_queries, log_to_mlflow

    queries_file = settings.knowledge_dir / "eval" / "queries.yaml"
    kb, retriever = open_knowledge_base(settings)
    result = evaluate(retriever, load_queries(queries_file))
    run_id = log_to_mlflow(result, settings.mlflow_tracking_uri, settings.mlflow.experiment,
                           settings.mlflow_artifact_root, params={"index_chunks": len(kb.chunks),
                                                                   "queries_file": str(queries_file)})
    return {**result, "mlflow_run": run_id}


@flow(name="knowledge", log_prints=True)
def knowledge_flow(config: str | None = None, sources: list[str] | None = None, evaluate: bool = True) -> dict:
    """Index the knowledge base incrementally (graph, shipped knowledge, lake incidents, configured
    sources), then measure retrieval quality and log it to MLflow."""
    from rag.evaluation import quality_markdown, quality_rows
    from rag.loaders.incidents import LAKE_ORIGIN

    settings = load_settings(config)
    plan: list[tuple[str, str | None, str | None]] = [("service-graph", None, None)]
    for folder, kind in SHIPPED:
        if (settings.knowledge_dir / folder).is_dir():
            plan.append((str(settings.knowledge_dir / folder), str(settings.knowledge_dir / folder), kind))
    if (settings.lake_dir / "incidents.parquet").exists():
        plan.append((LAKE_ORIGIN, None, None))
    for spec in [*settings.rag.sources, *(sources or [])]:
        kind, path = parse_source(spec)
        plan.append((str(Path(path).expanduser().resolve()), path, kind))

    rows = []
    for i, (origin, path, kind) in enumerate(plan):
        progress.advance("knowledge", i, len(plan), origin)
        rows.append(index_source(settings, origin, path, kind))
    progress.advance("knowledge", len(plan), len(plan), "done")
    create_table_artifact(key="knowledge-index", table=[{k: v for k, v in r.items() if k != "skipped_files"}
                                                        for r in rows],
                          description="What each source added to, changed in and removed from the knowledge base")
    summary = {"index_dir": str(settings.rag_index_dir), "sources": rows,
               "skipped": [s for r in rows for s in r["skipped_files"]]}
    if evaluate and (settings.knowledge_dir / "eval" / "queries.yaml").exists():
        quality = evaluate_retrieval(settings)
        create_table_artifact(key="retrieval-quality", table=quality_rows(quality),
                              description="Recall@3, recall@5 and MRR per retriever and for the hybrid")
        create_markdown_artifact(key="retrieval-report", markdown=quality_markdown(quality),
                                 description="Retrieval quality of the knowledge base on the shipped queries")
        summary["quality"] = {k: v for k, v in quality.items() if k != "per_query"}
    return summary
