"""Train and measure the detector zoo on the fleet: one global model per member, per-service scaling.

    frame  = stacked features, index (service, timestamp)
    splits = time_split(frame, incidents)            # train / validation / test, by time
    result = train_zoo(splits, build_zoo(...))       # fit on clean training rows, score everything once
    table  = result.comparison("test")

Every member is fitted on the training period with the rows of labelled incidents (and a buffer around
them) left out, so that it learns what normal looks like; thresholds come from training scores alone.
Validation figures choose the ensemble's members and the best model; the test period is only reported.
The transforms from the store's features to what a detector reads live in ``features.detector_inputs``.
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.detector_inputs.columns import CONTEXT, TIME_OF_DAY
from features.detector_inputs.pandas_path import zoo_transforms
from telemetry.schema import FLEET_METRICS, is_count
from training.detectors.base import Detector, NotEnoughData
from training.evaluation import TARGETS, evaluate, incident_labels

RAW_METRICS = list(FLEET_METRICS)
SPLITS = ("train", "validation", "test")


class SeriesScaler:
    """Standardise every column per series with statistics of the training rows (kept for serving)."""

    def fit(self, frame: pd.DataFrame) -> SeriesScaler:
        grouped = frame.groupby(level=0, sort=False, observed=True)
        # A count (a count by name, or every training value whole) cannot vary by less than one unit: floor its
        # spread there, so a queue that is almost always empty does not make its first waiting request a huge
        # outlier. Its rate of change is floored at 1 too: from an empty queue, one message is a change of 1.
        whole = {c for c in frame.columns if "__" not in c and
                 (is_count(c) or np.all(np.mod(frame[c].dropna().to_numpy(), 1) == 0))}
        floor = pd.Series(0.0, index=frame.columns)
        for col in frame.columns:
            base, _, stat = col.partition("__")
            if base in whole:  # features of a count share its unit
                floor[col] = 1.0 / 15 if stat.startswith("slope") else 1.0
        self.mean_ = grouped.mean()
        self.std_ = grouped.std(ddof=0).clip(lower=floor, axis=1).where(lambda s: s > 0, 1.0).fillna(1.0)
        self.pooled_mean_ = frame.mean()
        self.pooled_std_ = frame.std(ddof=0).clip(lower=floor).where(lambda s: s > 0, 1.0).fillna(1.0)
        return self

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        keys = frame.index.get_level_values(0)
        mean = self.mean_.reindex(keys).fillna(self.pooled_mean_).to_numpy()
        std = self.std_.reindex(keys).fillna(self.pooled_std_).to_numpy()
        cols = list(self.mean_.columns)
        out = (frame[cols].to_numpy() - mean) / std
        return pd.DataFrame(out, index=frame.index, columns=cols)


@dataclass
class Splits:
    frame: pd.DataFrame  # scaled, all rows, index (service, timestamp)
    masks: dict[str, np.ndarray]  # split name -> row mask
    train_clean: np.ndarray  # training rows outside labelled incidents
    bounds: dict[str, tuple[pd.Timestamp, pd.Timestamp]]
    incidents: pd.DataFrame
    scaler: SeriesScaler

    def rows(self, split: str) -> pd.DataFrame:
        return self.frame[self.masks[split]]


def _cuts(stamps: np.ndarray, fractions) -> list:
    return [stamps[int(len(stamps) * sum(fractions[:k]))] for k in (1, 2)]


def time_split(features: pd.DataFrame, incidents: pd.DataFrame, fractions=(0.5, 0.2, 0.3),
               buffer_minutes: int = 30, per_series: bool = False) -> Splits:
    """Split by time (never shuffled) and scale per service with clean training statistics.

    ``per_series``: each service is cut at its own fractions (a user's export may hold series of different
    periods: each is trained on its first half and tested on its last 30 %); otherwise one cut for the fleet."""
    frame = zoo_transforms(features.sort_index(level=[0, 1]))
    times = pd.DatetimeIndex(frame.index.get_level_values(1))
    services = frame.index.get_level_values(0).astype(str).to_numpy()
    stamps = np.sort(times.unique())
    if per_series:
        first = np.zeros(len(frame), dtype="datetime64[ns]")
        second = np.zeros(len(frame), dtype="datetime64[ns]")
        t = times.tz_convert(None).to_numpy()
        for svc in pd.unique(services):
            sel = services == svc
            a, b = _cuts(np.sort(np.unique(t[sel])), fractions)
            first[sel], second[sel] = a, b
        masks = {"train": t < first, "validation": (t >= first) & (t < second), "test": t >= second}
        cuts = [pd.Timestamp(first.min(), tz="UTC"), pd.Timestamp(second.min(), tz="UTC")]
    else:
        cuts = _cuts(stamps, fractions)
        masks = {"train": np.asarray(times < cuts[0]),
                 "validation": np.asarray((times >= cuts[0]) & (times < cuts[1])), "test": np.asarray(times >= cuts[1])}
    bounds = {"train": (stamps[0], cuts[0]), "validation": (cuts[0], cuts[1]), "test": (cuts[1], stamps[-1])}
    in_incident = np.zeros(len(frame), dtype=bool)
    pad = pd.Timedelta(minutes=buffer_minutes)
    for inc in incidents.itertuples():
        in_incident |= (np.isin(services, list(inc.affected_services)) & np.asarray(times >= inc.start - pad)
                        & np.asarray(times <= inc.end + pad))
    train_clean = masks["train"] & ~in_incident
    scaler = SeriesScaler().fit(frame[train_clean])
    return Splits(scaler.transform(frame), masks, train_clean, bounds, incidents, scaler)


def raw_metrics(feature_columns: list[str]) -> list[str]:
    """The metrics' own levels among the columns: the fleet's nine first (in their fixed order), then a user's
    own metrics in column order. What the statistical and sequence members model."""
    levels = [c for c in feature_columns if "__" not in c and c not in CONTEXT and c not in TIME_OF_DAY]
    return [c for c in RAW_METRICS if c in levels] + [c for c in levels if c not in RAW_METRICS]


# Members trained only on a user's own telemetry (the pipeline with a source): the simulator's fleet is judged on
# its labelled incidents with the members its figures were established with.
OWN_TELEMETRY_MEMBERS = ("seasonal_residual",)


def build_zoo(feature_columns: list[str], edges: list[tuple[str, str]], profile: str = "default",
              include: list[str] | None = None, random_state: int = 0,
              own_telemetry: bool = False) -> dict[str, Detector]:
    """Every member of the zoo, configured for the fleet. ``profile='large'`` trains the deep members longer.
    ``own_telemetry`` adds the members meant for a user's own series (``OWN_TELEMETRY_MEMBERS``)."""
    from training.detectors import classical as C
    from training.detectors import statistical as S
    from training.detectors.seasonal import SeasonalResidualDetector

    raw = raw_metrics(feature_columns)
    seasonal = raw + [c for c in TIME_OF_DAY if c in feature_columns]  # what sequence models see
    # Inputs arrive standardised per service; no column may claim a spread finer than half a unit of that.
    m = 0.5
    engineered = [c for c in feature_columns if c not in CONTEXT]
    deep_epochs, deep_windows = (8, 60000) if profile == "large" else (2, 8000)
    zoo: dict[str, Callable[[], Detector]] = {
        "zscore": lambda: S.ZScoreDetector(features=raw, min_scale=m),
        "mad": lambda: S.MADDetector(features=raw, min_scale=m),
        "ewma": lambda: S.EWMADetector(features=raw, min_scale=m),
        "holt_winters": lambda: S.HoltWintersDetector(features=raw, min_scale=m),
        "isolation_forest": lambda: C.IsolationForestDetector(features=engineered, n_estimators=100, min_scale=m,
                                                              random_state=random_state),
        "one_class_svm": lambda: C.OneClassSVMDetector(features=engineered, min_scale=m, random_state=random_state),
        "dbscan": lambda: C.DBSCANDetector(features=engineered, max_samples=2500, min_scale=m, random_state=random_state),
        "lof": lambda: C.LOFDetector(features=engineered, max_samples=2500, min_scale=m, random_state=random_state),
        "random_cut_forest": lambda: C.RandomCutForestDetector(features=raw, min_scale=m, random_state=random_state),
        "pca": lambda: C.PCADetector(features=engineered, min_scale=m),
        "seasonal_residual": lambda: SeasonalResidualDetector(features=raw, random_state=random_state),
    }
    try:
        from training.detectors import deep as D

        zoo.update({
            "lstm_autoencoder": lambda: D.LSTMAutoencoder(features=seasonal, epochs=deep_epochs, max_windows=deep_windows,
                                                          random_state=random_state),
            "transformer_autoencoder": lambda: D.TransformerAutoencoder(features=seasonal, epochs=deep_epochs,
                                                                        max_windows=deep_windows,
                                                                        random_state=random_state),
            "vae": lambda: D.VAEDetector(features=seasonal, epochs=deep_epochs, max_windows=deep_windows,
                                         random_state=random_state),
            "graph": lambda: D.GraphDetector(features=seasonal, edges=list(edges), epochs=deep_epochs,
                                             max_windows=deep_windows, random_state=random_state),
        })
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass
    names = include or [n for n in zoo if own_telemetry or n not in OWN_TELEMETRY_MEMBERS]
    unknown = [n for n in names if n not in zoo]
    if unknown:
        raise ValueError(f"unknown detectors {unknown}; the zoo has {sorted(zoo)}")
    return {n: zoo[n]() for n in names}


