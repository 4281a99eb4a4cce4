"""The failure predictor: XGBoost behind SMOTE, calibrated on validation, with a threshold and SHAP factors.

    model = FailurePredictor(horizon_minutes=60).fit(X, y, ttf=ttf)          # X: failure_v1 features
    model.predict_proba(X)[:, 1]      calibrated probability of a failure within the horizon
    model.predict(X)                  1 where that probability reaches ``threshold_`` (chosen on validation)
    model.predict_time_to_failure(X)  minutes until the failure, assuming one comes within the horizon
    model.explain(X, top_k=5)         SHAP contributions per row (log-odds of the uncalibrated model)
    model.predict_frame(frame)        service, timestamp, failure_probability, alarm, time_to_failure_minutes,
                                      top_factors: what the CLI and serving return

``X`` holds the ``failure_v1`` columns (``features``, what serving sends); the trees see their *relative view*
(``inputs="relative"``, :mod:`training.failure.relative`: each level against the service's own 24-hour baseline,
minutes until memory or disk reach their limit, slopes as they are), computed inside the model from the row
alone, so training and serving compute it identically; ``inputs="raw"`` feeds the columns as they are.

``fit`` splits its rows by time: the oldest part trains the classifier (imputer -> SMOTE -> XGBoost in one
imbalanced-learn ``Pipeline``, so synthetic failures are made from training rows only and never at predict
time), the newest ``validation_fraction`` calibrates it and picks the alarm threshold; the training rows of the
last H minutes before the cut are left out, as their labels look into the validation period. Rows are ordered
by a ``timestamp``/``event_timestamp`` index level or column (by position when there is none). Pass
``X_val, y_val`` to give the validation part explicitly instead.

Choices, and why:

* **The relative view, with monotone constraints** (``monotone=True``): see :mod:`training.failure.relative`. A
  history holds a handful of creeping failures, each on one service; on raw levels the trees learn which service
  failed, not how a failure looks. The constraints (higher above the baseline, or fewer minutes to the limit,
  never lowers the probability) apply to the derived columns only.
* **Median imputation before SMOTE.** XGBoost copes with NaN natively, SMOTE does not (it interpolates between
  neighbours and needs finite distances). Slopes are NaN at the start of a series and after gaps; the median
  of the training rows stands in for them. The imputer is fitted on the training part only.
* **SMOTE to a 1:4 minority:majority ratio** (``smote_ratio``), not 1:1: failures are a few per cent of rows
  and are clustered in time (one failure makes up to H positive rows), so full balance would mostly
  interpolate copies of the same few episodes. The shift of the base rate this causes is undone by the
  calibration, which sees real validation rows only.
* **Platt (sigmoid) calibration on the raw margin, not isotonic.** A validation period of a few days holds a
  few dozen distinct failures (each one an hour of correlated rows); isotonic regression would fit a step
  function to those few episodes, overfit, and tie many scores (losing ranking); a two-parameter sigmoid is
  stable on that little data and strictly monotone. ``calibration="isotonic"`` is there for longer histories.
  Fitted on the foreseeable failures (``training.py``), a 14-day history's validation period holds only two to
  four of them (a dozen rows each): the probabilities are coarse, and the thresholds chosen on them ranged from
  0.007 to 0.25 across simulated fleets; the alarm, not the probability's exact value, is what to act on.
* **Alarm threshold**: the lowest calibrated probability at which validation precision reaches
  ``target_precision`` (0.9), i.e. the most recall the precision target allows; when no threshold reaches it,
  the threshold with the best F1 on validation, and ``threshold_rule_`` says so. Never the test period.
  ``fit(..., threshold_ignore=mask)`` leaves validation rows out of that choice only (not out of calibration):
  training passes the *early* rows (the service's fault is under way, its failure more than H minutes off; see
  ``labels.py``). An alarm there is not a false alarm to an operator (the memory is leaking), yet the label says
  0; counting such rows as false alarms on a validation period with two or three creeping failures pushed the
  threshold above most of the failures' run-up (measured on ten simulated fleets: 39 of 62 foreseeable test
  failures caught instead of 53). The test figures still count them as false (and report them apart).
* **Time to failure**: an ``XGBRegressor`` fitted on the positive training rows (minutes until the failure
  starts); its output is clipped to (0, H]. With fewer than ``min_ttf_rows`` positives, or no ``ttf``, it is
  the median of the training targets (or H/2), and ``ttf_model_`` is None.
* **One thread** (``n_jobs=1``): on a 2-core machine shared with other work, XGBoost's OpenMP threads
  oversubscribe: measured 20 s instead of 1.4 s for a fit on 32,000 rows, 27 ms instead of 5 ms for a one-row
  prediction. Raise it on a machine of your own.
* **SHAP**: ``shap.TreeExplainer`` on the XGBoost model, evaluated on the imputed rows the trees saw. The
  contributions are in log-odds of the *uncalibrated* classifier (its raw margin): base value + sum of the
  contributions = ``decision_function(X)``. Calibration is a monotone map of that margin, so the signs and
  the ranking of the factors carry over to the probability. Factor values are the row's own values (NaN where
  the row had none).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from training.failure.labels import LABEL, TTF

TIMESTAMP_NAMES = ("timestamp", "event_timestamp")


class FailureDataError(ValueError):
    """The rows given cannot train or feed the predictor; the message says what is missing."""


# ----------------------------------------------------------------------------------------------- helpers
def row_times(X: pd.DataFrame) -> pd.DatetimeIndex | None:
    """The rows' timestamps: an index level or a column named timestamp / event_timestamp; None if neither."""
    names = list(X.index.names or [])
    for name in TIMESTAMP_NAMES:
        if name in names:
            return pd.DatetimeIndex(pd.to_datetime(X.index.get_level_values(name), utc=True))
    for name in TIMESTAMP_NAMES:
        if name in X.columns:
            return pd.DatetimeIndex(pd.to_datetime(X[name], utc=True))
    return None


