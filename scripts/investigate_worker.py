"""`investigate/on-demand` end to end, the way operators run it: a Prefect server, the deployments of
prefect.yaml on the `cerebro-local` process pool, a process worker, and

    prefect deployment run 'investigate/on-demand' --param question="why is checkout slow?"

then checks that the flow run completed and left its report artifact. Needs a home folder whose lake and
MLflow the pipeline filled (`cerebro run`, or any lake with a graph and a registered detector):

    CEREBRO_HOME=~/.cerebro python scripts/investigate_worker.py ["why is checkout slow?"] [--at 2026-11-19T10:00Z]

Everything it starts (server, worker) runs under the home folder's prefect/ and is stopped at the end.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 120) -> None:
    import httpx

    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"the Prefect server did not answer at {url} within {timeout:.0f} s")


def sh(*args: str, env: dict) -> str:
    proc = subprocess.run(list(args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout


async def wait_for_run(flow_run_id: str, timeout: float) -> tuple[str, list]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        t0 = time.time()
        while True:
            run = await client.read_flow_run(flow_run_id)
            if run.state and run.state.is_final():
                break
            if time.time() - t0 > timeout:
                raise SystemExit(f"flow run {flow_run_id} still {run.state.name} after {timeout:.0f} s")
            await asyncio.sleep(2)
        arts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
        return run.state.name, arts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("question", nargs="?", default="why is checkout slow?")
    ap.add_argument("--at", default=None, help="end of the window (default: the lake's newest minute)")
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()

    home = Path(os.environ.get("CEREBRO_HOME", ROOT / ".cerebro")).resolve()
    if not (home / "lake" / "telemetry").is_dir():
        raise SystemExit(f"no lake under {home}; run `cerebro run` first or point CEREBRO_HOME at a filled home")
    (home / "prefect").mkdir(parents=True, exist_ok=True)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "CEREBRO_HOME": str(home), "PREFECT_HOME": str(home / "prefect"), "PREFECT_API_URL": api,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GX_ANALYTICS_ENABLED": "false", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    os.environ.update({k: env[k] for k in ("PREFECT_API_URL", "PREFECT_HOME")})
    logs = home / "prefect" / "investigate_worker"
    logs.mkdir(exist_ok=True)
    started = []
    t0 = time.time()
    with contextlib.ExitStack() as files:
        server_log = files.enter_context(open(logs / "server.log", "w"))
        return _run(args, env, api, started, server_log, t0, port)


def _run(args, env, api, started, server_log, t0, port) -> int:
    try:
        server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                  cwd=ROOT, env=env, stdout=server_log, stderr=subprocess.STDOUT)
        started.append(server)
        wait_http(f"{api}/health")
        print(f"server up at {api} ({time.time() - t0:.0f} s)")
        # the pool, the deployments and the worker exactly as `cerebro ui` makes them (flows/services.py)
        from configs.settings import load_settings
        from flows.services import register_deployments, start_worker

        settings = load_settings()
        deployed = register_deployments(settings, api)
        names = sorted(set(re.findall(r"'([\w-]+/[\w-]+)'", deployed)))
        print(f"deployments registered: {', '.join(names) or deployed[-500:]}")
        started.append(start_worker(settings, api))
        run_args = [str(BIN / "prefect"), "deployment", "run", "investigate/on-demand", "--param",
                    f"question={args.question}"] + (["--param", f"at={args.at}"] if args.at else [])
        out = sh(*run_args, env=env)
        match = re.search(r"UUID:\s*([0-9a-f-]{36})", out)
        if not match:
            raise SystemExit(f"no flow run id in:\n{out}")
        print(f"$ prefect deployment run 'investigate/on-demand' --param question={args.question!r}"
              + (f" --param at={args.at}" if args.at else "") + f"\nflow run {match.group(1)}")
        state, arts = asyncio.run(wait_for_run(match.group(1), args.timeout))
        keys = sorted(a.key for a in arts if a.key)
        print(f"flow run {state} after {time.time() - t0:.0f} s; artifacts: {', '.join(keys)}")
        report = next((a for a in arts if a.key == "investigation-report"), None)
        if state != "Completed" or report is None:
            print(f"FAILED: see {settings.home / 'run' / 'worker-ui.log'}", file=sys.stderr)
            return 1
        print("report artifact, first lines:")
        print("\n".join(str(report.data).splitlines()[:8]))
        return 0
    finally:
        for proc in reversed(started):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    raise SystemExit(main())
