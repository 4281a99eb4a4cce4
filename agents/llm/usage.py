"""What calls cost: a record per call, a budget per investigation, the price table, and the summaries an
investigation logs to MLflow and shows in its Prefect artifact (as Markdown: domain code does not publish)."""
from __future__ import annotations

import threading
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from agents.llm.types import BudgetExceeded, Usage


class CallRecord(BaseModel):
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    task: str
    provider: str
    model: str
    outcome: str  # ok | offline | failed
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cached: bool = False
    latency_ms: float = 0.0
    attempts: list[str] = Field(default_factory=list)
    templates: dict[str, str] = Field(default_factory=dict)  # template name -> hash


def cost_of(prices: dict, model: str, usage: Usage) -> float:
    """USD for ``usage`` on ``model`` from the configured table (USD per million tokens); unknown models cost 0."""
    price = prices.get(model)
    if price is None:
        return 0.0
    return (usage.input_tokens * price.input_per_mtok + usage.output_tokens * price.output_per_mtok) / 1e6


class Budget:
    """Tokens one investigation may spend, and every call it made. Pass the same object to each call."""

    def __init__(self, max_tokens: int | None = None, name: str = "investigation"):
        self.max_tokens, self.name = max_tokens, name
        self.records: list[CallRecord] = []
        self._reserved = 0
        self._lock = threading.Lock()

    @property
    def spent_tokens(self) -> int:
        return sum(r.input_tokens + r.output_tokens for r in self.records if not r.cached)

    def reserve(self, tokens: int) -> None:
        """Hold ``tokens`` for a call about to go out, or refuse it when the budget cannot cover them."""
        with self._lock:
            if self.max_tokens is not None and self.spent_tokens + self._reserved + tokens > self.max_tokens:
                raise BudgetExceeded(f"{self.name}: a call of up to {tokens:,} tokens would pass the budget of "
                                     f"{self.max_tokens:,} ({self.spent_tokens:,} spent)")
            self._reserved += tokens

    def release(self, tokens: int) -> None:
        with self._lock:
            self._reserved = max(0, self._reserved - tokens)

    def record(self, record: CallRecord) -> None:
        with self._lock:
            self.records.append(record)

    def summary(self) -> dict:
        records = list(self.records)
        return {"calls": len(records), "cached": sum(r.cached for r in records),
                "failed": sum(r.outcome == "failed" for r in records),
                "input_tokens": sum(r.input_tokens for r in records if not r.cached),
                "output_tokens": sum(r.output_tokens for r in records if not r.cached),
                "cost_usd": round(sum(r.cost_usd for r in records), 6)}

    def markdown(self) -> str:
        """A table per provider and model for the investigation's Prefect artifact."""
        rows: dict[tuple[str, str], dict] = {}
        for r in self.records:
            row = rows.setdefault((r.provider, r.model), {"calls": 0, "cached": 0, "in": 0, "out": 0, "usd": 0.0})
            row["calls"] += 1
            row["cached"] += r.cached
            if not r.cached:
                row["in"] += r.input_tokens
                row["out"] += r.output_tokens
            row["usd"] += r.cost_usd
        lines = ["| provider | model | calls | cached | input tokens | output tokens | cost (USD) |",
                 "|---|---|---|---|---|---|---|"]
        for (provider, model), row in sorted(rows.items()):
            lines.append(f"| {provider} | {model} | {row['calls']} | {row['cached']} | {row['in']:,} | "
                         f"{row['out']:,} | {row['usd']:.4f} |")
        total = self.summary()
        lines.append(f"| **total** | | {total['calls']} | {total['cached']} | {total['input_tokens']:,} | "
                     f"{total['output_tokens']:,} | {total['cost_usd']:.4f} |")
        return "\n".join(lines)


def log_usage_to_mlflow(budget: Budget, run_id: str | None = None) -> None:
    """Log the budget's totals as ``llm_*`` metrics and its call records as ``llm_calls.json`` to ``run_id``, or
    to the active run. No prompt text is logged, only sizes, costs and template hashes."""
    import mlflow

    summary = budget.summary()
    metrics = {f"llm_{k}": float(v) for k, v in summary.items()}
    records = {"calls": [r.model_dump(mode="json") for r in budget.records]}
    if run_id is None:
        mlflow.log_metrics(metrics)
        mlflow.log_dict(records, "llm_calls.json")
        return
    client = mlflow.MlflowClient()
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    client.log_dict(run_id, records, "llm_calls.json")
