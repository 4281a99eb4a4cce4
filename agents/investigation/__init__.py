"""Evidence-backed investigations with no language model.

For a question ("why is checkout slow?"), an alert or a service and a time, gather what the registered
models and the lake say: the abnormal services and metrics and since when, the ranked root causes
(``agents.rca``), recent changes, failure risk, capacity near its limit, the call graph around the suspects,
similar past incidents and runbook passages, slow and failing spans, and the model versions and data used.
Everything arrives as arguments (the flows load it); see docs/investigations.md.
"""
from agents.investigation.bundle import assemble, diagnose, make_window, parse_duration
from agents.investigation.models import EvidenceBundle, Question, Window
from agents.investigation.question import parse_question

__all__ = ["EvidenceBundle", "Question", "Window", "assemble", "diagnose", "make_window", "parse_duration",
           "parse_question"]
