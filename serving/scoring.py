"""From a request to a model's answer, per kind of model, on the bundle MLflow loaded.

Detectors: the raw window becomes the detector's features with the project's own
``features.transforms.compute_features``, then the zoo's transforms, the per-service scaling and the score,
as ``features.detector_inputs.pandas_path.detector_frame`` does; or, faster, straight from the window's samples
with ``features.detector_inputs.numpy_path`` (``FastWindow``). What differs is speed only: the scaler's statistics are
laid out as arrays once per loaded version (the bundle's ``SeriesScaler.transform`` reindexes pandas frames
on every call, 45 ms for one 60-minute window) and only the columns the detector reads are scaled. At warm-up
the result is compared with ``predict_bundle`` on the model's input example; a version where they differ
is served through ``predict_bundle`` itself.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from training.kinds import DETECTOR, FAILURE, FORECASTER, predict_bundle

log = logging.getLogger("cerebro.serving")


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


# Minutes as epoch ns -> UTC stamps: the constructor with the dtype is six times faster than to_datetime.
_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


def _epoch_ns(stamps) -> np.ndarray:
    """Exact epoch nanoseconds (naive datetimes are UTC, as the schema says, not the machine's local time).
    A stamp outside pandas' nanosecond range is a :class:`RequestError`, never a wrapped int64; the service
    screens stamps against a narrower window before this (``serving.screening``)."""
    from serving.screening import epoch_ns

    ns = [epoch_ns(t) for t in stamps]
    if ns and (min(ns) < pd.Timestamp.min.value or max(ns) > pd.Timestamp.max.value):
        t = stamps[ns.index(min(ns) if min(ns) < pd.Timestamp.min.value else max(ns))]
        raise RequestError(f"timestamp {t.isoformat()} is outside the range pandas can hold "
                           f"({pd.Timestamp.min.isoformat()} to {pd.Timestamp.max.isoformat()})")
    return np.array(ns, dtype=np.int64)


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


def window_samples(req, levels: list[str]):
    """A request's samples (``telemetry`` and ``series``) and events as ``features.detector_inputs.numpy_path``
    reads them: codes per sample (metrics by their place in ``levels``, -1 for one not read), built per series
    where the body is columnar (one service and metric per series)."""
    from features.detector_inputs.numpy_path import WindowSamples

    col_of = {m: j for j, m in enumerate(levels)}
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
    events = (list(zip([e.service for e in req.events], [e.kind for e in req.events],
                       _epoch_ns([e.timestamp for e in req.events]).tolist())) if req.events else [])
    return WindowSamples(names=list(svc_names), service=np.concatenate(parts_s), metric=np.concatenate(parts_m),
                         ns=np.concatenate(parts_ns),
                         value=np.array(val, dtype="float64"),  # None (a missing sample) becomes NaN
                         baselines=req.baselines, events=events)


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


def consumed_columns(det) -> list[str]:
    """The scaled columns a detector reads (an ensemble: the union of its members')."""
    members = getattr(det, "members_", None)
    if members:
        return list(dict.fromkeys(c for _, m in members for c in consumed_columns(m)))
    return [str(c) for c in det.feature_names_in_]


class DetectorRunner:
    kind = DETECTOR.name

    def __init__(self, bundle: dict):
        from features.detector_inputs.columns import inputs_of, metrics_read, window_of

        self.bundle = bundle
        self.det = bundle["model"]
        self.columns = list(bundle["columns"])
        self.inputs = inputs_of(bundle)
        self.window = window_of(self.inputs)
        self.metrics = metrics_read(self.inputs)
        self.fast = True
        self.batchable = False  # decided at warm-up (``_check_batching``)
        self._compile()
        self.fast_window = FastWindow(self) if FastWindow.supports(self) else None

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
        from features.detector_inputs.pandas_path import by_service_and_time, zoo_transforms

        indexed = zoo_transforms(by_service_and_time(frame)[self._inputs].astype(float))
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
        out = self.score_features(feats)
        if req.last:  # after scoring: a member that reads a sequence scores each minute from the ones before
            keep = feats.groupby("service", sort=False).cumcount(ascending=False).to_numpy() < req.last
            feats, out = feats[keep], out[keep].reset_index(drop=True)
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

    def known_services(self) -> set[str] | None:
        """The services the scaler was fitted on (others get the pooled scaling); None without a scaler."""
        return set(self._index) or None

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


# Raised by a model for an input it cannot take (a window shorter than a member's, a horizon too long for the
# history): the client's to fix, a 422 that never counts towards the model's rollback. Matched by name, as a
# loaded model may bring its own copy of the training package (models from code).
CLIENT_ERRORS = frozenset({"RequestError", "NotEnoughData", "ForecastInputError"})


def client_error(exc: BaseException) -> bool:
    return any(cls.__name__ in CLIENT_ERRORS for cls in type(exc).__mro__)


RUNNERS = {runner.kind: runner for runner in (DetectorRunner, ForecasterRunner, FailureRunner)}


def runner_for(kind: str, bundle: dict):
    if bundle.get("kind") != kind:
        raise WarmUpError(f"the bundle is a {bundle.get('kind')!r} model, this slot serves {kind!r}")
    return RUNNERS[kind](bundle)


class FastWindow:
    """A request's window through the detector without pandas: the window's samples become the detector's
    columns in numpy (``features.detector_inputs.numpy_path``: the same columns as ``compute_features`` and the
    zoo's transforms), then the compiled scaling, the gap filling and the score. A 60-minute window in a few
    milliseconds, detector included, instead of ~25 ms. The warm-up compares it with the full path and
    switches it off on any difference; ``tests/features/test_detector_inputs.py`` holds the columns equal."""

    def __init__(self, runner: DetectorRunner):
        from features.detector_inputs.numpy_path import WindowInputs

        self.runner = runner
        self.used = runner.used
        self.path = WindowInputs(runner.used, runner.inputs, runner.window)
        # A detector with ``score_values`` (the statistical and seasonal ones) scores the array directly; its columns are
        # picked from ``used`` once here. The warm-up compares this path with the full one, as for the rest.
        det = runner.det  # an ensemble of such members names the columns its members read (``value_columns_``)
        fitted = [str(c) for c in getattr(det, "value_columns_", None) or getattr(det, "feature_names_in_", [])]
        self.direct = ([self.used.index(c) for c in fitted]
                       if hasattr(runner.det, "score_values") and fitted and set(fitted) <= set(self.used) else None)

    @classmethod
    def supports(cls, runner: DetectorRunner) -> bool:
        from features.detector_inputs.numpy_path import WindowInputs

        return WindowInputs.supports(runner.used, runner.window)

    def features(self, req) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(service per row, minute per row in ns, the used columns before scaling)."""
        return self.path.compute(window_samples(req, self.path.levels))

    def score(self, req) -> tuple[Rows, list[str]]:
        services, stamps, scaled, missing = self.prepare(req)
        return self.rows(*_last(req, services, stamps, self.detect(scaled, services, stamps))), missing

    def score_many(self, reqs: list) -> list[tuple[Rows, list[str]] | RequestError]:
        """Several requests' windows through the detector in one call: per window, scikit-learn's and torch's
        fixed cost per call is most of the work, so 8 windows scored together cost about half as much as 8
        alone. Each request's services are renamed apart (``service<US>i``, ``training.detectors.base.BATCH_SEP``) so
        that no member reads two requests as one series, and members look their per-series state up by the name
        before it; :meth:`DetectorRunner.warm_up` compares this with one call per request and
        switches batching off for a model where they differ. A request the window cannot be made from gets
        its :class:`RequestError` in its place; the others are scored."""
        from training.detectors.base import BATCH_SEP

        samples = _each(lambda req: window_samples(req, self.path.levels), reqs)
        ok = [i for i, s in enumerate(samples) if not isinstance(s, RequestError)]
        if not ok:
            return samples
        # One pass over every window's samples (``merge_samples``: each request's services renamed apart), the
        # features computed once for the batch: per window, numpy's fixed cost per call is most of the work.
        merged, origin = merge_samples([samples[i] for i in ok], BATCH_SEP)
        services, stamps, values = self.path.compute(merged)
        names, inverse = np.unique(services, return_inverse=True)
        which = np.array([origin[n][1] for n in names], dtype=np.int64)[inverse.ravel()]  # per row: its request
        plain = np.array([origin[n][0] for n in names], dtype=object)[inverse.ravel()]  # per row: its service
        score = self.detect(self._scale(values, plain, services), services, stamps)
        out = list(samples)
        for k, i in enumerate(ok):
            rows = np.flatnonzero(which == k)
            rows = rows[np.argsort(plain[rows], kind="stable")]  # as one request alone: by service, then minute
            out[i] = (self.rows(*_last(reqs[i], plain[rows], stamps[rows], score[rows])), self._missing(reqs[i]))
        return out

    def prepare(self, req) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """(service per row, minute per row in ns, the detector's scaled inputs, metrics the request lacks)."""
        services, stamps, values = self.features(req)
        return services, stamps, self._scale(values, services, services), self._missing(req)

    def _scale(self, values: np.ndarray, services: np.ndarray, series: np.ndarray) -> np.ndarray:
        """The service's scaling per row (``services``: the names the scaler knows), then the gaps filled within
        each of ``series`` (rows grouped by it)."""
        r = self.runner
        codes = np.fromiter((r._index.get(str(k), len(r._mean) - 1) for k in services), dtype=np.int64,
                            count=len(services))
        return _ffill_per_service((values - r._mean[codes]) / r._std[codes], series)

    def _missing(self, req) -> list[str]:
        present = {p.metric for p in req.telemetry} | {s.metric for s in req.series}
        return sorted(m for m in self.runner.metrics if m not in present)

    def detect(self, scaled: np.ndarray, services: np.ndarray, stamps: np.ndarray) -> np.ndarray:
        """The detector's score per row of ``scaled`` (rows grouped by service, minutes ascending within one)."""
        r = self.runner
        if self.direct is not None:  # the detector scores arrays itself: no frame, no index
            if getattr(r.det, "reads_times", False):  # a seasonal member places its profile by the time
                return r.det.score_values(scaled[:, self.direct], services, stamps=stamps)
            return r.det.score_values(scaled[:, self.direct], services)
        # Built from codes: ``MultiIndex.from_arrays`` would factorize both levels again (a third of the time).
        levels_s, codes_s = np.unique(services, return_inverse=True)
        levels_t, codes_t = np.unique(stamps, return_inverse=True)
        index = pd.MultiIndex(levels=[pd.Index(levels_s.astype(str), dtype=object),
                                      pd.DatetimeIndex(levels_t, dtype=_UTC_NS)],
                              codes=[codes_s.ravel(), codes_t.ravel()], names=["service", "timestamp"],
                              verify_integrity=False)
        return r.det.score(pd.DataFrame(scaled, index=index, columns=self.used))

    def rows(self, services: np.ndarray, stamps: np.ndarray, score: np.ndarray) -> Rows:
        det = self.runner.det
        return Rows({"service": services.astype(str),
                     "timestamp": np.datetime_as_string(stamps.astype("datetime64[ns]"), unit="s", timezone="UTC"),
                     "score": score, "calibrated": det.calibrated(scores=score),
                     "is_anomaly": (score > det.threshold_).astype(np.int64)})


def merge_samples(parts: list, sep: str):
    """Several windows' ``WindowSamples`` as one: request ``k``'s service ``s`` becomes ``s<sep>k`` (its samples,
    baselines and events with it), so no two requests read as one series. Returns (merged, renamed name ->
    (service, k))."""
    from features.detector_inputs.numpy_path import WindowSamples

    names, origin, service, offset = [], {}, [], 0
    baselines, events = {}, []
    for k, part in enumerate(parts):
        tag = f"{sep}{k}"
        names.extend(name + tag for name in part.names)
        origin.update({name + tag: (name, k) for name in part.names})
        service.append(part.service + offset)
        offset += len(part.names)
        baselines.update({name + tag: levels for name, levels in part.baselines.items()})
        events.extend((name + tag, kind, at) for name, kind, at in part.events)
    merged = WindowSamples(names=names, service=np.concatenate(service),
                           metric=np.concatenate([p.metric for p in parts]), ns=np.concatenate([p.ns for p in parts]),
                           value=np.concatenate([p.value for p in parts]), baselines=baselines, events=events)
    return merged, origin


def _last(req, services: np.ndarray, stamps: np.ndarray, score: np.ndarray):
    """Each service's last ``req.last`` rows (rows are ordered by service, then minute), cut after scoring: a
    member that reads a sequence (the deep detectors' windows) scores a minute from the minutes before it."""
    if not req.last:
        return services, stamps, score
    keep = np.zeros(len(services), dtype=bool)
    for s in np.unique(services):
        keep[np.flatnonzero(services == s)[-req.last:]] = True
    return services[keep], stamps[keep], score[keep]


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
