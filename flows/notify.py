"""Alerting the ML team: Prefect's custom-webhook notification block posts ``{"text": ...}`` (Slack-compatible)
to ``notify.webhook_url`` for the events in ``notify.events``.

    send(settings, "drift", text)            # True when delivered; never raises
    alert = notifier(settings)               # a plain callable for code without Prefect (serving/)
    alert("rollback", model=..., from_version=..., to_version=..., reason=..., where=...)
    @flow(on_failure=[pipeline_failed])      # a failed pipeline run posts its name, stage and error

No URL configured: nothing is sent. A failed delivery is a warning that names the event, never the URL
(the URL is the credential), and the run goes on.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from flows import alerts

LOG = logging.getLogger("cerebro.notify")


class _Redact(logging.Filter):
    """httpx logs every request's URL at INFO; the webhook's must not reach a log."""

    def __init__(self):
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(s in message for s in self.secrets):
            for s in self.secrets:
                message = message.replace(s, "<notify.webhook_url>")
            record.msg, record.args = message, ()
        return True


_REDACT = _Redact()


def _logger():
    try:
        from prefect.logging import get_run_logger

        return get_run_logger()  # in a flow or task: the warning lands in its run's log
    except Exception:  # noqa: BLE001 - outside a run (the scoring service, the CLI, hooks)
        return LOG


def wanted(settings, event: str) -> bool:
    cfg = settings.notify
    return cfg.webhook_url is not None and event in cfg.events


def _block(cfg):
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    # The URL goes in as a secret and is filled in at send time, so the block's fields never hold it.
    return CustomWebhookNotificationBlock(
        name="cerebro", url="{{webhook_url}}", method="POST", json_data={"text": "{{body}}"},
        timeout=cfg.timeout_s, secrets={"webhook_url": cfg.webhook_url.get_secret_value()})


def send(settings, event: str, text: str) -> bool:
    """Post ``text`` for ``event`` when the webhook is set and the event is wanted; True when delivered."""
    if not wanted(settings, event):
        return False
    url = settings.notify.webhook_url.get_secret_value()
    _REDACT.secrets.add(url)
    logging.getLogger("httpx").addFilter(_REDACT)
    try:
        _block(settings.notify).notify(text, _sync=True)
    except Exception as exc:  # noqa: BLE001 - an alert that cannot be delivered must not fail the run
        _logger().warning("alert %r not delivered: %s", event, _why(exc, url))
        return False
    return True


def _why(exc: Exception, url: str) -> str:
    """The failure without the URL: HTTP errors quote it in full."""
    response = getattr(exc, "response", None)
    if response is not None:
        return f"the webhook answered HTTP {response.status_code}"
    return f"{type(exc).__name__}: {alerts._first_line(str(exc)).replace(url, '<notify.webhook_url>')}"


def notifier(settings) -> Callable[..., bool] | None:
    """A plain ``alert(event, **details)`` for code that must not import Prefect, or None with no webhook."""
    if settings.notify.webhook_url is None:
        return None
    texts = {"rollback": alerts.rollback_text, "fallback": alerts.fallback_text}

    def alert(event: str, **details) -> bool:
        if not wanted(settings, event):
            return False
        try:
            text = texts[event](**details)
        except Exception as exc:  # noqa: BLE001 - a malformed alert must not break the caller
            LOG.warning("alert %r not built: %s", event, exc)
            return False
        return send(settings, event, text)

    return alert


def alert_drift(settings, summary: dict, compared: int | None = None) -> bool:
    """The drift flow's alert: ``fallback`` when the live model was replaced, ``drift`` for the rest."""
    action = summary.get("action") or {}
    if action.get("action") == "fallback" and action.get("applied"):
        model, _, version = (summary.get("model") or "?/?").partition("/")
        return send(settings, "fallback", alerts.fallback_text(
            model, version, settings.drift.fallback_model, action.get("fallback_version"), action.get("reasons") or []))
    if action.get("action") in ("retrain", "fallback"):
        return send(settings, "drift", alerts.drift_text(summary, compared))
    return False


# ------------------------------------------------------------------------------------ failed flow runs
def pipeline_failed(flow, flow_run, state) -> None:
    """Prefect ``on_failure`` / ``on_crashed`` hook: post the run's name, failing stage, error and where to look."""
    try:
        from configs.settings import load_settings

        settings = load_settings((flow_run.parameters or {}).get("config"))
    except Exception:  # noqa: BLE001 - a bad config may be why the run failed: the environment alone then
        try:
            from configs.settings import load_settings

            settings = load_settings("default")
        except Exception as exc:  # noqa: BLE001
            LOG.warning("alert 'pipeline_failed' not sent: no settings (%s)", type(exc).__name__)
            return
    if not wanted(settings, "pipeline_failed"):
        return
    error = str(state.message or state.name).removeprefix("Flow run encountered an exception: ")
    text = alerts.pipeline_failed_text(flow.name, flow_run.name, error, stage=_failed_stage(flow_run),
                                       where=_where(flow_run), state=state.name.lower())
    send(settings, "pipeline_failed", text)


def _failed_stage(flow_run) -> str | None:
    """The task or subflow of the run that failed first (its run name less Prefect's suffix), if the API says."""
    import re

    try:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterId,
            TaskRunFilter,
            TaskRunFilterState,
            TaskRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType

        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])),
                task_run_filter=TaskRunFilter(state=TaskRunFilterState(
                    type=TaskRunFilterStateType(any_=[StateType.FAILED, StateType.CRASHED]))))
    except Exception:  # noqa: BLE001 - the stage is a nicety; the alert goes without it
        return None
    if not runs:
        return None
    first = min(runs, key=lambda r: (r.end_time is None, r.end_time.isoformat() if r.end_time else ""))
    return re.sub(r"-[0-9a-z]{3}$", "", first.name)


def _where(flow_run) -> str:
    """The run's page in the Prefect UI when ``PREFECT_UI_URL`` is known, else its id to look up."""
    try:
        from prefect.settings import PREFECT_UI_URL
        from prefect.utilities.urls import url_for

        if PREFECT_UI_URL.value():
            url = url_for(flow_run)
            if url:
                return url
    except Exception as exc:  # noqa: BLE001 - the id below is enough to find the run
        LOG.debug("no UI URL for the flow run: %s", exc)
    return f"flow run id {flow_run.id} (`prefect flow-run inspect {flow_run.id}`)"
