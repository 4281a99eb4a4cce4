"""The model kinds, in one table: what each kind is called, registered as, served on and judged by.

Every CEREBRO model is a *bundle* (a dict with ``kind``, ``name``, ``model`` and what the kind needs around the
model) served through the one pyfunc adapter (``training/pyfunc_model.py``). What differs per kind lives in
that kind's own package, in a module of the same name and shape for each kind:

    training/detectors/bundle.py     training/forecasting/bundle.py     training/failure/bundle.py

Each holds ``predict`` (bundle + request frame -> answer frame), ``figures`` (one bundle's figure on held-out
data, for the promotion gate), ``check_labels``, ``unjudgeable`` (why held-out data says nothing, if so),
``heldout`` (held-out data from the lake) and ``shadow_gap`` (how far two answers are apart). The MLflow
adapter, the registry, the gate and the scoring service ask this table which module and figure a kind has;
no other code branches on a kind's name. Adding a kind is one bundle module and one row here.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


class UnknownKind(ValueError):
    """A kind, registered name or endpoint that no row of the table has; the message lists what would work."""


class JudgeError(ValueError):
    """Held-out data or labels a kind cannot be judged on; the message says what was expected."""


@dataclass(frozen=True)
class Kind:
    name: str  # the bundle's ``kind``, the serving slot and the key of ``serving.models`` / ``lifecycle.margins``
    registered_as: str  # registered-model name, or its prefix when it ends with "-"
    endpoint: str  # the scoring service answers this kind on POST /v1/<endpoint>
    figure: str  # what the promotion gate compares on held-out data
    higher_is_better: bool
    key_metrics: tuple[str, ...]  # run metrics `cerebro models list` shows (empty: those ending ``_mase``)
    module: str  # the kind's bundle module (imported on first use: it pulls in the model libraries)

    @property
    def code(self) -> ModuleType:
        return importlib.import_module(self.module)

    def owns(self, registered_name: str) -> bool:
        if self.registered_as.endswith("-"):
            return registered_name.startswith(self.registered_as)
        return registered_name == self.registered_as

    def registered_name(self, model: str = "") -> str:
        return f"{self.registered_as}{model}" if self.registered_as.endswith("-") else self.registered_as

    def shown_metrics(self, run_metrics: dict) -> list[str]:
        return list(self.key_metrics) or sorted(k for k in run_metrics if k.endswith("_mase"))


DETECTOR = Kind("detector", "cerebro-detector-", "score", "f1", True,
                ("test_f1", "test_precision", "test_recall", "validation_f1"), "training.detectors.bundle")
FORECASTER = Kind("forecaster", "cerebro-forecaster-", "forecast", "mase", False, (),
                  "training.forecasting.bundle")
FAILURE = Kind("failure", "cerebro-failure-predictor", "failure", "pr_auc", True,
               ("test_pr_auc", "validation_pr_auc", "test_recall_at_precision_0_9"), "training.failure.bundle")

KINDS: tuple[Kind, ...] = (DETECTOR, FORECASTER, FAILURE)
NAMES: tuple[str, ...] = tuple(k.name for k in KINDS)


def by_name(name: str) -> Kind:
    for kind in KINDS:
        if kind.name == name:
            return kind
    raise UnknownKind(f"kind {name!r}: expected {', '.join(NAMES)}")


def of_registered(name: str) -> Kind:
    """The kind of a registered model, from its name (``cerebro-detector-pca`` -> detector)."""
    for kind in KINDS:
        if kind.owns(name):
            return kind
    names = [k.registered_name("<name>") for k in KINDS]
    raise UnknownKind(f"model {name!r}: not a CEREBRO model; expected {', '.join(names[:-1])} or {names[-1]}")


def of_bundle(bundle: dict) -> Kind:
    return by_name(bundle.get("kind"))


def by_endpoint(endpoint: str) -> Kind:
    for kind in KINDS:
        if kind.endpoint == endpoint:
            return kind
    raise UnknownKind(f"endpoint {endpoint!r}: expected {', '.join(k.endpoint for k in KINDS)}")


def predict_bundle(bundle: dict, frame, params: dict | None = None):
    """What the pyfunc adapter returns for ``frame``: the kind's own ``predict``."""
    return of_bundle(bundle).code.predict(bundle, frame, params or {})