@dataclass
class ZooResult:
    models: dict[str, Detector]
    scores: dict[str, np.ndarray]  # name -> score per row of splits.frame
    reports: dict[str, dict[str, dict]]  # name -> split -> evaluation
    timings: dict[str, dict[str, float]]
    best: str = ""
    ensemble_members: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why it could not be trained here
    # name -> figures on planted anomalies (training.detectors.synthetic) when the choice was made without labels
    planted: dict[str, dict] = field(default_factory=dict)
    # name -> split -> evaluation of a plain baseline on the same periods (training.detectors.baselines)
    baselines: dict[str, dict[str, dict]] = field(default_factory=dict)
    # what serving each model costs and how that shaped the ensemble (training.detectors.serving_choice)
    serving: Any = None
    # name -> share of the validation period's normal rows at MISCALIBRATED_SURPRISAL: not an ensemble member
    miscalibrated: dict[str, float] = field(default_factory=dict)

    @property
    def chosen_without_labels(self) -> bool:
        return bool(self.planted)

    def comparison(self, split: str = "test") -> list[dict]:
        rows = []
        for name, by_split in {**self.reports, **self.baselines}.items():
            r = by_split[split]
            rows.append({
                "model": name, "family": self.models[name].family if name in self.models else "baseline",
                "precision": round(r["precision"], 3), "recall": round(r["recall"], 3), "f1": round(r["f1"], 3),
                "auc_pr": None if r["auc_pr"] is None else round(r["auc_pr"], 3),
                "mttd_min": None if r["mttd_minutes"] is None else round(r["mttd_minutes"], 1),
                "incidents": r["incidents"], "found": r["found"], "false_alarms": r["false_alarm_events"],
                "false_alarm_min": r.get("false_alarm_minutes"),
                "overrun_p50_min": None if r.get("overrun_p50_minutes") is None else round(r["overrun_p50_minutes"]),
                "overrun_p90_min": None if r.get("overrun_p90_minutes") is None else round(r["overrun_p90_minutes"]),
                "meets_targets": r["meets_targets"],
                "fit_s": round(self.timings[name]["fit"], 2) if name in self.timings else None,
                "score_s": round(self.timings[name]["score"], 2) if name in self.timings else None,
                **self._serving_cells(name),
            })
        return sorted(rows, key=lambda r: (-r["f1"], -(r["auc_pr"] or 0)))

    def _serving_cells(self, name: str) -> dict:
        """Serving cost columns (blank for a baseline, and when the costs were not measured)."""
        if self.serving is None:
            return {}
        cost = self.serving.costs.get(name)
        return {"serve_ms_per_window": None if cost is None else round(cost.window_ms, 2),
                "p50_ms_8_clients": None if cost is None else round(cost.p50_ms, 1),
                "p99_ms_8_clients": None if cost is None else round(cost.p99_ms, 1)}

    def per_kind(self, name: str, split: str = "test") -> list[dict]:
        return [{"kind": k, **v} for k, v in sorted(self.reports[name][split]["per_kind"].items())]


