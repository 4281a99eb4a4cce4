"""`cerebro tools list | run` (approval by --approve and by the prompt, both ways) and `cerebro mcp` over stdio
with the MCP SDK's own client."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from support.kube_api import FakeKubeApi
from typer.testing import CliRunner

from flows.cli import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def kube(monkeypatch, home):
    with FakeKubeApi({"default/payment": 2}) as api:
        monkeypatch.setenv("CEREBRO_TOOLS__ALLOW", json.dumps(["@read", "k8s_*"]))
        monkeypatch.setenv("CEREBRO_TOOLS__KUBERNETES__HOST", api.url)
        yield api


def cli(*args, input=None):
    return CliRunner().invoke(app, list(args), input=input)


def test_tools_list_shows_risk_and_the_allow_list(kube):
    result = cli("tools", "list", "--json")
    assert result.exit_code == 0, result.output
    tools = {t["name"]: t for t in json.loads(result.stdout)}
    assert tools["k8s_scale"]["risk"] == "high" and tools["k8s_scale"]["allowed"]
    assert tools["aws_asg_desired_capacity"]["allowed"] is False  # not on this allow-list
    assert tools["deploy_history"]["risk"] == "read" and tools["deploy_history"]["input_schema"]["type"] == "object"


SCALE = ["tools", "run", "k8s_scale", "--args", '{"deployment": "payment", "replicas": 6}']


def test_run_is_a_dry_run_unless_executed_and_approved(kube):
    dry = cli(*SCALE, "--json")
    assert dry.exit_code == 0 and json.loads(dry.stdout)["outcome"] == "dry-run"
    assert kube.deployments["default/payment"]["spec"]["replicas"] == 2
    no = cli(*SCALE, "--execute", input="n\n")
    assert no.exit_code == 3 and "rejected" in no.output and kube.deployments["default/payment"]["spec"]["replicas"] == 2
    silent = cli(*SCALE, "--execute")  # no answer at all (EOF) is a no
    assert silent.exit_code == 3 and kube.deployments["default/payment"]["spec"]["replicas"] == 2
    yes = cli(*SCALE, "--execute", input="y\n")
    assert yes.exit_code == 0 and kube.deployments["default/payment"]["spec"]["replicas"] == 6


def test_run_with_approve_flag_and_bad_input(kube, home):
    done = cli("tools", "run", "k8s_scale", "--args", '{"deployment": "payment", "replicas": 4}', "--execute",
               "--approve", "--json")
    assert done.exit_code == 0, done.output
    doc = json.loads(done.stdout)
    assert doc["outcome"] == "ok" and doc["approval"]["approved"] and doc["approval"]["by"].endswith("(--approve)")
    assert kube.deployments["default/payment"]["spec"]["replicas"] == 4
    assert cli("tools", "run", "k8s_scale", "--args", "{nope").exit_code == 2
    bad = cli("tools", "run", "k8s_scale", "--args", '{"deployment": "payment", "replicas": "many"}')
    assert bad.exit_code == 2 and "replicas" in bad.output
    from agents.tools import AuditLog

    rows = AuditLog(home / "tools" / "audit.db").recent(limit=1)
    assert rows[0]["outcome"] == "ok" and rows[0]["approved_by"].endswith("(--approve)")


def test_mcp_stdio_lists_and_calls_read_only_tools(home, tmp_path):
    import asyncio

    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    from telemetry import lake

    lake.write_graph({"services": ["frontend", "checkout", "payment"], "entrypoints": ["frontend"],
                      "edges": [{"caller": "frontend", "callee": "checkout", "ratio": 1.0},
                                {"caller": "checkout", "callee": "payment", "ratio": 1.0}]}, home / "lake")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "CEREBRO_HOME": str(home)}

    async def session():
        params = StdioServerParameters(command=sys.executable, args=["-m", "flows.cli", "mcp"], env=env, cwd=str(ROOT))
        async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            tools = (await s.list_tools()).tools
            called = await s.call_tool("blast_radius", {"service": "payment"})
            refused = await s.call_tool("k8s_scale", {"deployment": "payment", "replicas": 1})
            return tools, called, refused

    tools, called, refused = asyncio.run(asyncio.wait_for(session(), 120))
    names = {t.name for t in tools}
    assert {"blast_radius", "knowledge_search", "metrics_query", "runbook_search"} <= names
    assert not any(n.startswith(("k8s_", "aws_", "ansible")) for n in names)
    assert all(t.annotations.readOnlyHint for t in tools)
    assert json.loads(called.content[0].text)["transitive_callers"] == ["checkout", "frontend"]
    assert refused.isError


def test_an_external_mcp_servers_tools_join_the_registry_untrusted_and_read_only(home):
    from agents.tools import Executor, ToolRegistry
    from agents.tools.mcp_client import McpServer, import_tools
    from telemetry import lake

    lake.write_graph({"services": ["a", "b"], "entrypoints": ["a"], "edges": [{"caller": "a", "callee": "b",
                                                                               "ratio": 1.0}]}, home / "lake")
    registry = ToolRegistry()
    env = {"PYTHONPATH": str(ROOT), "CEREBRO_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    added = import_tools(registry, McpServer("peer", [sys.executable, "-m", "flows.cli", "mcp"], env=env,
                                             timeout_s=120))
    assert "peer.blast_radius" in added
    tool = registry.get("peer.blast_radius")
    assert tool.risk == "read" and not tool.trusted and tool.source == "mcp:peer"
    out = Executor(registry).run("peer.blast_radius", {"service": "b"})
    assert out.ok and out.result["untrusted"] and '"transitive_callers": ["a"]' in out.result["content"][0]


def test_mcp_streamable_http_lists_and_calls_read_only_tools(home):
    import asyncio
    import subprocess

    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from support.servers import free_port, wait_for_port

    from telemetry import lake

    lake.write_graph({"services": ["frontend", "checkout", "payment"], "entrypoints": ["frontend"],
                      "edges": [{"caller": "frontend", "callee": "checkout", "ratio": 1.0},
                                {"caller": "checkout", "callee": "payment", "ratio": 1.0}]}, home / "lake")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "CEREBRO_HOME": str(home)}
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "flows.cli", "mcp", "--transport", "http", "--port", str(port)],
                              env=env, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    async def session():
        async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write, _), \
                ClientSession(read, write) as s:
            await s.initialize()
            tools = (await s.list_tools()).tools
            called = await s.call_tool("blast_radius", {"service": "payment"})
            bad = await s.call_tool("blast_radius", {})
            refused = await s.call_tool("k8s_scale", {"deployment": "payment", "replicas": 1})
            return tools, called, bad, refused

    try:
        try:
            wait_for_port("127.0.0.1", port, timeout=120)
        except OSError:
            server.kill()
            raise AssertionError(f"cerebro mcp --transport http did not listen: {server.communicate()[1][-3000:]}")
        tools, called, bad, refused = asyncio.run(asyncio.wait_for(session(), 120))
    finally:
        server.terminate()
        server.wait(timeout=30)
    names = {t.name for t in tools}
    assert {"blast_radius", "deploy_history", "knowledge_search", "metrics_query"} <= names
    assert not any(n.startswith(("k8s_", "aws_", "ansible")) for n in names)
    assert all(t.annotations.readOnlyHint for t in tools)
    assert json.loads(called.content[0].text)["transitive_callers"] == ["checkout", "frontend"]
    assert bad.isError and "service" in bad.content[0].text
    assert refused.isError and "no read-only tool named 'k8s_scale'" in refused.content[0].text
    from agents.tools import AuditLog

    audited = AuditLog(home / "tools" / "audit.db").recent(limit=5)
    assert [(r["tool"], r["outcome"], r["who"]) for r in audited if r["tool"] == "blast_radius"][:1] == [
        ("blast_radius", "ok", "mcp-client")]
