"""The tool registry: every tool an agent (or a person through the CLI, or an MCP client) may call.

A tool is a function with a pydantic argument model (its JSON schema is generated from the model), a risk
level (``read`` changes nothing; ``low`` and ``high`` change systems and need an approval), whether its change
can be undone and how, and a timeout. Mutating tools take ``dry_run`` and must honour it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Risk = Literal["read", "low", "high"]
RISKS: tuple[Risk, ...] = ("read", "low", "high")


class ToolError(RuntimeError):
    """A tool cannot be called as asked (unknown, not allowed, bad arguments, failed, timed out)."""


class ToolArgs(BaseModel):
    """Base of every argument model: unknown keys are refused, so a typo (or an injected ``approved``) fails."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class Tool:
    name: str
    description: str
    args: type[BaseModel]
    fn: Callable[..., Any]  # read: fn(args); mutating: fn(args, dry_run=bool)
    risk: Risk = "read"
    reversible: bool = True
    timeout_s: float = 30.0
    max_tokens: int = 2000  # the output is cut to this many (estimated) tokens
    rollback: Callable[[BaseModel], str] | None = None  # the step that undoes the change, in words
    target: Callable[[BaseModel], str | None] | None = None  # the service the change touches (blast radius)
    source: str = "cerebro"  # "cerebro" or "mcp:<server>" for tools an external MCP server offers
    trusted: bool = True  # False: the tool's output is untrusted data (external servers)
    schema_override: dict | None = None  # external tools bring their own JSON schema

    def __post_init__(self):
        if self.risk not in RISKS:
            raise ValueError(f"tool {self.name}: risk {self.risk!r} is not one of {', '.join(RISKS)}")
        if self.timeout_s <= 0:
            raise ValueError(f"tool {self.name}: timeout_s must be positive, got {self.timeout_s}")

    @property
    def mutating(self) -> bool:
        return self.risk != "read"

    def json_schema(self) -> dict:
        return self.schema_override or self.args.model_json_schema()

    def describe(self) -> dict:
        return {"name": self.name, "description": self.description, "risk": self.risk,
                "reversible": self.reversible, "timeout_s": self.timeout_s, "source": self.source,
                "trusted": self.trusted, "input_schema": self.json_schema()}


@dataclass
class ToolRegistry:
    tools: dict[str, Tool] = field(default_factory=dict)

    def register(self, tool: Tool, *, replace: bool = False) -> Tool:
        if tool.name in self.tools and not replace:
            raise ValueError(f"a tool named {tool.name!r} is already registered (from {self.tools[tool.name].source})")
        self.tools[tool.name] = tool
        return tool

    def extend(self, tools: Iterable[Tool]) -> None:
        for t in tools:
            self.register(t)

    def get(self, name: str) -> Tool:
        try:
            return self.tools[name]
        except KeyError:
            from difflib import get_close_matches

            close = get_close_matches(name, list(self.tools), n=3)
            raise ToolError(f"no tool named {name!r}" + (f"; did you mean {', '.join(close)}?" if close else
                            f"; known: {', '.join(sorted(self.tools))}")) from None

    def list(self, risk: Risk | None = None) -> list[Tool]:
        return sorted((t for t in self.tools.values() if risk is None or t.risk == risk), key=lambda t: t.name)

    def read_only(self) -> list[Tool]:
        return self.list("read")
