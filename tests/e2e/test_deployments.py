"""prefect.yaml: every deployment points at a real flow, on the process pool, the pipeline weekly."""
from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_deployments_load_their_flows():
    from prefect.flows import load_flow_from_entrypoint

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = spec["deployments"]
    names = set()
    for d in deployments:
        flow = load_flow_from_entrypoint(str(ROOT / d["entrypoint"]))
        names.add(f"{flow.name}/{d['name']}")
        assert d["work_pool"]["name"] == "cerebro-local"
    assert {"pipeline/weekly", "pipeline/on-demand", "pipeline/retrain", "ingest/on-demand", "drift/hourly",
            "deploy/on-demand", "batch-inference/on-demand", "knowledge/on-demand", "investigate/on-demand"} <= names
    # the drift check's retraining target is a deployment this file defines
    from configs.settings import load_settings

    assert load_settings().drift.retrain_deployment in names
    hourly = next(d for d in deployments if d["entrypoint"].endswith("drift_flow"))
    assert hourly["schedules"][0]["cron"] == "0 * * * *"
    weekly = next(d for d in deployments if d["name"] == "weekly")
    assert weekly["schedules"][0]["cron"] == "0 3 * * 1" and weekly["schedules"][0]["active"]


def test_ci_and_make_targets_exist():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run:", "test:", "ui:", "bench:"):
        assert f"\n{target}" in makefile


def test_deployments_are_registered_on_a_running_server(prefect_server, home):
    """What `cerebro ui` and `make run` do when a server runs: the work pool and every deployment of prefect.yaml,
    so `prefect deployment run 'pipeline/on-demand'` works with no other step."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    from configs.settings import load_settings
    from flows.services import POOL, register_deployments, server_up

    api = PREFECT_API_URL.value()
    assert server_up(api) and not server_up("http://127.0.0.1:9/api")
    register_deployments(load_settings(), api)

    async def read():
        async with get_client() as client:
            pool = await client.read_work_pool(POOL)
            deps = await client.read_deployments()
            flows = {f.id: f.name for f in await client.read_flows()}
            return pool, {f"{flows[d.flow_id]}/{d.name}" for d in deps}

    pool, names = asyncio.run(read())
    assert pool.type == "process"
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    ours = {n for n in names if "under-test" not in n}  # other tests on this session's server add their own
    assert len(ours) == len(spec["deployments"]) and "pipeline/on-demand" in ours
