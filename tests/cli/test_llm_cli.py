"""`cerebro llm providers` against the local LLM server: reachability, models, limits, cache hit rate."""
from __future__ import annotations

import json

import yaml
from support.llm_server import LlmServer
from typer.testing import CliRunner

from flows.cli import app


def _config(tmp_path, url: str):
    doc = {"home": str(tmp_path / "home"), "llm": {
        "providers": {"claude": {"kind": "anthropic", "base_url": url, "api_key": "sk-cli-secret",
                                 "requests_per_minute": 50, "tokens_per_minute": 40000},
                      "llama": {"kind": "openai", "base_url": url + "/v1", "self_hosted": True},
                      "nokey": {"kind": "anthropic"},
                      "offline": {"kind": "offline"}},
        "tasks": {"reasoning": "claude:claude-test", "fast": "llama:llama-test", "code": "nokey:claude-test",
                  "embedding": "minilm:all-MiniLM-L6-v2"},
        "fallback": ["offline:none"]}}
    path = tmp_path / "cerebro.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_llm_providers_json_and_table(tmp_path, monkeypatch, wide_console):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with LlmServer() as llm:
        config = _config(tmp_path, llm.url)
        # one call twice through the gateway of this configuration: one miss, one hit
        from agents.llm import LlmRequest, Message, build_gateway
        from configs.settings import load_settings

        gateway = build_gateway(load_settings(config))
        for _ in range(2):
            gateway.complete(LlmRequest(messages=[Message(role="user", content="hi")]))
        result = CliRunner().invoke(app, ["llm", "providers", "--json", "--config", str(config)])
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        rows = {r["provider"]: r for r in doc["providers"]}
        assert rows["claude"]["reachable"] is True and rows["claude"]["cache_hit_rate"] == 0.5
        assert rows["claude"]["limits"] == "50 req/min, 40,000 tok/min"
        assert rows["llama"]["reachable"] is True and rows["llama"]["self_hosted"] is True
        assert rows["nokey"]["configured"] is False and "no API key" in rows["nokey"]["detail"]
        assert doc["tasks"]["fast"] == "llama:llama-test" and "sk-cli-secret" not in result.stdout
        table = CliRunner().invoke(app, ["llm", "providers", "--config", str(config)], terminal_width=200)
        assert table.exit_code == 0 and "50% of 2" in table.stdout and "no API key" in table.stdout
