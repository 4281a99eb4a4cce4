"""What a detector costs to serve, measured on the scoring service itself, and the latency that implies.

    windows = example_windows(frame)                          # 8 one-hour windows of the training frame's metrics
    cost = measure(settings, bundle, windows)                 # ServingCost: ms a request, alone and 8 at once
    cost.p50_ms, cost.p99_ms                                  # at 8 concurrent clients on one service process
    cost.meets(SPEC), cost.meets(OURS)

The bundle is warmed up as the service warms a loaded version up (which decides the numpy window path and
adaptive batching) and served by the service's own app in this process (``serving.cost``): each window's
request goes through body parsing, validation, screening, scoring and the answer, and 8 concurrent ones
through the adaptive batching, as over HTTP. Uvicorn's HTTP parsing, the sockets and the clients are added
as ``HTTP_MS`` a request.

At 8 closed-loop clients the service's one event loop takes the 8 requests, scores them and answers all 8
before any client sends again; each request waits for that whole cycle. So the latency at 8 clients is
estimated as the time of such a cycle: p50 from the cheapest of the repeats (on a shared virtual machine the
same call varies by half from one moment to the next, and that noise only adds), p99 from the dearest, each
with ``HTTP_MS`` a request for what happens outside the app (uvicorn's HTTP parsing, the sockets, the clients'
share of the cores), measured against ``benchmarks/serving.py``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

CLIENTS = 8
# (p50 ms, p99 ms) at 8 concurrent clients: the spec's, which the promotion gate enforces, and the project's own,
# which the put-forward choice prefers when it costs little detection quality (``detection.serving_margin``).
SPEC = (50.0, 200.0)
OURS = (10.0, 50.0)
# What the in-process measurement leaves out, per request at 8 clients: uvicorn's HTTP parsing, the sockets, and
# the clients' own share of the two cores (benchmarks/serving.py runs them on the same machine, as the targets
# are stated). Measured on the 2-core machine on 2026-12-04, after `cerebro serve` put BLAS on one thread
# (``serving.blas_threads``): at 8 clients over HTTP, p50 was 1.5-8 ms above this measurement's cheapest cycle
# (an ensemble of DBSCAN, PCA, One-Class SVM and VAE 33.6-34.9 ms against 28.5; DBSCAN 25.0-29.1 against 21;
# LOF 26.7-28.8 against 23.5; z-score 10.0-10.7 against 8.8). 1 ms a request: 8 ms a cycle of 8, the largest
# gap seen. (The 2 ms used before came from 2026-12-03, when the service's BLAS threads fought its OpenMP
# threads and over HTTP it ran 8-23 ms behind.)
HTTP_MS = 1.0
REPEATS = 5
# The model version tag that carries a detector's ServingCost (JSON), for the promotion gate.
SERVING_COST_TAG = "cerebro.serving_cost"
WINDOW_MINUTES = 60


@dataclass
class ServingCost:
    alone_ms: float  # one request alone through the service: ms, the cheapest repeat
    window_ms: float  # each request's share of a cycle of 8 concurrent ones (the cheapest cycle)
    cycle_max_ms: float  # the dearest cycle of 8
    batching: bool  # whether the service scores this model's concurrent requests in one call
    p50_ms: float  # estimated latency at 8 clients (a lower bound: see the module docstring)
    p99_ms: float
    others_cores: float = 0.0  # cores other processes used while it was measured (serving.cost.QUIET_CORES)

    def meets(self, target: tuple[float, float]) -> bool:
        return self.p50_ms < target[0] and self.p99_ms < target[1]

    def as_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> ServingCost:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})  # tags logged before a field came

    def refusal(self) -> str | None:
        """Why this cost keeps a version from becoming champion (the promotion gate's words); None when it meets
        the spec's targets."""
        if self.meets(SPEC):
            return None
        return (f"serving: {self.words()}, short of the spec's p50 < {SPEC[0]:g} ms and p99 < {SPEC[1]:g} ms at "
                f"{CLIENTS} clients")

    def words(self) -> str:
        from serving.cost import QUIET_CORES

        busy = (f", measured while other processes used {self.others_cores:.1f} cores"
                if self.others_cores > QUIET_CORES else "")
        return (f"estimated p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms at {CLIENTS} clients, "
                f"{self.window_ms:.2f} ms a request{'' if self.batching else ', unbatched'}{busy}")


def example_windows(frame: pd.DataFrame, n: int = CLIENTS, minutes: int = WINDOW_MINUTES) -> list[pd.DataFrame]:
    """``n`` one-hour windows of the (service, timestamp)-indexed training frame, as ``register_zoo``'s input
    example is cut: the last hour of one service each, services taken in turn (the same one again, an hour
    earlier, when there are fewer than ``n``)."""
    services = list(pd.unique(frame.index.get_level_values(0)))
    out = []
    for k in range(n):
        rows = frame.loc[[services[k % len(services)]]]
        back = (k // len(services)) * minutes
        part = rows.iloc[max(0, len(rows) - back - minutes): len(rows) - back] if back else rows.tail(minutes)
        part = part.astype("float64").reset_index()
        part["timestamp"] = part["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        part["service"] = part["service"].astype(str)
        out.append(part)
    return out


def measure(settings, bundle: dict, windows: list[pd.DataFrame], repeats: int = REPEATS, bench=None) -> ServingCost:
    """Warm ``bundle`` up as the service does, serve it, and time one request and ``len(windows)`` together.
    ``bench``: a ``serving.cost.ServiceBench`` to reuse (one is made otherwise)."""
    from serving.cost import ServiceBench, as_bodies
    from serving.scoring import DetectorRunner

    runner = DetectorRunner(bundle)
    runner.warm_up(windows[0])
    bodies = as_bodies([runner._example_request(w) for w in windows])
    bench = bench or ServiceBench(settings)
    alone, together, others = bench.cycles(bundle.get("name") or "candidate", runner, bodies, repeats,
                                           settings.serving.torch_threads, settings.serving.blas_threads)
    n = len(bodies)
    return ServingCost(alone_ms=min(alone) + HTTP_MS, window_ms=min(together) / n + HTTP_MS,
                       cycle_max_ms=max(together), batching=bool(runner.batchable),
                       p50_ms=min(together) + n * HTTP_MS, p99_ms=max(together) + n * HTTP_MS,
                       others_cores=round(others, 2))
