"""From a request to a model's answer, per kind of model, on the bundle MLflow loaded.

Detectors: the raw window becomes the detector's features with the project's own
``features.transforms.compute_features``, then the zoo's transforms, the per-service scaling and the score,
as ``training.serving_adapters.detector_frame`` does. What differs is speed only: the scaler's statistics are
laid out as arrays once per loaded version (the bundle's ``SeriesScaler.transform`` reindexes pandas frames
on every call, 45 ms for one 60-minute window) and only the columns the detector reads are scaled. At warm-up
the result is compared with ``predict_bundle`` on the model's input example; a version where they differ
is served through ``predict_bundle`` itself.
"""
from __future__ import annotations

import logging
import re
import warnings
from datetime import UTC

import numpy as np
import pandas as pd

from training.kinds import DETECTOR, FAILURE, FORECASTER, predict_bundle

log = logging.getLogger("cerebro.serving")
_UTC = UTC


class RequestError(ValueError):
    """The request cannot be answered as sent: the message says what is wrong (a 422, not a model error)."""


class WarmUpError(RuntimeError):
    """A freshly loaded version failed its warm-up: it is refused and the running one stays live."""


class Rows:
    """Equal-length named numpy columns: the fast path's answer. It offers what the service reads of a
    DataFrame (``out[name]``, ``len``, ``columns``, ``attrs``) without building one per request, which cost
    a quarter of a request's time. ``to_frame()`` when pandas is wanted."""

    def __init__(self, columns: dict[str, np.ndarray]):
        self._columns = columns
        self.attrs: dict = {}

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    def __getitem__(self, name: str) -> np.ndarray:
        return self._columns[name]

    def __len__(self) -> int:
        return len(next(iter(self._columns.values()))) if self._columns else 0

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self._columns)


def _epoch_ns(stamps) -> np.ndarray:
    # Naive datetimes are UTC (the schema says so), not the machine's local time.
    seconds = np.array([(t if t.tzinfo else t.replace(tzinfo=_UTC)).timestamp() for t in stamps], dtype="float64")
    return np.round(seconds * 1e6).astype("int64") * 1000


def _series_ns(series) -> np.ndarray:
    fast = series.epoch_ns()
    return fast if fast is not None else _epoch_ns(series.timestamps)


def window_frame(req) -> pd.DataFrame:
    """A request's samples (``telemetry`` and ``series``) as the canonical long frame."""
    stamps, services, metrics, values = [], [], [], []
    for p in req.telemetry:
        stamps.append(p.timestamp)
        services.append(p.service)
        metrics.append(p.metric)
        values.append(p.value)
    for s in req.series:
        stamps.extend(s.timestamps)
        services.extend([s.service] * len(s.values))
        metrics.extend([s.metric] * len(s.values))
        values.extend(s.values)
    return pd.DataFrame({
        "timestamp": pd.to_datetime(_epoch_ns(stamps), utc=True),
        "service": services, "metric": metrics,
        "value": np.array([np.nan if v is None else v for v in values], dtype="float64"),
    })


def events_frame(req) -> pd.DataFrame | None:
    if not req.events:
        return None
    return pd.DataFrame({"timestamp": pd.to_datetime(_epoch_ns([e.timestamp for e in req.events]), utc=True),
                         "service": [e.service for e in req.events], "kind": [e.kind for e in req.events]})


def window_features(req, window: int) -> pd.DataFrame:
    """``compute_features`` of the request's window, with the baselines it sent filled where the window has none."""
    from features.transforms import baseline_column, compute_features

    feats = compute_features(window_frame(req), events_frame(req), window=window)
    for service, levels in req.baselines.items():
        rows = (feats["service"] == service).to_numpy()
        for metric, level in levels.items():
            col = baseline_column(metric)
            if col in feats.columns and rows.any():
                feats.loc[rows & feats[col].isna().to_numpy(), col] = float(level)
    return feats.drop(columns=["created"]).rename(columns={"event_timestamp": "timestamp"})


def _window_of(columns: list[str], default: int = 15) -> int:
    for c in columns:
        m = re.search(r"__mean_(\d+)m$", c)
        if m:
            return int(m.group(1))
    return default


