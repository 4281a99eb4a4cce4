"""Tools the agents may call, and the executor that runs them safely.

``ToolRegistry`` holds each tool's argument model (its JSON schema), risk (``read``, ``low``, ``high``),
reversibility and timeout; ``Executor`` runs one call through the allow-list, a dry run by default, a risk
assessment (blast radius from the service graph), an injected approver and the audit log. The mutating tools
(``kubernetes_tools``, ``aws_tools``, ``ansible_tools``) and the MCP server and client live beside them; the
read-only tools over the lake, the models and the knowledge base are built by ``flows/tools_builtin.py``,
which hands them in (this package imports no other package of the project). See docs/tools.md.
"""
from agents.tools.audit import AuditLog, AuditRecord
from agents.tools.executor import Approval, ApprovalRequest, Executor, Outcome, Policy
from agents.tools.registry import Tool, ToolArgs, ToolError, ToolRegistry

__all__ = ["Approval", "ApprovalRequest", "AuditLog", "AuditRecord", "Executor", "Outcome", "Policy", "Tool",
           "ToolArgs", "ToolError", "ToolRegistry"]
