"""The risk of one change before anyone approves it: what it touches, who depends on that, and the way back."""
from __future__ import annotations

from collections import deque

from pydantic import BaseModel


class Assessment(BaseModel):
    tool: str
    risk: str
    target: str | None = None
    blast_radius: list[str] = []  # services that call the target, directly or through others
    reversible: bool
    rollback: str
    plan: str = ""

    def lines(self) -> list[str]:
        radius = ", ".join(self.blast_radius) if self.blast_radius else "none known (no callers in the graph)"
        return [f"tool: {self.tool} (risk {self.risk}, {'reversible' if self.reversible else 'NOT reversible'})",
                f"target: {self.target or 'not a service'}", f"blast radius (transitive callers): {radius}",
                f"rollback: {self.rollback}", *([f"plan: {self.plan}"] if self.plan else [])]


def transitive_callers(edges: list[tuple[str, str]], service: str) -> list[str]:
    """Every service whose requests reach ``service`` through the caller -> callee edges, nearest first."""
    callers: dict[str, list[str]] = {}
    for caller, callee in edges:
        callers.setdefault(callee, []).append(caller)
    seen, order, queue = {service}, [], deque([service])
    while queue:
        for c in sorted(callers.get(queue.popleft(), [])):
            if c not in seen:
                seen.add(c)
                order.append(c)
                queue.append(c)
    return order