def consumed_columns(det) -> list[str]:
    """The scaled columns a detector reads (an ensemble: the union of its members')."""
    members = getattr(det, "members_", None)
    if members:
        return list(dict.fromkeys(c for _, m in members for c in consumed_columns(m)))
    return [str(c) for c in det.feature_names_in_]


class DetectorRunner:
    kind = DETECTOR.name

    def __init__(self, bundle: dict):
        from training.zoo import TIME_OF_DAY

        self.bundle = bundle
        self.det = bundle["model"]
        self.columns = list(bundle["columns"])
        self.inputs = list(bundle.get("inputs") or [c for c in self.columns if c not in TIME_OF_DAY])
        self.window = _window_of(self.inputs)
        self.metrics = sorted({c.split("__")[0] for c in self.inputs if "__mean_" in c}
                              | {c for c in self.inputs if "__" not in c and c not in ("hour", "weekday",
                                                                                      "minutes_since_deploy")})
        self.fast = True
        self.batchable = False  # decided at warm-up (``_check_batching``)
        self._compile()
        self.fast_window = None
        try:
            self.fast_window = FastWindow(self) if FastWindow.supports(self) else None
        except ImportError as exc:  # a model's own (older) ``training`` copy lacks a name: the full path serves
            log.warning("numpy window path unavailable for %s: %s", bundle.get("name"), exc)

    def _compile(self) -> None:
        scaler = self.bundle.get("scaler")
        used = consumed_columns(self.det)
        self.used = [c for c in self.columns if c in set(used)] or self.columns
        if scaler is None:
            self._index, self._mean, self._std = {}, np.zeros((1, len(self.used))), np.ones((1, len(self.used)))
            self._inputs = self.inputs
            return
        # ``SeriesScaler.transform``: per-service statistics, a column a service lacks falls back to the pooled one,
        # an unknown service uses the pooled row.
        mean = scaler.mean_.fillna(scaler.pooled_mean_)[self.used]
        std = scaler.std_.fillna(scaler.pooled_std_)[self.used]
        self._index = {str(s): i for i, s in enumerate(mean.index)}
        # The zoo's transforms run on these inputs only: the used columns, their metrics' baselines, the deploy
        # clock and the window means (the transforms find the window lengths from them). Fewer columns, same
        # values for the used ones; the warm-up checks that.
        metrics = {c.split("__")[0] for c in self.used}
        keep = set(self.used) | {f"{m}__base_" for m in metrics} | {"minutes_since_deploy"}
        self._inputs = [c for c in self.inputs if c in keep or "__mean_" in c or
                        any(c.startswith(k) for k in keep if k.endswith("__base_"))]
        self._mean = np.vstack([mean.to_numpy(), scaler.pooled_mean_[self.used].to_numpy()[None, :]])
        self._std = np.vstack([std.to_numpy(), scaler.pooled_std_[self.used].to_numpy()[None, :]])

    def _scaled(self, frame: pd.DataFrame) -> pd.DataFrame:
        from training.zoo import recent_deploys, relative_to_baseline, settle_after_deploys, with_time_of_day

        indexed = frame.assign(timestamp=pd.to_datetime(frame["timestamp"], utc=True)).set_index(["service", "timestamp"])
        indexed = with_time_of_day(recent_deploys(settle_after_deploys(relative_to_baseline(
            indexed[self._inputs].astype(float)))))
        keys = indexed.index.get_level_values(0)
        codes = np.fromiter((self._index.get(str(k), len(self._mean) - 1) for k in keys), dtype=np.int64,
                            count=len(keys))
        values = (indexed[self.used].to_numpy(dtype="float64") - self._mean[codes]) / self._std[codes]
        scaled = pd.DataFrame(values, index=indexed.index, columns=self.used)
        if np.isnan(values).any():  # gaps filled once here, as each member's ``_select`` would (an ensemble: 5-7 times)
            scaled = scaled.groupby(level=0, sort=False).ffill().fillna(0.0)
        return scaled

    def model_inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        """What the detector reads for each row of ``frame`` (feature rows with ``service`` and ``timestamp``):
        its columns against their baselines, standardised per service, gaps filled, one row per input row.
        The drift check compares these (``serving.drift``)."""
        if not self.fast:
            raise RequestError(f"{self.bundle.get('name')}: the compiled path is off for this model (it differed "
                               "from the model's own scoring at warm-up), so its inputs cannot be computed here")
        self._require_inputs(frame)
        return self._scaled(frame).reset_index()

    def _require_inputs(self, frame: pd.DataFrame) -> None:
        missing = [c for c in ["service", "timestamp", *self.inputs] if c not in frame.columns]
        if missing:
            raise RequestError(f"the feature rows lack columns {missing}")

    def score_features(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``predict_bundle`` for a detector: score, calibrated, is_anomaly per row of ``frame``."""
        if not self.fast:
            return predict_bundle(self.bundle, frame, {})
        self._require_inputs(frame)
        score = self.det.score(self._scaled(frame))
        return pd.DataFrame({"score": score, "calibrated": self.det.calibrated(scores=score),
                             "is_anomaly": (score > self.det.threshold_).astype(np.int64)})

    def score_window(self, req) -> tuple[pd.DataFrame, list[str]]:
        if self.fast and self.fast_window is not None:
            return self.fast_window.score(req)
        feats = window_features(req, self.window)
        lacking = [c for c in self.inputs if c not in feats.columns]
        if lacking:  # metrics the window does not carry: NaN, which the detectors read as "at the baseline"
            feats = pd.concat([feats, pd.DataFrame(np.nan, index=feats.index, columns=lacking)], axis=1)
        if req.last:
            feats = feats.groupby("service", sort=False).tail(req.last)
        out = self.score_features(feats)
        out.insert(0, "timestamp", feats["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy())
        out.insert(0, "service", feats["service"].astype(str).to_numpy())
        missing_metrics = sorted({c.split("__")[0] for c in lacking} & set(self.metrics))
        return out, missing_metrics

    def warm_up(self, example: pd.DataFrame) -> None:
        reference = predict_bundle(self.bundle, example, {})
        try:
            fast = self.score_features(example)
            same = np.allclose(fast["score"].to_numpy(), reference["score"].to_numpy(), equal_nan=True, rtol=1e-9)
        except Exception as exc:  # noqa: BLE001 - the compiled path cannot serve this model: the bundle's own path will
            log.warning("compiled detector path disabled for %s: %s", self.bundle.get("name"), exc)
            same = False
        if not same:
            self.fast = False
        if not np.isfinite(reference["score"].to_numpy()).all():
            raise WarmUpError("the input example scored non-finite")
        self._check_fast_window(example)

    def _example_request(self, example: pd.DataFrame):
        """The example's first service's raw metrics as a /v1/score window."""
        from serving.schemas import ScoreRequest

        stamps = pd.to_datetime(example["timestamp"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
        return ScoreRequest(series=[{"service": str(svc), "metric": m, "timestamps": [t for t, ok in zip(stamps, mask) if ok],
                                     "values": [float(v) for v, ok in zip(example[m], mask) if ok]}
                                    for m in self.metrics if m in example.columns
                                    for svc in [example["service"].iloc[0]]
                                    for mask in [example[m].notna().to_numpy() & (example["service"] == svc).to_numpy()]
                                    if mask.any()])

    def _check_fast_window(self, example: pd.DataFrame) -> None:
        """Score the example's raw metrics as a raw window both ways; any difference switches the numpy path off."""
        if self.fast_window is None or not self.fast:
            return
        req = self._example_request(example)
        fast, _ = self.fast_window.score(req)
        self.fast_window, window = None, self.fast_window
        full, _ = self.score_window(req)
        same = len(fast) == len(full) and np.allclose(fast["score"], full["score"], rtol=1e-9, equal_nan=True)
        if same:
            self.fast_window = window
            self._check_batching(example)
        else:
            log.warning("numpy window path disabled for %s: it differs from compute_features on the input example",
                        self.bundle.get("name"))

    def _check_batching(self, example: pd.DataFrame) -> None:
        """Score the example's window and its two halves, all for the same service, one call each and then in
        one batch: batching stays on only where every row agrees (torch's float32 sums differ in the sixth
        digit with the batch's size, hence a tolerance of 1e-4 of the alarm threshold)."""
        half = len(example) // 2
        reqs = [self._example_request(part) for part in (example, example.iloc[:half], example.iloc[half:])
                if len(part)]
        try:
            alone = [self.fast_window.score(req)[0] for req in reqs]
            together = self.fast_window.score_many(reqs)
            atol = 1e-4 * max(1.0, abs(float(self.det.threshold_)))  # far too small to move an alarm
            self.batchable = all(not isinstance(b, Exception) and len(a) == len(b[0])
                                 and np.allclose(a["score"], b[0]["score"], rtol=1e-4, atol=atol, equal_nan=True)
                                 and np.array_equal(a["service"], b[0]["service"])
                                 for a, b in zip(alone, together))
            why = "batched scores differ from one window at a time"
        except Exception as exc:  # noqa: BLE001 - a model that cannot be batched is served one window at a time
            self.batchable, why = False, f"{type(exc).__name__}: {exc}"
        if not self.batchable:
            log.info("batching disabled for %s: %s", self.bundle.get("name"), why)

    def score_windows(self, reqs: list) -> list[tuple[Rows | pd.DataFrame, list[str]] | RequestError]:
        """:meth:`score_window` for several requests: in one detector call where the warm-up allowed it."""
        if len(reqs) > 1 and self.batchable:  # only the numpy window path, checked at warm-up, sets it
            return self.fast_window.score_many(reqs)
        return _each(self.score_window, reqs)

    @staticmethod
    def flagged(out) -> int:
        return int(np.asarray(out["is_anomaly"]).sum() + (~np.isfinite(np.asarray(out["score"], dtype=float))).sum())


class ForecasterRunner:
    kind = FORECASTER.name

    def __init__(self, bundle: dict):
        self.bundle = bundle

    def forecast(self, series: list[str], horizon: int) -> pd.DataFrame:
        known = self.bundle.get("series") or []
        unknown = [s for s in series if known and s not in known]
        if unknown and not getattr(self.bundle["model"], "global_model", False):
            raise RequestError(f"series {unknown}: this forecaster knows {known}")
        return predict_bundle(self.bundle, pd.DataFrame({"series": series, "horizon": horizon}), {})

    def warm_up(self, example: pd.DataFrame) -> None:
        out = predict_bundle(self.bundle, example, {})
        if out.empty or not np.isfinite(out["yhat"].to_numpy(dtype="float64")).all():
            raise WarmUpError("the input example forecast was empty or non-finite")

    @staticmethod
    def flagged(out: pd.DataFrame) -> int:
        return int((~np.isfinite(out["yhat"].to_numpy(dtype="float64"))).sum())


class FailureRunner:
    kind = FAILURE.name

    def __init__(self, bundle: dict):
        self.bundle = bundle
        self.columns = list(bundle["columns"])

    def predict(self, frame: pd.DataFrame, top_k: int) -> pd.DataFrame:
        for col in self.columns:
            if col not in frame.columns:
                frame[col] = np.nan  # missing features are imputed by the model's pipeline
        request = frame[["service", "timestamp", *self.columns]]
        return predict_bundle(self.bundle, request, {"top_k": top_k})

    def from_rows(self, rows, top_k: int) -> pd.DataFrame:
        unknown = sorted({k for r in rows for k in r.features} - set(self.columns))
        if unknown:
            raise RequestError(f"unknown features {unknown}; the predictor reads {self.columns}")
        frame = pd.DataFrame([{k: (np.nan if v is None else v) for k, v in r.features.items()} for r in rows],
                             columns=self.columns, dtype="float64")
        frame.insert(0, "timestamp", pd.to_datetime(_epoch_ns([r.timestamp for r in rows]), utc=True))
        frame.insert(0, "service", [r.service for r in rows])
        return self.predict(frame, top_k)

    def from_window(self, req, window: int) -> pd.DataFrame:
        from features.transforms import latest_rows

        feats = window_features(req, window).rename(columns={"timestamp": "event_timestamp"})
        latest = latest_rows(feats).rename(columns={"event_timestamp": "timestamp"})
        return self.predict(latest, req.top_k)

    def warm_up(self, example: pd.DataFrame) -> None:
        out = predict_bundle(self.bundle, example, {"top_k": 1})
        if not np.isfinite(out["failure_probability"].to_numpy(dtype="float64")).all():
            raise WarmUpError("the input example's failure probability was non-finite")

    @staticmethod
    def flagged(out: pd.DataFrame) -> int:
        p = out["failure_probability"].to_numpy(dtype="float64")
        return int(out["alarm"].sum() + (~np.isfinite(p)).sum())


RUNNERS = {runner.kind: runner for runner in (DetectorRunner, ForecasterRunner, FailureRunner)}


def runner_for(kind: str, bundle: dict):
    if bundle.get("kind") != kind:
        raise WarmUpError(f"the bundle is a {bundle.get('kind')!r} model, this slot serves {kind!r}")
    return RUNNERS[kind](bundle)


class FastWindow:
    """``compute_features`` + the zoo's transforms for a request's window, in numpy: a 60-minute window in a few
    milliseconds, detector included, instead of ~25 ms with pandas. It covers what the zoo's members read:
    metric levels (against their 24-hour baseline), the rolling statistics over the feature window, the
    5-minute rate of change, week over week, the deploy clock and the time of day. Same rules as
    ``features.transforms``: samples ceiled to the minute, the latest of a (service, minute, metric) wins,
    windows run over clock minutes within one service (missing minutes skipped, never filled), the baseline
    is the median of the hourly means of the 24 completed clock hours before. The warm-up compares it with
    the full path and switches it off on any difference; tests compare both on simulated windows."""

    EXTRAS = frozenset({"minutes_since_deploy", "tod_sin", "tod_cos", "hour", "weekday"})

    def __init__(self, runner: DetectorRunner):
        from features.transforms import BASELINE_HOURS, DEPLOY_CAP_MINUTES, DEPLOY_KINDS, roc_floors
        from training.zoo import DEPLOY_HORIZON_MINUTES, LEVEL_STATS, RESTARTED_BY_DEPLOYS

        self.runner = runner
        self.used = runner.used
        self.window = runner.window
        self.specs = [self.parse(c, runner.window) for c in self.used]  # (kind, metric, stat) per used column
        self.levels = sorted({m for _, m, _ in self.specs if m})  # the metrics the grid holds
        self.stats = {stat for kind, _, stat in self.specs if kind == "stat"}
        kinds = {kind for kind, _, _ in self.specs}
        self.with_week, self.with_roc = "wow" in kinds, "roc" in kinds
        self.base_hours, self.cap, self.kinds = BASELINE_HOURS, DEPLOY_CAP_MINUTES, set(DEPLOY_KINDS)
        self.horizon = DEPLOY_HORIZON_MINUTES
        self.roc_floors = roc_floors(self.levels)
        has_base = {c.split("__")[0] for c in runner.inputs if "__base_" in c}
        self.relative = np.array([m in has_base for m in self.levels])
        self.level_stats, self.restarted = set(LEVEL_STATS), set(RESTARTED_BY_DEPLOYS)
        settle = runner.window if any(f"{m}__mean_{runner.window}m" in runner.inputs for m in RESTARTED_BY_DEPLOYS) else 0
        self.settle = settle if "minutes_since_deploy" in runner.inputs else 0
        # A detector with ``score_values`` (the statistical ones) scores the array directly; its columns are
        # picked from ``used`` once here. The warm-up compares this path with the full one, as for the rest.
        fitted = [str(c) for c in getattr(runner.det, "feature_names_in_", [])]
        self.direct = ([self.used.index(c) for c in fitted]
                       if hasattr(runner.det, "score_values") and fitted and set(fitted) <= set(self.used) else None)

    @classmethod
    def parse(cls, column: str, window: int) -> tuple[str, str | None, str | None] | None:
        """(kind, metric, statistic) of a feature column, or None for one this path does not compute."""
        from features.transforms import ROC_LAG, ROLLING_STATS

        if column in cls.EXTRAS:
            return "extra", None, column
        if "__" not in column:
            return "level", column, None
        metric, rest = column.split("__", 1)
        if rest == "wow":
            return "wow", metric, None
        if rest == f"roc_{ROC_LAG}m":
            return "roc", metric, None
        stat = rest.removesuffix(f"_{window}m")
        return ("stat", metric, stat) if stat != rest and stat in ROLLING_STATS else None

    @classmethod
    def supports(cls, runner: DetectorRunner) -> bool:
        specs = [cls.parse(c, runner.window) for c in runner.used]
        return all(specs) and any(kind != "extra" for kind, _, _ in specs)

    def features(self, req) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(service per row, minute per row in ns, the used columns before scaling)."""
        # Codes per sample, built per series where the body is columnar (one service and metric per series).
        col_of = {m: j for j, m in enumerate(self.levels)}
        stamps, val, svc_names, svc_code, m_code = [], [], {}, [], []
        for p in req.telemetry:
            stamps.append(p.timestamp), val.append(p.value)
            svc_code.append(svc_names.setdefault(p.service, len(svc_names))), m_code.append(col_of.get(p.metric, -1))
        parts_s, parts_m = [np.asarray(svc_code, dtype=np.int64)], [np.asarray(m_code, dtype=np.int64)]
        parts_ns = [_epoch_ns(stamps) if stamps else np.zeros(0, dtype=np.int64)]
        for s in req.series:
            val.extend(s.values)
            parts_ns.append(_series_ns(s))
            parts_s.append(np.full(len(s.values), svc_names.setdefault(s.service, len(svc_names)), dtype=np.int64))
            parts_m.append(np.full(len(s.values), col_of.get(s.metric, -1), dtype=np.int64))
        ns = np.concatenate(parts_ns)
        val = np.array(val, dtype="float64")  # None (a missing sample) becomes NaN
        minute = -((-ns) // 60_000_000_000)
        # Services in sorted order, as np.unique would give them (rows are ordered by service, then minute).
        services = np.array(sorted(svc_names), dtype=object)
        rank = np.empty(len(svc_names), dtype=np.int64)
        rank[[svc_names[k] for k in services]] = np.arange(len(services))
        s_code, m_code = rank[np.concatenate(parts_s)], np.concatenate(parts_m)
        # Rows: (service, minute) with a sample of any metric; the latest sample of a cell wins.
        first = minute.min() if len(minute) else 0
        span = int(minute.max() - first + 1) if len(minute) else 1
        keys, row = np.unique(s_code * span + (minute - first), return_inverse=True)
        row = row.ravel()
        grid = np.full((len(keys), len(self.levels)), np.nan)
        known = m_code >= 0
        order = np.lexsort((ns[known], row[known] * len(self.levels) + m_code[known]))
        r, c = row[known][order], m_code[known][order]
        grid[r, c] = val[known][order]  # later assignments win: the latest sample
        keys = np.stack([keys // span, keys % span + first])
        row_svc, row_min = keys[0], keys[1]
        base, week_ago = self._hourly(grid, row_svc, row_min, with_week=self.with_week)
        for service, levels in req.baselines.items():
            where = np.flatnonzero(services[row_svc] == service)
            for metric, level in levels.items():
                if metric in col_of and len(where):
                    cells = base[where, col_of[metric]]
                    base[where, col_of[metric]] = np.where(np.isnan(cells), float(level), cells)
        stats = self._rolling(grid, row_svc, row_min, with_roc=self.with_roc) if self.stats or self.with_roc else {}
        msd = self._minutes_since_deploy(req, services[row_svc], row_min)
        fresh = msd < self.settle if self.settle else None
        angle = 2 * np.pi * (row_min % 1440) / 1440
        extras = {"minutes_since_deploy": np.minimum(msd, self.horizon), "tod_sin": np.sin(angle),
                  "tod_cos": np.cos(angle), "hour": ((row_min // 60) % 24).astype(float),
                  "weekday": ((row_min // 1440 + 3) % 7).astype(float)}  # 1970-01-01 was a Thursday (3)
        out = np.empty((len(row_min), len(self.specs)))
        for k, (kind, metric, stat) in enumerate(self.specs):
            if kind == "extra":
                out[:, k] = extras[stat]
                continue
            j = col_of[metric]
            if kind == "level":
                v = grid[:, j]
            elif kind == "wow":
                v = grid[:, j] - week_ago[:, j]
            else:  # a rolling statistic, or the rate of change
                v = stats[stat if kind == "stat" else "roc"][:, j]
            if self.relative[j] and (kind == "level" or (kind == "stat" and stat in self.level_stats)):
                v = v - base[:, j]
            if fresh is not None and metric in self.restarted and kind != "wow":
                v = np.where(fresh, np.nan, v)
            out[:, k] = v
        return services[row_svc], row_min * 60_000_000_000, out

    def _hourly(self, grid: np.ndarray, row_svc: np.ndarray, row_min: np.ndarray,
                with_week: bool) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the 24-hour baseline (median of the hourly means of the completed hours before) and, when
        asked, the mean of the same clock hour a week earlier."""
        hour = row_min // 60
        base = np.full_like(grid, np.nan)
        week = np.full_like(grid, np.nan)
        for s in np.unique(row_svc):
            rows = np.flatnonzero(row_svc == s)
            hours = np.unique(hour[rows])
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN hours: NaN is the answer
                means = np.vstack([np.nanmean(grid[rows[hour[rows] == h]], axis=0) for h in hours])
                for h in hours:
                    at = rows[hour[rows] == h]
                    prior = (hours >= h - self.base_hours) & (hours < h)
                    if prior.any():
                        base[at] = np.nanmedian(means[prior], axis=0)
                    if with_week:
                        ago = np.flatnonzero(hours == h - 168)
                        if len(ago):
                            week[at] = means[ago[0]]
        return base, week

    def _rolling(self, grid: np.ndarray, row_svc: np.ndarray, row_min: np.ndarray,
                 with_roc: bool) -> dict[str, np.ndarray]:
        """The rolling statistics the detector reads (and the rate of change), per row, over each service's
        clock-minute grid: the window is ``self.window`` minutes, missing minutes count as gaps."""
        from features.transforms import rate_of_change, window_slope

        w = self.window
        out = {stat: np.full_like(grid, np.nan) for stat in self.stats | ({"roc"} if with_roc else set())}
        for s in np.unique(row_svc):
            rows = np.flatnonzero(row_svc == s)
            at = row_min[rows] - row_min[rows[0]]
            dense = np.full((int(at[-1]) + 1, grid.shape[1]), np.nan)
            dense[at] = grid[rows]
            win = np.lib.stride_tricks.sliding_window_view(
                np.vstack([np.full((w - 1, grid.shape[1]), np.nan), dense]), w, axis=0)[at]  # rows x metrics x w
            valid = ~np.isnan(win)
            n = valid.sum(axis=2)
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # empty windows: NaN is the answer
                if "mean" in self.stats:
                    out["mean"][rows] = np.nanmean(win, axis=2)
                if "std" in self.stats:
                    out["std"][rows] = np.where(n >= 2, np.nanstd(win, axis=2, ddof=1), np.nan)
                if "min" in self.stats:
                    out["min"][rows] = np.nanmin(win, axis=2)
                if "max" in self.stats:
                    out["max"][rows] = np.nanmax(win, axis=2)
                if "p95" in self.stats:  # linear interpolation, as pandas' rolling quantile (nanquantile loops)
                    ordered = np.sort(win, axis=2)  # NaN sorts last
                    pos = 0.95 * (n - 1)
                    lo = np.floor(pos).astype(np.int64).clip(0, w - 1)
                    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
                    v_lo = np.take_along_axis(ordered, lo[..., None], axis=2)[..., 0]
                    v_hi = np.take_along_axis(ordered, hi[..., None], axis=2)[..., 0]
                    out["p95"][rows] = np.where(n > 0, v_lo + (v_hi - v_lo) * (pos - np.floor(pos)), np.nan)
                if "slope" in self.stats:
                    out["slope"][rows] = window_slope(win)
                if with_roc:
                    out["roc"][rows] = rate_of_change(dense, self.roc_floors)[at]
        return out

    def _minutes_since_deploy(self, req, services: np.ndarray, minutes: np.ndarray) -> np.ndarray:
        out = np.full(len(minutes), self.cap)
        deploys = [(e.service, _epoch_ns([e.timestamp])[0]) for e in req.events if e.kind in self.kinds]
        for service, at in deploys:
            rows = (services == service) & (minutes * 60_000_000_000 >= at)
            since = (minutes[rows] * 60_000_000_000 - at) / 60e9
            out[rows] = np.minimum(out[rows], since)
        return np.minimum(out, self.cap)

    def score(self, req) -> tuple[Rows, list[str]]:
        services, stamps, scaled, missing = self.prepare(req)
        return self.rows(services, stamps, self.detect(scaled, services, stamps)), missing

    def score_many(self, reqs: list) -> list[tuple[Rows, list[str]] | RequestError]:
        """Several requests' windows through the detector in one call: per window, scikit-learn's and torch's
        fixed cost per call is most of the work, so 8 windows scored together cost about half as much as 8
        alone. Each request's services are renamed apart (``service<US>i``) so that no member reads two
        requests as one series; :meth:`DetectorRunner.warm_up` compares this with one call per request and
        switches batching off for a model where they differ. A request the window cannot be made from gets
        its :class:`RequestError` in its place; the others are scored."""
        prepared = _each(self.prepare, reqs)
        ok = [p for p in prepared if not isinstance(p, RequestError)]
        if not ok:
            return prepared
        services = np.concatenate([np.char.add(np.asarray(p[0]).astype(str), f"\x1f{i}") for i, p in enumerate(ok)])
        score = self.detect(np.vstack([p[2] for p in ok]), services, np.concatenate([p[1] for p in ok]))
        out, at = [], 0
        for p in prepared:
            if isinstance(p, RequestError):
                out.append(p)
                continue
            n = len(p[0])
            out.append((self.rows(p[0], p[1], score[at:at + n]), p[3]))
            at += n
        return out

    def prepare(self, req) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """(service per row, minute per row in ns, the detector's scaled inputs, metrics the request lacks)."""
        services, stamps, values = self.features(req)
        if req.last:  # rows are ordered by service, then minute
            keep = np.zeros(len(services), dtype=bool)
            for s in np.unique(services):
                keep[np.flatnonzero(services == s)[-req.last:]] = True
            services, stamps, values = services[keep], stamps[keep], values[keep]
        r = self.runner
        codes = np.fromiter((r._index.get(str(k), len(r._mean) - 1) for k in services), dtype=np.int64,
                            count=len(services))
        scaled = _ffill_per_service((values - r._mean[codes]) / r._std[codes], services)
        present = {p.metric for p in req.telemetry} | {s.metric for s in req.series}
        missing = sorted(m for m in r.metrics if m not in present)
        return services, stamps, scaled, missing

    def detect(self, scaled: np.ndarray, services: np.ndarray, stamps: np.ndarray) -> np.ndarray:
        """The detector's score per row of ``scaled`` (rows grouped by service, minutes ascending within one)."""
        r = self.runner
        if self.direct is not None:  # the detector scores arrays itself: no frame, no index
            return r.det.score_values(scaled[:, self.direct], services)
        # Built from codes: ``MultiIndex.from_arrays`` would factorize both levels again (a third of the time).
        levels_s, codes_s = np.unique(services, return_inverse=True)
        levels_t, codes_t = np.unique(stamps, return_inverse=True)
        index = pd.MultiIndex(levels=[pd.Index(levels_s.astype(str), dtype=object),
                                      pd.to_datetime(levels_t, utc=True)],
                              codes=[codes_s.ravel(), codes_t.ravel()], names=["service", "timestamp"],
                              verify_integrity=False)
        return r.det.score(pd.DataFrame(scaled, index=index, columns=self.used))

    def rows(self, services: np.ndarray, stamps: np.ndarray, score: np.ndarray) -> Rows:
        det = self.runner.det
        return Rows({"service": services.astype(str),
                     "timestamp": np.datetime_as_string(stamps.astype("datetime64[ns]"), unit="s", timezone="UTC"),
                     "score": score, "calibrated": det.calibrated(scores=score),
                     "is_anomaly": (score > det.threshold_).astype(np.int64)})


def _each(fn, reqs: list) -> list:
    """``fn(req)`` per request, with a request's :class:`RequestError` in its place instead of raised."""
    out: list = []
    for req in reqs:
        try:
            out.append(fn(req))
        except RequestError as exc:
            out.append(exc)
    return out


def _ffill_per_service(values: np.ndarray, services: np.ndarray) -> np.ndarray:
    """What ``Detector._select`` does to gaps (``training.detectors.base.fill_gaps``: carry forward within a
    series, then 0), in numpy so the detector skips its pandas groupby; rows are ordered by service, then
    minute. The service keeps its own copy on purpose: a loaded model brings its own ``training`` package
    (models from code), so the service may run next to a registered model's older one and must not need
    what that copy lacks. A test holds this equal to ``fill_gaps``."""
    if not np.isnan(values).any():
        return values
    out = values.copy()
    starts = np.flatnonzero(np.r_[True, services[1:] != services[:-1]])
    for a, b in zip(starts, [*starts[1:], len(values)]):
        block = out[a:b]
        idx = np.where(np.isnan(block), 0, np.arange(b - a)[:, None])
        np.maximum.accumulate(idx, axis=0, out=idx)
        filled = block[idx, np.arange(block.shape[1])]
        out[a:b] = np.where(np.isnan(filled), 0.0, filled)
    return out
