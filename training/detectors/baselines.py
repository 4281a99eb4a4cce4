"""Plain baselines every detector is shown beside, computed from the raw telemetry (not registered or served).

    scores = rolling_zscore(telemetry, index)      # one score per row of index (service, timestamp)

The rolling z-score is what a team would set up first: each metric against the mean and standard deviation of
its own trailing day, the row's score the largest |z| over its metrics, an alarm above 5.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

ROLLING_Z_THRESHOLD = 5.0


def rolling_zscore(telemetry: pd.DataFrame, index: pd.MultiIndex, window: str = "1D",
                   min_periods: int = 12) -> np.ndarray:
    """The largest |z| over a service's metrics at each (service, timestamp) of ``index`` (NaN-free: 0 where
    the trailing window is too short). The window excludes the row itself (``closed="left"``)."""
    frame = telemetry.assign(timestamp=pd.to_datetime(telemetry["timestamp"], utc=True),
                             service=telemetry["service"].astype(str), metric=telemetry["metric"].astype(str))
    parts = []
    for (service, _metric), rows in frame.groupby(["service", "metric"], sort=False):
        x = rows.drop_duplicates("timestamp", keep="last").set_index("timestamp")["value"].sort_index()
        roll = x.rolling(window, closed="left", min_periods=min_periods)
        std = roll.std()
        z = ((x - roll.mean()).abs() / std.where(std > 0)).fillna(0.0)
        parts.append(pd.DataFrame({"service": service, "timestamp": z.index, "z": z.to_numpy()}))
    if not parts:
        return np.zeros(len(index))
    z = pd.concat(parts).groupby(["service", "timestamp"])["z"].max()
    # Feature rows sit on the minute a sample was ceiled to; match each row to its service's latest sample.
    keys = pd.MultiIndex.from_arrays([index.get_level_values(0).astype(str), pd.DatetimeIndex(index.get_level_values(1))])
    out = z.reindex(keys).to_numpy()
    if np.isnan(out).any():
        ceiled = z.copy()
        ceiled.index = pd.MultiIndex.from_arrays([z.index.get_level_values(0),
                                                  pd.DatetimeIndex(z.index.get_level_values(1)).ceil("min")])
        ceiled = ceiled[~ceiled.index.duplicated(keep="last")]
        out = np.where(np.isnan(out), ceiled.reindex(keys).to_numpy(), out)
    return np.nan_to_num(out, nan=0.0)
