"""Synthetic anomalies planted in a real series: how the label-free model choice tests candidates on the
series' own training part, and how benchmarks/detection_real.py makes labelled cases from real
unlabelled series. Each kind is one users meet: spikes, level shifts, trend breaks, variance changes,
and seasonal anomalies (a value normal at another time of day, at the wrong time)."""
from __future__ import annotations

import numpy as np

from training.detectors.series.base import robust_scale

KINDS = ("spike", "level_shift", "trend_break", "variance", "seasonal")


def inject(x: np.ndarray, rng: np.random.Generator, n_events: int, period: int = 0, length: int = 12,
           kinds: tuple[str, ...] = KINDS, size: tuple[float, float] = (4.0, 10.0),
           margin: int = 0, unit: float | None = None) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, str]]]:
    """A copy of ``x`` with ``n_events`` anomalies placed at random without overlap (after ``margin`` rows),
    the 0/1 label per row and the events (start, stop, kind). Sizes are in units of the series' noise (the
    robust spread of its first differences), so they are as hard on a smooth series as on a noisy one, or
    of ``unit`` when given.
    ``seasonal`` needs ``period`` (> 1) and is skipped without one."""
    x = np.asarray(x, dtype=float).copy()
    n = len(x)
    labels = np.zeros(n, dtype=int)
    noise = robust_scale(np.diff(x)) / np.sqrt(2) if n > 2 else 1.0
    if unit is not None:  # the caller's unit instead (a size relative to the series' range, not its noise)
        noise = unit
    usable = [k for k in kinds if k != "seasonal" or period > 1]
    events: list[tuple[int, int, str]] = []
    for _ in range(20 * n_events):
        if len(events) >= n_events:
            break
        kind = usable[rng.integers(len(usable))]
        span = 1 + int(rng.integers(0, 3)) if kind == "spike" else max(2, int(length * rng.uniform(0.5, 1.5)))
        lo = max(margin, period if kind == "seasonal" else 0)
        if n - span - lo <= 1:
            continue
        start = int(rng.integers(lo, n - span))
        stop = start + span
        pad = max(2, span)
        if labels[max(0, start - pad):stop + pad].any():
            continue
        amp = rng.uniform(*size) * noise * rng.choice([-1.0, 1.0])
        if kind in ("spike", "level_shift"):  # a spike is a shift of 1-3 rows
            x[start:stop] += amp
        elif kind == "trend_break":
            x[start:stop] += amp * np.linspace(0.2, 1.0, span)
        elif kind == "variance":
            x[start:stop] += rng.normal(0.0, abs(amp) / 2, span)
        else:  # seasonal: the values from half a period away, in their wrong place
            src = start - period // 2
            if np.allclose(x[src:src + span], x[start:stop]):
                continue  # the two times look alike: nothing would be anomalous
            x[start:stop] = x[src:src + span]
        labels[start:stop] = 1
        events.append((start, stop, kind))
    return x, labels, events
