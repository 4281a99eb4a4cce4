"""Knowledge-base benchmark: indexing throughput, hybrid search latency on 10,000 chunks, peak memory, and
retrieval quality on the shipped evaluation set (logged to MLflow).

    python benchmarks/rag.py                   # 10,000 chunks (the first run embeds them all: minutes on 2 cores)
    python benchmarks/rag.py --chunks 2000     # quicker
    python benchmarks/rag.py --quality-only    # just the quality table (and its MLflow run)

Prints figures; it asserts nothing. The large corpus is the shipped knowledge base plus synthetic incident
records written from the simulator's fault kinds, symptoms and resolutions (every record different: ids,
times, figures and affected services vary), indexed into ``<home>/bench/rag`` with the real model. The
embedding cache there makes a second run skip the model: throughput is reported for the run that embedded
(``embedded`` says how many passages the model actually saw). Latency is the whole ``search()`` call,
query embedding included, over distinct queries, after the model is loaded and a few warm-up queries.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def shipped_sources(settings):
    from rag.loaders import graph_documents, load_source
    from telemetry.topology import default_topology

    graph = default_topology().to_dict()
    yield "service-graph", graph_documents(graph, str(settings.lake_dir / "graph.json")), graph
    for folder, kind in (("runbooks", "runbook"), ("architecture", "doc"), ("incidents", "incident")):
        yield folder, load_source(settings.knowledge_dir / folder, kind)[0], None


def synthetic_incidents(n: int, seed: int = 7):
    """``n`` incident records in the simulator's vocabulary, each one different."""
    import numpy as np
    import pandas as pd

    from telemetry import simulator as sim
    from telemetry.topology import default_topology

    topo = default_topology()
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-01-01T00:00:00Z")
    records = []
    for i in range(n):
        kind = sim.FAULT_KINDS[i % len(sim.FAULT_KINDS)]
        root = str(rng.choice(sim._ELIGIBLE_ROOTS[kind]))
        blast = sorted(topo.downstream(root) if kind == "traffic_surge" else topo.upstream(root))
        affected = [root] + [s for s in blast if rng.uniform() < 0.6]
        begin = start + pd.Timedelta(minutes=int(rng.integers(0, 600 * 1440)))
        minutes = int(rng.integers(10, 300))
        inc = {"kind": kind, "root": root, "affected": affected, "mag": float(rng.uniform())}
        summary = sim._summary(inc, topo)
        detail = (f" Detected by {rng.choice(['the anomaly ensemble', 'an SLO burn alert', 'a customer report', 'on-call'])}"
                  f" after {int(rng.integers(1, 30))} minutes; {sim._SYMPTOM[kind]} at "
                  f"{', '.join(affected[1:4]) or 'no other service'}; peak {rng.uniform(1.5, 9):.1f}x baseline.")
        templates = sim._RESOLUTIONS[kind]
        resolution = templates[int(rng.integers(0, len(templates)))].format(svc=root)
        records.append({"incident_id": f"SYN-{i:05d}", "summary": summary + detail, "root_cause_service": root,
                        "affected_services": affected, "kind": kind,
                        "severity": str(rng.choice(["low", "medium", "high", "critical"])),
                        "start": begin.isoformat(), "end": (begin + pd.Timedelta(minutes=minutes)).isoformat(),
                        "resolution": resolution + f" Follow-up ticket OPS-{int(rng.integers(1000, 9999))}."})
    return records


