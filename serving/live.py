"""The models the service answers with: loading by alias, warm-up, blue-green switches, refusal, rollback.

Each (kind, variant) has a slot holding the live version. When an alias moves, the new version is loaded and
warmed up (it scores its own input example) while the old one keeps answering; only then does the slot's
reference change, in one assignment under a lock. A request reads the reference once, so it is answered by
one version from start to end. The version it replaced stays loaded as the rollback target. A version whose
artifact does not load or whose warm-up fails is refused and remembered, so the poller does not retry it.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from serving.rollback import Outcome, Window, breach
from serving.router import CHALLENGER, CHAMPION

log = logging.getLogger("cerebro.serving")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class LoadedModel:
    kind: str
    variant: str
    name: str
    version: str
    alias: str
    runner: Any  # serving.scoring.*Runner around the bundle
    run_id: str | None
    window: Window
    loaded_at: str = field(default_factory=_now)
    live_since: str = ""
    judged: bool = True  # False once a breach could not be acted on (nothing to roll back to)


class LiveModels:
    def __init__(self, settings, router, metrics):
        import mlflow
        from mlflow import MlflowClient

        import training.kinds  # noqa: F401  (imported before MLflow adds model code to sys.path)

        self.settings = settings
        self.cfg = settings.serving
        self.router = router
        self.metrics = metrics
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        self.client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
        self.slots: dict[tuple[str, str], LoadedModel | None] = {}
        self.previous: dict[tuple[str, str], LoadedModel | None] = {}
        self.refused: dict[tuple[str, str], str] = {}
        self.events: deque[dict] = deque(maxlen=100)
        self._lock = threading.RLock()  # guards swaps; reads of a slot need none (one reference)
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self.after_change = None  # called after a reload that changed a slot (the service settles its heap)
        self.alert = None  # alert(event, **details): the ML team hears of rollbacks (a plain callable, no Prefect)
        self._poller: threading.Thread | None = None
        self._background: list[threading.Thread] = []

    # ------------------------------------------------------------------ reading
    def get(self, kind: str, variant: str = CHAMPION) -> LoadedModel | None:
        return self.slots.get((kind, variant))

    def ready(self) -> bool:
        return any(m is not None for (k, v), m in self.slots.items() if v == CHAMPION)

    def wanted(self) -> list[tuple[str, str, str]]:
        """(kind, variant, registered name) of every slot the configuration asks for."""
        out = []
        for kind, name in self.cfg.models.items():
            if name:
                out.append((kind, CHAMPION, name))
                if self.router.wants_challenger(kind):
                    out.append((kind, CHALLENGER, name))
        return out

    # ------------------------------------------------------------------ loading
    def _resolve(self, name: str, variant: str) -> tuple[str, str] | None:
        """(version, alias) the slot should serve, or None when there is nothing to serve."""
        from serving.registry import alias_or_newest

        alias = self.cfg.champion_alias if variant == CHAMPION else self.cfg.challenger_alias
        found = alias_or_newest(self.client, name, alias, newest=variant == CHAMPION and self.cfg.fallback_latest)
        return None if found is None else (found[0], found[1] or "latest")

    def load(self, kind: str, variant: str, name: str, version: str, alias: str) -> LoadedModel:
        """Load a version through MLflow and warm it up; raises when either fails."""
        import mlflow
        import pandas as pd

        from serving.scoring import WarmUpError, runner_for

        t0 = time.perf_counter()
        model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
        bundle = getattr(model.unwrap_python_model(), "bundle", None)
        if not isinstance(bundle, dict):
            raise WarmUpError("the model holds no CEREBRO bundle")
        runner = runner_for(kind, bundle)
        example = model.input_example
        if example is None:
            raise WarmUpError("the model was logged without an input example to warm up with")
        runner.warm_up(example if isinstance(example, pd.DataFrame) else pd.DataFrame(example))
        mv = self.client.get_model_version(name, version)
        log.info("loaded %s v%s (%s, %s) in %.1f s", name, version, kind, variant, time.perf_counter() - t0)
        return LoadedModel(kind, variant, name, version, alias, runner, mv.run_id,
                           Window(self.cfg.rollback.window))

    def _event(self, **data) -> None:
        self.events.append({"at": _now(), **data})

    def _swap(self, key: tuple[str, str], new: LoadedModel | None) -> LoadedModel | None:
        with self._lock:
            old = self.slots.get(key)
            if new is not None:
                new.live_since = _now()
                new.window = Window(self.cfg.rollback.window)  # judged on its own requests only
                new.judged = True
            if old is not None and old is not new:
                self.previous[key] = old
            self.slots[key] = new  # the switch: one reference assignment
        kind, variant = key
        if old is not None:
            self.metrics.live.labels(kind, variant, old.name).set(0)
        if new is not None:
            self.metrics.live.labels(kind, variant, new.name).set(float(new.version))
        return old

    def reload(self, retry_refused: bool = False) -> list[dict]:
        """Check every alias now; load, warm up and switch to any version that moved. Returns what changed."""
        changes = []
        with self._reload_lock:
            if retry_refused:
                self.refused.clear()
            for kind, variant, name in self.wanted():
                key = (kind, variant)
                target = self._resolve(name, variant)
                current = self.slots.get(key)
                if target is None:
                    if current is not None and variant == CHALLENGER:
                        self._swap(key, None)
                        self._event(kind=kind, variant=variant, event="unloaded", model=name, version=current.version,
                                    reason="the challenger alias is gone")
                    continue
                version, alias = target
                if current is not None and current.version == version and current.name == name:
                    current.alias = alias
                    continue
                if (name, version) in self.refused:
                    continue
                try:
                    loaded = self.load(kind, variant, name, version, alias)
                except Exception as exc:  # noqa: BLE001 - whatever broke, the running version keeps answering
                    reason = f"{type(exc).__name__}: {exc}"[:500]
                    self.refused[(name, version)] = reason
                    self.metrics.refusals.labels(kind, variant).inc()
                    self._event(kind=kind, variant=variant, event="refused", model=name, version=version,
                                reason=reason)
                    log.error("refused %s v%s for %s/%s, %s stays live: %s", name, version, kind, variant,
                              f"v{current.version}" if current else "nothing", reason)
                    changes.append({"kind": kind, "variant": variant, "refused": version, "reason": reason})
                    continue
                old = self._swap(key, loaded)
                self.metrics.swaps.labels(kind, variant).inc()
                self._event(kind=kind, variant=variant, event="switched", model=name, version=version,
                            from_version=old.version if old else None, alias=alias)
                log.info("%s/%s: switched %s from %s to v%s", kind, variant, name,
                         f"v{old.version}" if old else "nothing", version)
                changes.append({"kind": kind, "variant": variant, "version": version,
                                "from_version": old.version if old else None})
        if changes and self.after_change is not None:
            self.after_change()
        return changes

    def batches(self, model: LoadedModel) -> bool:
        """Whether /v1/score requests for ``model`` are scored together (``serving.coalesce``): batching is
        on (``serving.max_batch`` > 1) and the model's warm-up found batched scores equal to one at a time."""
        return self.cfg.max_batch > 1 and bool(getattr(model.runner, "batchable", False))

    # ------------------------------------------------------------------ polling
    def start_polling(self) -> None:
        if self.cfg.poll_seconds <= 0 or self._poller is not None:
            return

        def loop() -> None:
            while not self._stop.wait(self.cfg.poll_seconds):
                try:
                    self.reload()
                except Exception:  # a registry outage must not end the poller
                    log.exception("alias check failed; the live models keep answering")

        poller = threading.Thread(target=loop, name="cerebro-alias-poller", daemon=True)
        poller.start()
        # set once started: a shutdown that comes while the start-up thread is here must not join a thread
        # that has not started (a poller started after ``stop`` finds the stop set and ends at once)
        self._poller = poller

    def stop(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
        self.wait_idle()

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait for background rollbacks (tests, shutdown)."""
        for t in list(self._background):
            t.join(timeout=timeout)
        self._background = [t for t in self._background if t.is_alive()]

    # ------------------------------------------------------------------ judging
    def record(self, model: LoadedModel, outcome: Outcome) -> None:
        """Count one request of ``model``; start a rollback when its window passes a limit."""
        limits = self.cfg.rollback
        model.window.add(outcome)
        if not (limits.enabled and model.judged):
            return
        reason = breach(model.window.stats(), limits)
        if reason is None:
            return
        model.judged = False  # one rollback per version
        thread = threading.Thread(target=self.rollback, args=(model, reason), name="cerebro-rollback", daemon=True)
        self._background.append(thread)
        thread.start()

    def _previous_from_registry(self, bad: LoadedModel) -> LoadedModel | None:
        """The newest version below the bad one that loads and warms up (the service never served one)."""
        versions = sorted((int(v.version) for v in self.client.search_model_versions(f"name='{bad.name}'")
                           if int(v.version) < int(bad.version)), reverse=True)
        for v in versions:
            if (bad.name, str(v)) in self.refused:
                continue
            try:
                return self.load(bad.kind, bad.variant, bad.name, str(v), self.cfg.champion_alias)
            except Exception as exc:  # noqa: BLE001 - the previous version failing too is recorded, not raised
                self.refused[(bad.name, str(v))] = f"{type(exc).__name__}: {exc}"[:500]
        return None

    def rollback(self, bad: LoadedModel, reason: str) -> LoadedModel | None:
        """Take ``bad`` out of service: the champion goes back to the previous version (and so does its alias);
        a challenger is only unloaded."""
        key = (bad.kind, bad.variant)
        with self._reload_lock:  # no alias switch in between
            if self.slots.get(key) is not bad:
                return None
            self.refused[(bad.name, bad.version)] = f"rolled back: {reason}"
            self.metrics.rollbacks.labels(bad.kind, reason.split(" ")[0].rstrip(":")).inc()
            if bad.variant == CHALLENGER:
                self._swap(key, None)
                self.previous.pop(key, None)
                self._event(kind=bad.kind, variant=bad.variant, event="rolled back", model=bad.name,
                            version=bad.version, to_version=None, reason=reason)
                log.warning("challenger %s v%s unloaded: %s", bad.name, bad.version, reason)
                return None
            target = self.previous.get(key)
            if target is None or target.version == bad.version or target.name != bad.name:
                target = self._previous_from_registry(bad)
            if target is None:
                self.refused.pop((bad.name, bad.version), None)
                self._event(kind=bad.kind, variant=bad.variant, event="rollback impossible", model=bad.name,
                            version=bad.version, reason=f"{reason}; no earlier version loads")
                log.error("%s v%s breached a limit (%s) but no earlier version loads; it stays live",
                          bad.name, bad.version, reason)
                self._alert(model=bad.name, from_version=bad.version, to_version=None, reason=reason,
                            where="scoring service, automatic")
                return None
            self._swap(key, target)
            self.previous.pop(key, None)
            target.alias = self.cfg.champion_alias
        alias = self._move_alias(bad, target, reason)
        self._event(kind=bad.kind, variant=bad.variant, event="rolled back", model=bad.name, version=bad.version,
                    to_version=target.version, reason=reason, alias=alias)
        log.warning("rolled back %s from v%s to v%s: %s (alias: %s)", bad.name, bad.version, target.version, reason,
                    alias)
        if not alias.startswith("already"):  # another replica moved it there, and told the ML team
            self._alert(model=bad.name, from_version=bad.version, to_version=target.version, reason=reason,
                        where="scoring service, automatic")
        return target

    def _move_alias(self, bad: LoadedModel, target: LoadedModel, reason: str) -> str:
        """Point the champion alias at ``target`` in MLflow, only while it still points at ``bad`` (or at
        nothing): a compare-and-set, so that the replicas of ``cerebro serve --workers N``, each judging its own
        requests, roll back at most once between them and never over a version someone promoted since. Replicas
        on this machine take turns on a lock file. Says what happened: moved, already on the target (another
        replica did it), left on another version (this process follows it at its next alias check), or failed."""
        from serving.registry import alias_or_newest

        name, champion = bad.name, self.cfg.champion_alias
        try:
            with _machine_lock(self.settings.home / "serving" / "rollback.lock"):
                found = alias_or_newest(self.client, name, champion, newest=False)
                now = None if found is None else found[0]
                if now == target.version:
                    return f"already on v{now}"
                if now is not None and now != bad.version:
                    log.warning("%s@%s points at v%s now, not at the rolled-back v%s: left there", name, champion,
                                now, bad.version)
                    return f"left on v{now}"
                self.client.set_registered_model_alias(name, champion, target.version)
                self.client.set_model_version_tag(name, bad.version, "cerebro.rolled_back", reason[:250])
                return f"moved to v{target.version}"
        except Exception:  # the swap stands; the refusal keeps the poller off the bad version
            log.exception("rolled back in the service, but the %r alias could not be moved in MLflow", champion)
            return "not moved (MLflow failed)"

    def _alert(self, **details) -> None:
        """Tell the ML team, on a thread of its own: a slow webhook must not hold the reload lock."""
        if self.alert is None:
            return

        def send() -> None:
            try:
                self.alert("rollback", **details)
            except Exception:  # an alert must never stop a rollback
                log.exception("rollback alert failed")

        thread = threading.Thread(target=send, name="cerebro-alert", daemon=True)
        self._background.append(thread)  # wait_idle waits for it too
        thread.start()

    # ------------------------------------------------------------------ reporting
    def describe(self) -> dict:
        live = []
        for (kind, variant), m in sorted(self.slots.items()):
            if m is None:
                continue
            live.append({"kind": kind, "variant": variant, "model": m.name, "version": m.version, "alias": m.alias,
                         "live_since": m.live_since, "loaded_at": m.loaded_at, "run_id": m.run_id,
                         "fast_path": bool(getattr(m.runner, "fast", False)),
                         "batching": self.batches(m),
                         "window": m.window.stats()})
        refused = [{"model": n, "version": v, "reason": r} for (n, v), r in self.refused.items()]
        return {"live": live, "refused": refused, "events": list(self.events), "pid": os.getpid()}


@contextmanager
def _machine_lock(path):
    """An exclusive lock on ``path`` shared by the processes of this machine (``flock``); no lock where the
    platform has no ``fcntl`` or the file cannot be opened."""
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a")  # noqa: SIM115 - closed below, after the lock is released
    except (ImportError, OSError):
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
