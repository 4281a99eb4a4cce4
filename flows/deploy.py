"""The ``deploy`` flow: a registered model onto the local scoring service or a SageMaker endpoint.

    cerebro deploy cerebro-detector-ensemble --target local        # the same, from the command line
    python -c "from flows.deploy import deploy_flow; deploy_flow('cerebro-detector-ensemble', target='local')"
"""
from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from configs.settings import load_settings


@task(name="deploy-model", cache_policy=NO_CACHE)
def deploy_model(settings, name: str, version: str | None, target: str, config: str | None) -> dict:
    from serving.deploy import deploy

    options = {"config": config} if target == "local" else {}
    result = deploy(settings, name, version, target, **options)
    log = get_run_logger()
    log.info("%s %s v%s on %s: %s", result["action"], name, result.get("version"), target,
             result.get("url") or result.get("endpoint"))
    for note in result.get("notes", []):
        log.warning(note)
    return result


@flow(name="deploy", log_prints=True)
def deploy_flow(name: str, version: str | None = None, target: str = "local", config: str | None = None) -> dict:
    """Deploy ``name`` (``version``, which becomes champion, or the champion) to ``target`` (local | sagemaker).
    A version the target refuses or rolls back leaves the previous one live; the result says so (``action``)."""
    settings = load_settings(config)
    result = deploy_model(settings, name, version, target, config)
    lines = [f"| {k} | {v} |" for k, v in result.items() if k not in ("notes", "steps")]
    lines += [f"| step {s['percent']:g} % | {s['weights']} |" for s in result.get("steps", [])]
    create_markdown_artifact(key="deploy", markdown="\n".join(["| what | value |", "|---|---|", *lines]),
                             description=f"Deploy of {name} to {target}: {result['action']}")
    return result
