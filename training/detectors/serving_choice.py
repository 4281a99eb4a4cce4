"""The ensemble's members chosen with their serving cost as well as their detection quality.

    choice = choose_members(members, models, fit, figure, cost_of, margin)
    choice.members, choice.ensemble, choice.costs, choice.note

The ensemble (the model the pipeline puts forward, registers as ``cerebro-detector-ensemble`` and deploys) is
first the best few members on validation (``training.zoo``). Its serving cost is then measured
(``training.detectors.serving_cost``), and:

1. when it cannot meet the spec's latency (p50 < 50 ms, p99 < 200 ms at 8 clients), the promotion gate would
   refuse it, and a champion that is never served finds nothing: the members are added again in their order
   on the choice's period, each kept only while the composition still meets the spec, so the best-ranked
   members the latency can afford stay; when that leaves fewer than ``FILL_UP_TO`` (a leader too slow even
   alone), the next models of the ranking fill it up to that, each only if the composition's F1 holds (the
   first of them: if its ensemble finds what it finds alone, within ``margin``);
2. when it misses the project's own targets (p50 < 10 ms, p99 < 50 ms), cheaper compositions are tried (its
   members that meet them alone, and the best few single models that do, each as an ensemble of its own) and the
   best of those that meet them is taken if its F1 on the choice's period (validation, or the planted anomalies
   on a user's telemetry) is within ``margin`` (``detection.serving_margin``, 0.02) of the composition it replaces.

Every composition tried is kept (``considered``) with its F1 and cost, for the report. The choice never reads the
test period.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from training.detectors.serving_cost import OURS, SPEC, ServingCost

# Single models (the best on F1 within the margin) measured, and tried as ensembles of one when they meet the
# project's targets alone and the ensemble does not.
CHEAP_SINGLES = 5
# Models from further down the ranking fill a composition the latency left short only up to this many members:
# they are there so that a leader too slow even alone does not leave an ensemble of one. Beyond it a filler
# costs precision: on 31 simulated fleets, an ensemble of five with one member replaced by the sixth-ranked
# model never met the targets on more fleets than the four alone, and its mean precision was 0.005-0.008 lower.
FILL_UP_TO = 3


@dataclass
class Composition:
    members: list[str]
    f1: float
    auc_pr: float | None
    cost: ServingCost
    ensemble: object = field(repr=False, default=None)

    def row(self) -> dict:
        return {"members": ", ".join(self.members), "f1": round(self.f1, 3),
                "auc_pr": None if self.auc_pr is None else round(self.auc_pr, 3),
                "ms_per_window": round(self.cost.window_ms, 2), "p50_ms": round(self.cost.p50_ms, 1),
                "p99_ms": round(self.cost.p99_ms, 1), "meets_spec": self.cost.meets(SPEC),
                "meets_ours": self.cost.meets(OURS)}


@dataclass
class ServingChoice:
    members: list[str]
    ensemble: object
    costs: dict[str, ServingCost]  # the single models the choice measured, and "ensemble": the chosen composition's
    considered: list[Composition]
    note: str  # which composition, and why, in words
    seconds: float = 0.0  # what measuring took


def _names(members: list[str]) -> str:
    return ", ".join(members)


def choose_members(members: list[str], models: dict, fit: Callable[[list[str]], object],
                   figure: Callable[[object, list[str]], dict], cost_of: Callable[[str, object], ServingCost],
                   margin: float = 0.02, single_figure: Callable[[str], float] | None = None,
                   views: dict[str, str] | None = None) -> ServingChoice:
    """``fit(members)`` builds an ensemble of the fitted ``models``; ``figure(ensemble, members)`` gives its F1 and
    AUC-PR on the choice's period; ``cost_of(name, model)`` measures a model. ``single_figure(name)``: a single
    model's (F1, AUC-PR) on the same period, which ranks the single models tried alone. ``views``: what each model
    reads (``training.zoo.model_views``); a model from further down the ranking never joins one that reads the
    same. Only the models the choice needs are measured (a measurement takes about a second): the compositions
    tried, and the few best single models when the composition misses our targets."""
    t0 = time.perf_counter()
    costs: dict[str, ServingCost] = {}

    def cost(name: str) -> ServingCost:  # measured when the choice needs it: a measurement takes about a second
        if name not in costs:
            costs[name] = cost_of(name, models[name])
        return costs[name]

    considered: list[Composition] = []

    def consider(ms: list[str]) -> Composition:
        for c in considered:
            if c.members == ms:
                return c
        ens = fit(ms)
        fig = figure(ens, ms)
        c = Composition(list(ms), float(fig["f1"]), fig.get("auc_pr"), cost_of("ensemble", ens), ens)
        considered.append(c)
        return c

    chosen = first = consider(list(members))
    notes = []
    if not first.cost.meets(SPEC):
        # The best-ranked members the spec's latency can afford, in rank order: a member whose addition takes
        # the composition past it is skipped, and the next one tried. When that leaves fewer than the ensemble's
        # size (the leader alone may be too slow), the next models of the ranking fill it up, each only when the
        # composition's F1 does not fall: a slow leader must not leave a model the service cannot afford.
        rank = single_figure or (lambda n: 0.0)
        others = sorted((n for n in models if n not in members), key=rank, reverse=True)
        kept, skipped, added = [], [], []
        def holds(trial: Composition, name: str) -> bool:
            """A model from further down the ranking joins only if the composition keeps its F1: the F1 of what
            is kept, or, as the first, its own F1 alone (within the margin): an ensemble of it that finds less
            than it does alone is no substitute for a leader the service cannot afford."""
            if kept:
                return trial.f1 >= consider(kept).f1
            own = single_figure(name)[0] if single_figure else None
            return own is None or trial.f1 >= own - margin - 1e-12

        view = (views or {}).get

        def may_fill(name: str) -> bool:
            """A model from further down the ranking is tried only while the composition is under FILL_UP_TO
            and none of it reads what the model reads."""
            return len(kept) < min(len(members), FILL_UP_TO) and view(name, name) not in {view(k, k) for k in kept}

        for name in [*members, *others]:
            if len(kept) >= len(members):
                break
            extra = name not in members
            if extra and not may_fill(name):
                continue
            trial = consider(kept + [name])
            if trial.cost.meets(SPEC) and (not extra or holds(trial, name)):
                kept.append(name)
                if extra:
                    added.append(name)
            elif not extra:
                skipped.append(name)
        if not kept:  # nothing the spec can afford: the cheapest of the original members, which the gate refuses
            kept = [min(members, key=lambda n: consider([n]).cost.p50_ms)]
        chosen = consider(kept)
        notes.append(f"The ensemble of {_names(first.members)} would miss the spec's serving targets "
                     f"({first.cost.words()}), so the promotion gate would refuse it. Adding the members in their "
                     f"order on the choice's period while it still meets them left out {_names(skipped) or 'none'}"
                     + (f"; the next in the ranking that it could afford and that kept its F1: {_names(added)}."
                        if added else "."))
    if not chosen.cost.meets(SPEC):
        notes.append(f"Even {_names(chosen.members)} alone misses the spec's serving targets ({chosen.cost.words()}): "
                     "the promotion gate will refuse it.")
    elif not chosen.cost.meets(OURS):
        # Only a model whose own F1 is within the margin could make a composition that is; the best few are
        # measured, and those that meet our targets alone are tried as ensembles of their own.
        rank = single_figure or (lambda n: 0.0)
        near = sorted((n for n in models if single_figure is None or rank(n)[0] >= chosen.f1 - margin - 1e-12),
                      key=rank, reverse=True)[:CHEAP_SINGLES]
        tries = [[n for n in chosen.members if cost(n).meets(OURS)]] + [[n] for n in near if cost(n).meets(OURS)]
        options = [consider(ms) for ms in tries if ms and ms != chosen.members]
        ok = [c for c in options if c.cost.meets(OURS) and c.f1 >= chosen.f1 - margin - 1e-12]
        if ok:
            best = max(ok, key=lambda c: (c.f1, c.auc_pr or 0.0, -c.cost.p50_ms))
            notes.append(f"{_names(best.members)} meets our serving targets ({best.cost.words()}) with F1 "
                         f"{best.f1:.3f} on the choice's period, within {margin:g} of {_names(chosen.members)} "
                         f"(F1 {chosen.f1:.3f}, {chosen.cost.words()}), so the ensemble is {_names(best.members)}.")
            chosen = best
        elif options:
            near = max(options, key=lambda c: c.f1)
            notes.append(f"No cheaper composition meets our serving targets within {margin:g} of F1 "
                         f"{chosen.f1:.3f} (the best tried: {_names(near.members)}, F1 {near.f1:.3f}, "
                         f"{near.cost.words()}); the ensemble stays {_names(chosen.members)} "
                         f"({chosen.cost.words()}): it meets the spec's targets, not ours.")
        else:
            notes.append(f"No model within {margin:g} of its F1 ({chosen.f1:.3f}) meets our serving targets alone; the "
                         f"ensemble {_names(chosen.members)} meets the spec's ({chosen.cost.words()}).")
    else:
        notes.append(f"The ensemble {_names(chosen.members)} meets our serving targets ({chosen.cost.words()}).")
    costs["ensemble"] = chosen.cost
    return ServingChoice(chosen.members, chosen.ensemble, costs, considered, " ".join(notes),
                         time.perf_counter() - t0)
