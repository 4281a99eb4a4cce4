"""Root-cause ranking benchmark: accuracy per fault kind on development and held-out fleets, specificity,
detection delay, and speed on 13-, 50- and 500-service graphs.

    python benchmarks/rca.py                       # dev seeds 1-9, held-out 1001-1006, generated 50 and 500
    python benchmarks/rca.py --heldout             # held-out fleets only (what the figures in docs/rca.md are)
    python benchmarks/rca.py --dev 1 2 --sizes     # a quick look while tuning: two dev seeds, 13 services
    python benchmarks/rca.py --json

Seeds. The ranking's constants were chosen on the development seeds (``--dev``: 1-9; 101, 202 and 303 were
reported before and looked at while tuning, so they are in neither set now). The held-out seeds
(``--heldout-seeds``: 1001-1006 for the 13-service shop, 2001 and 2002 for the generated fleets) were never
run while tuning; only their tables judge the method.

Each simulated incident becomes one case: the baseline is the ``--baseline`` minutes before the incident's
start, the window ``--windows`` minutes (the first is the headline; 30 one-minute points, about what a dozen
five-minute points of real data give) from its start plus a delay of 0, 5 and 15 minutes (an alert that
fires late). The target, the service an operator was paged for, is an entry point when the incident
touched one, else the affected service with the fewest callers. The incident record is read only to pick
that target and to score: ``rank_root_causes`` gets the telemetry, the graph and the target, nothing else.

* AC@k: share of cases whose root cause is among the first k; Avg@5 = mean of AC@1..AC@5.
* specificity: on fault-free windows (a one-day fleet of the same seed and size with no faults, routine
  deploys kept; one window every ``--clean-every`` minutes after the first baseline), the share that
  return no cause or a top cause with confidence < 0.5 (``LOW_CONFIDENCE``).
* called abnormal: on the incident windows, the share whose top cause has confidence >= 0.5, what an
  investigation needs to report a cause rather than "nothing abnormal" (specificity's counterpart).
* latency per case (p50, p99) on every graph size, incident and fault-free windows together.
* z: a baseline, the target and its downstream services ranked by their largest plain z-score (mean and
  std of the baseline) over all metrics, with no graph reasoning.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.rca import ServiceGraph, rank_root_causes
from telemetry.simulator import FAULT_KINDS, FleetSimulator

LOW_CONFIDENCE = 0.5
END = "2024-06-10"
DEV_SEEDS = list(range(1, 10))
HELDOUT_SEEDS = [1001, 1002, 1003, 1004, 1005, 1006]
HELDOUT_GENERATED = [2001, 2002]


def simulate(seed: int, days: float, per_day: float, services: int = 13):
    return FleetSimulator(days=days, seed=seed, end=END, incidents_per_day=per_day, services=services,
                          traces_per_minute=0).run()


def _strings(tel: pd.DataFrame) -> pd.DataFrame:
    return tel.assign(service=tel["service"].astype(str), metric=tel["metric"].astype(str))


def target_for(affected: list[str], topology, graph: ServiceGraph) -> str:
    entry = [s for s in topology.entrypoints if s in affected]
    if entry:
        return entry[0]
    return min(affected, key=lambda s: (len(graph.callers(s)), s))


def slice_case(tel: pd.DataFrame, start, delay: int, window: int, baseline: int):
    t = tel["timestamp"]
    base = tel[(t >= start - pd.Timedelta(minutes=baseline)) & (t < start)]
    w0 = start + pd.Timedelta(minutes=delay)
    inc = tel[(t >= w0) & (t < w0 + pd.Timedelta(minutes=window))]
    return inc, base


def zscore_baseline(inc, base, graph: ServiceGraph, target: str) -> list[str]:
    """Target + downstream ranked by the largest |z| of any metric (mean and std of the baseline)."""
    keep = {target} | graph.descendants(target)
    stats = base.groupby(["service", "metric"], observed=True)["value"].agg(["mean", "std"])
    peak = inc.groupby(["service", "metric"], observed=True)["value"].agg(["max", "min"])
    j = peak.join(stats, how="inner")
    z = np.maximum((j["max"] - j["mean"]).abs(), (j["min"] - j["mean"]).abs()) / j["std"].clip(lower=1e-9)
    per = z.groupby(level=0, observed=True).max()
    per = per[per.index.isin(keep)].sort_values(ascending=False)
    return [str(s) for s in per.index]


def hits(ranked: list[str], root: str) -> list[int]:
    return [int(root in ranked[:k]) for k in range(1, 6)]


def fleet_cases(seed, services, days, per_day, delays, windows, baseline, clean_every, split):
    """Every incident of one fleet at every delay and window, then its fault-free twin's quiet windows."""
    rows, clean, lat = [], [], []
    sim = simulate(seed, days, per_day, services)
    tel = _strings(sim.telemetry)
    topo = sim.topology
    graph = ServiceGraph([(e.caller, e.callee) for e in topo.edges])
    for inc in sim.incidents.itertuples():
        target = target_for(list(inc.affected_services), topo, graph)
        for window in windows:
            for delay in delays:
                window_df, base_df = slice_case(tel, inc.start, delay, window, baseline)
                assert list(window_df.columns) == list(base_df.columns) == ["timestamp", "service", "metric",
                                                                            "value"]  # telemetry only
                t0 = time.perf_counter()
                res = rank_root_causes(window_df, base_df, graph, target=target, top=5)
                lat.append(time.perf_counter() - t0)
                ranked = [c.service for c in res.causes]
                rows.append({"split": split, "services": services, "seed": seed, "kind": inc.kind,
                             "window": window, "delay": delay, "root": inc.root_cause_service, "target": target,
                             "top": ranked[:3], "hit": hits(ranked, inc.root_cause_service),
                             "confidence": res.causes[0].confidence if res.causes else 0.0,
                             "z_hit": hits(zscore_baseline(window_df, base_df, graph, target),
                                           inc.root_cause_service)})
    quiet = simulate(seed, 1, 0, services)
    qtel = _strings(quiet.telemetry)
    at = quiet.start + pd.Timedelta(minutes=baseline)
    while at + pd.Timedelta(minutes=windows[0]) <= quiet.end:
        window_df, base_df = slice_case(qtel, at, 0, windows[0], baseline)
        t0 = time.perf_counter()
        res = rank_root_causes(window_df, base_df, graph, target=topo.entrypoints[0], top=5)
        lat.append(time.perf_counter() - t0)
        conf = res.causes[0].confidence if res.causes else 0.0
        clean.append({"split": split, "services": services, "seed": seed, "at": str(at),
                      "top": res.causes[0].service if res.causes else None, "confidence": conf,
                      "quiet": conf < LOW_CONFIDENCE})
        at += pd.Timedelta(minutes=clean_every)
    return rows, clean, lat


