"""A picture of the suspects' abnormal metrics over the baseline and the window, each onset marked."""
from __future__ import annotations

from pathlib import Path

from agents.investigation.models import EvidenceBundle

MAX_PANELS = 5


def plot_suspects(bundle: EvidenceBundle, telemetry, path: str | Path) -> Path | None:
    """One panel per (service, metric): the symptom, the top cause's two strongest metrics, the next two
    causes' strongest; the window is
    shaded and each onset drawn as a red line. None when there is nothing abnormal to draw."""
    pairs = []
    if bundle.target and bundle.target_metric:
        pairs.append((bundle.target, bundle.target_metric, None))
    for i, c in enumerate(bundle.causes[:3]):
        for e in c.evidence[:2 if i == 0 else 1]:
            pairs.append((c.service, e.metric, e.onset))
    for a in bundle.abnormal:
        if a.service == bundle.target and a.metric == bundle.target_metric:
            pairs[0] = (a.service, a.metric, a.onset)
    seen, panels = set(), []
    for p in pairs:
        if p[:2] not in seen:
            seen.add(p[:2])
            panels.append(p)
    panels = panels[:MAX_PANELS]
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    svc = telemetry["service"].astype(str)
    met = telemetry["metric"].astype(str)
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 1.9 * len(panels) + 0.8), sharex=True, squeeze=False)
    for ax, (service, metric, onset) in zip(axes[:, 0], panels):
        s = telemetry[(svc == service) & (met == metric)].sort_values("timestamp")
        ax.plot(pd.to_datetime(s["timestamp"]), s["value"].to_numpy(), lw=0.8, color="0.25")
        ax.axvspan(bundle.window.start, bundle.window.end, color="tab:orange", alpha=0.12, lw=0)
        if onset is not None:
            ax.axvline(onset, color="tab:red", lw=1.2)
            ax.annotate(f"onset {onset:%H:%M}", (onset, 1), xycoords=("data", "axes fraction"), fontsize=7,
                        color="tab:red", va="top", ha="left")
        ax.set_title(f"{service} / {metric}", fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
    axes[0, 0].figure.suptitle("Suspects' metrics: baseline, window (shaded), onsets (red)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