def evaluate_splits(splits: Splits, scores: np.ndarray, threshold: float,
                         recovery_minutes: float = 0) -> dict[str, dict]:
    return {s: evaluate(splits.frame.index[splits.masks[s]], scores[splits.masks[s]], threshold, splits.incidents,
                        recovery_minutes=recovery_minutes)
            for s in ("validation", "test")}


def ensemble_members(reports: dict[str, dict], size: int = 5,
                     views: dict[str, str] | None = None) -> list[str]:
    """The ensemble's members: the ``size`` best single models on validation (F1, then AUC-PR), one per view
    (``views``: name -> what the model reads, ``model_views``; a name it lacks reads its own).

    One per view because members that read the same thing fail together: on simulated fleets ending at
    different hours, three window autoencoders in one ensemble of five outvoted the rest with the same false
    alarms and the same missed night-time surges (recall 0.875 and 0.938 on two of eight ends of seed 42);
    with one of them, every incident of 18 development fleets was found."""
    ranked = sorted(reports, key=lambda n: (reports[n]["validation"]["f1"], reports[n]["validation"]["auc_pr"] or 0),
                    reverse=True)
    views = views or {}
    chosen, seen = [], set()
    for name in ranked:
        view = views.get(name, name)
        if view in seen:
            continue
        chosen.append(name)
        seen.add(view)
        if len(chosen) == size:
            break
    return chosen


