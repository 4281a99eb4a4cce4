"""`cerebro mcp`: CEREBRO's read-only tools and knowledge-base search as an MCP server (stdio or HTTP)."""
from __future__ import annotations

from typing import Literal

import typer

from flows.cli.common import ConfigOpt, console, settings_or_exit


def mcp(
    transport: Literal["stdio", "http"] = typer.Option("stdio", "--transport", "-t", help="stdio (a client "
                                                        "starts this command) or http (streamable HTTP at /mcp)."),
    host: str = typer.Option("127.0.0.1", "--host", help="HTTP: the address to listen on."),
    port: int = typer.Option(8765, "--port", "-p", help="HTTP: the port."),
    config: str | None = ConfigOpt,
):
    """Serve the read-only tools (metrics, logs, anomaly scores, forecasts, failure risk, topology, blast
    radius, root causes, deploy history, runbook, incident and knowledge-base search) over MCP. Every call is
    audited; nothing that changes systems is offered. See docs/tools.md for a Claude Desktop configuration.

    Examples:

        cerebro mcp                          # stdio, for Claude Desktop or Claude Code

        cerebro mcp --transport http --port 8765
    """
    settings = settings_or_exit(config)
    from agents.tools.mcp_server import serve_http, serve_stdio
    from flows.tools_builtin import build_registry, executor

    # External servers' tools are not re-exported: they are untrusted, and a client can reach them directly.
    ex = executor(settings, registry=build_registry(settings, external=False), who="mcp-client")
    if transport == "stdio":
        serve_stdio(ex)
    else:
        console.print(f"MCP (streamable HTTP) at http://{host}:{port}/mcp", highlight=False)
        serve_http(ex, host, port)