def row_services(X: pd.DataFrame) -> np.ndarray | None:
    if "service" in (X.index.names or []):
        return X.index.get_level_values("service").astype(str).to_numpy()
    if "service" in X.columns:
        return X["service"].astype(str).to_numpy()
    return None


def time_ordered_cut(times: pd.DatetimeIndex | None, n: int, fraction: float) -> np.ndarray:
    """Mask of the newest ``fraction`` of the rows by distinct timestamp (row order when there are none)."""
    if times is None:
        mask = np.zeros(n, dtype=bool)
        mask[round(n * (1 - fraction)):] = True
        return mask
    stamps = np.sort(times.unique())
    cut = stamps[min(len(stamps) - 1, int(len(stamps) * (1 - fraction)))]
    return np.asarray(times >= cut)


@dataclass
class Explanation:
    """SHAP contributions of each row, in log-odds of the uncalibrated classifier."""

    contributions: pd.DataFrame  # one column per feature, one row per input row
    base_value: float  # the explainer's expected margin
    margin: np.ndarray  # the classifier's raw margin per row (= base_value + row sum of contributions)
    values: pd.DataFrame  # the rows' own feature values (NaN kept)
    top: list[list[dict[str, Any]]]  # per row, the top-k factors by |contribution|: feature, value, contribution


class _MarginModel(ClassifierMixin, BaseEstimator):
    """The fitted pipeline seen from outside: ``decision_function`` is XGBoost's raw margin on imputed rows.

    Calibration is fitted on this margin (Platt's method as published: a sigmoid of the score), through
    ``CalibratedClassifierCV(FrozenEstimator(...))`` so nothing is refitted.
    """

    def __init__(self, pipeline=None, features=None, inputs="raw"):
        self.pipeline = pipeline
        self.features = features
        self.inputs = inputs

    def fit(self, X, y):  # pragma: no cover - always used frozen
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return self.pipeline is not None and hasattr(self.pipeline, "classes_")

    @property
    def classes_(self):
        return self.pipeline.classes_

    def _imputed(self, X) -> np.ndarray:
        return self.pipeline.named_steps["impute"].transform(_matrix(X, self.features, self.inputs))

    def decision_function(self, X) -> np.ndarray:
        return self.pipeline.named_steps["xgb"].predict(self._imputed(X), output_margin=True)

    def predict_proba(self, X) -> np.ndarray:
        return self.pipeline.predict_proba(_matrix(X, self.features, self.inputs))

    def predict(self, X) -> np.ndarray:
        return self.pipeline.predict(_matrix(X, self.features, self.inputs))


def model_columns(features: list[str], inputs: str = "relative") -> list[str]:
    """The columns the trees see for these input columns: the relative view's, or the inputs themselves."""
    if inputs == "raw":
        return list(features)
    from training.failure.relative import relative_columns

    return relative_columns(features)


