"""What a root-cause ranking returns: pydantic models, so that ``model_dump(mode="json")`` is the JSON."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class Evidence(BaseModel):
    metric: str
    direction: str  # "up" or "down": the way the metric moved
    size: float  # peak of the (3-point median) deviation, in robust units (baseline MAD x 1.4826)
    baseline: float  # the baseline's level (median of its most recent part)
    incident: float  # the value at the peak of the deviation
    onset: datetime | None  # first window timestamp at which the deviation crossed the threshold
    family: str  # symptom (flows to callers) | load (flows to callees) | resource (stays local)
    path: list[str] = Field(default_factory=list)  # from this service to the target
    trend: float | None = None  # a resource's rise in robust slope units, when it was judged on its ramp
    # the service the metric belongs to when not the cause itself: a caller's symptom, for a callee that exports
    # no latency, error or availability metric of its own
    seen_at: str | None = None


class Cause(BaseModel):
    service: str
    score: float  # the anomaly left unexplained by the service's neighbours, in robust units
    confidence: float  # 0..1
    path: list[str] = Field(default_factory=list)  # from the cause to the target (empty without a target)
    evidence: list[Evidence] = Field(default_factory=list)  # strongest first


class RcaResult(BaseModel):
    causes: list[Cause] = Field(default_factory=list)  # rank order; empty when nothing is abnormal
    target: str | None = None
    target_metric: str | None = None
    symptom: Evidence | None = None  # the target metric's own deviation, when one was named
    window: dict = Field(default_factory=dict)  # start, end, points of the incident window analysed
    baseline: dict = Field(default_factory=dict)
    threshold: float = 0.0  # robust units a metric must reach to count as abnormal
    # the largest deviation the baseline's own windows show with no incident (median over them), robust
    # units; confidence is measured above the larger of it and the threshold. None: baseline too short
    quiet_top: float | None = None
    notes: list[str] = Field(default_factory=list)  # what was repaired, skipped or ignored in the input