def build_large_index(settings, target_chunks: int):
    from rag import open_knowledge_base
    from rag.loaders.incidents import incidents_from_records

    index_dir = settings.rag_index_dir
    if index_dir.exists():  # a fresh index every run; the embedding cache is kept (and reported)
        for path in index_dir.iterdir():
            if path.name != "embeddings.sqlite":
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    kb, retriever = open_knowledge_base(settings)
    reports = []
    t0 = time.perf_counter()
    for origin, report, graph in shipped_sources(settings):
        reports.append(kb.update(report, origin, graph=graph))
    have = len(kb.chunks)
    need = max(0, target_chunks - have)
    if need:
        records = synthetic_incidents((need + 2) // 3)  # an incident record makes three chunks
        reports.append(kb.update(incidents_from_records(records, "synthetic/incidents.json"), "synthetic"))
    seconds = time.perf_counter() - t0
    added = sum(r.chunks_added for r in reports)
    embedded = sum(r.embedded for r in reports)
    return kb, retriever, {"chunks": len(kb.chunks), "chunks_added": added, "embedded": embedded,
                           "seconds": round(seconds, 1),
                           "chunks_per_second": round(added / seconds, 1) if added else None}


def latency(retriever, queries: list[str], warmup: int = 5) -> dict:
    for q in queries[:warmup]:
        retriever.search(q + " (warm-up)")
    times, parts = [], {}
    load_before = os.getloadavg()[0]
    for q in queries:
        t0 = time.perf_counter()
        result = retriever.search(q, k=5)
        times.append(1000 * (time.perf_counter() - t0))
        for name, ms in result.timings_ms.items():
            parts.setdefault(name, []).append(ms)
    times.sort()
    return {"queries": len(times), "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1), "max_ms": round(times[-1], 1),
            "median_parts_ms": {k: round(statistics.median(v), 2) for k, v in parts.items()},
            "load_average": round(max(load_before, os.getloadavg()[0]), 1), "cpus": os.cpu_count()}


def quality(settings, log: bool) -> dict:
    """The shipped knowledge base alone, in a fresh index, measured on knowledge/eval/queries.yaml."""
    import tempfile

    from rag import open_knowledge_base
    from rag.evaluation import evaluate, load_queries, log_to_mlflow, quality_markdown

    with tempfile.TemporaryDirectory() as tmp:
        settings.rag.index_dir = Path(tmp)
        kb, retriever = open_knowledge_base(settings)
        cache = settings.home / "bench" / "rag" / "embeddings.sqlite"
        if cache.exists():  # the large index's cache holds these passages too
            shutil.copy(cache, Path(tmp) / "embeddings.sqlite")
        for origin, report, graph in shipped_sources(settings):
            kb.update(report, origin, graph=graph)
        result = evaluate(retriever, load_queries(settings.knowledge_dir / "eval" / "queries.yaml"))
        print("\n" + quality_markdown(result))
        if log:
            run = log_to_mlflow(result, settings.mlflow_tracking_uri, settings.mlflow.experiment,
                                settings.mlflow_artifact_root, params={"index_chunks": len(kb.chunks)},
                                run_name="rag-retrieval-benchmark")
            print(f"\nLogged to MLflow ({settings.mlflow_tracking_uri_shown}), run {run}")
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=10_000, help="size of the large index")
    parser.add_argument("--quality-only", action="store_true")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log the quality figures to MLflow")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON document")
    args = parser.parse_args()

    from configs.runtime import configure_environment
    from configs.settings import load_settings

    settings = load_settings()
    configure_environment(settings)
    figures: dict = {}
    if not args.quality_only:
        from rag.embeddings import load_sentence_model, resolve_model
        from rag.evaluation import load_queries

        t0 = time.perf_counter()
        load_sentence_model(resolve_model(settings.rag.embedding_model))
        figures["model_load_s"] = round(time.perf_counter() - t0, 1)
        settings.rag.index_dir = settings.home / "bench" / "rag"
        print(f"Building a {args.chunks:,}-chunk index in {settings.rag.index_dir} ...", flush=True)
        kb, retriever, figures["indexing"] = build_large_index(settings, args.chunks)
        ix = figures["indexing"]
        print(f"indexed {ix['chunks_added']:,} chunks in {ix['seconds']} s: {ix['chunks_per_second']} chunks/s "
              f"({ix['embedded']:,} embedded by the model, the rest from the cache); index holds {ix['chunks']:,}")
        base = [q["query"] for q in load_queries(settings.knowledge_dir / "eval" / "queries.yaml")]
        queries = base + [f"{q} in the last 2 hours" for q in base] + [f"{q}?" for q in base]
        figures["latency"] = latency(retriever, queries)
        lat = figures["latency"]
        print(f"hybrid search over {ix['chunks']:,} chunks, {lat['queries']} distinct queries: p50 {lat['p50_ms']} ms, "
              f"p95 {lat['p95_ms']} ms, max {lat['max_ms']} ms (model loaded; query embedding included)")
        print(f"  median parts (ms): {lat['median_parts_ms']}; load average {lat['load_average']} on "
              f"{lat['cpus']} CPUs (other work on the machine slows the query embedding most)")
        print(f"peak memory (RSS): {peak_rss_mb():.0f} MB; index on disk {kb.stats()['bytes_on_disk'] / 1e6:.1f} MB")
        figures["peak_rss_mb"] = round(peak_rss_mb())
    result = quality(settings, log=not args.no_mlflow)
    figures["quality"] = result["splits"]
    if args.json:
        print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
