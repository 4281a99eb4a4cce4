"""`cerebro deploy`: a registered model onto a target, the local scoring service or a SageMaker endpoint."""
from __future__ import annotations

import typer

from flows.cli.common import ConfigOpt, console, fail, out, print_json, settings_or_exit


def deploy(
    name: str = typer.Argument(..., help="Registered model, e.g. cerebro-detector-ensemble."),
    version: str | None = typer.Option(None, "--version", "-v", help="Make this version champion and deploy it "
                                       "(default: the champion as it is)."),
    target: str | None = typer.Option(None, "--target", "-t", help="local or sagemaker (default: deploy.target)."),
    kind: str | None = typer.Option(None, help="detector, forecaster or failure (default: from NAME)."),
    port: int | None = typer.Option(None, help="local: the service's port (default: serving.port)."),
    stop: bool = typer.Option(False, "--stop", help="local: stop the service (SIGTERM, then SIGKILL)."),
    status: bool = typer.Option(False, "--status", help="What runs: the service's state, or the endpoint's variants and auto-scaling."),
    rollback: bool = typer.Option(False, "--rollback", help="sagemaker: all traffic back to the previous variant."),
    config: str | None = ConfigOpt,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
):
    """Deploy NAME (its champion, or --version, which becomes champion first) to a target.

    **local**: `cerebro serve` as a detached process serving NAME on `serving.port` (state in
    `<home>/run/serve-<port>.json`, log in `<home>/logs/serve-<port>.log`); ready when `/readyz` answers.
    When it already runs, it is not restarted: it reloads its aliases and swaps to the version (blue-green),
    or refuses it and keeps the live one (exit code 3).

    **sagemaker**: the version's MLflow artifacts as `model.tar.gz` on S3, a SageMaker model, and the endpoint:
    created on the first deploy; later, the new model goes to the idle `blue`/`green` variant and the traffic
    moves in `deploy.sagemaker.traffic_steps`, rolled back when an alarm fires (exit code 3). Every variant
    then gets a target-tracking auto-scaling policy (`deploy.sagemaker.autoscaling`), which `--status` shows.

    Examples:

        cerebro deploy cerebro-detector-ensemble --target local

        cerebro deploy cerebro-detector-ensemble --version 5 --target local     # swap, no restart

        cerebro deploy cerebro-detector-ensemble --target local --status

        cerebro deploy cerebro-detector-ensemble --target local --stop

        cerebro deploy cerebro-detector-ensemble --version 5 --target sagemaker --json

        cerebro deploy cerebro-detector-ensemble --target sagemaker --rollback
    """
    from serving.deploy import DeployError

    settings = settings_or_exit(config)
    target = target or settings.deploy.target
    if target not in ("local", "sagemaker"):
        fail(f"--target {target!r}: expected local or sagemaker", 2)
    if sum((stop, status, rollback)) > 1 or (stop and target != "local") or (rollback and target != "sagemaker"):
        fail("use one of --stop (local), --status, --rollback (sagemaker)", 2)
    try:
        if target == "local":
            from serving.deploy.local import deploy_local, status_local, stop_local

            if stop:
                result = stop_local(settings, port, name)
            elif status:
                result = status_local(settings, port)
            else:
                with console.status(f"deploying {name} to the local service"):
                    result = deploy_local(settings, name, version, kind=kind, port=port, config=config)
        else:
            from serving.deploy.sagemaker import deploy_sagemaker, rollback_sagemaker, status_sagemaker

            if rollback:
                result = rollback_sagemaker(settings, name)
            elif status:
                result = status_sagemaker(settings, name)
            else:
                with console.status(f"deploying {name} to SageMaker"):
                    result = deploy_sagemaker(settings, name, version, kind=kind)
    except DeployError as exc:
        fail(str(exc))
    if as_json:
        print_json(result)
    else:
        _print(result)
    if result.get("action") in ("refused", "rolled back") and not rollback:
        raise typer.Exit(3)


def _print(result: dict) -> None:

    for note in result.get("notes", []):
        out.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    action = result.get("action")
    colour = {"refused": "red", "rolled back": "red", "stale": "yellow", "not running": "yellow"}.get(action, "green")
    head = f"[{colour}]{action}[/{colour}]" if action else ("[green]running[/green]" if result.get("running") or
                                                             result.get("exists") else "[yellow]not running[/yellow]")
    what = {k: v for k, v in result.items()
            if k not in ("notes", "action", "autoscaling") and v not in (None, [], {})}
    out.print(head + "  " + ", ".join(f"{k}={v}" for k, v in what.items()), highlight=False, soft_wrap=True)
    if "autoscaling" in result:
        from serving.deploy.autoscaling import summary

        lines = summary(result["autoscaling"]) or ["none registered"]
        for line in lines:
            out.print(f"auto-scaling {line}", highlight=False, soft_wrap=True)