def model_views(models: dict[str, Detector]) -> dict[str, str]:
    """Each model's view (``Detector.view``), its own name where it shares none."""
    return {n: getattr(m, "view", None) or n for n, m in models.items()}


def choose(reports: dict[str, dict], put_forward: str = "ensemble") -> str:
    """The model to put forward: ``"ensemble"`` (the default), a named member, or ``"best"`` (the top single
    model on the validation period, F1 then AUC-PR). Never the test period.

    The ensemble is the default because a validation period holds a handful of incidents, so the model that
    tops it is often there by one alarm's luck; averaging the best few lowers that variance. A named member
    that could not be trained falls back to ``"best"``."""
    if put_forward != "best" and put_forward in reports:
        return put_forward
    return max(reports, key=lambda n: (reports[n]["validation"]["f1"], reports[n]["validation"]["auc_pr"] or 0))


# A member is eligible for the ensemble only if its calibration holds out of sample: a calibrated surprisal of
# MISCALIBRATED_SURPRISAL (a training score exceeded once in 10^8 rows) on more than MISCALIBRATED_SHARE of the
# validation period's normal rows means its tail is heavier than the calibrator's, and in a mean of capped
# surprisals one such member at the cap outvotes the rest on an ordinary excursion. On the development fleets
# (README, "Detection quality") the window autoencoders and the graph model read 3e-3 to 3e-2 there (a traffic
# ripple at the day's peak beyond the training range, a routine deploy's warm-up), every other member chosen 0 to
# 2.4e-4; their false alarms were most of the ensemble's.
MISCALIBRATED_SURPRISAL = 8.0
MISCALIBRATED_SHARE = 1e-3


def normal_rows(splits: Splits, split: str = "validation", lead_minutes: float = 10,
                recovery_minutes: float = 0) -> np.ndarray:
    """Rows of ``split`` outside every labelled incident on the services it affected, from ``lead_minutes``
    before its start to ``recovery_minutes`` after its end."""
    incidents = splits.incidents.assign(end=splits.incidents["end"] + pd.Timedelta(minutes=recovery_minutes))
    return splits.masks[split] & ~incident_labels(splits.frame.index, incidents, lead_minutes=lead_minutes)


def miscalibrated(models: dict[str, Detector], scores: dict[str, np.ndarray], normal: np.ndarray) -> dict[str, float]:
    """name -> the share of ``normal`` rows whose calibrated surprisal reaches ``MISCALIBRATED_SURPRISAL``, for the
    models where it exceeds ``MISCALIBRATED_SHARE``."""
    from training.detectors.ensemble import surprisal

    if not normal.any():
        return {}
    shares = {n: float(np.mean(surprisal(m, scores[n][normal]) >= MISCALIBRATED_SURPRISAL)) for n, m in models.items()}
    return {n: share for n, share in shares.items() if share > MISCALIBRATED_SHARE}


# False-alarm rates per row the label-free choice tries for the model put forward, most alarms first.
ALPHAS = (5e-4, 2e-4, 1e-4, 5e-5, 2e-5, 1e-5)


def tune_alpha(det: Detector, planted_scores: np.ndarray, judge, alphas=ALPHAS) -> float:
    """Set ``det``'s threshold at the false-alarm rate that finds the planted anomalies best (F1; the stricter
    rate on a tie) and return that rate. Per row, a rate suits one sampling step and not another: at a 5-minute
    step one row over the threshold is already a 5-minute alarm, where at one minute it takes three."""
    best_alpha, best_key = det.alpha, None
    for alpha in alphas:
        fig = judge.figures(planted_scores, det.threshold_at(alpha))
        key = (round(fig["f1"], 6), -alpha)
        if best_key is None or key > best_key:
            best_alpha, best_key = alpha, key
    det.set_params(alpha=best_alpha)
    det.threshold_ = det.threshold_at(best_alpha)
    return best_alpha


