"""The ML team's alerts as people read them: one line of Slack text per event (no Prefect here).

    drift_text(summary, compared=9)        # from the drift flow's summary
    rollback_text("cerebro-detector-ensemble", "7", "6", "error rate 12% > 5%", where="scoring service")
    fallback_text("cerebro-detector-ensemble", "3", "cerebro-detector-zscore", "5", ["F1 fell ..."])
    pipeline_failed_text("pipeline", "clever-fox", "ValueError: no such source", stage="ingest", where=url)

``flows.notify`` sends them. Figures are rounded and a missing one reads "n/a", never nan or None.
"""
from __future__ import annotations

import math

MAX_LISTED = 6  # metrics named in one alert; the rest are counted


def _fig(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _first_line(text, limit: int = 300) -> str:
    line = next((part.strip() for part in str(text or "").splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[:limit - 1] + "…"


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def drift_text(summary: dict, compared: int | None = None) -> str:
    """``summary``: what the drift flow returns; ``compared``: how many metrics were compared."""
    drifted = list(summary.get("drifted_metrics") or [])
    of = f" of {compared}" if compared else ""
    parts = [f"{len(drifted)}{of} metrics drifted" + (f" ({_listed(drifted)})" if drifted else "")]
    model = summary.get("model")
    parts[0] += f" in the inputs of {model}" if model and str(summary.get("compared", "")).startswith("inputs") \
        else " in the raw metrics"
    pred = summary.get("prediction") or {}
    if pred.get("drifted"):
        parts.append(f"{model}'s scores moved (PSI {_fig(pred.get('psi'))}, alarm rate "
                     f"{_pct(pred.get('alarm_rate_reference'))} -> {_pct(pred.get('alarm_rate_current'))})")
    action = summary.get("action") or {}
    if action.get("action") == "retrain":
        if action.get("triggered"):
            run = action.get("flow_run_name") or action.get("flow_run_id")
            parts.append(f"retrain started ({action.get('deployment')} run {run})")
        else:
            parts.append("retrain not started: " + _first_line(action.get("why") or "report only"))
    elif action.get("action") == "fallback" and not action.get("applied"):
        parts.append("fallback advised, not applied: " + "; ".join(action.get("reasons") or []))
    if summary.get("html"):
        parts.append(f"report {summary['html']}")
    return ":warning: CEREBRO drift: " + "; ".join(parts)


def _pct(value) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.1%}"


def rollback_text(model: str, from_version, to_version, reason: str, where: str) -> str:
    """``where``: who rolled back (the scoring service, `cerebro models rollback` ...); ``to_version`` None:
    nothing earlier could take over, so the model stays live."""
    if to_version is None:
        return (f":rotating_light: CEREBRO rollback impossible: {model} v{_fig(from_version)} stays live ({where}), "
                f"no earlier version loads; reason: {_first_line(reason)}")
    return (f":rewind: CEREBRO rollback: {model} v{_fig(from_version)} -> v{_fig(to_version)} ({where}); "
            f"reason: {_first_line(reason)}")


def fallback_text(model: str, from_version, fallback: str, new_version, reasons: list[str]) -> str:
    return (f":rotating_light: CEREBRO fallback: {model} v{_fig(from_version)} fell back to {fallback} "
            f"(now {model} v{_fig(new_version)}, its champion) because {'; '.join(reasons) or 'n/a'}. "
            f"Undo with `cerebro models rollback {model}`")


def pipeline_failed_text(flow: str, run_name: str, error: str, stage: str | None = None,
                         where: str | None = None, state: str = "failed") -> str:
    """``where``: the Prefect UI's page of the run when ``PREFECT_UI_URL`` is known, else the run's id."""
    at = f" at {stage}" if stage else ""
    return (f":x: CEREBRO {flow} run {run_name} {state}{at}: {_first_line(error) or 'no message'}"
            + (f"; see {where}" if where else ""))
