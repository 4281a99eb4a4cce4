"""`cerebro llm providers`: the LLM gateway's providers as configured (agents/llm does the work)."""
from __future__ import annotations

import typer

from flows.cli.common import ConfigOpt, JsonOpt, out, print_json, settings_or_exit

HELP = ("The agents' LLM gateway: providers, routing, limits and the response cache (docs/llm.md).\n\n"
        "    cerebro llm providers [--json] [--no-probe]")


def providers(
    probe: bool = typer.Option(True, "--probe/--no-probe", help="Ask each configured endpoint whether it answers "
                               "(one small request each; no tokens are spent)."),
    as_json: bool = JsonOpt,
    config: str | None = ConfigOpt,
):
    """Each provider's reachability, the models routed to it, its rate limits, its circuit and the cache's hit rate.

    A provider with no API key (or no base_url) is listed as not configured and is skipped by the gateway;
    requests then go down the fallback chain, ending at `offline` (the evidence-only report).
    """
    from agents.llm import build_gateway

    settings = settings_or_exit(config)
    gateway = build_gateway(settings)
    rows = gateway.status(probe=probe)
    routing = {task: route for task, route in settings.llm.tasks.items()}
    if as_json:
        print_json({"providers": rows, "tasks": routing, "fallback": settings.llm.fallback,
                    "cache": settings.llm.cache})
        return
    from rich.table import Table

    table = Table(title=f"LLM providers (cache: {settings.llm.cache})")
    for column in ("provider", "kind", "self-hosted", "reachable", "models", "limits", "circuit", "cache hits"):
        table.add_column(column)
    for r in rows:
        reachable = {True: "yes", False: "no", None: ""}[r["reachable"]]
        if r["detail"]:
            reachable = f"{reachable} ({r['detail']})" if reachable else r["detail"]
        rate = "" if r["cache_hit_rate"] is None else f"{r['cache_hit_rate']:.0%} of {r['cache_lookups']:,}"
        table.add_row(r["provider"], r["kind"], "yes" if r["self_hosted"] else "", reachable,
                      ", ".join(r["models"]), r["limits"], r["circuit"], rate)
    out.print(table)
    out.print("tasks: " + ", ".join(f"{t} -> {route}" for t, route in routing.items())
              + "; fallback: " + " -> ".join(settings.llm.fallback))
