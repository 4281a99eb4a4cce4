"""What an investigation gathers: pydantic models, so ``bundle.model_dump(mode="json")`` is the JSON.

Every item says where it came from (``source``: the lake table, the MLflow model version, the knowledge base
passage) and when it was true (``at``), so a report built on it can cite and reproduce each line.
"""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class Item(BaseModel):
    source: str  # "lake:telemetry", "mlflow:cerebro-detector-ensemble/3", "knowledge:runbooks/cpu.md#Mitigation"
    at: datetime | None = None  # when the observation holds (an onset, a deploy, a prediction's time)


class Question(BaseModel):
    text: str | None = None
    service: str | None = None  # the service the question is about (the symptom), if it names one
    services: list[str] = Field(default_factory=list)  # every service it names, in order of appearance
    aspect: str | None = None  # latency, errors, cpu, memory, disk, connections, traffic, queue
    metrics: list[str] = Field(default_factory=list)  # the metrics that aspect means on this lake
    at: datetime | None = None  # a time written in the question (ISO form)


class Window(BaseModel):
    start: datetime
    end: datetime
    baseline_start: datetime
    baseline_end: datetime


class Abnormal(Item):
    """One metric of one service that left its baseline in the window."""
    service: str
    metric: str
    direction: str  # up | down
    size: float  # robust units (baseline MAD x 1.4826)
    baseline: float
    value: float  # at the peak of the deviation
    onset: datetime | None = None


class DetectorFinding(Item):
    """What the live detector said about one service over the window."""
    service: str
    minutes: int
    flagged_minutes: int
    max_score: float  # calibrated, 0..1
    first_flag: datetime | None = None


class Cause(Item):
    rank: int
    service: str
    score: float
    confidence: float
    path: list[str] = Field(default_factory=list)  # from the cause to the symptom
    evidence: list[Abnormal] = Field(default_factory=list)


class Change(Item):
    service: str
    kind: str  # deploy, rollback, config, restart ...
    version: str | None = None
    detail: str | None = None


class FailureRisk(Item):
    service: str
    probability: float
    alarm: bool
    factors: list[dict] = Field(default_factory=list)  # {feature, value, contribution}, strongest first


class CapacityRisk(Item):
    service: str
    metric: str
    limit: float
    last_value: float | None = None
    status: str
    hours_to_limit: float | None = None


class Neighbourhood(Item):
    """The call graph around the suspects: who calls them and whom they call."""
    suspects: list[str] = Field(default_factory=list)
    edges: list[tuple[str, str]] = Field(default_factory=list)  # caller -> callee


class KnowledgeHit(Item):
    kind: str  # incident | runbook | doc | graph
    title: str
    section: str = ""
    citation: str  # file or record, with the section
    snippet: str
    score: float


class SpanFinding(Item):
    service: str
    trace_id: str
    span_id: str
    operation: str
    duration_ms: float
    status: str
    critical_ms: float | None = None  # time the span itself spent on its trace's critical path
    why: str  # slowest | failing


class ModelUsed(Item):
    role: str  # detector | failure predictor | capacity forecast
    name: str
    version: str | None = None
    alias: str | None = None
    uri: str | None = None


class DataUsed(Item):
    lake: str
    first_date: str | None = None  # the lake's date range when the investigation ran
    last_date: str | None = None
    rows: int = 0  # telemetry rows read (window and baseline)


class EvidenceBundle(BaseModel):
    question: Question
    window: Window
    verdict: str  # "abnormal" | "nothing abnormal"
    summary: str  # one sentence for people
    target: str | None = None
    target_metric: str | None = None
    abnormal: list[Abnormal] = Field(default_factory=list)  # strongest first
    detector: list[DetectorFinding] = Field(default_factory=list)
    causes: list[Cause] = Field(default_factory=list)  # rank order
    changes: list[Change] = Field(default_factory=list)
    changes_note: str | None = None  # why there are none (no events table, none in the window)
    risks: list[FailureRisk] = Field(default_factory=list)
    capacity: list[CapacityRisk] = Field(default_factory=list)
    graph: Neighbourhood | None = None
    incidents: list[KnowledgeHit] = Field(default_factory=list)
    runbooks: list[KnowledgeHit] = Field(default_factory=list)
    spans: list[SpanFinding] = Field(default_factory=list)
    models: list[ModelUsed] = Field(default_factory=list)
    data: DataUsed | None = None
    notes: list[str] = Field(default_factory=list)
    generated_at: datetime | None = None

    @property
    def suspects(self) -> list[str]:
        return [c.service for c in self.causes]
