"""Kubernetes changes with the official ``kubernetes`` client: rollout restart and scale of a deployment.

A restart is what ``kubectl rollout restart`` does: it patches the pod template's ``restartedAt`` annotation,
and the deployment replaces its pods. A scale goes through the ``scale`` subresource. A dry run sends the same
request with ``dryRun=All``: the API server validates and admits it, and stores nothing.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import Field

from agents.tools.registry import Tool, ToolArgs

RESTART_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"  # a DNS-1123 label


class RestartArgs(ToolArgs):
    deployment: str = Field(pattern=NAME, max_length=63, description="the deployment to restart")
    namespace: str = Field(default="default", pattern=NAME, max_length=63)


class ScaleArgs(ToolArgs):
    deployment: str = Field(pattern=NAME, max_length=63, description="the deployment to scale")
    replicas: int = Field(ge=0, le=1000, description="the number of pods wanted")
    namespace: str = Field(default="default", pattern=NAME, max_length=63)


def api_client(host: str | None = None, kubeconfig: str | None = None, context: str | None = None):
    """A client for ``host`` (e.g. a test server), else the kubeconfig (``context``), else the in-cluster account."""
    from kubernetes import client, config

    if host:
        cfg = client.Configuration()
        cfg.host = host
        return client.ApiClient(cfg)
    try:
        return config.new_client_from_config(config_file=kubeconfig, context=context)
    except config.ConfigException:
        config.load_incluster_config()
        return client.ApiClient()


def _apps(make_client: Callable):
    from kubernetes import client

    return client.AppsV1Api(make_client())


def _dry(dry_run: bool) -> dict:
    return {"dry_run": "All"} if dry_run else {}


def kubernetes_tools(make_client: Callable) -> list[Tool]:
    """The two tools, each calling ``make_client()`` for an ``ApiClient`` when it runs."""

    def restart(args: RestartArgs, dry_run: bool) -> dict:
        apps = _apps(make_client)
        current = apps.read_namespaced_deployment(args.deployment, args.namespace)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        body = {"spec": {"template": {"metadata": {"annotations": {RESTART_ANNOTATION: stamp}}}}}
        done = apps.patch_namespaced_deployment(args.deployment, args.namespace, body, **_dry(dry_run))
        return {"plan": f"restart deployment {args.namespace}/{args.deployment}: replace its "
                        f"{current.spec.replicas} pod(s) one by one (pod template annotation {RESTART_ANNOTATION})",
                "dry_run": dry_run, "deployment": args.deployment, "namespace": args.namespace,
                "restarted_at": done.spec.template.metadata.annotations.get(RESTART_ANNOTATION),
                "generation": done.metadata.generation}

    def scale(args: ScaleArgs, dry_run: bool) -> dict:
        apps = _apps(make_client)
        before = apps.read_namespaced_deployment_scale(args.deployment, args.namespace).spec.replicas
        done = apps.patch_namespaced_deployment_scale(args.deployment, args.namespace,
                                                       {"spec": {"replicas": args.replicas}}, **_dry(dry_run))
        return {"plan": f"scale deployment {args.namespace}/{args.deployment} from {before} to {args.replicas} "
                        "replica(s)", "dry_run": dry_run, "deployment": args.deployment,
                "namespace": args.namespace, "replicas_before": before, "replicas": done.spec.replicas}

    return [
        Tool("k8s_rollout_restart", "Restart a Kubernetes deployment's pods (as `kubectl rollout restart`).",
             RestartArgs, restart, risk="low", reversible=False, timeout_s=30,
             rollback=lambda a: f"nothing to undo (same pod spec); if the new pods misbehave: kubectl rollout undo "
                                f"deployment/{a.deployment} -n {a.namespace}",
             target=lambda a: a.deployment),
        Tool("k8s_scale", "Set the replica count of a Kubernetes deployment (scale subresource).", ScaleArgs,
             scale, risk="high", reversible=True, timeout_s=30,
             rollback=lambda a: f"scale deployment/{a.deployment} -n {a.namespace} back to its previous replicas "
                                "(shown as replicas_before in the plan)",
             target=lambda a: a.deployment),
    ]
