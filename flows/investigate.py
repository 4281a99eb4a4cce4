"""The ``investigate`` flow: an evidence-backed answer to "why is checkout slow?", and an LLM's analysis of that
evidence when a model is configured (``llm.tasks.reasoning``; none by default).

    prefect deployment run 'investigate/on-demand' --param question="why is checkout slow?"
    prefect deployment run 'investigate/on-demand' --param service=payment --param at=2026-12-01T14:05Z
    cerebro investigate "why is checkout slow?" [--service S] [--at T] [--json]     # the same flow, locally

Each step of ``flows/investigation_data.gather`` runs as a task (the lake, the ranking, the detector,
the failure predictor, the capacity plan, changes, traces, the knowledge base), then ``llm-analysis``
(flows/investigation_llm.py: the gateway, held to the bundle, its calls' cost to MLflow); the flow leaves a
Markdown report, a PNG of the suspects' metrics with their onsets, and the JSON evidence bundle
(``<home>/investigations/``). See docs/investigations.md and docs/llm.md.
"""
from __future__ import annotations

import re
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from configs.settings import load_settings


def _as_task(name: str, fn, *args):
    return task(name=name, cache_policy=NO_CACHE)(fn)(*args)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "investigation"


def save_outputs(settings, bundle, telemetry=None, analysis=None) -> dict:
    """The bundle's JSON and the suspects' plot under ``<home>/investigations/``; the report (with the LLM's
    analysis and its cost when there is one) and its links."""
    from agents.investigation.plot import plot_suspects
    from agents.investigation.report import report_markdown
    from flows.investigation_data import model_link, read_window
    from flows.investigation_llm import secret_values

    folder = Path(settings.home) / "investigations"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{bundle.window.end:%Y%m%dT%H%M}-{_slug(bundle.question.text or bundle.target or 'fleet')}"
    json_path = folder / f"{stem}.json"
    json_path.write_text(bundle.model_dump_json(indent=2))
    telemetry = read_window(settings, bundle.window) if telemetry is None else telemetry
    plot = plot_suspects(bundle, telemetry, folder / f"{stem}.png")
    links = {f"{m.name}/{m.version}": model_link(m.name, m.version) for m in bundle.models if m.role != "capacity forecast"}
    markdown = report_markdown(bundle, links=links, plot=str(plot) if plot else None, bundle_file=str(json_path),
                               analysis=analysis, secrets=secret_values(settings))
    (folder / f"{stem}.md").write_text(markdown)
    return {"json": str(json_path), "plot": str(plot) if plot else None, "markdown": markdown,
            "report": str(folder / f"{stem}.md")}


@flow(name="investigate", log_prints=True)
def investigate_flow(question: str | None = None, service: str | None = None, at: str | None = None,
                     window: str = "60m", config: str | None = None) -> dict:
    """Investigate a question ("why is checkout slow?"), or a service at a time, over the lake with the
    registered models: abnormal metrics and since when, ranked root causes with evidence, changes, risk,
    capacity, traces, similar incidents and runbook steps; with an LLM configured, its analysis of that
    evidence and what the calls cost. Leaves a Markdown report, a plot and the JSON."""
    from flows import reporting
    from flows.investigation_data import gather
    from flows.investigation_llm import llm_analysis

    if not (question or service):
        raise ValueError("ask a question (question=\"why is checkout slow?\") or name a service (service=payment)")
    settings = load_settings(config)
    bundle = gather(settings, question=question, service=service, at=at, window=window, step=_as_task)
    analysis = _as_task("llm-analysis", llm_analysis, settings, bundle)
    saved = save_outputs(settings, bundle, analysis=analysis)
    create_markdown_artifact(key="investigation-report", markdown=saved["markdown"],
                             description=bundle.summary[:250])
    if saved["plot"]:
        create_markdown_artifact(key="investigation-plot", markdown=reporting.png_markdown(saved["plot"], "suspects"),
                                 description="The suspects' metrics over the baseline and the window, onsets marked")
    # The path as text: a browser blocks a file:// link opened from the Prefect UI's http page.
    create_markdown_artifact(key="investigation-bundle",
                             markdown=f"Evidence bundle (JSON) on this machine: `{Path(saved['json']).resolve()}`",
                             description="The evidence bundle the report was written from")
    get_run_logger().info("%s %s Report %s", bundle.summary, analysis.note, saved["report"])
    return {"summary": bundle.summary, "verdict": bundle.verdict, "json": saved["json"], "plot": saved["plot"],
            "report": saved["report"], "bundle": bundle.model_dump(mode="json"),
            "analysis": analysis.model_dump(mode="json")}
