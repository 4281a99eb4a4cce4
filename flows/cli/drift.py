"""`cerebro drift`: the drift check now, through the drift flow (flows/drift.py)."""
from __future__ import annotations

import typer

from flows.cli.common import ConfigOpt, JsonOpt, fail, out, print_json, progress, settings_or_exit


def drift(
    config: str | None = ConfigOpt,
    end: str | None = typer.Option(None, help="End of the current window, ISO 8601 (default: the lake's newest row)."),
    act: bool = typer.Option(False, "--act", help="Act on the decision as the hourly deployment does: run the "
                             "retraining deployment, or serve the fallback model. Default: report only."),
    as_json: bool = JsonOpt,
):
    """Check drift now: the lake's last `drift.current_hours` against the `drift.reference_days` before them.

    Compares the live detector's inputs as it reads them (raw metrics when none is live), its scores and,
    where incidents were recorded, its F1; writes the Evidently HTML report and logs the check to MLflow.

    Examples:

        cerebro drift                              # report only

        cerebro drift --end 2026-11-20T00:00Z --json

        cerebro drift --act                        # retrain or fall back, as `drift/hourly` would
    """
    settings = settings_or_exit(config)
    if end is not None:
        import pandas as pd

        try:
            pd.Timestamp(end)
        except ValueError:
            fail(f"--end {end!r} is not a time: expected ISO 8601, e.g. 2026-11-20T00:00Z", 2)
    from flows.drift import drift_flow

    with progress("drift check"):
        try:
            result = drift_flow(config=config, end=end, trigger=act)
        except Exception as exc:  # noqa: BLE001 - the flow has already logged the details
            fail(str(exc))
    if as_json:
        print_json(result)
        return
    action = result["action"]
    out.print(f"[bold]{action['action']}[/bold] ({'acted on' if action['applied'] else 'report only'})")
    for reason in action["reasons"]:
        out.print(f"  - {reason}", highlight=False, soft_wrap=True)
    out.print(f"Compared: {result['compared']}: {result['share_drifted']:.0%} of metrics drifted "
              f"({', '.join(result['drifted_metrics']) or 'none'}; threshold {settings.drift.drift_share:.0%})")
    pred = result.get("prediction") or {}
    if pred:
        out.print(f"Scores of {result['model']}: PSI {pred['psi']:.2f}, alarm rate "
                  f"{pred['alarm_rate_reference']:.2%} -> {pred['alarm_rate_current']:.2%}")
    out.print(f"Report {result['html']}; MLflow run {result['mlflow_run_id']}")
