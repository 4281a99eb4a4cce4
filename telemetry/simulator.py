"""The fleet simulator: the embedded, labelled data source.

It draws one-minute metrics for every service of a :class:`~telemetry.topology.Topology` with daily and
weekly seasonality, autocorrelated noise, slow trends and deploys, then injects faults. A fault changes
the *drivers* of the root-cause service (its traffic, CPU, own latency, errors, memory, disk or
connections); traffic then flows down the dependency graph and latency and errors flow back up it, so a
slow database shows up in every caller's latency without being written there by hand.

Every fault becomes an incident record (the ground truth), log lines, and for bad deploys the deploy
and rollback events. Output depends only on the seed and the window: the same arguments give the
same frames, byte for byte.

A few sampled request traces per minute (:func:`simulate_traces`) are drawn from the finished metrics
with a random generator of their own, so turning traces on or off never changes the other outputs.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from telemetry.schema import (
    EVENT_COLUMNS,
    FLEET_METRICS,
    INCIDENT_COLUMNS,
    LOG_COLUMNS,
    empty_spans,
    spans_frame,
)
from telemetry.topology import Topology, default_topology, generate_topology, operations

FAULT_KINDS = (
    "cpu_saturation",
    "memory_leak",
    "slow_dependency",
    "error_burst",
    "disk_fill",
    "connection_pool_exhaustion",
    "traffic_surge",
)

# The metric in which each kind of fault must be visible at its root-cause service.
PRIMARY_METRIC = {
    "cpu_saturation": "cpu_pct",
    "memory_leak": "memory_pct",
    "slow_dependency": "latency_p50_ms",
    "error_burst": "error_rate",
    "disk_fill": "disk_pct",
    "connection_pool_exhaustion": "connections",
    "traffic_surge": "request_rate",
}

_ELIGIBLE_ROOTS = {
    "cpu_saturation": ("api-gateway", "auth", "catalog", "cart", "checkout", "payment", "inventory", "shipping"),
    "memory_leak": ("frontend", "auth", "catalog", "cart", "checkout", "payment", "inventory", "notification"),
    "slow_dependency": ("database", "cache", "payment", "inventory", "auth"),
    "error_burst": ("api-gateway", "auth", "catalog", "cart", "checkout", "payment", "shipping"),
    "disk_fill": ("database", "queue", "catalog", "notification", "shipping"),
    "connection_pool_exhaustion": ("database", "payment", "checkout", "inventory"),
    "traffic_surge": ("frontend",),
}

# On a topology of other names (a generated one): which tiers each kind of fault strikes.
_ELIGIBLE_TIERS = {
    "cpu_saturation": ("app",),
    "memory_leak": ("edge", "app"),
    "slow_dependency": ("data", "app"),
    "error_burst": ("edge", "app"),
    "disk_fill": ("data",),
    "connection_pool_exhaustion": ("data", "app"),
    "traffic_surge": (),  # the entry points
}


def eligible_roots(topo: Topology, kind: str) -> tuple[str, ...]:
    """Services a fault of ``kind`` may start at: the web shop's own list where the topology has those
    names (so the 13-service fleet draws exactly as it always did), else every service of the right tier."""
    names = set(topo.names)
    named = tuple(s for s in _ELIGIBLE_ROOTS[kind] if s in names)
    if named:
        return named
    if kind == "traffic_surge":
        return tuple(topo.entrypoints)
    return tuple(s.name for s in topo.services if s.tier in _ELIGIBLE_TIERS[kind]) or tuple(topo.names)


_DURATION_MIN = {  # (shortest, longest) incident, minutes
    "cpu_saturation": (20, 90),
    "memory_leak": (120, 360),
    "slow_dependency": (15, 60),
    "error_burst": (10, 45),
    "disk_fill": (60, 240),
    "connection_pool_exhaustion": (20, 60),
    "traffic_surge": (20, 90),
}

_RESOLUTIONS = {
    "cpu_saturation": [
        "Scaled {svc} out from 3 to 6 replicas; a regex in request validation was pinned as the hot path and fixed.",
        "Killed a runaway batch job that shared {svc}'s nodes; added CPU limits to the job's pod spec.",
    ],
    "memory_leak": [
        ("Restarted {svc} and rolled back to the previous image; a heap dump showed an unbounded in-process cache, "
        "now capped with LRU eviction."),
        "Raised {svc}'s memory limit temporarily; fixed a listener leak in the HTTP client pool and redeployed.",
    ],
    "slow_dependency": [
        "A missing index on {svc} made a hot query scan the table; added the index and the latency recovered.",
        ("{svc} was throttled by a noisy neighbour; moved it to a dedicated node pool and added timeouts with "
        "circuit breakers in its callers."),
    ],
    "error_burst": [
        ("Rolled back {svc} to the previous version; the bad release read a config key that did not exist in "
        "production."),
        ("Rolled back {svc}; the release changed a response schema that its callers could not parse. Added a "
        "contract test to CI."),
    ],
    "disk_fill": [
        ("Log rotation on {svc} had stopped after a config change; rotated and compressed logs, freed 40 GB, "
        "restored the logrotate config."),
        "Expired WAL and temp files filled {svc}'s volume; cleaned them up and grew the volume by 50 percent.",
    ],
    "connection_pool_exhaustion": [
        ("Connections leaked on an error path in {svc}; restarted the pods, fixed the missing release in the "
        "finally block."),
        ("Raised {svc}'s pool size from the default and added a pool-wait timeout; a slow transaction held "
        "connections open."),
    ],
    "traffic_surge": [
        ("A marketing campaign sent a traffic spike through {svc}; autoscaling caught up after 10 minutes and "
        "rate limiting was enabled for anonymous clients."),
        ("A retry storm from a mobile client release multiplied requests at {svc}; shipped a client fix with "
        "exponential back-off."),
    ],
}

_ROOT_LOG = {
    "cpu_saturation": ("WARN", "CPU throttled: {value:.0f}% of limit for 5m; request queue growing"),
    "memory_leak": ("WARN", "heap usage {value:.0f}% of limit and rising; GC pauses {gc:.0f}ms"),
    "slow_dependency": ("WARN", "slow queries: p50 {value:.0f}ms over the last minute"),
    "error_burst": ("ERROR", "HTTP 500 on POST /api/v1/*: KeyError 'feature_flags.{flag}' in release {version}"),
    "disk_fill": ("WARN", "disk usage {value:.0f}% on /var/lib/data"),
    "connection_pool_exhaustion": ("ERROR", "connection pool exhausted: {value:.0f}/{pool} in use, waited 5000ms"),
    "traffic_surge": ("WARN", "request rate {value:.0f} req/s, above the autoscaling target"),
}


@dataclass
class SimulationResult:
    telemetry: pd.DataFrame  # long form: timestamp, service, metric, value
    events: pd.DataFrame
    incidents: pd.DataFrame
    logs: pd.DataFrame
    topology: Topology
    start: pd.Timestamp
    end: pd.Timestamp
    seed: int
    dataset: str = ""
    meta: dict = field(default_factory=dict)
    traces: pd.DataFrame = field(default_factory=empty_spans)  # sampled spans (telemetry.schema.SPAN_COLUMNS)


def default_end(now: datetime | None = None, freq: str = "D") -> pd.Timestamp:
    """The start of the current UTC day (or hour, ``freq="h"``): the same seed gives the same data until then."""
    now = now or datetime.now(UTC)
    return pd.Timestamp(now).tz_convert("UTC").floor(freq)


def dataset_name(seed: int, days: float, end: pd.Timestamp, services: int = 13) -> str:
    """Names one simulated history; incidents, events and logs carry it so that histories never mix."""
    size = "" if services == 13 else f"-{services}svc"  # the web shop keeps the names it always had
    return f"fleet-seed{seed}{size}-{days:g}d-until-{end:%Y%m%dT%H%M}"


class FleetSimulator:
    """Generate a labelled fleet. Parameters are stored as given; :meth:`run` does the work."""

    def __init__(
        self,
        days: float = 14,
        seed: int = 42,
        end: str | datetime | pd.Timestamp | None = None,
        incidents_per_day: float = 1.5,
        deploys_per_service_per_day: float = 0.5,
        topology: Topology | None = None,
        traces_per_minute: float = 1.0,
        services: int = 13,
    ):
        """``services``: 13 is the web shop (``default_topology``); any other number a generated fleet of
        that size (``generate_topology(services, seed)``). An explicit ``topology`` wins over both."""
        if topology is None and services != 13:
            topology = generate_topology(services, seed)
        self.days = days
        self.traces_per_minute = traces_per_minute
        self.seed = seed
        self.end = end
        self.incidents_per_day = incidents_per_day
        self.deploys_per_service_per_day = deploys_per_service_per_day
        self.topology = topology

    # ------------------------------------------------------------------ public
    def run(self) -> SimulationResult:
        topo = self.topology or default_topology()
        end = default_end() if self.end is None else pd.Timestamp(self.end)
        end = (end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")).floor("min")
        n = round(self.days * 1440)
        if n < 60:
            raise ValueError(f"days={self.days}: the simulator needs at least one hour (days >= 0.042)")
        start = end - pd.Timedelta(minutes=n)
        times = pd.date_range(start, periods=n, freq="min", tz="UTC")
        rng = np.random.default_rng(self.seed)
        self._end = end  # names incidents and events of this history

        state = _State(topo, times, rng)
        events = self._deploys(state)
        incidents = self._schedule_incidents(state)
        for inc in incidents:
            self._inject(state, inc, events)
        metrics = state.derive()
        for inc in incidents:
            _keep_visibly_affected(state, metrics, inc)
        incidents_df = _incident_frame(incidents, times)
        logs = self._logs(state, metrics, incidents, events)

        telemetry = _long_form(times, topo.names, metrics)
        events_df = pd.DataFrame(events, columns=EVENT_COLUMNS[:-1]).sort_values(["timestamp", "service"],
                                                                               kind="stable")
        events_df["timestamp"] = pd.to_datetime(events_df["timestamp"], utc=True)
        dataset = dataset_name(self.seed, self.days, end, len(topo.services))
        for frame in (events_df, incidents_df, logs):
            frame["dataset"] = dataset
        traces = simulate_traces(topo, times, metrics, self.seed, self.traces_per_minute, dataset)
        return SimulationResult(
            telemetry=telemetry,
            events=events_df.reset_index(drop=True),
            incidents=incidents_df,
            logs=logs,
            topology=topo,
            start=start,
            end=end,
            seed=self.seed,
            dataset=dataset,
            meta={"days": self.days, "incidents_per_day": self.incidents_per_day,
                  "deploys_per_service_per_day": self.deploys_per_service_per_day,
                  "traces_per_minute": self.traces_per_minute},
            traces=traces,
        )

    # ------------------------------------------------------------------ deploys
    def _deploys(self, st: _State) -> list[dict]:
        """Routine deploys in working hours: a short warm-up CPU spike and a memory reset."""
        events: list[dict] = []
        rng = st.rng
        hours = st.times.hour.to_numpy()
        weekday = st.times.weekday.to_numpy()
        working = np.flatnonzero((hours >= 9) & (hours < 18) & (weekday < 5))
        if len(working) == 0:
            working = np.arange(st.n)
        for i, svc in enumerate(st.topo.names):
            count = rng.poisson(self.deploys_per_service_per_day * st.n / 1440)
            at = np.sort(rng.choice(working, size=min(count, len(working)), replace=False))
            for minor, t in enumerate(at, start=1):
                version = f"v1.{minor}.{int(rng.integers(0, 10))}"
                st.deploy_marks[i].append(int(t))
                st.cpu_extra[i, t : t + 3] += rng.uniform(8, 15)
                events.append(_event(st, t, svc, "deploy", version, "routine release"))
        return events

    # ------------------------------------------------------------------ incidents
    def _schedule_incidents(self, st: _State) -> list[dict]:
        """Non-overlapping incidents (two hours apart at least), every kind in turn, roots drawn per kind."""
        rng = st.rng
        total = round(self.incidents_per_day * st.n / 1440)
        kinds = [FAULT_KINDS[i % len(FAULT_KINDS)] for i in range(total)]
        rng.shuffle(kinds)
        warmup = min(180, st.n // 10)  # leave the first hours clean for a baseline
        planned: list[dict] = []
        gap = 120
        for k, kind in enumerate(kinds):
            lo, hi = _DURATION_MIN[kind]
            duration = int(rng.integers(lo, hi + 1))
            for _ in range(50):
                s = int(rng.integers(warmup, max(warmup + 1, st.n - duration - 30)))
                e = s + duration
                if all(e + gap <= p["s"] or s >= p["e"] + gap for p in planned):
                    break
            else:
                continue  # no room left in a short window: fewer incidents rather than overlapping ones
            root = str(rng.choice(eligible_roots(st.topo, kind)))
            severity_draw = float(rng.uniform())
            planned.append({"kind": kind, "root": root, "s": s, "e": e, "mag": severity_draw})
        planned.sort(key=lambda p: p["s"])
        for idx, p in enumerate(planned, start=1):
            p["id"] = f"INC-{self.seed}-{self._end:%y%m%d%H%M}-{idx:03d}"
        return planned

    def _inject(self, st: _State, inc: dict, events: list[dict]) -> None:
        kind, root, s, e, mag = inc["kind"], inc["root"], inc["s"], inc["e"], inc["mag"]
        i = st.index[root]
        svc = st.topo.service(root)
        rng = st.rng
        length = e - s
        ramp = np.linspace(0.0, 1.0, length)
        topo = st.topo
        if kind == "cpu_saturation":
            st.cpu_floor[i, s:e] = np.maximum(st.cpu_floor[i, s:e], 93 + 6 * mag)
            affected = {root} | topo.upstream(root)
        elif kind == "memory_leak":
            # Memory climbs until the process is OOM-killed a few minutes before the end, then restarts.
            oom = e - 8
            level = svc.base_memory_pct
            st.mem_extra[i, s:oom] += (101 - level) * np.linspace(0, 1, oom - s) ** 1.3
            st.mem_reset[i].append(oom)
            st.err_extra[i, oom : oom + 4] += 0.3 + 0.4 * mag
            st.rps_factor[i, oom : oom + 3] *= 0.3
            inc["oom_at"] = oom
            inc["failed_at"] = oom
            affected = {root} | topo.upstream(root)
        elif kind == "slow_dependency":
            factor = 4 + 8 * mag
            # Felt at once, over by the labelled end: the effect must not outlive the incident's window.
            shape = np.minimum(1.0, np.minimum(ramp * 8 + 0.25, ramp[::-1] * 8))
            st.lat_factor[i, s:e] *= 1 + (factor - 1) * shape
            affected = {root} | topo.upstream(root)
        elif kind == "error_burst":
            version = f"v2.{int(rng.integers(0, 20))}.0"
            inc["version"] = version
            st.err_extra[i, s:e] += 0.05 + 0.25 * mag
            st.cpu_extra[i, s : s + 3] += 10
            events.append(_event(st, s, root, "deploy", version, "release with a bad config key"))
            events.append(_event(st, e, root, "rollback", f"v2.{int(rng.integers(20, 30))}.1", f"rolled back {version}"))
            st.deploy_marks[i].append(s)
            affected = {root} | topo.upstream(root)
        elif kind == "disk_fill":
            full_at = s + int(length * 0.8)
            inc["failed_at"] = full_at
            st.disk_fill[i, s:full_at] = np.linspace(0, 1, full_at - s)
            st.disk_fill[i, full_at:e] = 1.0
            st.disk_cleanup[i].append(e)
            st.err_extra[i, full_at:e] += 0.04 + 0.1 * mag
            affected = {root} | topo.upstream(root)
        elif kind == "connection_pool_exhaustion":
            climb = s + max(3, length // 4)
            inc["failed_at"] = climb
            st.conn_fill[i, s:climb] = np.linspace(0, 1, climb - s)
            st.conn_fill[i, climb:e] = 1.0
            st.lat_factor[i, climb:e] *= 2.5 + 3 * mag
            st.err_extra[i, climb:e] += 0.02 + 0.08 * mag
            st.queue_extra[i, s:e] += (20 + 60 * mag) * np.minimum(1, ramp * 4)
            affected = {root} | topo.upstream(root)
        elif kind == "traffic_surge":
            factor = 2.5 + 2.5 * mag
            shape = np.minimum(1.0, np.minimum(ramp * 6 + 0.3, ramp[::-1] * 6))
            st.rps_factor[i, s:e] *= 1 + (factor - 1) * shape
            affected = {root} | topo.downstream(root)
        else:  # pragma: no cover - FAULT_KINDS is closed
            raise ValueError(kind)
        inc["affected"] = sorted(affected)

    # ------------------------------------------------------------------ logs
    def _logs(self, st: _State, metrics: dict, incidents: list[dict], events: list[dict]) -> pd.DataFrame:
        rows: list[tuple] = []
        for ev in events:
            t = ev["timestamp"]
            if ev["kind"] == "deploy":
                rows.append((t, ev["service"], "INFO", f"deploy {ev['version']} started: {ev['detail']}", None))
                rows.append((t + pd.Timedelta(minutes=2), ev["service"], "INFO", f"deploy {ev['version']} healthy", None))
            else:
                rows.append((t, ev["service"], "WARN", f"rollback to {ev['version']}: {ev['detail']}", None))
        for inc in incidents:
            kind, root, s, e = inc["kind"], inc["root"], inc["s"], inc["e"]
            i = st.index[root]
            level, template = _ROOT_LOG[kind]
            metric = PRIMARY_METRIC[kind]
            step = max(1, (e - s) // 12)
            svc = st.topo.service(root)
            for t in range(s + step // 2, e, step):
                value = float(metrics[metric][i, t]) * (100 if metric == "error_rate" else 1)
                msg = template.format(value=value, gc=40 + 4 * value, pool=svc.pool_size,
                                      flag="checkout_v2", version=inc.get("version", "unknown"))
                if kind in ("disk_fill", "memory_leak") and t < s + (e - s) // 2:
                    continue  # these creep: logs only speak once the trend is obvious
                rows.append((st.times[t], root, level, msg, inc["id"]))
            if kind == "memory_leak":
                oom = inc["oom_at"]
                rows.append((st.times[oom], root, "ERROR", f"container {root} OOMKilled (exit 137); restarting", inc["id"]))
            for other in inc["affected"]:
                if other == root:
                    continue
                mid = s + (e - s) // 2
                rows.append((st.times[mid], other, "WARN", f"upstream {root} degraded: {_SYMPTOM[kind]}", inc["id"]))
        logs = pd.DataFrame(rows, columns=LOG_COLUMNS[:-1])
        logs["timestamp"] = pd.to_datetime(logs["timestamp"], utc=True)
        logs["incident_id"] = logs["incident_id"].astype("string")
        return logs.sort_values(["timestamp", "service"], kind="stable").reset_index(drop=True)


_SYMPTOM = {
    "cpu_saturation": "responses slow, timeouts rising",
    "memory_leak": "connection resets while the process restarts",
    "slow_dependency": "calls taking much longer than usual, timeouts",
    "error_burst": "HTTP 5xx from the dependency",
    "disk_fill": "write failures: no space left on device",
    "connection_pool_exhaustion": "timed out waiting for a connection",
    "traffic_surge": "request volume far above normal",
}


TREND_MINUTES = 30  # how far _moved carries the base's trend into an incident


def _moved(metrics: dict, i: int, effect: tuple[int, int], base: tuple[int, int]) -> bool:
    """Whether a 3-minute median of service ``i``'s latency, errors, traffic or CPU inside ``effect`` left
    what ``base`` shows (relative, absolute and robust-noise margins all exceeded).

    The noise margin is measured on the same statistic (3-minute medians of ``base``), not on single
    minutes, whose spread is wider: a caller whose latency sat a third above normal for half an hour was
    otherwise 'unaffected'. The error-rate floor is 0.2 percentage points: the front door going from 0.3 %
    to 0.6 % errors is an SLO burning twice as fast, which an operator counts as impact."""
    def medians(x: np.ndarray) -> pd.Series:
        return pd.Series(x).rolling(3, min_periods=3).median().dropna()

    for metric, rel, absolute in (("latency_p50_ms", 0.15, 0.5), ("error_rate", 0.5, 0.002),
                                  ("request_rate", 0.3, 1.0), ("cpu_pct", 0.25, 5.0)):
        before = medians(metrics[metric][i, base[0]:base[1]])
        if before.empty:
            before = pd.Series(metrics[metric][i, base[0]:base[1]])
        centre = float(np.median(before))
        during = medians(metrics[metric][i, effect[0]:effect[1]])
        if len(before) >= 10:
            # The evening's fall or the morning's rise is not noise: a trending base inflates the MAD, and a
            # surge at night that tripled a callee's traffic went unlabelled. So also: the margin around the
            # base's straight-line trend, for the effect's first half hour only (a line carried on further
            # would cross the day's curve), and the change must leave both that line and the base's median.
            t0 = np.arange(len(before), dtype=float)
            slope, intercept = np.polyfit(t0, before.to_numpy(dtype=float), 1)
            trend_noise = 1.4826 * float(np.median(np.abs(before.to_numpy() - (intercept + slope * t0))))
            early = during.to_numpy()[:TREND_MINUTES]
            line = intercept + slope * (effect[0] - base[0] + np.arange(len(early)))
            near = float(np.minimum(np.abs(early - centre), np.abs(early - line)).max()) if len(early) else 0.0
            if near > rel * abs(centre) and near > absolute and near > 6 * trend_noise:
                return True
        noise = 1.4826 * float(np.median(np.abs(before - centre)))
        change = float(np.abs(during - centre).max()) if len(during) else 0.0
        if change > rel * abs(centre) and change > absolute and change > 6 * noise:
            return True
    return False


def _reachable(topo, root: str) -> set[str]:
    """Every service a fault at ``root`` can move: its callers and callees, and the callers of its callees.

    Load the root pushes onto a shared dependency slows that dependency for every caller, so a surge at
    the front door reaches a service that only shares the database with it."""
    down = topo.downstream(root)
    return topo.upstream(root) | down | set().union(*(topo.upstream(d) for d in down))


def _keep_visibly_affected(st: _State, metrics: dict, inc: dict) -> None:
    """Narrow the candidate blast radius (every service connected to the root) to the services whose
    metrics really moved, then describe it (candidates: ``_reachable``).

    A caller that sends a dependency few requests barely notices it is slow, and a callee only notices its
    caller's restart as a dip in traffic; ground truth must say exactly who felt it. A service counts as
    affected when a 3-minute median of its latency, errors, traffic or CPU during the incident moved well
    outside the two hours before (relative, absolute and robust-noise margins all exceeded). A memory
    leak's OOM restart, hours after the leak began, is also measured against the half hour before it: by
    then the day's traffic has changed, and the two hours before the leak say nothing about it."""
    s, e = inc["s"], inc["e"]
    lo = max(0, s - 120)
    # (window of the effect, window it is compared with)
    phases = [((s, e), (lo, s) if s - lo >= 10 else (s, s + 10))]
    if "oom_at" in inc:
        oom = inc["oom_at"]
        phases.append(((oom, e), (max(0, oom - 30), oom)))
    kept = [inc["root"]]
    candidates = _reachable(st.topo, inc["root"]) - {inc["root"]}
    for name in sorted(candidates):
        if any(_moved(metrics, st.index[name], effect, base) for effect, base in phases):
            kept.append(name)
    inc["affected"] = sorted(kept)
    inc["severity"] = _severity(inc["kind"], inc["mag"], len(kept))
    inc["summary"] = _summary(inc, st.topo)


