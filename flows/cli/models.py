"""`cerebro models`: the registry's champions and challengers (list, promote through the gate, roll back)."""
from __future__ import annotations

import typer

from flows.cli.common import ConfigOpt, JsonOpt, console, fail, out, print_json, settings_or_exit

HELP = ("Registered models, their versions and aliases; promotion through the gate; rollback.\n\n"
        "A challenger becomes `champion` only when it beats the champion on the same held-out data by "
        "`lifecycle.margins` (detectors: F1, forecasters: MASE, failure predictor: PR-AUC). Every "
        "decision is an MLflow run in the `model-promotions` experiment.")


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def _print_decision(d, as_json: bool) -> None:

    if as_json:
        print_json(d.as_dict())
        return
    colour = {"promoted": "green", "first": "green", "forced": "yellow", "rollback": "yellow"}.get(d.decision, "red")
    out.print(f"[{colour}]{d.decision}[/{colour}] {d.name} v{d.version}: {d.reason}", highlight=False)
    f = d.figures
    if f is not None:
        out.print(f"  held-out rows {f.rows}; {f.metric}: champion {_fmt(f.champion)}, challenger {_fmt(f.challenger)}, "
                  f"improvement {_fmt(f.improvement)} ({'higher' if f.higher_is_better else 'lower'} is better; "
                  f"margin {_fmt(d.margin)})", highlight=False)
        extra = {k: v for k, v in f.detail.items() if not k.endswith(f"_{f.metric}")}
        if extra:
            out.print("  " + ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(extra.items())), highlight=False)
    out.print(f"  champion: {d.champion_before or 'none'} -> {d.champion_after or 'none'}; logged as MLflow run "
              f"{d.run_id} (experiment model-promotions)", highlight=False)


def list_cmd(config: str | None = ConfigOpt, as_json: bool = JsonOpt):
    """Every registered CEREBRO model: its versions, which holds `champion` / `challenger`, key metrics, and the
    last promotion decision of each version.

    Example:

        cerebro models list

        cerebro models list --json | jq '.[] | {name, aliases}'
    """
    from rich.table import Table

    from serving.registry import list_models

    settings = settings_or_exit(config)
    models = list_models(settings)
    if as_json:
        print_json(models)
        return
    if not models:
        out.print(f"no registered models in {settings.mlflow_tracking_uri_shown}; run the pipeline first: cerebro run")
        return
    table = Table(title=f"Registered models ({settings.mlflow_tracking_uri_shown})")
    for col in ("model", "version", "aliases", "key metrics", "last decision", "created (UTC)"):
        table.add_column(col)
    for m in models:
        for k, v in enumerate(m["versions"]):
            metrics = ", ".join(f"{name} {val:.3f}" for name, val in v["metrics"].items())
            table.add_row(m["name"] if k == 0 else "", v["version"], ", ".join(v["aliases"]), metrics,
                          v["last_decision"] or "", v["created"][:16])
    out.print(table)


def promote(
    name: str = typer.Argument(..., help="Registered model, e.g. cerebro-detector-ensemble."),
    version: str = typer.Argument(..., help="The version to make champion."),
    force: bool = typer.Option(False, "--force", help="Promote even if the gate says no (the figures are still "
                               "computed and logged when the held-out data allows)."),
    start: str | None = typer.Option(None, help="Held-out window start (ISO 8601, UTC); default: end minus "
                                     "lifecycle.heldout_hours."),
    end: str | None = typer.Option(None, help="Held-out window end; default: the lake's newest minute."),
    config: str | None = ConfigOpt,
    as_json: bool = JsonOpt,
):
    """Promote VERSION of NAME to `champion` if it beats the current champion on held-out data from the lake.

    Both versions score the same window (the lake's last `lifecycle.heldout_hours` unless --start/--end):
    detectors by event-wise F1 against the lake's incidents, forecasters by MASE against the actual series,
    the failure predictor by PR-AUC. The challenger must win by `lifecycle.margins`. A model with no champion
    takes the version directly. The figures are printed and logged (MLflow experiment `model-promotions`, and a
    `cerebro.promotion` tag on the version). Exit code 3 when the gate refuses.

    Examples:

        cerebro models promote cerebro-detector-ensemble 4

        cerebro models promote cerebro-failure-predictor 2 --start 2026-11-18 --end 2026-11-20

        cerebro models promote cerebro-detector-pca 3 --force
    """
    from serving.promotion import heldout_from_lake
    from serving.promotion import promote as do_promote
    from serving.registry import RegistryError, family_of

    settings = settings_or_exit(config)
    try:
        family_of(name)
        frame, labels, options = None, None, {}
        try:
            with console.status(f"building held-out data for {name} from the lake"):
                frame, labels, options = heldout_from_lake(settings, name, start, end)
        except (ValueError, RegistryError) as exc:
            if not force:
                raise
            console.print(f"[yellow]no held-out figures:[/yellow] {exc}")
        with console.status(f"judging {name} v{version}"):
            decision = do_promote(settings, name, version, frame, labels, force=force, **options)
    except (ValueError, RegistryError) as exc:
        fail(str(exc), 2)
    _print_decision(decision, as_json)
    if decision.decision == "rejected":
        raise typer.Exit(3)


def rollback(name: str = typer.Argument(..., help="Registered model whose champion goes back one step."),
             config: str | None = ConfigOpt, as_json: bool = JsonOpt):
    """Move `champion` of NAME back to the previous champion. The champions are remembered in the model's
    `cerebro.champion_history` tag, so rolling back again goes one further step back.

    Example:

        cerebro models rollback cerebro-detector-ensemble
    """
    from serving.promotion import rollback as do_rollback
    from serving.registry import RegistryError

    settings = settings_or_exit(config)
    try:
        decision = do_rollback(settings, name)
    except RegistryError as exc:
        fail(str(exc), 2)
    from flows.notify import notifier

    alert = notifier(settings)
    if alert is not None:
        alert("rollback", model=name, from_version=decision.champion_before, to_version=decision.champion_after,
              reason="by hand", where="`cerebro models rollback`")
    _print_decision(decision, as_json)
