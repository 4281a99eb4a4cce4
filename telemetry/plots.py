"""Pictures of a simulated fleet: one strip per service, the incidents shaded where they hit."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from telemetry.simulator import PRIMARY_METRIC, SimulationResult

_COLOURS = {
    "cpu_saturation": "tab:red", "memory_leak": "tab:purple", "slow_dependency": "tab:orange",
    "error_burst": "tab:pink", "disk_fill": "tab:brown", "connection_pool_exhaustion": "tab:olive",
    "traffic_surge": "tab:cyan",
}


def plot_fleet(result: SimulationResult, path: str | Path) -> Path:
    """Per service, the p50 latency and (scaled) the metric of each incident rooted there; incidents shaded
    dark at the root cause and light where they spread."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = result.telemetry
    services = result.topology.names
    fig, axes = plt.subplots(len(services), 1, figsize=(14, 1.15 * len(services) + 1), sharex=True)
    for ax, service in zip(axes, services):
        mine = t[t["service"] == service]
        lat = mine[mine["metric"] == "latency_p50_ms"].set_index("timestamp")["value"]
        ax.plot(lat.index, lat.to_numpy(), lw=0.6, color="0.35")
        ax.set_ylabel(service, rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(labelsize=7)
        for inc in result.incidents.itertuples():
            if service not in inc.affected_services:
                continue
            root = inc.root_cause_service == service
            ax.axvspan(inc.start, inc.end, color=_COLOURS[inc.kind], alpha=0.45 if root else 0.15, lw=0)
            if root:
                metric = PRIMARY_METRIC[inc.kind]
                s = mine[mine["metric"] == metric].set_index("timestamp")["value"]
                window = s[(s.index >= inc.start - pd.Timedelta(hours=2)) & (s.index <= inc.end + pd.Timedelta(hours=1))]
                if len(window) and window.max() > window.min():
                    scaled = (window - window.min()) / (window.max() - window.min()) * lat.max()
                    ax.plot(scaled.index, scaled.to_numpy(), lw=0.8, color=_COLOURS[inc.kind])
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.5) for c in _COLOURS.values()]
    fig.legend(handles, list(_COLOURS), loc="upper center", bbox_to_anchor=(0.5, 0.975), ncol=7, fontsize=8,
               frameon=False)
    fig.suptitle("Fleet: p50 latency per service; incidents shaded (dark = root cause, line = its key metric, "
                 "rescaled)", fontsize=9, y=0.995)
    fig.tight_layout(rect=(0, 0, 1, 0.955))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
