"""Prometheus metrics of the scoring service, one registry per app (tests build many apps in one process)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Scoring is meant to take milliseconds; the top buckets catch a slow model before the rollback limit does.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("cerebro_serving_requests", "HTTP requests by endpoint and status code",
                                ["endpoint", "status"], registry=r)
        self.latency = Histogram("cerebro_serving_request_seconds", "HTTP request latency by endpoint",
                                 ["endpoint"], buckets=_BUCKETS, registry=r)
        self.predictions = Counter("cerebro_serving_predictions", "model calls by kind, variant, model version "
                                   "and outcome (ok, error)", ["kind", "variant", "model", "version", "outcome"],
                                   registry=r)
        self.model_latency = Histogram("cerebro_serving_model_seconds", "time spent in the model (features "
                                       "included) by kind and variant", ["kind", "variant"], buckets=_BUCKETS,
                                       registry=r)
        self.rows = Counter("cerebro_serving_rows", "rows scored by kind and variant", ["kind", "variant"], registry=r)
        self.flagged = Counter("cerebro_serving_flagged_rows", "rows flagged (anomaly, alarm) by kind and variant",
                               ["kind", "variant"], registry=r)
        self.shadow = Counter("cerebro_serving_shadow", "shadow calls of a challenger by kind and outcome "
                              "(agree, disagree, error)", ["kind", "outcome"], registry=r)
        self.swaps = Counter("cerebro_serving_swaps", "blue-green switches to a new version", ["kind", "variant"],
                             registry=r)
        self.refusals = Counter("cerebro_serving_refusals", "versions refused (load or warm-up failed)",
                                ["kind", "variant"], registry=r)
        self.rollbacks = Counter("cerebro_serving_rollbacks", "automatic rollbacks by kind and reason",
                                 ["kind", "reason"], registry=r)
        self.batch_size = Histogram("cerebro_serving_batch_size", "requests scored in one model call (adaptive "
                                    "batching) by kind and variant", ["kind", "variant"],
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)
        self.live = Gauge("cerebro_serving_live_version", "the version live per kind and variant (0: none)",
                          ["kind", "variant", "model"], registry=r)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
