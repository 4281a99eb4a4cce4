"""Request and response bodies of the scoring service (they are its OpenAPI documentation too)."""
from __future__ import annotations

from datetime import datetime

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

MAX_POINTS = 200_000  # one request: a day of 9 metrics for 15 services is 194,400 points

_POINTS = [{"timestamp": "2026-11-20T10:00:00Z", "service": "cart", "metric": "cpu_pct", "value": 41.5},
           {"timestamp": "2026-11-20T10:00:00Z", "service": "cart", "metric": "error_rate", "value": 0.004},
           {"timestamp": "2026-11-20T10:01:00Z", "service": "cart", "metric": "cpu_pct", "value": 43.0}]
_SERIES = [{"service": "cart", "metric": "cpu_pct", "timestamps": ["2026-11-20T10:00:00Z", "2026-11-20T10:01:00Z"],
            "values": [41.5, 43.0]}]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Point(_Body):
    timestamp: datetime = Field(description="ISO 8601 (UTC when no offset is given) or epoch seconds")
    service: str = Field(min_length=1, max_length=128)
    metric: str = Field(min_length=1, max_length=128)
    value: float | None = Field(description="the sample; null for a missing one")


def utc_z_ns(stamps) -> np.ndarray | None:
    """Epoch nanoseconds of ``YYYY-MM-DDTHH:MM:SSZ`` strings, read digit by digit in numpy in one pass (a
    ``datetime``'s ``timestamp()`` costs about half a microsecond each: a third of a 540-point request's
    scoring). None when any stamp has another form, or a year outside 1678..2261 (the years pandas'
    int64 nanoseconds hold whole: further out the sum below would wrap around); those take the per-object
    path, which refuses them (``serving.screening``). The stamps must already be valid (pydantic checked
    them): this only reads the fields."""
    if not isinstance(stamps, list) or not stamps:
        return None
    n = len(stamps)
    try:
        raw = "".join(stamps).encode("ascii")
    except (TypeError, UnicodeEncodeError):  # epoch seconds among them, or not ASCII: not this form
        return None
    if len(raw) != 20 * n:
        return None
    b = np.frombuffer(raw, dtype=np.uint8).reshape(n, 20)
    if not (b[:, _SEPARATORS] == _SEPARATOR_CODES).all():
        return None
    # float64 for BLAS (integer matmul has none); every field is exact in a double
    year, month, day, hour, minute, second = ((b - float(ord("0"))) @ _DIGITS).astype(np.int64).T
    if year.min() < NS_YEARS[0] or year.max() > NS_YEARS[1]:
        return None
    days = ((year - 1970) * 12 + month - 1).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64) + day - 1
    return (((days * 24 + hour) * 60 + minute) * 60 + second) * 1_000_000_000


NS_YEARS = (1678, 2261)  # the whole years inside pandas' nanosecond range (1677-09-21 .. 2262-04-11)
# "YYYY-MM-DDTHH:MM:SSZ": where the separators are, and each field's digits with their place values
_SEPARATORS = np.array([4, 7, 10, 13, 16, 19])
_SEPARATOR_CODES = np.frombuffer(b"--T::Z", dtype=np.uint8)
_DIGITS = np.zeros((20, 6))
for _f, (_at, _width) in enumerate([(0, 4), (5, 2), (8, 2), (11, 2), (14, 2), (17, 2)]):
    _DIGITS[_at: _at + _width, _f] = 10 ** np.arange(_width - 1, -1, -1)


class Series(_Body):
    service: str = Field(min_length=1, max_length=128)
    metric: str = Field(min_length=1, max_length=128)
    timestamps: list[datetime] = Field(min_length=1, max_length=MAX_POINTS,
                                       description="one per value, ISO 8601 or epoch seconds")
    values: list[float | None] = Field(min_length=1, max_length=MAX_POINTS)
    _ns: np.ndarray | None = PrivateAttr(default=None)  # set by ``Window``: the stamps in one numpy pass

    def epoch_ns(self) -> np.ndarray | None:
        """The timestamps as epoch nanoseconds if they came as ``...Z`` strings, else None."""
        return self._ns

    @model_validator(mode="after")
    def _same_length(self) -> Series:
        if len(self.timestamps) != len(self.values):
            raise ValueError(f"timestamps has {len(self.timestamps)} items but values has {len(self.values)}; "
                             "expected one timestamp per value")
        return self


class Event(_Body):
    timestamp: datetime
    service: str = Field(min_length=1, max_length=128)
    kind: str = Field(description="deploy and rollback events reset `minutes_since_deploy`")


