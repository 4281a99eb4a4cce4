"""Registered models and their aliases in MLflow: a ``champion`` alias per model, a ``challenger`` while one is
judged, the champions' history, and loading a version's bundle.

    loaded = load_champion(settings, "cerebro-detector-ensemble")     # what serving, batch and drift load
    version, alias = alias_or_newest(client, name)                     # name@champion, else the newest version
    set_champion(client, name, version)                                # moves the alias, remembers the history
    models = list_models(settings)                                     # `cerebro models list`

Deciding who becomes champion (the gate, forced promotions, rollback, their log) is ``serving/promotion.py``.
The champions, oldest first, are kept in the model's ``cerebro.champion_history`` tag, so rollback works as many
times as there were champions.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from training import kinds

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "cerebro.champion_history"
HISTORY_KEEP = 50  # champions remembered per model (a tag holds a few KB)


class RegistryError(ValueError):
    """A registry request that cannot be done as asked; the message says why and what would work."""


def family_of(name: str) -> str:
    """The kind of a registered model (detector, forecaster, failure), from its name."""
    try:
        return kinds.of_registered(name).name
    except kinds.UnknownKind as exc:
        raise RegistryError(str(exc)) from None


# ------------------------------------------------------------------------------------------------ loading
def client_for(settings):
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)  # pyfunc.load_model reads the global URI
    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri)


@dataclass
class LoadedModel:
    name: str
    version: str
    uri: str
    bundle: dict


def load_version(settings, name: str, version: str | None = None, alias: str | None = None) -> LoadedModel:
    """A registered version's bundle (what the pyfunc adapter serves), by version number or alias."""
    import mlflow

    client = client_for(settings)
    try:
        mv = (client.get_model_version_by_alias(name, alias) if alias
              else client.get_model_version(name, str(version)))
    except Exception as exc:  # noqa: BLE001 - MLflow raises RestException / MlflowException for "no such model or alias"
        what = f"alias @{alias}" if alias else f"version {version}"
        raise RegistryError(f"{name}: no {what} in {settings.mlflow_tracking_uri_shown} ({type(exc).__name__})") from None
    uri = f"models:/{name}/{mv.version}"
    bundle = mlflow.pyfunc.load_model(uri).unwrap_python_model().bundle
    return LoadedModel(name, str(mv.version), uri, bundle)


def load_champion(settings, name: str, fallback: str | None = None) -> LoadedModel:
    """``name@champion``, or ``fallback@champion`` (then the fallback's newest version) when it has none."""
    try:
        return load_version(settings, name, alias=CHAMPION)
    except RegistryError as first:
        if not fallback:
            raise
        import logging

        logging.getLogger(__name__).warning("%s; falling back to %s", first, fallback)
        try:
            return load_version(settings, fallback, alias=CHAMPION)
        except RegistryError:
            versions = versions_of(client_for(settings), fallback)
            if not versions:
                raise RegistryError(f"{first}; the fallback {fallback} has no versions either") from None
            return load_version(settings, fallback, version=versions[-1])


def bundle_of(model) -> dict:
    """A bundle from a loaded pyfunc model, a :class:`LoadedModel` or a bundle itself."""
    if isinstance(model, dict):
        return model
    if isinstance(model, LoadedModel):
        return model.bundle
    if hasattr(model, "unwrap_python_model"):
        return model.unwrap_python_model().bundle
    raise TypeError(f"expected a loaded MLflow pyfunc model or a bundle, got {type(model).__name__}")


# ------------------------------------------------------------------------------------------------ registry
def versions_of(client, name: str) -> list[str]:
    return sorted((str(v.version) for v in client.search_model_versions(f"name='{name}'")), key=int)


def alias_or_newest(client, name: str, alias: str = CHAMPION, newest: bool = True) -> tuple[str, str | None] | None:
    """(version, alias) that ``name@alias`` points at; without that alias (newest=True) the newest version and
    None; None when there is nothing to use. What serving, the drift watch and the pipeline's deploy resolve."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version), alias
    except MlflowException:
        if not newest:
            return None
    try:
        versions = versions_of(client, name)
    except MlflowException:
        return None
    return (versions[-1], None) if versions else None


def champion_of(client, name: str) -> str | None:
    aliases = client.get_registered_model(name).aliases or {}
    value = aliases.get(CHAMPION)
    return None if value is None else str(value)


def champion_history(client, name: str) -> list[str]:
    raw = (client.get_registered_model(name).tags or {}).get(HISTORY_TAG)
    return [str(v) for v in json.loads(raw)] if raw else []


def set_champion(client, name: str, version: str) -> None:
    history = champion_history(client, name)
    if not history or history[-1] != version:
        history.append(version)
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[-HISTORY_KEEP:]))


def check_version(client, name: str, version: str) -> None:
    try:
        client.get_registered_model(name)
    except Exception:  # noqa: BLE001 - MLflow raises several types for "no such model"
        raise RegistryError(f"no registered model {name!r}; see `cerebro models list`") from None
    known = versions_of(client, name)
    if version not in known:
        raise RegistryError(f"{name}: no version {version}; it has versions {', '.join(known) or 'none'}")


def last_decision(tags: dict) -> str | None:
    """The last promotion decision on a version: its ``cerebro.decision`` tag, or the JSON ``cerebro.promotion``
    tag that versions registered before the readable tags carry."""
    if tags.get("cerebro.decision"):
        return tags["cerebro.decision"]
    legacy = json.loads(tags.get("cerebro.promotion", "null") or "null")
    return legacy and legacy.get("decision")


def list_models(settings, prefix: str = "cerebro-") -> list[dict]:
    """Every registered model with its versions, aliases, champion history and key metrics."""
    client = client_for(settings)
    out = []
    for rm in sorted(client.search_registered_models(filter_string=f"name LIKE '{prefix}%'"), key=lambda m: m.name):
        try:
            family = family_of(rm.name)
        except RegistryError:
            family = "other"
        by_version: dict[str, list[str]] = {}
        for alias, v in (rm.aliases or {}).items():
            by_version.setdefault(str(v), []).append(alias)
        versions = []
        for mv in sorted(client.search_model_versions(f"name='{rm.name}'"), key=lambda v: int(v.version)):
            metrics = {}
            if mv.run_id:
                run_metrics = client.get_run(mv.run_id).data.metrics
                keys = (kinds.by_name(family).shown_metrics(run_metrics) if family in kinds.NAMES
                        else sorted(k for k in run_metrics if k.endswith("_mase")))
                metrics = {k: run_metrics[k] for k in keys if k in run_metrics}
            versions.append({"version": str(mv.version), "aliases": sorted(by_version.get(str(mv.version), [])),
                             "created": pd.Timestamp(mv.creation_timestamp, unit="ms", tz="UTC").isoformat(),
                             "metrics": metrics, "last_decision": last_decision(mv.tags or {}),
                             "status": (mv.tags or {}).get("cerebro.status"), "description": mv.description or ""})
        out.append({"name": rm.name, "family": family, "aliases": {k: str(v) for k, v in (rm.aliases or {}).items()},
                    "champion_history": champion_history(client, rm.name), "versions": versions})
    return out