def _severity(kind: str, mag: float, n_affected: int) -> str:
    score = mag + 0.08 * n_affected + (0.3 if kind in ("slow_dependency", "error_burst") else 0.0)
    return "critical" if score > 1.2 else "high" if score > 0.8 else "medium" if score > 0.45 else "low"


def _event(st: _State, t: int, service: str, kind: str, version: str, detail: str) -> dict:
    return {
        "event_id": f"EVT-{st.times[t]:%Y%m%d%H%M}-{service}-{kind}",
        "timestamp": st.times[t],
        "service": service,
        "kind": kind,
        "version": version,
        "detail": detail,
    }


def _summary(inc: dict, topo: Topology) -> str:
    kind, root = inc["kind"], inc["root"]
    others = [a for a in inc["affected"] if a != root]
    blast = f"; also affected: {', '.join(others)}" if others else ""
    what = {
        "cpu_saturation": f"CPU saturation on {root}: utilisation pinned above 93%, latency up",
        "memory_leak": f"Memory leak in {root}: memory grew until the process was OOM-killed and restarted",
        "slow_dependency": f"Slow dependency: {root} responded several times slower than usual and the latency "
        f"propagated to its callers",
        "error_burst": f"Error burst on {root} after deploy {inc.get('version', '')}: 5xx rate jumped until rollback",
        "disk_fill": f"Disk filling up on {root}: volume reached 100%, writes failed",
        "connection_pool_exhaustion": f"Connection-pool exhaustion on {root}: all {topo.service(root).pool_size} "
        "connections in use, requests queued and timed out",
        "traffic_surge": f"Traffic surge at {root}: request rate several times the normal peak",
    }[kind]
    return what + blast


