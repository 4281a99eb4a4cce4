"""Root-cause ranking on incidents reshaped the way CloudWatch-style exports of a microservice shop look.

    python benchmarks/rca_five_minute.py              # held-out fleets: 13 services (1001-1006), 50 (2001, 2002)
    python benchmarks/rca_five_minute.py --seeds 1 2  # development seeds instead (13 services)
    python benchmarks/rca_five_minute.py --json

The issue's real-data check (public microservice fault data: about 40 components, 5-minute samples of
latency, request counts and availability in several statistics, a caller -> callee graph, the SLO-violating
target service and metric given) cannot run here: no such data set ships in a wheel, and the check is run
on data the project has never seen. This script is the nearest stand-in we can build honestly: the
simulator's incidents, reshaped to that form, and run through ``rank_root_causes`` exactly as
``cerebro rca --metrics --baseline --graph --target --target-metric`` calls it.

The reshaping (``cloudwatch_shape``), per service and 5-minute period:
* ``latency_Average`` (mean of the p50 latency), ``latency_p90`` (mean of the p99 latency),
  ``requests_Sum`` and ``requests_Average`` (the request rate), ``availability_Average`` (100 x (1 - error
  rate)); no CPU, memory, disk, connection or queue metric: such exports rarely carry them;
* each metric is left out for a fifth of the services (drawn per fleet), and 2 % of values are blank.

Cases: each incident one of whose affected services violates an SLO in the hour after the incident starts:
its ``latency_p90`` or ``availability_Average`` leaves the baseline by more than 5 robust units in the bad
direction (a 3-period median against the baseline's latest fifth, as the ranker measures). The target is the one furthest upstream (fewest ancestors in the graph), where the alarm a user
sees would fire, and the violated metric is the target metric (the root itself can be the target when
nothing above it moved). Window: the 12 periods (1 hour) from the incident's start;
baseline: up to 288 periods (1 day) before it, at least 36. Incidents the reshaped data cannot show
(a leak before its OOM kill, a disk before it fills: only resources moved) are counted, not ranked.

Baseline method ("z"): the target and its downstream services ranked by their largest plain z-score (mean
and standard deviation of the baseline) over all their metrics, as the issue's own baseline does.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rca import _strings, hits, simulate, zscore_baseline

from agents.rca import ServiceGraph, rank_root_causes
from agents.rca.rank import _robust_z

PERIOD = "5min"
WINDOW = 12  # periods: one hour
BASELINE = (36, 288)  # periods: at least 3 hours, at most a day
SLO_Z = 5.0  # robust units the target's SLO metric must leave its baseline by (the ranker's threshold)
DROP_SHARE = 0.2  # of the services, per metric, that do not export it
BLANK_SHARE = 0.02


def cloudwatch_shape(tel: pd.DataFrame, seed: int) -> pd.DataFrame:
    """1-minute simulator telemetry as 5-minute CloudWatch-style statistics (see the module docstring)."""
    wide = tel.pivot_table(index="timestamp", columns=["service", "metric"], values="value", aggfunc="mean")
    per = wide.resample(PERIOD)
    mean, total = per.mean(), per.sum(min_count=1)
    frames = []
    for name, source, metric, scale in (("latency_Average", mean, "latency_p50_ms", 1.0),
                                        ("latency_p90", mean, "latency_p99_ms", 1.0),
                                        ("requests_Sum", total, "request_rate", 1.0),
                                        ("requests_Average", mean, "request_rate", 1.0)):
        part = source.xs(metric, axis=1, level="metric") * scale
        frames.append(part.stack().rename("value").reset_index().assign(metric=name))
    avail = 100 * (1 - mean.xs("error_rate", axis=1, level="metric"))
    frames.append(avail.stack().rename("value").reset_index().assign(metric="availability_Average"))
    long = pd.concat(frames, ignore_index=True)[["timestamp", "service", "metric", "value"]]
    rng = np.random.default_rng(seed)
    services = sorted(long["service"].unique())
    dropped = {(s, m) for m in long["metric"].unique()
               for s in rng.choice(services, size=int(DROP_SHARE * len(services)), replace=False)}
    keep = [(s, m) not in dropped for s, m in zip(long["service"], long["metric"])]
    long = long[keep].reset_index(drop=True)
    long.loc[rng.uniform(size=len(long)) < BLANK_SHARE, "value"] = np.nan
    return long


def slo_metric(inc: pd.DataFrame, base: pd.DataFrame, target: str) -> str | None:
    """The target's SLO metric that the window violates most, if any: its deviation as the ranker measures it
    (``agents.rca.rank._robust_z``: a 3-period median against the baseline's latest fifth, in robust units)
    passes ``SLO_Z`` in the bad direction."""
    best, best_z = None, SLO_Z
    for metric, bad in (("latency_p90", 1.0), ("availability_Average", -1.0)):
        b = base.loc[(base["service"] == target) & (base["metric"] == metric)].sort_values("timestamp")["value"]
        x = inc.loc[(inc["service"] == target) & (inc["metric"] == metric)].sort_values("timestamp")["value"]
        b = b.dropna().to_numpy()
        if len(b) < 10 or x.notna().sum() < 3:
            continue
        recent = b[-max(10, len(b) // 5):, None]
        _, _, z = _robust_z(recent, x.to_numpy()[:, None], np.zeros(1), np.median(recent, axis=0))
        top = float(np.nanmax(bad * z))
        if top > best_z:
            best, best_z = metric, top
    return best


def fleet(seed: int, services: int, days: float, per_day: float, split: str) -> tuple[list[dict], int]:
    sim = simulate(seed, days, per_day, services)
    shaped = cloudwatch_shape(_strings(sim.telemetry), seed)
    topo = sim.topology
    graph = ServiceGraph([(e.caller, e.callee) for e in topo.edges])
    t = shaped["timestamp"]
    rows, unseen = [], 0
    for inc in sim.incidents.itertuples():
        start = inc.start.floor(PERIOD)
        base = shaped[(t >= start - pd.Timedelta(PERIOD) * BASELINE[1]) & (t < start)]
        window = shaped[(t >= start) & (t < start + pd.Timedelta(PERIOD) * WINDOW)]
        if base["timestamp"].nunique() < BASELINE[0]:
            continue
        # the alarm: the service furthest upstream among those the incident touched whose SLO the hour violates
        upstream_first = sorted(inc.affected_services, key=lambda s: (len(graph.ancestors(s)), s))
        found = [(s, slo_metric(window, base, s)) for s in upstream_first]
        found = [(s, m) for s, m in found if m is not None]
        if not found:
            unseen += 1
            continue
        target, metric = found[0]
        res = rank_root_causes(window, base, graph, target=target, target_metric=metric, top=5)
        ranked = [c.service for c in res.causes]
        rows.append({"split": split, "services": services, "seed": seed, "kind": inc.kind, "target": target,
                     "target_metric": metric, "root": inc.root_cause_service, "top": ranked[:3],
                     "hit": hits(ranked, inc.root_cause_service),
                     "z_hit": hits(zscore_baseline(window, base, graph, target), inc.root_cause_service)})
    return rows, unseen


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="*", help="development seeds (13 services) instead of held-out")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.seeds:
        plan = [(s, 13, 4, 6, "dev") for s in a.seeds]
    else:
        plan = [(s, 13, 4, 6, "held-out") for s in (1001, 1002, 1003, 1004, 1005, 1006)]
        plan += [(s, 50, 2, 6, "held-out") for s in (2001, 2002)]
    rows, unseen = [], {}
    for seed, services, days, per_day, split in plan:
        r, u = fleet(seed, services, days, per_day, split)
        rows += r
        unseen[services] = unseen.get(services, 0) + u
    df = pd.DataFrame(rows)
    table = []
    for (services, kind), part in [((n, k), g) for n, g0 in df.groupby("services") for k, g in
                                   [*g0.groupby("kind"), ("all", g0)]]:
        h, z = np.array(part["hit"].tolist()), np.array(part["z_hit"].tolist())
        table.append({"services": int(services), "kind": kind, "cases": len(part), "AC@1": h[:, 0].mean(),
                      "AC@3": h[:, 2].mean(), "Avg@5": h.mean(), "z AC@1": z[:, 0].mean(), "z AC@3": z[:, 2].mean()})
    if a.json:
        print(json.dumps({"table": table, "not_visible": unseen, "cases": rows}, default=str, indent=2))
        return
    print(f"{'svc':>3} {'kind':<27} {'cases':>5} {'AC@1':>6} {'AC@3':>6} {'Avg@5':>6} | {'z AC@1':>6} {'z AC@3':>6}")
    for r in table:
        print(f"{r['services']:>3} {r['kind']:<27} {r['cases']:>5} {r['AC@1']:>6.3f} {r['AC@3']:>6.3f} "
              f"{r['Avg@5']:>6.3f} | {r['z AC@1']:>6.3f} {r['z AC@3']:>6.3f}")
    for n, u in unseen.items():
        print(f"{n} services: {u} incident(s) violated no SLO in the reshaped data (not ranked)")
    print("target metrics:", df["target_metric"].value_counts().to_dict())


if __name__ == "__main__":
    main()