class Window(_Body):
    """A window of raw telemetry: ``telemetry`` (one object per sample) and/or ``series`` (columnar)."""

    key: str | None = Field(default=None, max_length=256,
                            description="routing key for A/B splits; default: the window's services")
    telemetry: list[Point] = Field(default_factory=list, max_length=MAX_POINTS,
                                   description="samples in long form, one a minute per metric as a rule")
    series: list[Series] = Field(default_factory=list, max_length=10_000,
                                 description="the same samples, one object per (service, metric)")
    events: list[Event] = Field(default_factory=list, max_length=10_000,
                                description="deploys and rollbacks inside or before the window")
    baselines: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="service -> metric -> its 24-hour baseline level (e.g. from the online "
        "store); fills `<metric>__base_24h` where the window is too short to hold a completed hour")

    @model_validator(mode="wrap")
    @classmethod
    def _stamps_in_one_pass(cls, data, handler) -> Window:
        # pydantic validates every stamp (and rejects a bad one with its position); the scorer's epoch
        # nanoseconds come from the same strings, all series at once, where they are all "...Z".
        window = handler(data)
        raw = data.get("series") if isinstance(data, dict) else None
        if (window.series and isinstance(raw, list) and len(raw) == len(window.series)
                and all(isinstance(s, dict) for s in raw)):  # a JSON body (Python callers may pass Series)
            ns = utc_z_ns([t for s in raw for t in s["timestamps"]])
            if ns is not None:
                at = 0
                for series in window.series:
                    series._ns, at = ns[at: at + len(series.timestamps)], at + len(series.timestamps)
        return window

    @model_validator(mode="after")
    def _some_samples(self) -> Window:
        if not self.telemetry and not self.series:
            raise ValueError("the window holds no samples: give `telemetry` (a list of {timestamp, service, "
                             "metric, value}) or `series` (a list of {service, metric, timestamps, values})")
        points = len(self.telemetry) + sum(len(s.values) for s in self.series)
        if points > MAX_POINTS:
            raise ValueError(f"the window holds {points} samples; at most {MAX_POINTS} per request")
        return self


class ScoreRequest(Window):
    last: int | None = Field(default=None, ge=1, le=100_000,
                             description="answer only each service's last N minutes (default: every minute)")
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"telemetry": _POINTS, "last": 1}, {"series": _SERIES, "key": "tenant-42"}]})


class ScoreRow(BaseModel):
    service: str
    timestamp: str = Field(description="the minute scored, ISO 8601 UTC")
    score: float = Field(description="the detector's raw score")
    calibrated: float = Field(description="0-1 on the scale every detector shares")
    is_anomaly: int = Field(description="1 when the score passes the threshold learned in training")


class Served(BaseModel):
    model: str = Field(description="registered model name")
    version: str
    variant: str = Field(description="champion or challenger")
    notes: list[str] = Field(default_factory=list, description="what was suspicious in the request but scored: "
                             "values read as missing (null, NaN, Infinity), control characters in names, "
                             "services the model was not trained on")


class ScoreResponse(Served):
    rows: list[ScoreRow]
    anomalies: int = Field(description="rows flagged as anomalies")
    missing_metrics: list[str] = Field(description="metrics the model uses that the window lacked (read as "
                                       "at their baseline)")


class ForecastRequest(_Body):
    key: str | None = Field(default=None, max_length=256, description="routing key; default: the series")
    series: list[str] = Field(min_length=1, max_length=100,
                              description="SERVICE/METRIC names the forecaster was fitted on")
    horizon: int = Field(ge=1, le=24 * 90, description="steps ahead, in the model's frequency (hourly by default)")
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"series": ["frontend/request_rate"], "horizon": 24}]})


class ForecastStep(BaseModel):
    series: str
    timestamp: str
    yhat: float
    yhat_lower: float | None = None
    yhat_upper: float | None = None
    yhat_lower_80: float | None = None
    yhat_upper_80: float | None = None
    yhat_lower_95: float | None = None
    yhat_upper_95: float | None = None


class ForecastResponse(Served):
    steps: list[ForecastStep]


class FeatureRow(_Body):
    service: str = Field(min_length=1, max_length=128)
    timestamp: datetime
    features: dict[str, float | None] = Field(description="failure_v1 feature name -> value (missing: imputed)")


class FailureRequest(Window):
    """Either a raw ``telemetry``/``series`` window (the newest minute of each service is judged) or ``rows`` of
    ready ``failure_v1`` features."""

    rows: list[FeatureRow] = Field(default_factory=list, max_length=10_000)
    top_k: int = Field(default=3, ge=0, le=20, description="factors to explain each answer with (0: none)")
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"telemetry": _POINTS, "top_k": 3},
        {"rows": [{"service": "cart", "timestamp": "2026-11-20T10:00:00Z",
                   "features": {"memory_pct": 91.0, "memory_pct__base_24h": 60.0}}]}]})

    @model_validator(mode="after")
    def _some_samples(self) -> FailureRequest:  # overrides Window's: rows count as samples
        if not self.telemetry and not self.series and not self.rows:
            raise ValueError("nothing to judge: give `rows` (failure_v1 features per service) or a telemetry "
                             "window (`telemetry` or `series`)")
        return self if self.rows else Window._some_samples(self)


class Factor(BaseModel):
    feature: str
    value: float | None
    contribution: float


class FailureRow(BaseModel):
    service: str
    timestamp: str
    failure_probability: float
    alarm: int
    time_to_failure_minutes: float | None
    top_factors: list[Factor]


class FailureResponse(Served):
    rows: list[FailureRow]


class LiveModelInfo(BaseModel):
    kind: str
    variant: str
    model: str
    version: str
    alias: str = Field(description="the alias it was loaded through (latest: no alias was set)")
    live_since: str
    loaded_at: str
    run_id: str | None
    fast_path: bool = Field(description="scored by the compiled path checked equal to the bundle's at warm-up")
    batching: bool = Field(default=False, description="/v1/score requests that arrive together are scored in "
                           "one call (checked equal to one at a time at warm-up; serving.max_batch)")
    window: dict = Field(description="the rolling window the rollback limits are judged on")


class ModelsResponse(BaseModel):
    live: list[LiveModelInfo]
    refused: list[dict] = Field(description="versions refused (load or warm-up failed, or rolled back), with why")
    events: list[dict] = Field(description="recent switches, refusals and rollbacks, newest last")
    pid: int | None = Field(default=None, description="the process that answered: with `cerebro serve --workers "
                            "N` each worker has its own models, events and metrics")