def model_frame(X: pd.DataFrame, features: list[str], inputs: str = "relative") -> pd.DataFrame:
    """What the trees see for the rows of ``X`` (a frame holding ``features``), as a float64 frame."""
    if inputs == "raw":
        return X[features].astype("float64")
    from training.failure.relative import relative_view

    return relative_view(X, features)


def _matrix(X, features: list[str], inputs: str = "raw") -> np.ndarray:
    """The trees' matrix for rows of the input columns (a frame, or an array in the order of ``features``)."""
    if not isinstance(X, pd.DataFrame):
        X = pd.DataFrame(np.asarray(X, dtype="float64"), columns=list(features))
    return model_frame(X, features, inputs).to_numpy(dtype="float64")


# ----------------------------------------------------------------------------------------------- the model
class FailurePredictor(ClassifierMixin, BaseEstimator):
    """Will this service fail within ``horizon_minutes``? See the module docstring for every choice."""

    def __init__(
        self,
        horizon_minutes: float = 60,
        features: list[str] | None = None,
        inputs: str = "relative",
        monotone: bool = True,
        validation_fraction: float = 0.3,
        smote_ratio: float = 0.25,
        smote_k_neighbors: int = 5,
        n_estimators: int = 200,
        max_depth: int = 4,
        learning_rate: float = 0.08,
        subsample: float = 0.8,
        colsample_bytree: float = 0.9,
        min_child_weight: float = 5.0,
        calibration: str = "sigmoid",
        target_precision: float = 0.9,
        min_ttf_rows: int = 30,
        n_jobs: int = 1,
        random_state: int = 0,
    ):
        self.horizon_minutes = horizon_minutes
        self.features = features
        self.inputs = inputs
        self.monotone = monotone
        self.validation_fraction = validation_fraction
        self.smote_ratio = smote_ratio
        self.smote_k_neighbors = smote_k_neighbors
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.calibration = calibration
        self.target_precision = target_precision
        self.min_ttf_rows = min_ttf_rows
        self.n_jobs = n_jobs
        self.random_state = random_state

    # ------------------------------------------------------------------ input checks
    def _feature_list(self) -> list[str]:
        if self.features is not None:
            return list(self.features)
        from features.transforms import failure_feature_names

        return failure_feature_names()

    def _check_frame(self, X, features: list[str]) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise FailureDataError(f"X must be a DataFrame with the feature columns {features}; got {type(X).__name__}")
        missing = [c for c in features if c not in X.columns]
        if missing:
            raise FailureDataError(f"X lacks the feature columns {missing}; the predictor needs {features}")
        bad = [c for c in features if not pd.api.types.is_numeric_dtype(X[c])]
        if bad:
            raise FailureDataError(f"feature columns {bad} are not numeric")
        values = X[features].to_numpy(dtype="float64")
        if np.isinf(values).any():
            cols = [c for c, f in zip(features, np.isinf(values).any(axis=0)) if f]
            raise FailureDataError(f"feature columns {cols} hold infinite values")
        return X

    @staticmethod
    def _labels(y, n: int, what: str) -> np.ndarray:
        y = np.asarray(y)
        if len(y) != n:
            raise FailureDataError(f"{what}: {len(y)} labels for {n} rows")
        if pd.isna(y).any():
            raise FailureDataError(f"{what}: labels hold missing values")
        if not np.isin(y, [0, 1]).all():
            raise FailureDataError(f"{what}: labels must be 0 or 1, got {sorted(set(np.unique(y).tolist()))[:5]}")
        return y.astype(np.int64)

    # ------------------------------------------------------------------ fit
    def fit(self, X: pd.DataFrame, y, ttf=None, X_val: pd.DataFrame | None = None, y_val=None,
            threshold_ignore=None):
        """Fit on ``X, y`` (older part) and calibrate on the validation part (``X_val, y_val``, or the newest
        ``validation_fraction`` of ``X``). ``threshold_ignore``: a mask over the validation rows (over ``X`` when
        the validation part is cut from it) left out of the threshold choice only; see the module docstring."""
        from imblearn.pipeline import Pipeline
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.frozen import FrozenEstimator
        from sklearn.impute import SimpleImputer
        from xgboost import XGBClassifier

        from training.failure._smote import RecordingSMOTE

        if self.calibration not in ("sigmoid", "isotonic"):
            raise ValueError(f"calibration={self.calibration!r}: 'sigmoid' or 'isotonic'")
        if self.inputs not in ("relative", "raw"):
            raise ValueError(f"inputs={self.inputs!r}: 'relative' or 'raw'")
        features = self._feature_list()
        X = self._check_frame(X, features)
        y = self._labels(y, len(X), "y")
        ttf = None if ttf is None else np.asarray(ttf, dtype="float64")
        if ttf is not None and len(ttf) != len(X):
            raise FailureDataError(f"ttf: {len(ttf)} values for {len(X)} rows")
        if X_val is None:
            if y_val is not None:
                raise ValueError("y_val without X_val")
            times = row_times(X)
            val = time_ordered_cut(times, len(X), self.validation_fraction)
            train = ~val
            if times is not None:  # purge: a training label must not look into the validation period
                train &= np.asarray(times < times[val].min() - pd.Timedelta(minutes=self.horizon_minutes))
            X_tr, y_tr, X_va, y_va = X[train], y[train], X[val], y[val]
            ttf_tr = None if ttf is None else ttf[train]
            if threshold_ignore is not None:
                threshold_ignore = np.asarray(threshold_ignore, dtype=bool)
                if len(threshold_ignore) != len(X):
                    raise FailureDataError(f"threshold_ignore: {len(threshold_ignore)} values for {len(X)} rows")
                threshold_ignore = threshold_ignore[val]
        else:
            X_va = self._check_frame(X_val, features)
            y_va = self._labels(y_val, len(X_va), "y_val")
            X_tr, y_tr, ttf_tr = X, y, ttf
            if threshold_ignore is not None:
                threshold_ignore = np.asarray(threshold_ignore, dtype=bool)
                if len(threshold_ignore) != len(X_va):
                    raise FailureDataError(f"threshold_ignore: {len(threshold_ignore)} values for {len(X_va)} "
                                           "validation rows")
        n_pos = int(y_tr.sum())
        if n_pos == 0:
            raise FailureDataError(
                f"the training rows ({len(y_tr)}) hold no failures: nothing to learn. Use a longer window, a longer "
                "horizon, or a history with incidents")
        if n_pos == len(y_tr):
            raise FailureDataError(f"every training row ({len(y_tr)}) is a failure: no normal rows to learn from")
        if int(y_va.sum()) == 0 or int(y_va.sum()) == len(y_va):
            raise FailureDataError(
                f"the validation rows ({len(y_va)}, {int(y_va.sum())} failures) need both failures and normal rows "
                "to calibrate the probabilities and choose the threshold; use a longer window")

        view = model_columns(features, self.inputs)
        if not view:
            raise FailureDataError(f"the relative view of {features} has no columns (baselines and calendar columns "
                                   "only feed it); pass level, slope or baseline columns, or inputs='raw'")
        Xm = _matrix(X_tr, features, self.inputs)
        n_neg = len(y_tr) - n_pos
        resample = n_pos >= 2 and n_pos / n_neg < self.smote_ratio
        steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
        if resample:
            steps.append(("smote", RecordingSMOTE(sampling_strategy=self.smote_ratio,
                                                  k_neighbors=min(self.smote_k_neighbors, n_pos - 1),
                                                  random_state=self.random_state)))
        steps.append(("xgb", XGBClassifier(
            n_estimators=self.n_estimators, max_depth=self.max_depth, learning_rate=self.learning_rate,
            subsample=self.subsample, colsample_bytree=self.colsample_bytree,
            min_child_weight=self.min_child_weight, tree_method="hist", eval_metric="aucpr",
            n_jobs=self.n_jobs, random_state=self.random_state, **self._constraints(view))))
        pipeline = Pipeline(steps)
        pipeline.fit(Xm, y_tr)
        self.pipeline_ = pipeline
        self.features_ = features
        self.model_features_ = view
        self.feature_names_in_ = np.asarray(features, dtype=object)
        self.n_features_in_ = len(features)
        self.classes_ = np.array([0, 1])
        self.raw_ = _MarginModel(pipeline, features, self.inputs)

        self.calibrator_ = CalibratedClassifierCV(FrozenEstimator(self.raw_), method=self.calibration)
        self.calibrator_.fit(X_va[features], y_va)
        p_va = self.calibrator_.predict_proba(X_va[features])[:, 1]
        if self.calibration == "sigmoid" and not self._calibration_increasing():
            # A sigmoid that falls with the margin means the classifier ranks validation rows backwards:
            # isotonic regression is monotone non-decreasing by construction, so use it instead.
            self.calibrator_ = CalibratedClassifierCV(FrozenEstimator(self.raw_), method="isotonic")
            self.calibrator_.fit(X_va[features], y_va)
            p_va = self.calibrator_.predict_proba(X_va[features])[:, 1]
            self.calibration_used_ = "isotonic (the sigmoid fitted on validation was decreasing)"
        else:
            self.calibration_used_ = self.calibration
        counted = np.ones(len(y_va), dtype=bool) if threshold_ignore is None else ~threshold_ignore
        if not y_va[counted].any():
            counted = np.ones(len(y_va), dtype=bool)
        self.threshold_, self.threshold_rule_ = choose_threshold(y_va[counted], p_va[counted], self.target_precision)
        if not counted.all():
            self.threshold_rule_ += f" ({int((~counted).sum())} early rows not counted)"

        self._fit_ttf(X_tr, y_tr, ttf_tr)
        self.explainer_ = None
        from training.failure.evaluation import point_metrics

        self.validation_ = {**point_metrics(y_va, p_va, self.threshold_, self.target_precision),
                            "rows": len(y_va), "failures": int(y_va.sum())}
        smote = pipeline.named_steps.get("smote")
        self.fit_report_ = {
            "train_rows": len(y_tr), "train_failures": n_pos, "validation_rows": len(y_va),
            "validation_failures": int(y_va.sum()),
            "smote": ({"in": smote.counts_in_, "out": smote.counts_out_} if smote is not None
                      else "skipped: the classes are already at or above the ratio, or there is one failure row"),
            "inputs": self.inputs, "model_features": list(view),
            "calibration": self.calibration_used_, "threshold": float(self.threshold_),
            "threshold_rule": self.threshold_rule_, "ttf_model": self.ttf_model_ is not None,
        }
        return self

    def _calibration_increasing(self) -> bool:
        grid = np.linspace(-20, 20, 41)
        calibrated = self._calibration_map().predict(grid)
        return bool(calibrated[-1] > calibrated[0])

    def _constraints(self, view: list[str]) -> dict[str, Any]:
        if self.inputs != "relative" or not self.monotone:
            return {}
        from training.failure.relative import monotone_signs

        signs = monotone_signs(view)
        return {"monotone_constraints": "(" + ",".join(map(str, signs)) + ")"} if any(signs) else {}

    def _fit_ttf(self, X_tr: pd.DataFrame, y_tr: np.ndarray, ttf: np.ndarray | None) -> None:
        from xgboost import XGBRegressor

        self.ttf_model_ = None
        if ttf is None:
            self.ttf_default_ = float(self.horizon_minutes) / 2
            return
        pos = (y_tr == 1) & np.isfinite(ttf)
        self.ttf_default_ = float(np.median(ttf[pos])) if pos.any() else float(self.horizon_minutes) / 2
        if pos.sum() < self.min_ttf_rows:
            return
        reg = XGBRegressor(n_estimators=100, max_depth=3, learning_rate=0.1, subsample=0.8,
                           objective="reg:squarederror", n_jobs=self.n_jobs, random_state=self.random_state)
        reg.fit(_matrix(X_tr, self.features_, self.inputs)[pos], ttf[pos])  # NaN handled natively
        self.ttf_model_ = reg

    # ------------------------------------------------------------------ predict
    def _checked(self, X) -> pd.DataFrame:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "pipeline_")
        return self._check_frame(X, self.features_)

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Raw margin (log-odds) of the uncalibrated classifier: what SHAP explains."""
        return self.raw_.decision_function(self._checked(X)[self.features_])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities, columns (no failure, failure within the horizon).

        Same numbers as ``calibrator_.predict_proba`` (a test checks it), without its per-call validation:
        the margin goes straight through the one fitted calibrator, which matters for one-row requests."""
        margin = self.raw_.decision_function(self._checked(X)[self.features_])
        p = np.clip(self._calibration_map().predict(margin), 0.0, 1.0)
        return np.column_stack([1.0 - p, p])

    def _calibration_map(self):
        """The calibrator fitted on validation margins (sigmoid or isotonic): one, as the estimator is frozen."""
        return self.calibrator_.calibrated_classifiers_[0].calibrators[0]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= self.threshold_).astype(np.int64)

    def predict_time_to_failure(self, X: pd.DataFrame) -> np.ndarray:
        """Minutes until the failure starts, for a row that has one coming within the horizon."""
        X = self._checked(X)
        if self.ttf_model_ is None:
            return np.full(len(X), self.ttf_default_)
        est = self.ttf_model_.predict(_matrix(X, self.features_, self.inputs))
        return np.clip(est, 1.0, float(self.horizon_minutes))

    # ------------------------------------------------------------------ explain
    def _explainer(self):
        if getattr(self, "explainer_", None) is None:
            import shap

            self.explainer_ = shap.TreeExplainer(self.pipeline_.named_steps["xgb"])
        return self.explainer_

    def explain(self, X: pd.DataFrame, top_k: int = 5) -> Explanation:
        """SHAP contributions per row and the ``top_k`` factors by absolute contribution (log-odds), over the
        columns the trees see (``model_features_``: the relative view's, e.g. ``memory_pct__vs_base``); a factor's
        value is the row's own value of that column (NaN / None where it had none)."""
        X = self._checked(X)
        imputed = self.raw_._imputed(X[self.features_])
        explainer = self._explainer()
        values = np.asarray(explainer.shap_values(imputed, check_additivity=False), dtype="float64")
        base = float(np.ravel(explainer.expected_value)[0])
        columns = self._model_features()
        contributions = pd.DataFrame(values, index=X.index, columns=columns)
        raw = model_frame(X, self.features_, self.inputs)
        k = max(0, min(int(top_k), len(columns)))
        order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
        names = np.asarray(columns, dtype=object)
        own = raw.to_numpy()
        top = [
            [{"feature": str(names[j]), "value": None if np.isnan(own[i, j]) else float(own[i, j]),
              "contribution": float(values[i, j])} for j in order[i]]
            for i in range(len(X))
        ]
        return Explanation(contributions, base, self.raw_.decision_function(X[self.features_]), raw, top)

    # ------------------------------------------------------------------ frames
    def predict_frame(self, frame: pd.DataFrame, top_k: int = 3) -> pd.DataFrame:
        """One row per input row: service, timestamp, failure_probability, alarm (0/1), time_to_failure_minutes
        (NaN where there is no alarm) and top_factors (list of {feature, value, contribution})."""
        X = self._checked(frame)
        services = row_services(frame)
        times = row_times(frame)
        proba = self.predict_proba(X)[:, 1]
        alarm = (proba >= self.threshold_).astype(np.int64)
        ttf = np.where(alarm == 1, self.predict_time_to_failure(X), np.nan)
        factors = self.explain(X, top_k=top_k).top if top_k > 0 else [[] for _ in range(len(X))]
        return pd.DataFrame({
            "service": services if services is not None else np.full(len(X), None, dtype=object),
            "timestamp": times if times is not None else pd.NaT,
            "failure_probability": proba,
            "alarm": alarm,
            "time_to_failure_minutes": ttf,
            "top_factors": factors,
        })

    def _model_features(self) -> list[str]:
        # Models pickled before the relative view existed fed their columns as they were.
        return list(getattr(self, "model_features_", self.features_))

    def __setstate__(self, state):
        state = dict(state)
        state.setdefault("inputs", "raw")  # pickled before the relative view: the columns fed as they were
        state.setdefault("monotone", False)
        super().__setstate__(state)
        if getattr(self, "raw_", None) is not None and not hasattr(self.raw_, "inputs"):
            self.raw_.inputs = "raw"

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: the default state is the live __dict__
        state["explainer_"] = None  # rebuilt on demand: SHAP's explainer holds a copy of every tree
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def choose_threshold(y: np.ndarray, proba: np.ndarray, target_precision: float = 0.9) -> tuple[float, str]:
    """The lowest probability whose precision on (y, proba) reaches the target (the most recall it allows);
    when none does, the threshold with the best F1. Returns (threshold, the rule that chose it)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, proba)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    ok = np.flatnonzero(precision >= target_precision)
    if len(ok):
        i = ok[np.argmax(recall[ok])]
        return float(thresholds[i]), f"lowest threshold with validation precision >= {target_precision:g}"
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    i = int(np.argmax(f1))
    return float(thresholds[i]), (f"best validation F1 (precision {target_precision:g} is not reached on "
                                  f"validation; best precision there {precision.max():.2f})")


__all__ = ["LABEL", "TTF", "Explanation", "FailureDataError", "FailurePredictor", "choose_threshold",
           "model_columns", "model_frame"]
