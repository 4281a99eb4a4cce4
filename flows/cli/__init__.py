"""The ``cerebro`` command line: every user entry point starts here.

This file is the table of commands: it builds the apps and registers each command from the module that
holds it. The command modules share :mod:`flows.cli.common` and never import each other; each parses its
options, calls the domain packages (or a Prefect flow of ``flows/``) and prints. Heavy libraries are
imported inside the commands so that ``cerebro --help`` answers at once.

    pipeline.py  run, simulate, ingest        detect.py    detect            forecast.py  forecast
    failure.py   predict-failure              drift.py     drift             ui.py        ui, deployments, env
    serve.py     serve                        stream.py    stream, replay    deploy.py    deploy
    kb.py        kb index | search | stats    models.py    models list | promote | rollback
    batch.py     batch                        quarantine.py  quarantine     rca.py  rca
    investigate.py  investigate              tools.py     tools list | run  mcp.py  mcp
    llm.py       llm providers
"""
from __future__ import annotations

import typer

from flows.cli import (
    batch,
    deploy,
    detect,
    drift,
    failure,
    forecast,
    investigate,
    kb,
    llm,
    mcp,
    models,
    pipeline,
    quarantine,
    rca,
    serve,
    stream,
    tools,
    ui,
)
from flows.cli.common import CerebroGroup, set_debug

app = typer.Typer(
    name="cerebro",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,
    cls=CerebroGroup,
)


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="Print the traceback of an error too, a refused "
                                    "input's included (give it before the command: `cerebro --debug detect ...`).")):
    """CEREBRO ML: telemetry ingest, anomaly detection, forecasting and operations agents.

    Start with `cerebro run` (the whole pipeline on the built-in fleet simulator), then `cerebro ui`."""
    set_debug(debug)

# `cerebro --help` lists the commands in this order, then the groups.
app.command()(serve.serve)
app.command()(stream.stream)
app.command()(stream.replay)
app.command()(deploy.deploy)
app.command()(pipeline.run)
app.command()(pipeline.simulate)
app.command()(pipeline.ingest)
app.command()(quarantine.quarantine)
app.command()(detect.detect)
app.command()(forecast.forecast)
app.command()(rca.rca)
app.command()(investigate.investigate)
app.command()(mcp.mcp)
app.command("predict-failure")(failure.predict_failure)
app.command()(batch.batch)
app.command()(drift.drift)
app.command()(ui.ui)
app.command()(ui.deployments)
app.command()(ui.env)

kb_app = typer.Typer(name="kb", help=kb.HELP, no_args_is_help=True, rich_markup_mode="markdown")
kb_app.command()(kb.index)
kb_app.command()(kb.search)
kb_app.command()(kb.stats)
app.add_typer(kb_app, name="kb")

models_app = typer.Typer(name="models", help=models.HELP, no_args_is_help=True, rich_markup_mode="markdown")
models_app.command("list")(models.list_cmd)
models_app.command()(models.promote)
models_app.command()(models.rollback)
app.add_typer(models_app, name="models")

tools_app = typer.Typer(name="tools", help=tools.HELP, no_args_is_help=True, rich_markup_mode="markdown")
tools_app.command("list")(tools.list_cmd)
tools_app.command()(tools.run)
app.add_typer(tools_app, name="tools")

llm_app = typer.Typer(name="llm", help=llm.HELP, no_args_is_help=True, rich_markup_mode="markdown")
llm_app.command()(llm.providers)
app.add_typer(llm_app, name="llm")
