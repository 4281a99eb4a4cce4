"""How busy the rest of the machine is while this process measures itself.

    load = OthersLoad()          # start counting
    ...                          # the work being timed
    load.cores()                 # cores other processes used meanwhile (0.0 on a quiet machine, 1.0 = one core)

From the kernel's counters through psutil: the whole machine's busy CPU time (steal included: on a shared
virtual machine the host gives the cores to other guests) less this process's own, over the wall clock. The
counters tick in hundredths of a second, so a stretch under a few tenths of a second reads coarsely.
"""
from __future__ import annotations

import time

# psutil.cpu_times() fields that are not work: idle and waiting on I/O; guest time is already in user and nice
_NOT_BUSY = {"idle", "iowait", "guest", "guest_nice"}


def _snapshot() -> tuple[float, float, float]:
    import psutil

    wall = time.perf_counter()
    machine = psutil.cpu_times()
    busy = sum(getattr(machine, f) for f in machine._fields if f not in _NOT_BUSY)
    own = psutil.Process().cpu_times()
    return wall, busy, own.user + own.system


class OthersLoad:
    """Cores other processes used since this object was made."""

    def __init__(self) -> None:
        self._start = _snapshot()

    def cores(self) -> float:
        wall, busy, own = _snapshot()
        w0, b0, o0 = self._start
        elapsed = wall - w0
        if elapsed <= 0:
            return 0.0
        return max(0.0, (busy - b0) - (own - o0)) / elapsed
