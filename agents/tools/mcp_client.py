"""Tools of an external MCP server, added to the registry. They are untrusted: their output is data, never
instructions. Only tools the server marks read-only (``readOnlyHint``) join as ``read`` tools; the others
join only when configuration allows it (``allow_mutating``), as ``high`` risk tools that need an approval
and cannot be dry-run (their plan only names the call).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pydantic import ConfigDict, RootModel

from agents.tools.registry import Tool, ToolError, ToolRegistry


@dataclass
class McpServer:
    name: str
    command: list[str] = field(default_factory=list)  # stdio
    url: str | None = None  # streamable HTTP
    env: dict[str, str] = field(default_factory=dict)  # stdio: added to the SDK's minimal environment (no secrets)
    allow_mutating: bool = False
    timeout_s: float = 30.0

    def __post_init__(self):
        if bool(self.command) == bool(self.url):
            raise ValueError(f"MCP server {self.name}: give either command (stdio) or url (streamable HTTP)")


class ExternalArgs(RootModel[dict]):
    """Arguments of an external tool: an object, checked by the server against its own schema."""

    model_config = ConfigDict(frozen=True)


async def _session_call(server: McpServer, action):
    from mcp import ClientSession

    if server.command:
        from mcp.client.stdio import StdioServerParameters, get_default_environment, stdio_client

        params = StdioServerParameters(command=server.command[0], args=list(server.command[1:]),
                                       env={**get_default_environment(), **server.env})
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            return await action(session)
    from mcp.client.streamable_http import streamable_http_client

    async with streamable_http_client(server.url) as (read, write, _), ClientSession(read, write) as session:
        await session.initialize()
        return await action(session)


def _run(coro):
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    raise ToolError("MCP client calls are synchronous here; call them outside a running event loop")


def list_remote_tools(server: McpServer) -> list:
    async def action(session):
        return (await session.list_tools()).tools

    return _run(_session_call(server, action))


def call_remote_tool(server: McpServer, name: str, arguments: dict) -> dict:
    async def action(session):
        return await session.call_tool(name, arguments)

    result = _run(_session_call(server, action))
    texts = [c.text for c in result.content if getattr(c, "type", "") == "text"]
    out = {"server": server.name, "untrusted": True, "content": result.structuredContent or texts}
    if result.isError:
        raise ToolError(f"{server.name}/{name} answered an error: {' '.join(texts)[:500]}")
    return out


def import_tools(registry: ToolRegistry, server: McpServer) -> list[str]:
    """Register the server's tools as ``<server>.<tool>``; returns the names added."""
    added = []
    for remote in list_remote_tools(server):
        read_only = bool(remote.annotations and remote.annotations.readOnlyHint)
        if not read_only and not server.allow_mutating:
            continue
        added.append(registry.register(_tool(server, remote, read_only)).name)
    return added


def _tool(server: McpServer, remote, read_only: bool) -> Tool:
    def call_read(args: ExternalArgs):
        return call_remote_tool(server, remote.name, args.root)

    def call_mutating(args: ExternalArgs, dry_run: bool):
        if dry_run:
            return {"plan": f"call {remote.name} on MCP server {server.name} with {args.root} (the server offers "
                            "no dry run: nothing was called)", "dry_run": True}
        return call_remote_tool(server, remote.name, args.root)

    return Tool(f"{server.name}.{remote.name}", f"[external, untrusted: {server.name}] {remote.description or ''}",
                ExternalArgs, call_read if read_only else call_mutating, risk="read" if read_only else "high",
                reversible=read_only, timeout_s=server.timeout_s, source=f"mcp:{server.name}", trusted=False,
                schema_override=dict(remote.inputSchema or {"type": "object"}))
