"""The investigation's LLM step, wired to the settings: the gateway, the token budget, the tools on offer, the
secrets to mask, and the MLflow run that holds the calls' usage. Plain functions (no Prefect): the
``investigate`` flow runs :func:`llm_analysis` as a task.

    analysis = llm_analysis(settings, bundle)     # agents.investigation.analysis.Analysis
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)
# Provider credentials the SDKs read from the environment: masked wherever the prompt or answer could show them.
SECRET_ENV = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def live_route(llm_settings, task: str = "reasoning") -> str | None:
    """The first ``PROVIDER:MODEL`` of ``task``'s chain (its route, then the fallback) that is a real provider
    and configured (a key, a region, a base URL), or None: the investigation then sends nothing."""
    from agents.llm.gateway import split_route
    from agents.llm.providers import make_provider

    for route in [llm_settings.tasks[task], *llm_settings.fallback]:
        name, _ = split_route(route)
        provider = make_provider(name, llm_settings.providers[name])
        if provider.kind != "offline" and provider.configured() is None:
            return route
    return None


def secret_values(settings) -> list[str]:
    """Every secret the settings hold and the providers' keys in the environment. A connection URL
    (``SecretUrl``) is secret only in its password: its host and database may be named."""
    from urllib.parse import urlsplit

    from pydantic import BaseModel, SecretStr

    from configs.settings import SecretUrl

    found: list[str] = []

    def walk(value) -> None:
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
            if not isinstance(value, SecretUrl):
                found.append(text)
            try:
                found.append(urlsplit(text).password or "")
            except ValueError:  # not a URL
                pass
        elif isinstance(value, BaseModel):
            for key in type(value).model_fields:
                walk(getattr(value, key))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(settings)
    found += [os.environ[k] for k in SECRET_ENV if os.environ.get(k)]
    return [s for s in found if s]


def tools_on_offer(settings) -> tuple[list, dict[str, str]]:
    """The registered tools as ``ToolSpec``s (name, description with its risk): what next steps may name; and
    each one's risk, which a next step naming it is shown with."""
    from agents.llm import ToolSpec
    from flows.tools_builtin import build_registry

    tools = build_registry(settings, external=False).list()
    specs = [ToolSpec(name=t.name, description=f"{t.description} (risk: {t.risk})") for t in tools]
    return specs, {t.name: t.risk for t in tools}


def llm_analysis(settings, bundle):
    """The LLM's analysis of ``bundle`` when a real provider is routed for ``reasoning`` (else the one-line
    evidence-only analysis, and nothing is sent or logged); its usage goes to an ``investigate`` MLflow run."""
    from agents.investigation.analysis import analyse
    from agents.llm import Budget, build_gateway

    route = live_route(settings.llm)
    if route is None:
        return analyse(bundle, None, None, live=False)
    budget = Budget(settings.llm.max_tokens_per_investigation)
    tools, risks = tools_on_offer(settings)
    analysis = analyse(bundle, build_gateway(settings), budget, tools, secret_values(settings), risks=risks)
    try:
        analysis.mlflow_run = log_usage_run(settings, bundle, analysis, budget)
    except Exception as exc:  # noqa: BLE001 - an unreachable tracking store must not lose the investigation
        log.warning("LLM usage not logged to MLflow (%s: %s)", type(exc).__name__, exc)
    return analysis


def log_usage_run(settings, bundle, analysis, budget) -> str:
    """One ``investigate`` run: the ``llm_*`` metrics and ``llm_calls.json`` (sizes, costs and template hashes;
    no prompt, answer or key), tagged with the analysis' status."""
    import mlflow

    from agents.llm import log_usage_to_mlflow
    from training.tracking import use_experiment

    use_experiment(settings)
    tags = {
        "cerebro.stage": "investigation",
        "cerebro.analysis": analysis.status,
        "cerebro.llm_capped": str(analysis.capped).lower(),
    }
    if bundle.target:
        tags["cerebro.target"] = bundle.target
    if analysis.route:
        tags["cerebro.llm_route"] = analysis.route
    with mlflow.start_run(run_name="investigate", tags=tags) as run:
        log_usage_to_mlflow(budget)
        return run.info.run_id