def _members_on_planted(splits: Splits, models: dict, scores: dict, planted: dict, planted_scores: dict, judge,
                        size: int) -> list[str]:
    """The ensemble's members without labels: of the ``size`` best members on planted anomalies, the leading
    few whose ensemble finds them best (F1, then AUC-PR). On a user's series a noisy member (hundreds of alarms
    at its own threshold) would drown the others' votes; the number of members is chosen, not fixed."""
    from training.detectors.ensemble import VotingEnsemble

    ranked = ensemble_members({n: {"validation": planted[n]} for n in models}, size, model_views(models))
    best, best_key = ranked[:1], (-1.0, -1.0)
    for k in range(1, len(ranked) + 1):
        members = ranked[:k]
        trial = VotingEnsemble(members=[(n, models[n]) for n in members], prefit=True)
        trial.fit_from_member_scores({n: scores[n][splits.train_clean] for n in members}, columns=list(splits.frame.columns))
        fig = judge.figures(trial.combine({n: planted_scores[n] for n in members}), trial.threshold_)
        key = (fig["f1"], fig["auc_pr"] or 0.0)
        if key > best_key:
            best, best_key = members, key
    return best


def train_zoo(splits: Splits, detectors: dict[str, Detector], ensemble_size: int = 5,
              on_progress: Callable[[str, int, int], None] | None = None,
              put_forward: str = "ensemble", recovery_minutes: float = 0,
              judge=None, cost_of: Callable | None = None, serving_margin: float = 0.02,
              workers: int = 1) -> ZooResult:
    """Fit every member on the clean training rows, score all rows, evaluate validation and test, build the
    ensemble from the validation period's best members. ``recovery_minutes`` (the rolling-feature window)
    is the tail after an incident's end whose alarms still belong to it (see ``training.evaluation``).

    ``judge`` (``training.detectors.stage.PlantedJudge``: ``scores(models)`` and ``figures(scores, threshold)``)
    replaces the validation period's labels when there are none: the ensemble's members (and, with
    ``put_forward="best"``, the model put forward) are then chosen on anomalies planted in the validation period.

    ``cost_of(name, model)`` (``training.detectors.serving_cost``: a :class:`ServingCost`) makes the ensemble's
    members a choice of serving cost too (``training.detectors.serving_choice``): a composition the promotion gate
    would refuse for its latency keeps only the best-ranked members it can afford, and a cheaper one within
    ``serving_margin`` of its F1 that meets our latency targets replaces it.

    ``workers`` members are fitted at once, in threads: most of a member's time is spent in numpy, scikit-learn
    or torch, which release the GIL, while the rest of a run leaves a core idle. Members that seed torch's
    global generator (``family == "deep"``, :mod:`training.detectors.deep`) take turns, so their scores stay reproducible; results
    are gathered in the zoo's order, so the outcome does not depend on ``workers`` (the timings do: members
    fitted side by side share the cores)."""
    from concurrent.futures import ThreadPoolExecutor

    from training.detectors.ensemble import VotingEnsemble

    models, scores, reports, timings, skipped = {}, {}, {}, {}, {}
    train = splits.frame[splits.train_clean]
    total = len(detectors) + 1
    torch_turn = threading.Lock()

    def fit_one(det: Detector):
        with torch_turn if getattr(det, "family", None) == "deep" else contextlib.nullcontext():
            t0 = time.perf_counter()
            try:
                det.fit(train)
            except NotEnoughData as exc:  # too little history for this member: say so, train the others
                return exc, None, None
            t1 = time.perf_counter()
            member_scores = det.score(splits.frame)
            t2 = time.perf_counter()
        report = evaluate_splits(splits, member_scores, det.threshold_, recovery_minutes)
        return member_scores, {"fit": t1 - t0, "score": t2 - t1}, report

    # one worker: each member in this thread, in turn, as before; more: a pool, gathered in the zoo's order
    pool = ThreadPoolExecutor(max_workers=int(workers), thread_name_prefix="zoo") if workers > 1 else None
    try:
        futures = {name: pool.submit(fit_one, det) for name, det in detectors.items()} if pool else {}
        for k, (name, det) in enumerate(detectors.items()):
            if on_progress:  # from this thread only: progress artifacts need the task's run context
                on_progress(name, k, total)
            member_scores, timing, report = futures[name].result() if pool else fit_one(det)
            if isinstance(member_scores, NotEnoughData):
                skipped[name] = str(member_scores)
                continue
            scores[name], models[name], timings[name], reports[name] = member_scores, det, timing, report
    finally:  # a member that failed stops the rest: queued ones are not started
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)

    planted: dict[str, dict] = {}
    if judge is not None:
        planted_scores = judge.scores(models)
        planted = {n: judge.figures(planted_scores[n], models[n].threshold_) for n in models}
        members = _members_on_planted(splits, models, scores, planted, planted_scores, judge, ensemble_size)
        unsure, eligible = {}, models
    else:
        unsure = miscalibrated(models, scores, normal_rows(splits, recovery_minutes=recovery_minutes))
        eligible = {n: m for n, m in models.items() if n not in unsure} or models
        members = ensemble_members({n: reports[n] for n in eligible}, ensemble_size, model_views(models))
    if on_progress:
        on_progress("ensemble", total - 1, total)
    t0 = time.perf_counter()

    def fit_ensemble(members: list[str]) -> VotingEnsemble:
        ensemble = VotingEnsemble(members=[(n, models[n]) for n in members], prefit=True)
        ensemble.fit_from_member_scores({n: scores[n][splits.train_clean] for n in members},
                                        columns=list(splits.frame.columns))
        if judge is not None:  # its false-alarm rate, chosen on the planted anomalies too
            tune_alpha(ensemble, ensemble.combine({n: planted_scores[n] for n in members}), judge)
        return ensemble

    def chosen_on(ensemble: VotingEnsemble, members: list[str]) -> dict:
        """The ensemble's figures on what the choice reads: the planted anomalies, or the validation period."""
        if judge is not None:
            return judge.figures(ensemble.combine({n: planted_scores[n] for n in members}), ensemble.threshold_)
        return evaluate_splits(splits, ensemble.combine({n: scores[n] for n in members}), ensemble.threshold_,
                               recovery_minutes)["validation"]

    serving = None
    if cost_of is None:
        ensemble = fit_ensemble(members)
    else:
        from training.detectors.serving_choice import choose_members

        single = planted if judge is not None else {n: r["validation"] for n, r in reports.items()}
        serving = choose_members(members, eligible, fit_ensemble, chosen_on, cost_of, serving_margin,
                                 single_figure=lambda n: (single[n]["f1"], single[n]["auc_pr"] or 0.0),
                                 views=model_views(models))
        members, ensemble = serving.members, serving.ensemble
    t1 = time.perf_counter()
    scores["ensemble"] = ensemble.combine({n: scores[n] for n in members})
    models["ensemble"] = ensemble
    timings["ensemble"] = {"fit": t1 - t0, "score": time.perf_counter() - t1 + sum(timings[n]["score"] for n in members)}
    reports["ensemble"] = evaluate_splits(splits, scores["ensemble"], ensemble.threshold_, recovery_minutes)
    if on_progress:
        on_progress("done", total, total)

    if judge is not None:
        planted["ensemble"] = judge.figures(ensemble.combine({n: planted_scores[n] for n in members}),
                                            ensemble.threshold_)
        best = choose({n: {"validation": planted[n]} for n in models}, put_forward)
    else:
        best = choose(reports, put_forward)
    return ZooResult(models, scores, reports, timings, best=best, ensemble_members=members, skipped=skipped,
                     planted=planted, serving=serving, miscalibrated=unsure)


def verdict(result: ZooResult, split: str = "test") -> str:
    """Plain words: which models meet the spec's targets on the period, and which do not."""
    rows = result.comparison(split)
    meet = [r["model"] for r in rows if r["meets_targets"]]
    best = result.best
    b = result.reports[best][split]
    targets = ", ".join(f"{k} > {v}" for k, v in TARGETS.items())
    lines = [f"Targets ({targets}) on the {split} period, event-wise without point adjustment:",
             (f"- put forward: **{best}**: precision {b['precision']:.3f}, recall {b['recall']:.3f}, "
             f"F1 {b['f1']:.3f} ({'meets' if b['meets_targets'] else 'does NOT meet'} the targets)"),
             f"- meet the targets: {', '.join(meet) if meet else 'none'}",
             f"- do not: {', '.join(r['model'] for r in rows if not r['meets_targets']) or 'none'}"]
    return "\n".join(lines)
