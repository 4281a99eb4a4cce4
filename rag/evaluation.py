"""Retrieval quality: recall@3, recall@5 and MRR per retriever and for the hybrid, at the document level.

Each query lists the documents that answer it (one is enough). A retriever's chunks are collapsed to
distinct documents in rank order; *recall@k* is the share of queries with an answering document among the
first k documents, *MRR* the mean of 1 / rank of the first answering document (0 when none is found in
the first ``depth``). The graph retriever only answers queries that name a service, so it is also reported
on that subset ("with_service"), beside the hybrid on the same subset.

Queries carry a ``split`` (``tune`` / ``test``) fixed when they were written; results are reported for
all queries and for each half, so anything tuned on ``tune`` is seen on the held-out ``test`` half too.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import yaml

from rag.documents import LoadError

MODES = ("vector", "keyword", "graph", "hybrid")


def load_queries(path: str | Path) -> list[dict]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise LoadError(f"{path}: not valid YAML: {exc}") from None
    queries = data.get("queries") if isinstance(data, dict) else None
    if not isinstance(queries, list) or not queries:
        raise LoadError(f"{path}: expected `queries:` with a list of {{query, relevant, split}}")
    for i, q in enumerate(queries, start=1):
        if not isinstance(q, dict) or not isinstance(q.get("query"), str) or not q["query"].strip():
            raise LoadError(f"{path}: query {i}: field `query` must be a non-empty text")
        rel = q.get("relevant")
        if not isinstance(rel, list) or not rel or not all(isinstance(r, str) for r in rel):
            raise LoadError(f"{path}: query {i} ({q['query']!r}): field `relevant` must list at least one document")
        q.setdefault("id", f"q{i:02d}")
        q.setdefault("split", "test")
    return queries


def document_ranking(hits) -> list[str]:
    """Distinct document sources in the order their first chunk appears."""
    return list(dict.fromkeys(h.chunk.source for h in hits))


def first_relevant_rank(sources: list[str], relevant: list[str]) -> int | None:
    for rank, source in enumerate(sources, start=1):
        if any(source.endswith(r) for r in relevant):
            return rank
    return None


def summarise(ranks: list[int | None]) -> dict:
    n = len(ranks)
    if n == 0:
        return {"n": 0, "recall@3": None, "recall@5": None, "mrr": None}
    return {"n": n, "recall@3": round(sum(1 for r in ranks if r and r <= 3) / n, 4),
            "recall@5": round(sum(1 for r in ranks if r and r <= 5) / n, 4),
            "mrr": round(sum(1 / r for r in ranks if r) / n, 4)}


def evaluate(retriever, queries: list[dict], depth: int = 40, modes=MODES) -> dict:
    """Run every query through every mode; returns per-split summaries and the per-query ranks."""
    per_query = []
    for q in queries:
        row = {"id": q["id"], "query": q["query"], "split": q["split"], "relevant": q["relevant"]}
        for mode in modes:
            result = retriever.search(q["query"], k=depth, mode=mode)
            row[mode] = first_relevant_rank(document_ranking(result.hits), q["relevant"])
            row["services"] = result.analysis.services
        per_query.append(row)
    subsets = {"all": per_query, "tune": [r for r in per_query if r["split"] == "tune"],
               "test": [r for r in per_query if r["split"] == "test"],
               "with_service": [r for r in per_query if r["services"]]}
    return {"n_queries": len(per_query),
            "splits": {name: {m: summarise([r[m] for r in rows]) for m in modes} for name, rows in subsets.items()},
            "per_query": per_query}


def quality_rows(result: dict) -> list[dict]:
    return [{"queries": split, "retriever": mode, **figures}
            for split, by_mode in result["splits"].items() for mode, figures in by_mode.items()]


def quality_markdown(result: dict) -> str:
    lines = ["# Retrieval quality", "", (f"{result['n_queries']} queries; recall@k = share of queries with an "
             "answering document in the first k documents; MRR = mean 1/rank of the first one."), "",
             "| queries | retriever | n | recall@3 | recall@5 | MRR |", "|---|---|---|---|---|---|"]
    for row in quality_rows(result):
        lines.append(f"| {row['queries']} | {row['retriever']} | {row['n']} | {row['recall@3']} | "
                     f"{row['recall@5']} | {row['mrr']} |")
    misses = [r for r in result["per_query"] if not r.get("hybrid") or r["hybrid"] > 5]
    if misses:
        lines += ["", "Queries the hybrid does not answer in its first 5 documents:", ""]
        lines += [f"- {r['id']} ({r['split']}): {r['query']} (rank {r.get('hybrid')})" for r in misses]
    return "\n".join(lines)


def log_to_mlflow(result: dict, tracking_uri: str, experiment: str, artifact_root: str | None = None,
                  params: dict | None = None, run_name: str = "rag-retrieval") -> str:
    """One MLflow run with every figure as a metric (``<split>.<retriever>.<measure>``) and the tables."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=artifact_root)
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params({"n_queries": result["n_queries"], **(params or {})})
        for split, by_mode in result["splits"].items():
            for mode, figures in by_mode.items():
                for measure in ("recall@3", "recall@5", "mrr"):
                    if figures[measure] is not None:
                        name = f"{split}.{mode}.{measure.replace('@', '_at_')}"
                        mlflow.log_metric(name, figures[measure])
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "retrieval-quality.md").write_text(quality_markdown(result))
            (Path(tmp) / "per-query.json").write_text(json.dumps(result["per_query"], indent=1))
            mlflow.log_artifacts(tmp, artifact_path="rag-eval")
        return run.info.run_id
