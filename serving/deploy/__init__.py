"""Deploy a registered model: the scoring service as a managed local process, or a SageMaker endpoint.

    deploy(settings, "cerebro-detector-ensemble", version="4", target="local")      # serving/deploy/local.py
    deploy(settings, "cerebro-detector-ensemble", target="sagemaker")               # serving/deploy/sagemaker.py

Both follow the registry: ``version`` first becomes the ``champion`` (as ``cerebro models`` would keep it, with
its history); without it the champion is deployed (the newest version while there is none, like the service).
A version the target refuses (the service does not load it, SageMaker's alarms fire) gives the alias back.
"""
from __future__ import annotations

from dataclasses import dataclass

from training import kinds


class DeployError(RuntimeError):
    """A deploy could not be done; the message says why and where to look."""


@dataclass
class Target:
    """What to deploy: a registered model's version and the champion before the deploy moved it."""
    name: str
    kind: str
    version: str
    previous_champion: str | None
    moved: bool  # the deploy moved the champion alias (and gives it back when the version is refused)


def kind_of(name: str, kind: str | None = None) -> str:
    """detector / forecaster / failure, from the registered name (or ``kind`` when given)."""
    if kind:
        if kind not in kinds.NAMES:
            raise DeployError(f"kind {kind!r}: expected {', '.join(kinds.NAMES[:-1])} or {kinds.NAMES[-1]}")
        return kind
    from serving.registry import RegistryError, family_of

    try:
        return family_of(name)
    except RegistryError as exc:
        raise DeployError(f"{exc} (or pass --kind)") from None


def resolve(settings, name: str, version: str | int | None = None, kind: str | None = None) -> Target:
    """Check that ``name`` (and ``version``) is registered; with ``version``, make it the champion."""
    from serving.registry import (
        CHAMPION,
        RegistryError,
        champion_of,
        check_version,
        client_for,
        set_champion,
        versions_of,
    )

    kind = kind_of(name, kind)
    client = client_for(settings)
    if version is not None:
        try:
            check_version(client, name, str(version))
        except RegistryError as exc:
            raise DeployError(str(exc)) from None
    elif not versions_of(client, name):
        raise DeployError(f"no registered model {name!r} (or it has no versions); see `cerebro models list`")
    previous = champion_of(client, name)
    if version is not None:
        version = str(version)
        if previous != version:
            set_champion(client, name, version)
        return Target(name, kind, version, previous, previous != version)
    if previous is not None:
        return Target(name, kind, previous, previous, False)
    if not settings.serving.fallback_latest:
        raise DeployError(f"{name} has no @{CHAMPION} alias; deploy a version with --version")
    return Target(name, kind, versions_of(client, name)[-1], None, False)


def give_back(settings, target: Target) -> str | None:
    """Point the champion alias back where it was before the deploy moved it; returns that version."""
    if not target.moved:
        return None
    from serving.registry import CHAMPION, client_for

    client = client_for(settings)
    if target.previous_champion is None:
        client.delete_registered_model_alias(target.name, CHAMPION)
    else:
        client.set_registered_model_alias(target.name, CHAMPION, target.previous_champion)
    return target.previous_champion


def deploy(settings, name: str, version: str | int | None = None, target: str | None = None, **options) -> dict:
    """Deploy ``name`` (``version`` or its champion) to ``target`` (default: ``deploy.target``)."""
    target = target or settings.deploy.target
    if target == "local":
        from serving.deploy.local import deploy_local

        return deploy_local(settings, name, version, **options)
    if target == "sagemaker":
        from serving.deploy.sagemaker import deploy_sagemaker

        return deploy_sagemaker(settings, name, version, **options)
    raise DeployError(f"target {target!r}: expected local or sagemaker")
