"""The detector kind's pipeline stage, as plain functions: training data from the feature store, the zoo, its
report, and MLflow registration. The Prefect flow in ``flows/detection.py`` only wires these.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from training.detectors.serving_cost import HTTP_MS, SERVING_COST_TAG
from training.zoo import Splits, ZooResult, build_zoo, time_split, train_zoo, verdict


@dataclass
class TrainingData:
    frame: pd.DataFrame  # features, index (service, timestamp)
    incidents: pd.DataFrame
    edges: list[tuple[str, str]]
    dataset: str | None  # None: the lake's own telemetry over a window, whichever source filled it
    data_version: str
    feature_report: dict = field(default_factory=dict)
    # The raw telemetry and events behind the features, kept on the lake path: anomalies are planted into a
    # copy of it to choose a detector without labels.
    telemetry: pd.DataFrame | None = None
    events: pd.DataFrame | None = None


def _incidents(settings, dataset: str | None) -> pd.DataFrame:
    from telemetry import lake

    incidents = lake.read_table("incidents", settings.lake_dir, dataset=dataset)
    if incidents.empty:
        from training.evaluation import no_incidents

        return no_incidents()
    incidents["affected_services"] = [list(a) if a is not None and len(a) else ([r] if r else [])
                                      for a, r in zip(incidents["affected_services"],
                                                      incidents.get("root_cause_service", [None] * len(incidents)))]
    return incidents


def training_data(settings, dataset: str | None, start: pd.Timestamp, end: pd.Timestamp,
                  spans: dict[str, tuple[pd.Timestamp, pd.Timestamp]] | None = None) -> TrainingData:
    """Features for every (service, minute) of the dataset's window, through Feast's point-in-time join.

    ``dataset=None`` reads the lake's telemetry whatever its source, with every imported incident and event;
    ``spans`` then gives each service its own window (series of a user's export may cover different periods)."""
    from features.store import build_feature_store, training_frame
    from telemetry import lake
    from training.data_version import of_parquet

    if spans:
        parts = [lake.read_telemetry(settings.lake_dir, start=a, end=b, services=[svc]) for svc, (a, b) in spans.items()]
        telemetry = pd.concat([p for p in parts if not p.empty], ignore_index=True)
    else:
        telemetry = lake.read_telemetry(settings.lake_dir, start=start, end=end)
    events = lake.read_table("events", settings.lake_dir, dataset=dataset)
    incidents = _incidents(settings, dataset)
    graph = lake.read_graph(settings.lake_dir) or {"edges": []}
    # An incident the pager recorded without a service: it may have touched any of them.
    every = sorted(telemetry["service"].astype(str).unique())
    incidents["affected_services"] = [a if len(a) else every for a in incidents["affected_services"]]
    build = build_feature_store(settings, telemetry, events, replace=True)
    keys = telemetry[["service", "timestamp"]].drop_duplicates().rename(columns={"timestamp": "event_timestamp"})
    keys["service"] = keys["service"].astype(str)
    frame, report = training_frame(settings, keys.reset_index(drop=True), "detection_v1")
    frame = frame.set_index(["service", "event_timestamp"]).rename_axis(["service", "timestamp"])
    frame = frame.select_dtypes("number")
    for col in ("start", "end"):
        incidents[col] = pd.to_datetime(incidents[col], utc=True)
    return TrainingData(frame=frame, incidents=incidents, edges=[(e["caller"], e["callee"]) for e in graph["edges"]],
                        dataset=dataset, data_version=of_parquet(Path(build.parquet), dataset or "lake"),
                        feature_report={"build": build.as_dict(), "join": report.as_dict()},
                        telemetry=telemetry if dataset is None else None, events=events if dataset is None else None)


class PlantedJudge:
    """Judges models on a user's telemetry: event-wise figures on anomalies planted into a copy of the validation
    period's own telemetry (``training.detectors.synthetic``), together with the incidents the user imported
    that fall in it, each model at its own threshold. A user's validation period holds a handful of incidents
    at best; choosing on those alone puts forward whatever one alarm's luck favoured."""

    def __init__(self, settings, data: TrainingData, splits: Splits):
        from features.detector_inputs.pandas_path import zoo_transforms
        from features.from_lake import features_of
        from training.detectors.synthetic import plant

        if data.telemetry is None:
            raise ValueError("choosing without labels needs the raw telemetry (training_data with dataset=None)")
        val = splits.frame.index[splits.masks["validation"]]
        times = pd.Series(val.get_level_values(1), index=val.get_level_values(0).astype(str))
        windows = {svc: (t.min(), t.max() + pd.Timedelta(minutes=1)) for svc, t in times.groupby(level=0)}
        self.planted = plant(data.telemetry, windows, per_service=settings.detection.planted_per_service,
                             seed=settings.simulator.seed)
        # Incidents the user imported count too: an alarm on one is true, and missing one costs recall.
        real = splits.incidents[[c for c in self.planted.incidents.columns if c in splits.incidents.columns]]
        self.labels = pd.concat([self.planted.incidents, real], ignore_index=True) if len(real) else \
            self.planted.incidents
        feats = features_of(self.planted.telemetry, data.events, settings.feast.window_minutes)
        feats = feats.assign(service=feats["service"].astype(str)).set_index(["service", "timestamp"])
        feats = feats[feats.index.isin(val)].reindex(columns=data.frame.columns)
        self.X = splits.scaler.transform(zoo_transforms(feats.astype(float)))
        self.recovery = settings.feast.window_minutes

    def scores(self, models: dict) -> dict[str, np.ndarray]:
        return {name: det.score(self.X) for name, det in models.items()}

    def figures(self, scores: np.ndarray, threshold: float) -> dict:
        from training.evaluation import evaluate

        return evaluate(self.X.index, scores, float(threshold), self.labels, recovery_minutes=self.recovery)


class ServingCostMeter:
    """``meter(name, model)``: the model's serving cost, measured on the scoring service serving the bundle
    ``register_zoo`` will log for it, in a process of its own (``training.detectors.serving_cost.BenchProcess``),
    started now so that its imports overlap the zoo's training. ``close()`` ends that process."""

    def __init__(self, settings, splits: Splits, data: TrainingData):
        from training.detectors.serving_cost import BenchProcess, example_windows

        self.scaler, self.data_version = splits.scaler, data.data_version
        self.columns, self.inputs = list(splits.frame.columns), list(data.frame.columns)
        self.windows = example_windows(data.frame)
        self.bench = BenchProcess(settings)

    def __call__(self, name: str, model):
        from training.detectors.bundle import detector_bundle

        bundle = detector_bundle(name, model, self.scaler, self.columns, self.inputs, self.data_version)
        return self.bench.measure(bundle, self.windows)

    def close(self) -> None:
        self.bench.close()


def run_zoo(data: TrainingData, settings, on_progress=None) -> tuple[Splits, ZooResult]:
    """Split, build and train the zoo. On the lake's own telemetry (``dataset`` None) the ensemble's members are
    chosen on anomalies planted into the validation period, and on the incidents imported for it if any."""
    cfg = settings.detection
    splits = time_split(data.frame, data.incidents, fractions=tuple(cfg.split), buffer_minutes=cfg.buffer_minutes,
                        per_series=data.dataset is None)
    zoo = build_zoo(list(splits.frame.columns), data.edges, profile=cfg.profile, include=cfg.include or None,
                    random_state=settings.simulator.seed, own_telemetry=data.dataset is None)
    # On the lake (a user's telemetry) the choice is made on planted anomalies plus any imported incidents; on a
    # labelled simulated dataset, on its incidents alone.
    judge = PlantedJudge(settings, data, splits) if data.telemetry is not None else None
    meter = ServingCostMeter(settings, splits, data) if cfg.serving_cost else None
    try:
        result = train_zoo(splits, zoo, ensemble_size=cfg.ensemble_size, on_progress=on_progress,
                           put_forward=cfg.put_forward, recovery_minutes=settings.feast.window_minutes, judge=judge,
                           cost_of=meter, serving_margin=cfg.serving_margin, workers=cfg.train_workers)
    finally:
        if meter is not None:
            meter.close()
    if data.telemetry is not None:  # the lake path: a user's telemetry is shown beside the baseline a team starts with
        from training.detectors.baselines import ROLLING_Z_THRESHOLD, rolling_zscore
        from training.zoo import evaluate_splits

        baseline = rolling_zscore(data.telemetry, splits.frame.index)
        result.baselines["rolling_zscore_1d"] = evaluate_splits(splits, baseline, ROLLING_Z_THRESHOLD,
                                                                settings.feast.window_minutes)
    return splits, result


def _cell(value) -> str:
    """A report cell: floats to three significant figures (one decimal from 10 up), blank when missing."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return str(value)


def put_forward_note(result: ZooResult, put_forward: str) -> str:
    """Why the model put forward is that one, in words, when another single model scored higher."""
    def f1(name: str, split: str) -> float:
        return result.reports[name][split]["f1"]

    best = result.best
    singles = [n for n in result.reports if n != best]
    if not singles:
        return ""
    top = {split: max(singles, key=lambda n: f1(n, split)) for split in ("validation", "test")}
    higher = [f"{top[s]} scored higher on {s} (F1 {f1(top[s], s):.3f} against {f1(best, s):.3f})"
              for s in ("validation", "test") if f1(top[s], s) > f1(best, s)]
    if not higher:
        return ""
    if put_forward == "best":
        why = "it led on the validation period, where the choice is made (the test period is only measured)"
    elif put_forward == best:
        why = (f"detection.put_forward is `{put_forward}`: a validation period holds a handful of incidents, so the "
               "single model that tops it is often there by one alarm's luck, and the ensemble of the best few "
               "lowers that variance; set `put_forward: best` to put the validation leader forward instead")
    else:
        why = f"detection.put_forward is `{put_forward}`"
    return f"Why {best} is put forward though {' and '.join(higher)}: {why}."


def report_markdown(result: ZooResult, splits: Splits, data: TrainingData, put_forward: str = "ensemble") -> str:
    def table(rows: list[dict], cols: list[str]) -> list[str]:
        out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in rows:
            out.append("| " + " | ".join(_cell(r.get(c)) for c in cols) + " |")
        return out

    cols = ["model", "family", "precision", "recall", "f1", "auc_pr", "mttd_min", "found", "incidents",
            "false_alarms", "false_alarm_min", "overrun_p50_min", "overrun_p90_min", "meets_targets", "fit_s",
            "score_s"]
    if result.serving is not None:
        cols += ["serve_ms_per_window", "p50_ms_8_clients", "p99_ms_8_clients"]
    bounds = {k: f"{a:%Y-%m-%d %H:%M} to {b:%Y-%m-%d %H:%M}" for k, (a, b) in splits.bounds.items()}
    lines = ["# Anomaly detection: the zoo on the fleet", "",
             (f"Data `{data.data_version}`; train {bounds['train']}, validation {bounds['validation']}, "
             f"test {bounds['test']} (UTC). Training rows inside labelled incidents are left out; thresholds "
             "come from training scores only; the ensemble's members come from the validation period, and the "
             "test period is only measured."), "", verdict(result, "test"), ""]
    note = put_forward_note(result, put_forward)
    if note:
        lines += [note, ""]
    if result.chosen_without_labels:
        lines[0] = "# Anomaly detection: the zoo on the lake's own telemetry"
        lines += ["## How the model was chosen: on anomalies planted into the validation period", "",
                  (f"{next(iter(result.planted.values()))['incidents']} labelled windows: anomalies (spikes, level "
                   "shifts, variance changes, trends, values at the wrong time of day) planted into a copy of each "
                   "service's validation period, sized against each metric's own noise, and the imported incidents "
                   "of that period, if any. Each model is judged at its own threshold (learned from training scores) "
                   "on finding them without alarms elsewhere; the ensemble's members are the leading ones on that, "
                   "as many as make the ensemble find them best."), ""]
        planted_rows = sorted(({"model": n, **{k: (None if r[k] is None else round(r[k], 3))
                                                for k in ("precision", "recall", "f1", "auc_pr")},
                                "found": r["found"], "planted": r["incidents"], "false_alarms": r["false_alarm_events"]}
                               for n, r in result.planted.items()), key=lambda r: -r["f1"])
        lines += table(planted_rows, ["model", "precision", "recall", "f1", "auc_pr", "found", "planted",
                                      "false_alarms"])
        lines += ["", "## Test period (against the incidents you imported, if any)", ""]
    else:
        lines += ["## Test period", ""]
    lines += table(result.comparison("test"), cols)
    lines += ["", f"## {result.best}, per fault kind (test)", ""]
    lines += table(result.per_kind(result.best, "test"), ["kind", "incidents", "found", "recall", "mttd_minutes"])
    lines += ["", "## Validation period", ""]
    lines += table(result.comparison("validation"), cols)
    lines += ["", f"Ensemble members (best on validation): {', '.join(result.ensemble_members)}"]
    if result.miscalibrated:
        from training.zoo import MISCALIBRATED_SURPRISAL

        lines += ["", "Not eligible for the ensemble, their calibration failing out of sample (share of the validation "
                  f"period's normal rows scored as rarer than one training row in 10^{MISCALIBRATED_SURPRISAL:g}): "
                  + ", ".join(f"{n} {share:.1%}" for n, share in sorted(result.miscalibrated.items()))]
    if result.serving is not None:
        lines += ["", "## Serving cost", "", result.serving.note, "",
                  ("`serve_ms_per_window` is the scoring service's time per one-hour window's request when 8 "
                   "clients send at once, measured on the service itself in a process of its own (body parsing, "
                   f"validation, screening, the model through the adaptive batching, the answer) plus {HTTP_MS:g} ms a request "
                   "for the HTTP parsing, sockets and clients that measurement leaves out; p50 and p99 are the "
                   "latency that implies at 8 concurrent clients on one service process. The promotion gate refuses "
                   "a model whose p50 reaches 50 ms or p99 200 ms (the spec's targets); ours are 10 and 50 ms. "
                   "Where the stages running beside this one held the cores, a cycle counts the process's CPU "
                   "time rather than its wall clock; the figures may still err high on a busy machine. Ensemble "
                   f"compositions tried (measuring took {result.serving.seconds:.0f} s):"), ""]
        lines += table([c.row() for c in result.serving.considered],
                       ["members", "f1", "auc_pr", "ms_per_window", "p50_ms", "p99_ms", "meets_spec", "meets_ours"])
    if result.skipped:
        lines += ["", "## Not trained", ""] + [f"- {n}: {why}" for n, why in result.skipped.items()]
    return "\n".join(lines)


def plot_scores(result: ZooResult, splits: Splits, path: Path, name: str | None = None) -> Path:
    """The chosen model's calibrated score per service over the test period, incidents shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = name or result.best
    mask = splits.masks["test"]
    idx = splits.frame.index[mask]
    scores = result.scores[name][mask]
    det = result.models[name]
    services = list(pd.unique(idx.get_level_values(0)))
    fig, axes = plt.subplots(len(services), 1, figsize=(14, 0.9 * len(services) + 1), sharex=True)
    axes = np.atleast_1d(axes)
    level = idx.get_level_values(0)
    times = pd.DatetimeIndex(idx.get_level_values(1))
    for ax, svc in zip(axes, services):
        sel = np.asarray(level == svc)
        ax.plot(times[sel], scores[sel], lw=0.5, color="0.3")
        ax.axhline(det.threshold_, color="tab:red", lw=0.6, ls="--")
        ax.set_ylabel(svc, rotation=0, ha="right", va="center", fontsize=7)
        ax.set_yscale("symlog")
        ax.tick_params(labelsize=6)
        for inc in splits.incidents.itertuples():
            if svc in inc.affected_services and inc.end >= times.min():
                ax.axvspan(inc.start, inc.end, color="tab:orange",
                           alpha=0.45 if inc.root_cause_service == svc else 0.15, lw=0)
    fig.suptitle(f"{name}: scores on the test period (dashed: threshold; shaded: incidents)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def register_zoo(settings, result: ZooResult, splits: Splits, data: TrainingData, report_md: str,
                 plot: Path | None = None, on_progress=None, started: float | None = None,
                 trained: dict | None = None) -> dict:
    """Log every model as a child run of one evaluation run, register each as ``cerebro-detector-<name>``.
    ``started`` (epoch seconds) dates the parent run from when the stage began its work; ``trained`` says where
    the zoo was fitted (``training.backends``: backend, and the SageMaker job and its artifact)."""
    import mlflow

    from configs.settings import redacted_dump
    from training.detectors.bundle import detector_bundle
    from training.kinds import DETECTOR
    from training.tracking import log_bundle, log_dataset, start_stage_run
    # One service's last hour: enough rows for the windowed members (a request is a window of a series).
    first = data.frame.index.get_level_values(0)[0]
    example = data.frame.loc[[first]].tail(60).astype("float64").reset_index()  # floats: a request may hold NaN
    # Timestamps travel as ISO 8601 text (what a JSON request carries); the adapter parses them as UTC.
    example["timestamp"] = example["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    example["service"] = example["service"].astype(str)
    versions = {}
    config = redacted_dump(settings)  # never a password or token in MLflow
    cfg = settings.detection
    with start_stage_run(settings, "detector-zoo", started) as parent:
        mlflow.set_tags({"cerebro.stage": "detection", "cerebro.data_version": data.data_version,
                         "cerebro.dataset": data.dataset or "lake", "cerebro.best": result.best,
                         "cerebro.training_backend": (trained or {}).get("backend", "local")})
        if trained and trained.get("job"):
            mlflow.set_tags({"cerebro.training_job": trained["job"],
                             "cerebro.training_artifact": trained.get("model_artifact") or ""})
        mlflow.log_params({"profile": cfg.profile, "split": list(cfg.split), "buffer_minutes": cfg.buffer_minutes,
                           "ensemble_size": cfg.ensemble_size, "put_forward": cfg.put_forward,
                           "include": ",".join(cfg.include or []) or "all", "feature_window_minutes":
                           settings.feast.window_minutes, "seed": settings.simulator.seed,
                           "rows": len(data.frame), "features": data.frame.shape[1],
                           "services": data.frame.index.get_level_values(0).nunique(),
                           "models": len(result.models), "chosen_on": "planted anomalies"
                           if result.chosen_without_labels else "labelled incidents"})
        log_dataset(data.frame, f"detection-features-{data.dataset or 'lake'}", str(settings.lake_dir),
                    data.data_version)
        mlflow.log_dict(config, "config.json")
        mlflow.log_dict(data.feature_report, "features.json")
        mlflow.log_table(pd.DataFrame(result.comparison("test")), "comparison_test.json")
        mlflow.log_table(pd.DataFrame(result.comparison("validation")), "comparison_validation.json")
        mlflow.log_text(report_md, "report.md")
        if plot is not None:
            mlflow.log_artifact(str(plot))
        best = result.reports[result.best]["test"]
        mlflow.log_metrics({f"best_test_{k}": float(best[k]) for k in ("precision", "recall", "f1")})
        mlflow.log_metric("models_meeting_targets", sum(r["meets_targets"] for r in result.comparison("test")))
        for k, (name, model) in enumerate(result.models.items()):
            if on_progress:
                on_progress(name, k, len(result.models))
            metrics = {}
            for split in ("validation", "test"):
                r = result.reports[name][split]
                for key in ("precision", "recall", "f1", "auc_pr", "mttd_minutes", "false_alarm_minutes",
                            "overrun_p50_minutes", "overrun_p90_minutes"):
                    metrics[f"{split}_{key}"] = r[key]
            metrics.update({"fit_seconds": result.timings[name]["fit"], "threshold": float(model.threshold_)})
            cost = result.serving.costs.get(name) if result.serving is not None else None
            if cost is not None:
                metrics.update({"serve_ms_per_window": cost.window_ms, "serve_p50_ms_8_clients": cost.p50_ms,
                                "serve_p99_ms_8_clients": cost.p99_ms})
            bundle = detector_bundle(name, model, splits.scaler, list(splits.frame.columns), list(data.frame.columns),
                                     data.data_version)
            with mlflow.start_run(run_name=name, nested=True):
                params = {k: v for k, v in model.get_params(deep=False).items()
                          if k not in ("features", "members", "edges")}
                params.update({"detector": type(model).__name__, "family": model.family,
                               "n_features": model.n_features_in_})
                versions[name] = log_bundle(bundle, DETECTOR.registered_name(name), example, params, metrics,
                                            {"cerebro.data_version": data.data_version, "cerebro.family": model.family},
                                            description=version_description(result, splits, data, name),
                                            model_description=MODEL_DESCRIPTION.format(name=name))
            if cost is not None:  # what the promotion gate reads (serving.promotion.serving_cost_refusal)
                mlflow.MlflowClient().set_model_version_tag(DETECTOR.registered_name(name), versions[name],
                                                            SERVING_COST_TAG, json.dumps(cost.as_dict()))
        run_id = parent.info.run_id
    return {"run_id": run_id, "versions": versions, "experiment": settings.mlflow.experiment}


def below_target(result: ZooResult, name: str) -> str | None:
    """Why ``name`` may not become champion, in words; None when it meets the spec's targets or is the model put
    forward (``detection.put_forward``: serving needs a champion of it either way). The targets are the detection
    ones on the test period and the serving latency (``training.detectors.serving_cost.SPEC``); the model put
    forward was chosen to meet the latency where any composition could, and when none could (or the measurement
    ran on a busy machine) it is still the best there is to serve: its report says that it misses."""
    from training.evaluation import TARGETS

    if name == result.best:
        return None
    r = result.reports[name]["test"]
    cost = result.serving.costs.get(name) if result.serving is not None else None
    parts = []
    if not r["meets_targets"]:
        parts.append("test " + ", ".join(f"{k} {r[k]:.3f} <= {v:g}" for k, v in TARGETS.items() if not r[k] > v))
    parts.append(cost.refusal() if cost is not None else None)
    return "; ".join(p for p in parts if p) or None


def version_description(result: ZooResult, splits: Splits, data: TrainingData, name: str) -> str:
    """What the registry shows for one version: what it is, the data window, its test figures, its standing."""
    model = result.models[name]
    r = result.reports[name]["test"]
    bounds = {k: f"{a:%Y-%m-%d %H:%M} to {b:%Y-%m-%d %H:%M}" for k, (a, b) in splits.bounds.items()}
    standing = ("the model put forward (detection.put_forward)" if name == result.best else
                "meets the targets" if r["meets_targets"] else "misses the targets (precision > 0.9, recall > "
                "0.95, F1 > 0.92)")
    mttd = "" if r["mttd_minutes"] is None else f", mean time to detect {r['mttd_minutes']:.1f} min"
    return (f"{type(model).__name__} anomaly detector ({model.family}) over {model.n_features_in_} features of each "
            f"service's telemetry. Data {data.data_version}; train {bounds['train']}, test {bounds['test']} (UTC). "
            f"Test period: precision {r['precision']:.3f}, recall {r['recall']:.3f}, F1 {r['f1']:.3f}, "
            f"{r['found']} of {r['incidents']} incidents found{mttd}. Standing: {standing}.")


MODEL_DESCRIPTION = ("Anomaly detector `{name}` of the detector zoo, trained by the pipeline's detection stage. "
                     "@champion is the version serving, batch scoring and the drift check use; only a version that "
                     "meets the targets (or the model put forward) becomes champion, through the promotion gate "
                     "(docs/lifecycle.md). Each version's description gives its data window, figures and decision.")


def summarise(result: ZooResult) -> dict:
    best = result.reports[result.best]["test"]
    planted = result.planted.get(result.best)
    return {"best": result.best, "ensemble_members": list(result.ensemble_members), "skipped": result.skipped,
            "chosen_without_labels": result.chosen_without_labels,
            "planted": None if planted is None else {k: planted[k] for k in ("precision", "recall", "f1", "auc_pr",
                                                                              "incidents", "found")},
            "test": {k: best[k] for k in ("precision", "recall", "f1", "auc_pr", "mttd_minutes", "false_alarm_minutes",
                                          "overrun_p50_minutes", "overrun_p90_minutes", "incidents")},
            "meets_targets": best["meets_targets"],
            "models_meeting_targets": [r["model"] for r in result.comparison("test") if r["meets_targets"]],
            "miscalibrated": {n: round(share, 4) for n, share in result.miscalibrated.items()},
            # models whose measured serving latency misses the spec (never champion unless put forward)
            "serving_too_slow": sorted(n for n, c in (result.serving.costs if result.serving else {}).items()
                                       if n in result.models and c.refusal()),
            "serving_note": result.serving.note if result.serving else None}