def quality_table(rows: list[dict], full_window: int) -> list[dict]:
    df = pd.DataFrame(rows)

    def acc(part, col):
        h = np.array(part[col].tolist())
        return {"cases": len(part), "AC@1": h[:, 0].mean(), "AC@3": h[:, 2].mean(), "Avg@5": h.mean()}

    table = []
    for (split, services, window, delay), part in df.groupby(["split", "services", "window", "delay"], sort=False):
        kinds = [*FAULT_KINDS, "all"] if window == full_window else ["memory_leak", "all"]
        for kind in kinds:
            sub = part if kind == "all" else part[part["kind"] == kind]
            if len(sub):
                table.append({"split": split, "services": int(services), "window": int(window),
                              "delay": int(delay), "kind": kind, **acc(sub, "hit"),
                              **{f"z {k}": v for k, v in acc(sub, "z_hit").items() if k != "cases"}})
    return table


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dev", type=int, nargs="*", default=DEV_SEEDS, help="development seeds (13 services)")
    ap.add_argument("--heldout-seeds", type=int, nargs="*", default=HELDOUT_SEEDS)
    ap.add_argument("--heldout", action="store_true", help="held-out fleets only")
    ap.add_argument("--days", type=float, default=4)
    ap.add_argument("--per-day", type=float, default=6)
    ap.add_argument("--delays", type=int, nargs="+", default=[0, 5, 15])
    ap.add_argument("--windows", type=int, nargs="+", default=[30, 15],
                    help="incident window lengths in minutes; the first gets the full per-kind table")
    ap.add_argument("--baseline", type=int, default=300, help="minutes of baseline before the incident")
    ap.add_argument("--clean-every", type=int, default=30)
    ap.add_argument("--sizes", type=int, nargs="*", default=[50, 500], help="generated fleets to add")
    ap.add_argument("--generated-seeds", type=int, nargs="*", default=HELDOUT_GENERATED,
                    help=f"generated fleets' seeds; any but {HELDOUT_GENERATED} are labelled dev")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    plan = [] if a.heldout else [("dev", s, 13, a.days) for s in a.dev]
    plan += [("held-out", s, 13, a.days) for s in a.heldout_seeds]
    for n in a.sizes:  # generated fleets are held out too; a 500-service day is already 6.5 M rows
        plan += [("held-out" if s in HELDOUT_GENERATED else "dev", s, n, 2 if n <= 100 else 1)
                 for s in a.generated_seeds[: 2 if n <= 100 else 1]]
    rows, clean, lat = [], [], {}
    for split, seed, n, days in plan:
        every = a.clean_every if n <= 100 else 4 * a.clean_every
        r, c, t = fleet_cases(seed, n, days, a.per_day, a.delays, a.windows, a.baseline, every, split)
        rows += r
        clean += c
        lat.setdefault(n, []).extend(t)
    table = quality_table(rows, a.windows[0])
    cdf = pd.DataFrame(clean)
    spec = [{"split": k[0], "services": int(k[1]), "windows": len(g), "specificity": float(g["quiet"].mean())}
            for k, g in cdf.groupby(["split", "services"], sort=False)]
    idf = pd.DataFrame(rows)
    called = [{"split": k[0], "services": int(k[1]), "window": int(k[2]), "delay": int(k[3]), "cases": len(g),
               "called_abnormal": float((g["confidence"] >= LOW_CONFIDENCE).mean())}
              for k, g in idf.groupby(["split", "services", "window", "delay"], sort=False)]
    speed = [{"services": n, "cases": len(v), "p50_s": float(np.percentile(v, 50)),
              "p99_s": float(np.percentile(v, 99))} for n, v in lat.items()]
    misses = [r for r in rows if not r["hit"][2] and r["delay"] == 0 and r["window"] == a.windows[0]]
    if a.json:
        print(json.dumps({"table": table, "specificity": spec, "called_abnormal": called, "latency": speed, "misses_at_3": misses},
                         default=str, indent=2))
        return
    print(f"13 services: dev seeds {[] if a.heldout else a.dev}, held-out seeds {a.heldout_seeds}, {a.days:g} days "
          f"each; generated {a.sizes} services: held-out seeds {a.generated_seeds}; baseline {a.baseline} min")
    print(f"{'split':<8} {'svc':>3} {'win':>3} {'delay':>5} {'kind':<27} {'cases':>5} {'AC@1':>6} {'AC@3':>6} "
          f"{'Avg@5':>6} | {'z AC@1':>6} {'z AC@3':>6} {'z Avg@5':>7}")
    for r in table:
        print(f"{r['split']:<8} {r['services']:>3} {r['window']:>3} {r['delay']:>5} {r['kind']:<27} {r['cases']:>5} "
              f"{r['AC@1']:>6.3f} {r['AC@3']:>6.3f} {r['Avg@5']:>6.3f} | {r['z AC@1']:>6.3f} {r['z AC@3']:>6.3f} "
              f"{r['z Avg@5']:>7.3f}")
    for s in spec:
        print(f"specificity {s['split']:<8} {s['services']:>3} services (no cause or confidence < {LOW_CONFIDENCE}) "
              f"on {s['windows']} fault-free windows of {a.windows[0]} min: {s['specificity']:.3f}")
    for c in called:
        print(f"called abnormal {c['split']:<8} {c['services']:>3} services, window {c['window']} min, delay "
              f"{c['delay']:>2} (top cause confidence >= {LOW_CONFIDENCE}) on {c['cases']} incident cases: "
              f"{c['called_abnormal']:.3f}")
    for s in speed:
        print(f"latency per case ({s['services']} services, {s['cases']} cases): p50 {s['p50_s'] * 1000:.0f} ms, "
              f"p99 {s['p99_s'] * 1000:.0f} ms")
    for c in [c for c in clean if not c["quiet"]][:10]:
        print(f"fault-free window flagged: {c['split']} {c['services']} services seed {c['seed']} at {c['at']} "
              f"top {c['top']} confidence {c['confidence']}")
    for m in misses[:20]:
        print(f"miss at 3 (delay 0): {m['split']} {m['services']} services seed {m['seed']} {m['kind']} root "
              f"{m['root']} target {m['target']} ranked {m['top']}")


if __name__ == "__main__":
    main()
