"""A request screened before any model sees it: what no model can take is refused with a 422 that names the
field, and what is merely suspicious is scored and counted in the answer's ``notes``.

Refused: a timestamp outside ``serving.earliest_year`` .. ``serving.latest_year`` (a window inside the
range pandas' nanoseconds can hold, so no stamp can wrap around int64), a finite value larger in magnitude
than ``serving.max_abs_value`` (1e200 overflows a model's float32 or a rolling variance). Noted: values
read as missing (null, NaN, Infinity; infinities become null here so that every path reads them alike),
control characters in names, and (``unknown_services``) services the model was not fitted on.
"""
from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_US = timedelta(microseconds=1)


class RequestProblem(ValueError):
    """One field of a request no model can take: a 422 with ``field``, ``problem`` and what was sent."""

    def __init__(self, field: str, problem: str, got=None):
        super().__init__(f"{field}: {problem}")
        self.field, self.problem, self.got = field, problem, got


@dataclass(frozen=True)
class Limits:
    earliest: datetime  # aware, UTC; stamps before it are refused
    latest: datetime  # aware, UTC; stamps at or after it are refused
    max_abs_value: float

    @classmethod
    def from_settings(cls, cfg) -> Limits:
        return cls(datetime(cfg.earliest_year, 1, 1, tzinfo=UTC), datetime(cfg.latest_year + 1, 1, 1, tzinfo=UTC),
                   float(cfg.max_abs_value))

    @property
    def earliest_ns(self) -> int:
        return epoch_ns(self.earliest)

    @property
    def latest_ns(self) -> int:
        return epoch_ns(self.latest)

    def window(self) -> str:
        return f"{self.earliest:%Y-%m-%d} to {self.latest - timedelta(seconds=1):%Y-%m-%dT%H:%M:%SZ}"


def epoch_ns(t: datetime) -> int:
    """Exact epoch nanoseconds of ``t`` as a Python int (naive: UTC, as the schema says); never wraps."""
    return ((t - (EPOCH if t.tzinfo else _EPOCH_NAIVE)) // _US) * 1000


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _stamp(t: datetime, field: str, limits: Limits) -> None:
    t = _utc(t)
    if not limits.earliest <= t < limits.latest:
        raise RequestProblem(field, f"timestamp {t.isoformat()} is outside the plausible window "
                             f"{limits.window()} (serving.earliest_year, serving.latest_year)", t.isoformat())


def _stamps_ns(ns: np.ndarray, field: str, limits: Limits) -> None:
    bad = np.flatnonzero((ns < limits.earliest_ns) | (ns >= limits.latest_ns))
    if len(bad):
        i = int(bad[0])
        _stamp(EPOCH + timedelta(microseconds=int(ns[i]) // 1000), f"{field}[{i}]", limits)


class _Tally:
    def __init__(self, limits: Limits):
        self.limits = limits
        self.null = self.nan = self.inf = 0

    def value(self, v, field: str):
        """``v`` as the models read it (None for missing); refuses a finite value too large to represent."""
        if v is None:
            self.null += 1
            return None
        if math.isnan(v):
            self.nan += 1
            return v
        if math.isinf(v):
            self.inf += 1
            return None
        if abs(v) > self.limits.max_abs_value:
            raise RequestProblem(field, f"{v:g} is larger in magnitude than a model can take (at most "
                                 f"{self.limits.max_abs_value:g}, serving.max_abs_value)", v)
        return v

    def values(self, values: list, field: str) -> None:
        """The same over a list, in numpy; infinities in ``values`` become None in place."""
        arr = np.array([np.nan if v is None else v for v in values], dtype="float64")
        nan = np.isnan(arr)
        if nan.any():  # a null and a NaN both read as NaN here: count them apart
            nulls = sum(v is None for v in values)
            self.null += nulls
            self.nan += int(nan.sum()) - nulls
        inf = np.isinf(arr)
        if inf.any():
            self.inf += int(inf.sum())
            for i in np.flatnonzero(inf):
                values[i] = None
        big = np.flatnonzero(~nan & ~inf & (np.abs(arr) > self.limits.max_abs_value))
        if len(big):
            self.value(float(arr[big[0]]), f"{field}[{int(big[0])}]")

    def note(self) -> list[str]:
        parts = [f"{n} {what}" for n, what in ((self.null, "null"), (self.nan, "NaN"), (self.inf, "Infinity")) if n]
        return [f"values read as missing: {', '.join(parts)}"] if parts else []


def _controls(name: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in name)


def _names_note(what: str, names) -> list[str]:
    odd = sorted({n for n in names if _controls(n)})
    if not odd:
        return []
    return [f"{len(odd)} {what} name(s) hold control characters: {_shown(odd)}"]


def _shown(names: list[str]) -> str:
    """The first five of ``names``, quoted, and how many more."""
    return ", ".join(repr(n) for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def screen(req, limits: Limits) -> list[str]:
    """Refuse (``RequestProblem``) what no model can take in a /v1/score or /v1/failure body; the notes for
    what is suspicious. Infinite values become None in ``req`` (read as missing, as NaN and null are)."""
    tally = _Tally(limits)
    for i, p in enumerate(req.telemetry):
        _stamp(p.timestamp, f"telemetry[{i}].timestamp", limits)
        p.value = tally.value(p.value, f"telemetry[{i}].value")
    for i, s in enumerate(req.series):
        ns = s.epoch_ns()
        if ns is not None:
            _stamps_ns(ns, f"series[{i}].timestamps", limits)
        else:
            for j, t in enumerate(s.timestamps):
                _stamp(t, f"series[{i}].timestamps[{j}]", limits)
        tally.values(s.values, f"series[{i}].values")
    for i, e in enumerate(req.events):
        _stamp(e.timestamp, f"events[{i}].timestamp", limits)
    for service, levels in req.baselines.items():
        for metric, level in levels.items():
            if not math.isfinite(level) or abs(level) > limits.max_abs_value:
                raise RequestProblem(f"baselines.{service}.{metric}", f"a baseline must be a finite number of "
                                     f"magnitude at most {limits.max_abs_value:g}", level)
    for i, r in enumerate(getattr(req, "rows", [])):
        _stamp(r.timestamp, f"rows[{i}].timestamp", limits)
        for name, v in r.features.items():
            r.features[name] = tally.value(v, f"rows[{i}].features.{name}")
    services = {p.service for p in req.telemetry} | {s.service for s in req.series} | \
        {r.service for r in getattr(req, "rows", [])}
    metrics = {p.metric for p in req.telemetry} | {s.metric for s in req.series}
    return tally.note() + _names_note("service", services) + _names_note("metric", metrics)


def screen_names(names: list[str], what: str) -> list[str]:
    """Notes for a list of names (/v1/forecast's series)."""
    return _names_note(what, names)


def unknown_services_note(services, known: set[str] | None) -> list[str]:
    """A note naming the request's services the model was not fitted on (scored with the fleet-wide scaling)."""
    if not known:
        return []
    unknown = sorted({str(s) for s in services} - known)
    if not unknown:
        return []
    return [f"{len(unknown)} service(s) the model was not trained on, scored with the fleet-wide scaling: "
            + _shown(unknown)]
