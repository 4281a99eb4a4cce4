"""Root-cause ranking from metrics and the service graph, with no language model.

``rank_root_causes`` takes an incident window and a baseline (long form: timestamp, service, metric,
value) and a caller -> callee graph, and returns the services most likely to have caused the incident,
each with its evidence. See docs/rca.md for the method and its measured accuracy.
"""
from agents.rca.graph import ServiceGraph
from agents.rca.models import Cause, Evidence, RcaResult
from agents.rca.rank import RcaInputError, rank_root_causes

__all__ = ["Cause", "Evidence", "RcaInputError", "RcaResult", "ServiceGraph", "rank_root_causes"]