def _incident_frame(incidents: list[dict], times: pd.DatetimeIndex) -> pd.DataFrame:
    topo_rows = []
    for inc in incidents:
        templates = _RESOLUTIONS[inc["kind"]]
        resolution = templates[int(inc["mag"] * 1000) % len(templates)].format(svc=inc["root"])
        topo_rows.append(
            {
                "incident_id": inc["id"],
                "root_cause_service": inc["root"],
                "affected_services": list(inc["affected"]),
                "kind": inc["kind"],
                "severity": inc["severity"],
                "start": times[inc["s"]],
                "end": times[min(inc["e"], len(times) - 1)],
                # When the service actually failed: the OOM kill, the full disk, the exhausted pool. Creeping faults
                # show themselves before it (what the failure predictor learns from); the others fail at once.
                "failed_at": times[min(inc.get("failed_at", inc["s"]), len(times) - 1)],
                "summary": inc["summary"],
                "resolution": resolution,
            }
        )
    frame = pd.DataFrame(topo_rows, columns=INCIDENT_COLUMNS[:-1])
    for col in ("start", "end", "failed_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


def _ar1(rng: np.random.Generator, shape: tuple[int, int], phi: float, sigma: float) -> np.ndarray:
    """Autocorrelated noise (AR(1)) with stationary standard deviation ``sigma``, one row per service."""
    eps = rng.normal(0.0, sigma * np.sqrt(1 - phi**2), size=shape)
    return lfilter([1.0], [1.0, -phi], eps, axis=1)


def _sawtooth_since(marks: list[int], n: int) -> np.ndarray:
    """Minutes since the latest mark (or since the start), for resets such as deploys and restarts."""
    idx = np.zeros(n, dtype=np.int64)
    for m in sorted(marks):
        if 0 <= m < n:
            idx[m:] = m
    return (np.arange(n) - idx).astype(float)


class _State:
    """Drivers per service (rows) and minute (columns); faults edit these, ``derive`` turns them into metrics."""

    def __init__(self, topo: Topology, times: pd.DatetimeIndex, rng: np.random.Generator):
        self.topo, self.times, self.rng = topo, times, rng
        self.n = n = len(times)
        k = len(topo.services)
        self.index = {name: i for i, name in enumerate(topo.names)}
        shape = (k, n)
        self.rps_factor = np.ones(shape)
        self.cpu_extra = np.zeros(shape)
        self.cpu_floor = np.zeros(shape)
        self.lat_factor = np.ones(shape)
        self.err_extra = np.zeros(shape)
        self.mem_extra = np.zeros(shape)
        self.disk_fill = np.zeros(shape)
        self.conn_fill = np.zeros(shape)
        self.queue_extra = np.zeros(shape)
        self.deploy_marks: list[list[int]] = [[] for _ in range(k)]
        self.mem_reset: list[list[int]] = [[] for _ in range(k)]
        self.disk_cleanup: list[list[int]] = [[] for _ in range(k)]

    def _seasonality(self) -> np.ndarray:
        minute = (self.times.hour * 60 + self.times.minute).to_numpy()
        hours = minute / 60.0
        # Low at 04:00, a broad day peak around 14:00, a smaller evening shoulder.
        daily = 0.25 + 0.75 * np.exp(-((hours - 14.0) ** 2) / (2 * 4.0**2)) + 0.15 * np.exp(-((hours - 20.5) ** 2) / 2.0)
        weekly = np.where(self.times.weekday.to_numpy() >= 5, 0.7, 1.0)
        days = (self.times - self.times[0]).total_seconds().to_numpy() / 86400.0
        trend = 1.0 + 0.001 * days  # organic growth: about 40 % a year
        return daily * weekly * trend

    def derive(self) -> dict[str, np.ndarray]:
        topo, rng, n = self.topo, self.rng, self.n
        names = topo.names
        k = len(names)
        season = self._seasonality()
        graph = topo.graph

        # ---- traffic: entry points and background consumers, then down the edges
        own_noise = np.exp(_ar1(rng, (k, n), 0.9, 0.05))
        rps = np.zeros((k, n))
        for name in topo.callers_order():
            i = self.index[name]
            preds = list(graph.predecessors(name))
            if name in topo.entrypoints:
                base = topo.entry_rps * season
            elif not preds:
                base = topo.entry_rps * 0.08 * season  # consumers fed by the queue
            else:
                base = sum(rps[self.index[p]] * graph.edges[p, name]["ratio"] for p in preds)
            rps[i] = base * self.rps_factor[i] * own_noise[i]

        # ---- CPU
        cpu = np.zeros((k, n))
        cpu_noise = _ar1(rng, (k, n), 0.8, 1.5)
        for name in names:
            i = self.index[name]
            svc = topo.service(name)
            cpu[i] = svc.idle_cpu_pct + 75 * rps[i] / svc.capacity_rps + cpu_noise[i] + self.cpu_extra[i]
            cpu[i] = np.maximum(cpu[i], self.cpu_floor[i] + rng.normal(0, 0.6, n) * (self.cpu_floor[i] > 0))
        cpu = np.clip(cpu, 0.5, 100.0)

        # ---- latency: own time with queueing, plus calls to callees (callees first)
        u = np.clip(cpu / 100.0, 0, 0.985)
        queueing = 1 + 3.0 * np.maximum(0, u - 0.65) ** 2 / (1 - u)
        lat_noise = np.exp(_ar1(rng, (k, n), 0.7, 0.06))
        p50 = np.zeros((k, n))
        p99 = np.zeros((k, n))
        tail = np.exp(_ar1(rng, (k, n), 0.6, 0.08))
        for name in reversed(topo.callers_order()):
            i = self.index[name]
            svc = topo.service(name)
            own = svc.base_latency_ms * queueing[i] * self.lat_factor[i] * lat_noise[i]
            down50 = np.zeros(n)
            down99 = np.zeros(n)
            for callee in graph.successors(name):
                j = self.index[callee]
                ratio = graph.edges[name, callee]["ratio"]
                down50 += 0.7 * ratio * p50[j]
                down99 += 0.5 * ratio * p99[j]
            p50[i] = own + down50
            p99[i] = own * 3.2 * tail[i] + down99 + down50

        # ---- errors: own base rate, fault bursts, then a share of each callee's errors
        err = np.zeros((k, n))
        base_err = np.abs(_ar1(rng, (k, n), 0.5, 0.0006)) + 0.0008
        for name in reversed(topo.callers_order()):
            i = self.index[name]
            inherited = np.zeros(n)
            for callee in graph.successors(name):
                inherited += 0.5 * min(1.0, graph.edges[name, callee]["ratio"]) * err[self.index[callee]]
            err[i] = base_err[i] + self.err_extra[i] + inherited
        err = np.clip(err, 0.0, 1.0)

        # ---- connections: Little's law (in flight = rate x time) on top of a warm pool, up to the pool size
        conn = np.zeros((k, n))
        conn_noise = _ar1(rng, (k, n), 0.7, 1.5)
        for name in names:
            i = self.index[name]
            pool = topo.service(name).pool_size
            in_flight = rps[i] * p50[i] / 1000.0
            normal = 0.12 * pool + 2.5 * in_flight + conn_noise[i]
            normal = np.minimum(normal, 0.8 * pool)  # a healthy service never sits at its limit
            conn[i] = normal + (pool - normal) * self.conn_fill[i]
        conn = np.clip(np.round(conn), 0, None)

        # ---- queue depth: backlog grows with load and with stalls
        queue = np.zeros((k, n))
        q_noise = np.abs(_ar1(rng, (k, n), 0.85, 1.0))
        for name in names:
            i = self.index[name]
            svc = topo.service(name)
            # Requests wait in proportion to those in flight, more steeply as the CPU nears saturation.
            in_flight = rps[i] * p50[i] / 1000.0
            waiting = in_flight * 4 * u[i] ** 4 * (1 + 0.3 * q_noise[i])
            backlog = svc.base_queue_depth * season * (1 + q_noise[i]) + 1000 * np.maximum(0, u[i] - 0.8) ** 2
            queue[i] = backlog + waiting + self.queue_extra[i]
        queue = np.clip(np.round(queue), 0, None)

        # ---- memory: working set with load, slow creep between deploys, leaks, resets on restart
        mem = np.zeros((k, n))
        mem_noise = _ar1(rng, (k, n), 0.95, 0.8)
        for name in names:
            i = self.index[name]
            svc = topo.service(name)
            since = _sawtooth_since(self.deploy_marks[i] + self.mem_reset[i], n)
            creep = np.minimum(8.0, since / 1440.0 * 1.5)
            # A leak lives in mem_extra only from its start to its OOM kill; the restart ends it by itself.
            # (Zeroing everything after each OOM, as this once did, also erased a service's later leaks.)
            mem[i] = svc.base_memory_pct + 6 * season + creep + self.mem_extra[i] + mem_noise[i]
        mem = np.clip(mem, 1.0, 100.0)

        # ---- disk: slow growth, a daily rotation sawtooth, and fills that clean-ups undo
        disk = np.zeros((k, n))
        minute_of_day = (self.times.hour * 60 + self.times.minute).to_numpy()
        days_elapsed = np.arange(n) / 1440.0
        for name in names:
            i = self.index[name]
            svc = topo.service(name)
            normal = svc.base_disk_pct + svc.disk_growth_pct_per_day * days_elapsed + 1.2 * minute_of_day / 1440.0
            normal = normal + rng.normal(0, 0.05, n)
            disk[i] = normal + (100.2 - normal) * self.disk_fill[i]
        disk = np.clip(disk, 0.0, 100.0)

        return {
            "cpu_pct": cpu,
            "memory_pct": mem,
            "latency_p50_ms": p50,
            "latency_p99_ms": np.maximum(p99, p50),
            "error_rate": err,
            "request_rate": rps,
            "connections": conn,
            "queue_depth": queue,
            "disk_pct": disk,
        }


def _long_form(times: pd.DatetimeIndex, services: list[str], metrics: dict[str, np.ndarray]) -> pd.DataFrame:
    """Stack (service x minute) arrays into the canonical long frame, ordered by timestamp, service, metric."""
    k, n = len(services), len(times)
    names = sorted(metrics)
    values = np.stack([metrics[m] for m in names], axis=2)  # (service, time, metric)
    values = np.round(values.transpose(1, 0, 2), 4)  # (time, service, metric)
    stamps = np.repeat(times.tz_convert(None).to_numpy(), k * len(names))
    return pd.DataFrame(
        {
            "timestamp": pd.DatetimeIndex(stamps).tz_localize("UTC"),
            "service": pd.Categorical(np.tile(np.repeat(services, len(names)), n), categories=sorted(services)),
            "metric": pd.Categorical(np.tile(names, k * n), categories=sorted(FLEET_METRICS)),
            "value": values.reshape(-1),
        }
    )


# The metrics' own p99 is about 3.2 times the own p50 (see _State.derive); a log-normal with this spread
# has that ratio between its 99th percentile and its median.
_OWN_SIGMA = math.log(3.2) / 2.326
_CALL_OVERLAP = 0.3  # a caller issues its next call when the last is 70 % done, as the metrics' 0.7 weight says


def _own_signals(topo: Topology, metrics: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Each service's own median time and own error rate per minute: its metrics less what its callees add.

    ``derive`` builds a caller's p50 as own + 0.7 x ratio x callee p50, and its error rate as own +
    0.5 x min(1, ratio) x callee errors; undoing that gives what a span spends and fails on by itself."""
    idx = {name: i for i, name in enumerate(topo.names)}
    p50, err = metrics["latency_p50_ms"], metrics["error_rate"]
    own50, own_err = p50.copy(), err.copy()
    for caller, callee, data in topo.graph.edges(data=True):
        i, j = idx[caller], idx[callee]
        own50[i] -= 0.7 * data["ratio"] * p50[j]
        own_err[i] -= 0.5 * min(1.0, data["ratio"]) * err[j]
    return np.maximum(own50, 0.05), np.clip(own_err, 0.0, 1.0)


def simulate_traces(topo: Topology, times: pd.DatetimeIndex, metrics: dict[str, np.ndarray], seed: int,
                    per_minute: float, dataset: str) -> pd.DataFrame:
    """Sampled request traces that agree with the per-minute metrics (a Poisson ``per_minute`` a minute).

    A trace enters at a service nobody calls (the front door, or a queue consumer, in proportion to their
    traffic) and follows the caller -> callee edges, each edge called ``ratio`` times on average. A span's
    own time is log-normal around its service's own p50 of that minute and it fails with its own error
    rate; a child's failure fails its caller half the time. Calls overlap a little and a span ends after
    its last child, so a slow dependency lengthens its callers' spans, and every child lies inside its
    parent. The random generator is ``default_rng([seed, 7])``: traces never draw from the fleet's."""
    if per_minute <= 0:
        return empty_spans()
    rng = np.random.default_rng([seed, 7])
    n = len(times)
    minutes = np.repeat(np.arange(n), rng.poisson(per_minute, n))
    if len(minutes) == 0:
        return empty_spans()
    offsets_us = rng.integers(0, 60_000_000, size=len(minutes))
    py = random.Random(int(rng.integers(0, 2**63)))  # scalar draws per span: far cheaper than numpy's
    own50, own_err = _own_signals(topo, metrics)
    names = topo.names
    idx = {name: i for i, name in enumerate(names)}
    graph = topo.graph
    callees = [[(idx[c], graph.edges[name, c]["ratio"]) for c in graph.successors(name)] for name in names]
    ops = [operations(name) for name in names]
    roots = [idx[name] for name in names if graph.in_degree(name) == 0]
    rps = metrics["request_rate"]
    minute_us = times.tz_convert(None).to_numpy().astype("datetime64[us]").astype(np.int64)

    trace_of: list[int] = []
    parent_of: list[int] = []
    service_of: list[int] = []
    op_of: list[str] = []
    start_of: list[int] = []
    end_of: list[int] = []
    error_of: list[bool] = []

    def span(i: int, start: int, parent: int, trace: int, lat: list, errs: list) -> tuple[int, bool]:
        me = len(start_of)
        trace_of.append(trace)
        parent_of.append(parent)
        service_of.append(i)
        op_of.append(py.choice(ops[i]))
        start_of.append(start)
        end_of.append(start)
        error_of.append(False)
        own = max(1, int(py.lognormvariate(math.log(lat[i] * 1000.0), _OWN_SIGMA)))
        before = int(own * (0.2 + 0.4 * py.random()))  # own work before the first call; the rest after the last
        cursor = last = start + before
        child_failed = False
        for j, ratio in callees[i]:
            calls = int(ratio) + (py.random() < ratio - int(ratio))
            for _ in range(calls):
                end, failed = span(j, cursor, me, trace, lat, errs)
                last = max(last, end)
                cursor += int((1 - _CALL_OVERLAP) * (end - cursor))
                child_failed |= failed
        end = last + own - before
        failed = py.random() < errs[i] or (child_failed and py.random() < 0.5)
        end_of[me], error_of[me] = end, failed
        return end, failed

    for trace, (t, offset) in enumerate(zip(minutes.tolist(), offsets_us.tolist(), strict=True)):
        weights = [float(rps[r, t]) for r in roots]
        root = roots[0] if len(roots) == 1 else py.choices(roots, weights=weights)[0]
        span(root, int(minute_us[t]) + offset, -1, trace, own50[:, t].tolist(), own_err[:, t].tolist())

    total = len(start_of)
    trace_ids = rng.integers(0, 2**63, size=(len(minutes), 2))
    trace_hex = np.array([f"{a:016x}{b:016x}" for a, b in trace_ids.tolist()], dtype=object)
    span_hex = np.array([f"{s:016x}" for s in rng.integers(1, 2**63, size=total).tolist()], dtype=object)
    parents = np.asarray(parent_of)
    parent_hex = np.where(parents >= 0, span_hex[np.maximum(parents, 0)], None)
    start = np.asarray(start_of, dtype=np.int64)
    frame = pd.DataFrame({
        "trace_id": trace_hex[np.asarray(trace_of)],
        "span_id": span_hex,
        "parent_span_id": parent_hex,
        "service": np.asarray(names, dtype=object)[np.asarray(service_of)],
        "operation": op_of,
        "start": pd.to_datetime(start, unit="us", utc=True),
        "duration_ms": (np.asarray(end_of, dtype=np.int64) - start) / 1000.0,
        "status": np.where(np.asarray(error_of), "error", "ok"),
        "dataset": dataset,
    })
    return spans_frame(frame.sort_values(["start", "trace_id"], kind="stable"))
