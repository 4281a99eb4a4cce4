"""Rank the services that may have caused an incident, from metrics and the call graph alone.

1. Every (service, metric) series of the incident window is put in robust units against the baseline:
   level = median of the baseline's most recent part (close in time, so slow seasonal drift matters
   little), scale = 1.4826 x MAD of that same part (floored at the series' sampling step, so counts that
   sit on a few integers are not infinitely sensitive, and at 1 % of the level, so a constant series that
   moves still counts). A centred 3-point median keeps single-sample spikes out. Only the bad
   direction counts (latency and errors up, availability down; traffic and unknown names either way).
2. A metric is abnormal when its peak reaches ``threshold`` robust units; its onset is the first such point.
3. A fault travels through the graph: latency and errors (symptoms) from a callee up to its callers,
   traffic (load) from a caller down to its callees, and resources (CPU, memory, disk ...) stay put. So a
   service's anomaly in a family is discounted in proportion to how abnormal its neighbours are in that
   family on the side the family comes from; its resource anomalies are discounted when it has a
   propagated anomaly explained by a neighbour (traffic pushed onto it uses its CPU; a slow callee fills
   its connection pool); and symptoms of a service whose traffic was pushed up by its callers are theirs
   too (an overloaded database is slow). What is left, the unexplained anomaly, is the service's score.
4. With a target, only services whose fault can reach the target are ranked (see ``ServiceGraph.related``)
   and each cause carries its path to the target.

Confidence grows with how far the score clears the threshold, or the largest deviation the baseline's own
quiet windows show where that is higher (``_quiet_top``), and how far it leads the runner-up.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agents.rca.graph import ServiceGraph
from agents.rca.metrics import aspect, classify
from agents.rca.models import Cause, Evidence, RcaResult

THRESHOLD = 5.0  # robust units (chosen on tuning seeds 7, 8, 9, which the benchmark does not use)
EXPLAINED_KEEP = 0.1  # share of a fully explained anomaly that still counts (explained causes still rank)
# Robust slope units a resource's rise must reach, its level as well (see _creep). 3 until 2026-12-04: 2.5 ranks
# first a dev-seed memory leak that 3 left unranked in its first half hour (memory 3 robust units up), with the
# dev seeds' fault-free specificity unchanged.
CREEP_THRESHOLD = 2.5
# A ramp between CREEP_FLOOR and CREEP_THRESHOLD still ranks, under every anomaly that clears the level threshold
# and with no confidence: a leak's first quarter of an hour is often no more (docs/rca.md).
CREEP_FLOOR = 2.0
# A callee that exports no metric of what its caller's symptom shows gets this share of that symptom.
BLIND_SHARE = 0.5
LOAD_SHARE = True  # explain a callee's traffic change by its callers' relative change too (_load_passed_down)
QUIET_WINDOWS = 12  # baseline windows _quiet_top replays (the latest ones, half a window apart)
SIZE_CAP = 100.0  # robust units: a constant baseline that moves would otherwise be infinitely abnormal
FAMILIES = ("symptom", "load", "resource")


class RcaInputError(ValueError):
    """The input cannot be ranked; the message names the input and what is wrong."""


@dataclass
class _Series:
    service: str
    metric: str
    family: str
    size: float
    direction: str
    baseline: float
    incident: float
    onset: object
    trend: float | None = None


def rank_root_causes(
    incident,
    baseline,
    edges: Iterable[tuple[str, str]] | ServiceGraph,
    target: str | None = None,
    target_metric: str | None = None,
    top: int = 5,
    threshold: float = THRESHOLD,
    at=None,
) -> RcaResult:
    """Rank root-cause candidates. ``incident`` and ``baseline`` are long-form frames (timestamp, service,
    metric, value); ``edges`` caller -> callee pairs. ``at``: rank as of that time (incident rows after it
    are ignored). Raises :class:`RcaInputError` for input that cannot be ranked."""
    graph = edges if isinstance(edges, ServiceGraph) else ServiceGraph(edges)
    return _rank(incident, baseline, graph, target, target_metric, top, threshold, at)


def _rank(incident, baseline, edges, target, target_metric, top, threshold, at) -> RcaResult:
    import numpy as np
    import pandas as pd

    graph = edges if isinstance(edges, ServiceGraph) else ServiceGraph(edges)
    notes = list(graph.notes)
    inc = _clean(incident, "incident", notes)
    base = _clean(baseline, "baseline", notes)
    if at is not None:
        at = pd.Timestamp(at)
        at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
        inc = inc[inc["timestamp"] <= at]
    if inc.empty:
        raise RcaInputError("the incident window has no rows with a timestamp and a numeric value"
                            + (f" at or before {at}" if at is not None else ""))
    if base.empty:
        raise RcaInputError("the baseline has no rows with a timestamp and a numeric value")
    if not graph.nodes:
        raise RcaInputError("the graph has no edges")
    if target is not None and target not in graph.nodes:
        raise RcaInputError(f"target {target!r} is not in the graph" + _did_you_mean(target, graph.nodes))
    services = set(inc["service"])
    unknown = sorted(graph.nodes - services - set(base["service"]))
    if unknown:
        notes.append(f"{len(unknown)} service(s) in the graph have no metrics (kept for paths): "
                     + ", ".join(unknown[:10]))
    outside = sorted(services - graph.nodes)
    if outside:
        notes.append(f"{len(outside)} service(s) with metrics are not in the graph (ranked without neighbours): "
                     + ", ".join(outside[:10]))
        graph.add_services(outside)
    if target_metric is not None:
        if target is None:
            raise RcaInputError("a target metric needs a target service")
        if not ((inc["service"] == target) & (inc["metric"] == target_metric)).any():
            have = sorted(inc.loc[inc["service"] == target, "metric"].unique())
            raise RcaInputError(f"target metric {target_metric!r} has no values for {target!r} in the incident "
                                f"window; its metrics are {have}")

    wide_inc = inc.pivot_table(index="timestamp", columns=["service", "metric"], values="value", aggfunc="mean")
    wide_base = base.pivot_table(index="timestamp", columns=["service", "metric"], values="value", aggfunc="mean")
    missing = wide_inc.columns.difference(wide_base.columns)
    if len(missing):
        shown = ", ".join(f"{s}/{m}" for s, m in list(missing)[:10])
        notes.append(f"{len(missing)} series have no baseline and were skipped: {shown}")
    cols = wide_inc.columns.intersection(wide_base.columns)
    if not len(cols):
        raise RcaInputError("no (service, metric) of the incident window is in the baseline: the window has "
                            f"{_some(wide_inc.columns)}, the baseline {_some(wide_base.columns)}")
    B = wide_base[cols].to_numpy(dtype=float)
    X = wide_inc[cols].to_numpy(dtype=float)
    usable = (np.isfinite(B).sum(axis=0) >= 3) & np.isfinite(X).any(axis=0)
    if (~usable).any():
        shown = ", ".join(f"{s}/{m}" for s, m in list(cols[~usable])[:10])
        notes.append(f"{int((~usable).sum())} series are empty or have under 3 baseline values and were "
                     f"skipped: {shown}")
    cols, B, X = cols[usable], B[:, usable], X[:, usable]

    recent_rows = max(10, len(B) // 5)
    with np.errstate(all="ignore"):
        # Floors: counts that sit on a few integers have a MAD of 0, so the sampling step (the smallest gap
        # between distinct baseline values) is the least a change can be; 1 % of the level for the rest.
        gaps = np.diff(np.sort(B, axis=0), axis=0)
        resolution = np.nanmin(np.where(gaps > 0, gaps, np.inf), axis=0, initial=np.inf)
        resolution = np.where(np.isfinite(resolution), resolution, 0.0)
        whole = np.all(np.isnan(B) | (B == np.round(B)), axis=0)
        resolution = np.where(whole, np.maximum(resolution, 1.0), resolution)  # counts: a change of one is the least there is
    level, scale, Z = _robust_z(B[-recent_rows:], X, resolution, np.nanmedian(B, axis=0))
    times = wide_inc.index

    kinds = [classify(m) for _, m in cols]
    creeping = np.array([k[0] == "resource" and k[1] != "down" for k in kinds])
    creep = np.full(len(cols), np.nan)
    if creeping.any():
        creep[creeping] = _creep(B[:, creeping], X[:, creeping], Z[:, creeping], scale[creeping])
    series: list[_Series] = []
    for j, (svc, metric) in enumerate(cols):
        family, bad = kinds[j]
        z = Z[:, j]
        options = [("up", z)] if bad == "up" else [("down", -z)] if bad == "down" else [("up", z), ("down", -z)]
        for direction, d in options:
            if not np.isfinite(d).any():
                continue
            peak = int(np.nanargmax(d))
            size = float(min(d[peak], SIZE_CAP))
            trend = float(creep[j]) if direction == "up" and np.isfinite(creep[j]) else None
            above = np.nan_to_num(d, nan=-np.inf) >= threshold
            creeps = size < threshold and trend is not None and trend >= CREEP_FLOOR
            if creeps:
                # a slow ramp (a leak, a filling disk) still under the level threshold: it counts on the
                # threshold's scale, so that a ramp just over CREEP_THRESHOLD ranks but stays low-confidence,
                # and one between CREEP_FLOOR and CREEP_THRESHOLD ranks below every level anomaly
                size = threshold * trend / CREEP_THRESHOLD
                above = np.nan_to_num(d, nan=-np.inf) >= CREEP_THRESHOLD / 2
            if size < threshold and not creeps:
                continue
            onset = times[int(np.argmax(above))] if above.any() else times[0]
            raw = X[:, j]
            value = raw[peak] if np.isfinite(raw[peak]) else float(np.nanmedian(raw))
            series.append(_Series(str(svc), str(metric), family, size, direction, float(level[j]), float(value),
                                  onset, None if trend is None else round(trend, 3)))

    symptom = None
    if target_metric is not None:
        symptom = _symptom(target, target_metric, cols, Z, X, level, times, kinds, threshold)

    result = RcaResult(target=target, target_metric=target_metric, symptom=symptom, threshold=threshold,
                       window=_span(times), baseline=_span(wide_base.index), notes=notes)
    if not series:
        return result

    passed_down = _load_passed_down(series, cols, X, level, kinds, graph) if LOAD_SHARE else {}
    # a(s, f): the service's largest deviation per family
    anomaly: dict[str, dict[str, float]] = {}
    for s in series:
        fam = anomaly.setdefault(s.service, dict.fromkeys(FAMILIES, 0.0))
        fam[s.family] = max(fam[s.family], s.size)

    def ramp(x: float) -> float:  # how abnormal a neighbour is: 0 at the threshold, 1 at twice it
        return min(1.0, max(0.0, (x - threshold) / threshold))

    unexplained: dict[str, dict[str, float]] = {}
    for svc, fam in anomaly.items():
        from_callees = ramp(max((anomaly.get(c, {}).get("symptom", 0.0) for c in graph.callees(svc)), default=0.0))
        from_callers = ramp(max((anomaly.get(c, {}).get("load", 0.0) for c in graph.callers(svc)), default=0.0))
        overloaded = from_callers if fam["load"] >= threshold else 0.0  # traffic pushed onto it by its callers
        explained = {
            "symptom": max(from_callees, overloaded),
            # its callers' traffic moved by as much, relative, even where under the threshold in their own units
            "load": max(from_callers, passed_down.get(svc, 0.0)),
            "resource": max(from_callees if fam["symptom"] >= threshold else 0.0, overloaded),
        }
        unexplained[svc] = {f: fam[f] * (1 - (1 - EXPLAINED_KEEP) * explained[f]) for f in FAMILIES}

    blind_via = _unobserved_callees(unexplained, series, cols, graph) if BLIND_SHARE else {}
    candidates = graph.related(target) if target is not None else set(unexplained)
    if symptom is not None:
        step = pd.Series(times).diff().median() if len(times) > 1 else pd.Timedelta(0)
        scores = _steered(unexplained, series, symptom, target, graph, candidates, step)
    else:
        scores = {svc: max(fam.values()) for svc, fam in unexplained.items()}
    ranked = sorted((s for s in scores if s in candidates and scores[s] > 0),
                    key=lambda s: (-scores[s], _first_onset(series, s), s))
    if not ranked:
        return result
    keep = np.array([svc in candidates for svc, _ in cols])
    quiet = _quiet_top(B, len(X), recent_rows, resolution, np.array([k[1] for k in kinds]), keep)
    result.quiet_top = None if quiet is None else round(quiet, 3)
    floor = max(threshold, quiet or 0.0)  # a cause must clear what the data do on their own
    second = scores[ranked[1]] if len(ranked) > 1 else floor
    causes = []
    for rank_i, svc in enumerate(ranked[:top]):
        runner_up = second if rank_i == 0 else scores[ranked[0]]
        path = graph.path(svc, target) if target is not None else []
        ev = sorted((s for s in series if s.service == svc), key=lambda s: -s.size)
        seen = sorted((s for s in series if s.service == blind_via.get(svc) and s.family == "symptom"),
                      key=lambda s: -s.size)
        causes.append(Cause(
            service=svc, score=round(scores[svc], 3),
            confidence=round(_confidence(scores[svc], runner_up, threshold, floor), 3), path=path,
            evidence=[Evidence(metric=s.metric, direction=s.direction, size=round(s.size, 3),
                               baseline=s.baseline, incident=s.incident, onset=s.onset, family=s.family, path=path,
                               trend=s.trend, seen_at=None if s.service == svc else s.service)
                      for s in [*ev, *seen]],
        ))
    result.causes = causes
    return result


def _unobserved_callees(unexplained, series, cols, graph: ServiceGraph) -> dict[str, str]:
    """A callee that exports no metric of what a caller's symptom shows (errors or latency: ``aspect``) cannot
    show a fault that symptom may come from: it gets BLIND_SHARE of its caller's unexplained symptom as its own
    (so it ranks under that caller, above what is quieter), added to ``unexplained`` in place. Returns
    callee -> the caller it was seen at."""
    exported: dict[str, set[str]] = {}
    for svc, metric in cols:
        exported.setdefault(str(svc), set()).add(aspect(metric))
    shown: dict[str, set[str]] = {}
    for s in series:
        if s.family == "symptom":
            shown.setdefault(s.service, set()).add(aspect(s.metric))
    via: dict[str, tuple[float, str]] = {}
    for svc, aspects in shown.items():
        share = BLIND_SHARE * unexplained.get(svc, {}).get("symptom", 0.0)
        for callee in graph.callees(svc):
            if aspects - exported.get(callee, set()) and share > via.get(callee, (0.0, ""))[0]:
                via[callee] = (share, svc)
    for callee, (share, _) in via.items():
        own = unexplained.setdefault(callee, dict.fromkeys(FAMILIES, 0.0))
        own["symptom"] = max(own["symptom"], share)
    return {callee: svc for callee, (_, svc) in via.items()}


def _load_passed_down(series, cols, X, level, kinds, graph: ServiceGraph) -> dict[str, float]:
    """For each service with a load anomaly, the share of its traffic's change that its callers' traffic made:
    the callers' summed change (window median against baseline level, same metric) over its own, in [0, 1],
    0 when they moved the other way. A callee's traffic is its callers' calls: when they all fall by a fifth in
    the evening, so does it, even where their own change stays under the threshold in their noisier units."""
    import numpy as np

    with np.errstate(all="ignore"):
        now = np.nanmedian(X, axis=0)
    moved = {tuple(c): (float(now[j]), float(level[j])) for j, c in enumerate(cols) if kinds[j][0] == "load"}
    shares: dict[str, float] = {}
    for s in series:
        if s.family != "load":
            continue
        own_now, own_base = moved.get((s.service, s.metric), (np.nan, np.nan))
        theirs = [moved[(c, s.metric)] for c in graph.callers(s.service) if (c, s.metric) in moved]
        theirs = [p for p in theirs if np.isfinite(p[0]) and np.isfinite(p[1])]
        if not theirs or not np.isfinite(own_now) or not own_base:
            continue
        base = sum(p[1] for p in theirs)
        own = (own_now - own_base) / abs(own_base)
        if not base or not own:
            continue
        share = ((sum(p[0] for p in theirs) - base) / abs(base)) / own
        shares[s.service] = max(shares.get(s.service, 0.0), float(min(1.0, max(0.0, share))))
    return shares


def _steered(unexplained, series, symptom: Evidence, target: str, graph: ServiceGraph, candidates,
             step) -> dict:
    """Scores that can explain the target's symptom: the families that reach the target from where each
    service sits, and anomalies that began no later than the symptom.

    A latency, error or availability symptom comes up from the target itself and its callees (their symptoms
    and resources), or down from its callers as load; a traffic symptom comes from its callers, itself or a
    callee that holds it back; a resource symptom from itself, or load from its callers. A family that
    cannot travel that way keeps EXPLAINED_KEEP of its score (the ranking stays complete), and so does an
    anomaly that began more than one sample after the symptom had shown (an effect, not its cause)."""
    import pandas as pd

    down = graph.descendants(target)
    up = graph.ancestors(target)
    shared = (candidates - down - up) - {target}  # the other callers of its callees: load on a shared service
    if symptom.family in ("symptom", "load"):
        allowed = {"callee": {"symptom", "resource"}, "caller": {"load"}}
    else:
        allowed = {"callee": {"symptom"}, "caller": {"load"}}
    onset = pd.Timestamp(symptom.onset) + step if symptom.onset is not None else None  # one sample's slack
    first: dict[tuple[str, str], object] = {}
    for s in series:
        key = (s.service, s.family)
        if s.onset is not None and (key not in first or s.onset < first[key]):
            first[key] = s.onset
    scores = {}
    for svc, fam in unexplained.items():
        if svc == target:
            ok = set(FAMILIES)
        elif svc in down:
            ok = allowed["callee"]
        elif svc in up or svc in shared:
            ok = allowed["caller"]
        else:
            ok = set()
        best = 0.0
        for f, value in fam.items():
            weight = 1.0 if f in ok else EXPLAINED_KEEP
            began = first.get((svc, f))
            if onset is not None and began is not None and began > onset:
                weight *= EXPLAINED_KEEP
            best = max(best, value * weight)
        scores[svc] = best
    return scores


def _robust_z(recent, X, step, fallback):
    """Level, scale and the window's deviations in robust units against ``recent`` (rows x series), with a
    centred 3-point median so that one wild sample is not an incident."""
    import warnings

    import numpy as np

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a series blank in a window or its baseline: NaN, noted
        level = np.nanmedian(recent, axis=0)
        level = np.where(np.isfinite(level), level, fallback)
        mad = 1.4826 * np.nanmedian(np.abs(recent - np.nanmedian(recent, axis=0)), axis=0)
        scale = np.maximum.reduce([mad, step, 0.01 * np.abs(level), np.full_like(mad, 1e-9)])
        Z = (X - level) / scale
        if len(Z) >= 3:
            prev = np.vstack([Z[:1] * np.nan, Z[:-1]])
            nxt = np.vstack([Z[1:], Z[:1] * np.nan])
            Z = np.nanmedian(np.stack([prev, Z, nxt]), axis=0)
    return level, scale, Z


def _quiet_top(B, T, recent_rows, step, bad, keep):
    """How large the largest deviation gets without an incident: step 1 replayed on the baseline's own
    windows of the incident window's length (each against the ``recent_rows`` before it, as the window is
    against the baseline's end), the median over those windows of the largest bad-direction peak among the
    series ``keep`` selects. None when the baseline is too short for two such windows.

    With thousands of series one of them wanders 10 robust units on a quiet day; with a hundred, 6. The
    confidence measures a cause against this rather than against the fixed threshold alone."""
    import numpy as np

    B, step, bad = B[:, keep], step[keep], bad[keep]
    if not B.shape[1]:
        return None
    starts = list(range(len(B) - T, recent_rows - 1, -max(1, T // 2)))[:QUIET_WINDOWS]
    if len(starts) < 2:
        return None
    tops = []
    with np.errstate(all="ignore"):
        fallback = np.nanmedian(B, axis=0)
        for s0 in starts:
            _, _, Z = _robust_z(B[s0 - recent_rows:s0], B[s0:s0 + T], step, fallback)
            d = np.where(bad == "up", Z, np.where(bad == "down", -Z, np.abs(Z)))
            tops.append(np.nanmax(np.nan_to_num(d, nan=-np.inf)))
    return float(min(np.median(tops), SIZE_CAP))


def _creep(B, X, Z, scale):
    """How unusually fast each series rises in the window, in robust slope units, where it has also left
    its usual level: min(slope z, end-level z), NaN where the window is too short (under 5 points).

    The window's slope is Theil-Sen (the median of all pairwise slopes: one odd sample cannot make a ramp).
    What a normal slope is comes from the baseline cut into windows of the same length (a third of it
    apart, the latest 60): their least-squares slopes' median and 1.4826 x MAD, floored at half a robust
    unit over the window. A leak's first quarter of an hour is a slope more than a level; requiring both
    keeps a baseline that merely wanders from counting."""
    import numpy as np
    import pandas as pd

    T = len(X)
    if T < 5 or len(B) < T + 2:
        return np.full(X.shape[1], np.nan)
    i, j = np.triu_indices(T, 1)
    with np.errstate(all="ignore"):
        slope = np.nanmedian((X[j] - X[i]) / (j - i)[:, None], axis=0)
        filled = pd.DataFrame(B).ffill().bfill().to_numpy()
        t = np.arange(T) - (T - 1) / 2
        starts = np.arange(0, len(B) - T + 1, max(1, T // 3))[-60:]
        windows = np.stack([filled[s:s + T] for s in starts])  # (windows, T, series)
        slopes = np.tensordot(t, windows, axes=([0], [1])) / (t @ t)  # least squares: (windows, series)
        centre = np.nanmedian(slopes, axis=0)
        spread = 1.4826 * np.nanmedian(np.abs(slopes - centre), axis=0)
        spread = np.maximum(spread, 0.5 * scale / T)
        slope_z = (slope - centre) / spread
        end_z = np.nanmedian(Z[-3:], axis=0)
    return np.minimum(slope_z, end_z)


def _confidence(score: float, runner_up: float, threshold: float, floor: float) -> float:
    """How far the score clears ``floor`` (the threshold, or the quiet baseline's top deviation where that
    is higher), in units of twice the threshold, times how far it leads the runner-up."""
    import math

    strength = 1 - math.exp(-max(0.0, score - floor) / (2 * threshold))
    lead = score / (score + max(runner_up, floor))  # 0.5 when tied with the runner-up
    return strength * min(1.0, 2 * lead)


def _first_onset(series: list[_Series], service: str):
    import pandas as pd

    stamps = [s.onset for s in series if s.service == service and s.onset is not None]
    return min(stamps) if stamps else pd.Timestamp.max.tz_localize("UTC")


def _symptom(target, metric, cols, Z, X, level, times, kinds, threshold) -> Evidence | None:
    import numpy as np

    hits = [j for j, c in enumerate(cols) if c == (target, metric)]
    if not hits:
        return None
    j = hits[0]
    bad = kinds[j][1]
    d = -Z[:, j] if bad == "down" else Z[:, j] if bad == "up" else np.abs(Z[:, j])
    if not np.isfinite(d).any():
        return None
    peak = int(np.nanargmax(d))
    above = np.nan_to_num(d, nan=-np.inf) >= threshold
    return Evidence(metric=metric, direction="down" if Z[peak, j] < 0 else "up", size=round(float(min(d[peak], SIZE_CAP)), 3),
                    baseline=float(level[j]), incident=float(X[peak, j]),
                    onset=times[int(np.argmax(above))] if above.any() else None, family=kinds[j][0], path=[target])


def _clean(frame, what: str, notes: list[str]):
    """Long form with parsed timestamps (UTC) and numbers; unparseable rows dropped and counted."""
    import pandas as pd

    missing = [c for c in ("timestamp", "service", "metric", "value") if c not in frame.columns]
    if missing:
        raise RcaInputError(f"the {what} lacks column(s) {missing}; expected timestamp, service, metric, value")
    out = pd.DataFrame({
        "timestamp": pd.to_datetime(frame["timestamp"], utc=True, errors="coerce", format="mixed")
        if frame["timestamp"].dtype == object else pd.to_datetime(frame["timestamp"], utc=True, errors="coerce"),
        "service": _stripped(frame["service"]),
        "metric": _stripped(frame["metric"]),
        "value": pd.to_numeric(frame["value"], errors="coerce"),
    })
    bad_time = int(out["timestamp"].isna().sum())
    if bad_time:
        notes.append(f"{what}: dropped {bad_time} row(s) without a readable timestamp")
    out = out.dropna(subset=["timestamp"])
    if not out["timestamp"].is_monotonic_increasing:
        notes.append(f"{what}: timestamps were out of order (sorted)")
    dupes = int(out.duplicated(["timestamp", "service", "metric"]).sum())
    if dupes:
        notes.append(f"{what}: {dupes} duplicate timestamp(s) per series (averaged)")
    has_value = out["value"].notna().groupby([out["service"], out["metric"]]).any()
    if not has_value.all():
        shown = ", ".join(f"{s}/{m}" for s, m in has_value[~has_value].index[:10])
        notes.append(f"{what}: {int((~has_value).sum())} series have no numeric value at all (skipped): {shown}")
    return out.dropna(subset=["value"]).sort_values("timestamp", kind="stable")


def _stripped(column):
    """Names without surrounding spaces; stripped once per distinct name (a window has few, rows many)."""
    import pandas as pd

    codes, uniques = pd.factorize(column.astype(str))
    return pd.Index(uniques).str.strip().to_numpy()[codes]


def _some(columns) -> str:
    shown = ", ".join(f"{s}/{m}" for s, m in list(columns)[:5])
    return shown + (f" and {len(columns) - 5} more" if len(columns) > 5 else "")


def _span(index) -> dict:
    return {"start": index.min() if len(index) else None, "end": index.max() if len(index) else None,
            "points": len(index)}


def _did_you_mean(name: str, options: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(options), n=3)
    return f"; did you mean {', '.join(map(repr, close))}?" if close else f"; it has {len(options)} services"
