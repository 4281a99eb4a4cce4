"""A forecast as a picture: recent history, the forecast, its 80 % and 95 % intervals, and the actuals."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


def plot_forecast(history: pd.Series, forecast: pd.DataFrame, path: str | Path, actual: pd.Series | None = None,
                  title: str = "", last: int | None = None, limit: float | None = None) -> Path:
    """Write a PNG. ``forecast`` is a forecaster's frame (an ``actual`` column is drawn when ``actual`` is
    not given); ``last`` keeps only that many points of history; ``limit`` draws a capacity line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # A Figure with its own Agg canvas: no pyplot state, no global backend switch, safe in threads.
    fig = Figure(figsize=(11, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    hist = history.iloc[-last:] if last else history
    ax.plot(hist.index, hist.to_numpy(), color="0.3", lw=1, label="history")
    t = forecast.index
    ax.fill_between(t, forecast["yhat_lower_95"], forecast["yhat_upper_95"], color="tab:blue", alpha=0.15,
                    lw=0, label="95 % interval")
    ax.fill_between(t, forecast["yhat_lower_80"], forecast["yhat_upper_80"], color="tab:blue", alpha=0.3,
                    lw=0, label="80 % interval")
    ax.plot(t, forecast["yhat"], color="tab:blue", lw=1.5, label="forecast")
    if actual is None and "actual" in forecast.columns:
        actual = forecast["actual"]
    if actual is not None:
        ax.plot(actual.index, actual.to_numpy(), color="tab:orange", lw=1, label="actual")
    if limit is not None:
        ax.axhline(limit, color="tab:red", ls="--", lw=1, label=f"limit {limit:g}")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8, ncols=3)
    ax.tick_params(labelsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
