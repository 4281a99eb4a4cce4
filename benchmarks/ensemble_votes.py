"""How the ensemble's vote rule decides the test figures, on the members the zoo picks, fleet by fleet.

    python benchmarks/ensemble_votes.py                                  # the ten development fleets
    python benchmarks/ensemble_votes.py --fleets 42 --end 2026-12-04T17:00Z   # make run's fleet at that hour
    python benchmarks/ensemble_votes.py --json

Each fleet (14 days, 3 incidents a day, seeded as the pipeline seeds it) trains the zoo once
(``train_zoo``, no serving cost); the ensemble's members are the ones the zoo chose on validation. Their
capped surprisals (``training.detectors.ensemble.surprisal``, capped at the ensemble's cap) are then combined
in several ways and each is scored on the test period, event-wise without point adjustment:

* ``mean``: the ensemble as it is (mean of the capped surprisals, threshold from its own training scores at
  its alpha);
* ``second`` and ``third``: the second and third largest capped surprisal instead of the mean, thresholded
  the same way on the training rows;
* ``2 of n``: an alarm where at least two members score above their own thresholds;
* ``mean of 3`` and ``mean of 4``: the ensemble as it is, of the zoo's first 3 or 4 members only.

Printed: precision / recall / false alarms per rule, ``*`` where the targets (precision > 0.90, recall >
0.95, F1 > 0.92) are met, and how many fleets each rule meets them on. The development fleets are the ones
``VotingEnsemble``'s alpha was chosen on; make run's fleets (seed 42 at the current hour) are the judged ones
and must not be used to choose.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from detectors import END, _fleet

DEV_FLEETS = [42, 58, 314, 1001, 2718, 11, 2024, 8080, 5, 999]
RULES = ("mean", "second", "third", "2 of n", "mean of 3", "mean of 4")


def rules_on_fleet(seed: int, end: str, days: float = 14) -> dict:
    from training.detectors.base import TailCalibrator
    from training.detectors.ensemble import VotingEnsemble, surprisal
    from training.zoo import build_zoo, evaluate_splits, time_split, train_zoo

    sim, frame = _fleet(days, seed, end=end)
    splits = time_split(frame, sim.incidents)
    zoo = build_zoo(list(splits.frame.columns), [(e.caller, e.callee) for e in sim.topology.edges], random_state=seed)
    result = train_zoo(splits, zoo, recovery_minutes=15)
    members, ensemble = result.ensemble_members, result.models["ensemble"]
    capped = np.vstack([np.minimum(surprisal(result.models[n], result.scores[n]), ensemble.cap) for n in members])

    def figures(score, threshold) -> dict:
        r = evaluate_splits(splits, score, threshold, 15)["test"]
        return {"precision": round(r["precision"], 3), "recall": round(r["recall"], 3), "f1": round(r["f1"], 3),
                "false_alarms": r["false_alarm_events"], "meets": bool(r["meets_targets"])}

    def thresholded(score) -> float:  # the ensemble's own rule: its alpha on the training rows, under the cap
        rule = VotingEnsemble(cap=ensemble.cap, alpha=ensemble.alpha)
        rule.calibrator_ = TailCalibrator().fit(score[splits.train_clean])
        return rule.threshold_at(ensemble.alpha)

    ordered = np.sort(capped, axis=0)
    out = {"seed": seed, "end": end, "members": members,
           "mean": figures(result.scores["ensemble"], ensemble.threshold_)}
    for name, k in (("second", 2), ("third", 3)):
        if len(members) >= k:
            out[name] = figures(ordered[-k], thresholded(ordered[-k]))
    alarms = np.vstack([result.scores[n] > result.models[n].threshold_ for n in members]).sum(axis=0)
    out["2 of n"] = figures(alarms.astype(float), 1.5)
    for k in (3, 4):  # a smaller ensemble: the zoo's first k members, fitted as the pipeline fits its ensemble
        if len(members) > k:
            part = VotingEnsemble(members=[(n, result.models[n]) for n in members[:k]], prefit=True,
                                  cap=ensemble.cap, alpha=ensemble.alpha)
            part.fit_from_member_scores({n: result.scores[n][splits.train_clean] for n in members[:k]},
                                        list(splits.frame.columns))
            out[f"mean of {k}"] = figures(part.combine({n: result.scores[n] for n in members[:k]}), part.threshold_)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fleets", type=int, nargs="+", default=DEV_FLEETS)
    ap.add_argument("--end", default=END, help="where the fleets end (make run's: the current hour)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rows = []
    for seed in a.fleets:
        rows.append(rules_on_fleet(seed, a.end))
        if not a.json:
            r = rows[-1]
            cells = "  ".join(f"{rule}: " + (f"{r[rule]['precision']:.3f}/{r[rule]['recall']:.3f}/"
                                             f"{r[rule]['false_alarms']}{'*' if r[rule]['meets'] else ' '}"
                                             if rule in r else "-") for rule in RULES)
            print(f"seed {seed:>5} ({', '.join(r['members'])})\n    {cells}", flush=True)
    if a.json:
        print(json.dumps(rows, indent=2))
        return
    for rule in RULES:
        met = [r[rule]["meets"] for r in rows if rule in r]
        lowest = min((r[rule]["precision"] for r in rows if rule in r), default=float("nan"))
        print(f"{rule:>7}: meets the targets on {sum(met)} of {len(met)} fleets; lowest precision {lowest:.3f}")


if __name__ == "__main__":
    main()
