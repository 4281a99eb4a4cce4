"""The scale profile as a tested path: configs/scale.yaml's engines, really running, working together.

One module-scoped fixture brings up what docs/scale.md tells a team to run:

* PostgreSQL (this machine's, 127.0.0.1:5432): a fresh database each for Prefect, MLflow and Feast's registry,
  dropped at the end;
* `prefect server start` on PostgreSQL, the work pool and prefect.yaml's deployments, a process worker;
* `mlflow server` with its backend store on PostgreSQL and artifacts in S3 (moto in server mode), proxied: the
  pipeline and the scoring service talk to it over HTTP only;
* Feast's registry in PostgreSQL and its online store in Redis (this machine's, on a database index of its own);
* a Dask cluster of 2 worker processes, the profile's `prefect.dask_address`.

The profile is configs/scale.yaml itself with the hosts, ports and database names pointed at these, and the
fleet made small (a day, three detectors, the baseline forecaster) while every stage still runs. Skipped, with the
reason, where PostgreSQL or Redis does not answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

# A whole pipeline and another `cerebro run` on two shared cores: more than the suite's 600 s per test.
pytestmark = [pytest.mark.services, pytest.mark.filterwarnings("ignore"), pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG = "postgres@127.0.0.1:5432"
BUCKET = "cerebro-mlflow"
DEPLOYMENT = "pipeline/on-demand"


def _services_missing() -> str | None:
    """Why the scale services cannot be used here, or None when PostgreSQL and Redis both answer."""
    try:
        import psycopg

        with psycopg.connect(f"postgresql://{PG}/postgres", connect_timeout=3):
            pass
    except Exception as exc:  # noqa: BLE001 - any failure means: no usable PostgreSQL
        return f"PostgreSQL at {PG} (no password) does not answer: {str(exc).splitlines()[0]}"
    try:
        import redis

        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001
        return f"Redis at 127.0.0.1:6379 does not answer: {str(exc).splitlines()[0]}"
    return None


def _sql(statement: str, db: str = "postgres") -> list:
    import psycopg

    with psycopg.connect(f"postgresql://{PG}/{db}", autocommit=True) as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else []


def _free_redis_db():
    """A Redis database index that holds no key now (1-15), so that nothing of another user's is touched."""
    import redis

    for index in range(15, 0, -1):
        client = redis.Redis(host="127.0.0.1", port=6379, db=index)
        if client.dbsize() == 0:
            return index, client
    pytest.skip("every Redis database index 1-15 holds keys; none is free for this test")


def _start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )


def _signal(proc: subprocess.Popen) -> None:
    """SIGTERM to the process's whole group (mlflow's and prefect's servers fork), if it still runs."""
    import signal

    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def _stop(proc: subprocess.Popen) -> None:
    import signal

    _signal(proc)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{url}: the server exited; its log:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url}: no answer in {timeout:.0f} s; its log:\n{log.read_text()[-3000:]}")


def _profile(
    tmp: Path, *, prefect_api: str, dbs: dict, mlflow_url: str, redis_db: int, serving_port: int, dask: str
) -> Path:
    """configs/scale.yaml, pointed at this fixture's services and sized small, as a profile file."""
    spec = yaml.safe_load((ROOT / "configs" / "scale.yaml").read_text())
    spec["home"] = str(tmp / "home")
    spec["prefect"].update(
        api_url=prefect_api, database_url=f"postgresql+asyncpg://{PG}/{dbs['prefect']}", dask_address=dask
    )
    spec["mlflow"].update(tracking_uri=mlflow_url, artifact_root=None)  # the server's own (S3) artifact store
    spec["feast"].update(
        project=f"cerebro_scale_{uuid.uuid4().hex[:6]}",
        redis_url=f"127.0.0.1:6379,db={redis_db}",
        registry_url=f"postgresql+psycopg://{PG}/{dbs['feast']}",
    )
    spec["llm"]["redis_url"] = f"redis://127.0.0.1:6379/{redis_db}"
    # Small: a day of the fleet (a fixed one), three detectors, the baseline forecaster: every stage still runs.
    spec["simulator"].update(days=1, seed=3, end="2026-11-20T00:00:00Z", incidents_per_day=4)
    # No serving-cost measurement: the engines are under test here, not the choice (tests/e2e/test_own_data.py).
    spec["detection"].update(include=["zscore", "mad", "pca"], profile="default", ensemble_size=2, serving_cost=False)
    spec["forecasting"].update(
        profile="default",
        models=["seasonal_naive"],
        series=["database/disk_pct"],
        horizons=[1, 6],
        origins=2,
        capacity_horizon_hours=168,
    )
    spec["failure"]["step_minutes"] = 5
    # The fixed window (the same incidents on every run) is weeks old: the two-hour freshness rule would refuse
    # it. The profile's own fleet ends at the current hour and passes it.
    spec["validation"]["on_stale"] = "warn"
    spec["drift"] = {"reference_days": 0.5, "current_hours": 6}
    spec["serving"] = {"port": serving_port}
    path = tmp / "scale-test.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def scale(tmp_path_factory):
    """Every scale service up, the deployments registered and a worker polling; yields what the tests need."""
    why = _services_missing()
    if why:
        pytest.skip(why)
    import logging

    import boto3
    from distributed import LocalCluster
    from moto.server import ThreadedMotoServer
    from support.servers import free_port, wait_for_port

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's line per S3 request
    t0 = time.monotonic()
    tmp = tmp_path_factory.mktemp("scale")
    logs = tmp / "logs"
    logs.mkdir()
    tag = uuid.uuid4().hex[:8]
    dbs = {part: f"cerebro_scale_{tag}_{part}" for part in ("prefect", "mlflow", "feast")}
    redis_db, redis_client = _free_redis_db()
    settings = cluster = None
    started: list[subprocess.Popen] = []
    moto = None
    with pytest.MonkeyPatch.context() as mp:
        try:
            for db in dbs.values():
                _sql(f'CREATE DATABASE "{db}"')
            # S3 credentials go to the MLflow server alone: the pipeline and the scoring service reach the
            # artifacts through it, over HTTP.
            aws = {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
            for key in (
                *aws,
                "AWS_PROFILE",
                "AWS_SESSION_TOKEN",
                "AWS_ENDPOINT_URL",
                "MLFLOW_S3_ENDPOINT_URL",
                "PREFECT_API_URL",
                "MLFLOW_TRACKING_URI",
                "CEREBRO_CONFIG",
            ):
                mp.delenv(key, raising=False)
            moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            moto.start()
            s3_url = "http://{}:{}".format(*moto.get_host_and_port())
            wait_for_port(*moto.get_host_and_port())
            s3 = boto3.client(
                "s3",
                endpoint_url=s3_url,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            s3.create_bucket(Bucket=BUCKET)

            base = {
                **os.environ,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "GX_ANALYTICS_ENABLED": "false",
            }
            mlflow_port, prefect_port = free_port(), free_port()
            mlflow_url = f"http://127.0.0.1:{mlflow_port}"
            mlflow_env = {
                **base,
                **aws,
                "MLFLOW_S3_ENDPOINT_URL": s3_url,
                "MLFLOW_BACKEND_STORE_URI": f"postgresql+psycopg://{PG}/{dbs['mlflow']}",
            }
            started.append(
                _start(
                    [
                        str(BIN / "mlflow"),
                        "server",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(mlflow_port),
                        "--workers",
                        "1",
                        "--artifacts-destination",
                        f"s3://{BUCKET}/mlartifacts",
                    ],
                    mlflow_env,
                    logs / "mlflow.log",
                )
            )
            prefect_env = {
                **base,
                "PREFECT_HOME": str(tmp / "prefect-server"),
                "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://{PG}/{dbs['prefect']}",
                # a held-back run asks again after 2 s, not 30: the test waits for it
                "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "2",
                "PREFECT_UI_ENABLED": "false",
                # prefect.yaml's schedules are registered but never fire here: the hourly drift check would start
                # 'pipeline/retrain' on the top of the hour, a third pipeline beside the ones under test.
                "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
            }
            prefect_env.pop("PREFECT_API_URL", None)
            started.append(
                _start(
                    [
                        str(BIN / "prefect"),
                        "server",
                        "start",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(prefect_port),
                    ],
                    prefect_env,
                    logs / "prefect-server.log",
                )
            )
            api = f"http://127.0.0.1:{prefect_port}/api"
            dask_port = free_port()
            profile = _profile(
                tmp,
                prefect_api=api,
                dbs=dbs,
                mlflow_url=mlflow_url,
                redis_db=redis_db,
                serving_port=free_port(),
                dask=f"tcp://127.0.0.1:{dask_port}",
            )
            # The worker, its flow runs and the scoring service they start inherit this environment.
            mp.setenv("CEREBRO_HOME", str(tmp / "home"))  # the session's home would outrank the profile's
            mp.setenv("PYTHONPATH", base["PYTHONPATH"])
            mp.setenv("PREFECT_WORKER_QUERY_SECONDS", "2")
            from configs.settings import load_settings
            from flows.services import register_deployments, start_worker

            settings = load_settings(profile)
            # The Dask cluster the profile's dask_address names (2 worker processes), shared by every run as a
            # team's scheduler would be; a subflow starting a local cluster of its own is tested in
            # tests/e2e/test_flows.py. Its workers get the environment `cerebro env` prints, as docs/scale.md
            # asks of a team's Dask workers: tasks that load the configuration read it from there.
            cluster = LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                scheduler_port=dask_port,
                dashboard_address=None,
                env={**_engine_env(settings), "PYTHONPATH": base["PYTHONPATH"]},
            )
            _wait_http(f"{mlflow_url}/health", started[0], logs / "mlflow.log")
            _wait_http(f"{api}/health", started[1], logs / "prefect-server.log")
            print(f"servers up after {time.monotonic() - t0:.0f} s")
            register_deployments(settings, api)
            print(f"deployments registered after {time.monotonic() - t0:.0f} s")
            started.append(start_worker(settings, api))
            yield {
                "settings": settings,
                "profile": profile,
                "api": api,
                "mlflow": mlflow_url,
                "s3": s3,
                "dbs": dbs,
                "redis": redis_client,
                "logs": logs,
                "env": {**os.environ, **_engine_env(settings)},
                "dask": cluster,
            }
        finally:
            _teardown(started, moto, dbs, redis_client, settings, cluster)


def _engine_env(settings) -> dict:
    from configs.runtime import engine_environment

    return engine_environment(settings)


def _teardown(started, moto, dbs, redis_client, settings, cluster) -> None:
    if settings is not None:  # the scoring service the pipeline deployed (a detached process)
        from serving.deploy.local import stop_local

        stop_local(settings, settings.serving.port)
    for proc in reversed(started):  # all signalled first, then waited for: each may take seconds to exit
        _signal(proc)
    for proc in reversed(started):
        _stop(proc)
    if cluster is not None:
        cluster.close()
    if moto is not None:
        moto.stop()
    redis_client.flushdb()  # this index was empty when the fixture took it
    for db in dbs.values():
        _sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def _prefect(scale, *args: str, timeout: float = 120) -> str:
    proc = subprocess.run(
        [str(BIN / "prefect"), *args],
        cwd=ROOT,
        env=scale["env"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"prefect {' '.join(args)}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    return proc.stdout


def _run_deployment(scale, *params: str) -> str:
    out = _prefect(scale, "deployment", "run", DEPLOYMENT, *params)
    match = re.search(r"UUID:\s*([0-9a-f-]{36})", out)
    assert match, out
    return match.group(1)


def _dask_executed(scale) -> list[int]:
    """How many tasks each worker of the fixture's Dask cluster has run."""
    from distributed import Client

    with Client(scale["dask"]) as client:
        counts = client.run(lambda dask_worker: dask_worker.state.executed_count)
    return sorted(counts.values())


def _client(scale):
    from prefect.client.orchestration import PrefectClient

    return PrefectClient(scale["api"])


def _read_run(scale, run_id: str):
    async def read():
        async with _client(scale) as client:
            return await client.read_flow_run(run_id)

    return asyncio.run(read())


def _states(scale, run_id: str) -> list[str]:
    async def read():
        async with _client(scale) as client:
            return [s.name for s in await client.read_flow_run_states(run_id)]

    return asyncio.run(read())


def _wait(scale, run_id: str, until, timeout: float, what: str, final_ok: bool = False):
    deadline = time.monotonic() + timeout
    while True:
        run = _read_run(scale, run_id)
        if until(run):
            return run
        if (run.state and run.state.is_final() and not final_ok) or time.monotonic() > deadline:
            worker_log = scale["settings"].home / "run" / "worker-ui.log"
            raise AssertionError(
                f"flow run {run_id} is {run.state and run.state.name}, not {what}; worker log:\n"
                f"{worker_log.read_text()[-4000:] if worker_log.exists() else ''}"
            )
        time.sleep(1)


def test_deployment_runs_through_the_worker_one_at_a_time(scale):
    """`prefect deployment run 'pipeline/on-demand'`: the worker picks the run up from the PostgreSQL-backed server
    and the whole pipeline completes, its mapped work on Dask. A second run, started meanwhile, is held back by the
    deployment's concurrency limit and runs once the first has finished.

    The second run is given a source that does not exist, so that it fails at once when it is let through: a
    second whole pipeline would double this module's time on two cores, and what is tested of it (held back,
    then run) is the same."""
    first = _run_deployment(scale)
    _wait(scale, first, lambda r: r.state.is_running(), 120, "running")
    second = _run_deployment(scale, "--param", "source=/nonexistent/telemetry.csv")
    # The worker tries to start it; the server refuses while the first holds the deployment's one slot.
    held = _wait(
        scale,
        second,
        lambda r: r.state.name == "AwaitingConcurrencySlot" or r.state.is_running(),
        60,
        "held back",
    )
    assert held.state.name == "AwaitingConcurrencySlot", held.state
    assert _read_run(scale, first).state.is_running()

    done = _wait(scale, first, lambda r: r.state.is_completed(), 900, "completed")
    after = _wait(scale, second, lambda r: r.state.is_final(), 300, "finished", final_ok=True)
    assert after.start_time >= done.end_time  # one after the other, never side by side
    assert after.state.is_failed() and "/nonexistent/telemetry.csv" in str(after.state.message), after.state
    assert "AwaitingConcurrencySlot" in _states(scale, second)
    for run in (done, after):
        # a process the worker started, on the pool prefect.yaml names
        assert run.work_pool_name == "cerebro-local" and run.infrastructure_pid

    # The runs are rows of the PostgreSQL database the server runs on, with the pipeline's artifacts and logs.
    db = scale["dbs"]["prefect"]
    rows = _sql(f"SELECT id::text, state_name FROM flow_run WHERE id IN ('{first}', '{second}')", db)
    assert sorted(rows) == sorted([(first, "Completed"), (second, "Failed")])
    summary = _sql(
        f"SELECT data FROM artifact WHERE flow_run_id = '{first}' AND key = 'pipeline-summary'", db
    )
    assert summary, "no pipeline-summary artifact"
    for stage in (
        "ingest + validate",
        "features + detectors + register",
        "forecast + capacity + register",
        "failure predictor + register",
        "deploy",
        "drift check",
        "knowledge base",
        "investigations",
    ):
        assert stage in summary[0][0], stage
    # prefect.yaml's schedules are registered with their deployments (the fixture's server does not fire them).
    async def weekly():
        async with _client(scale) as c:
            return await c.read_deployment_by_name("pipeline/weekly")

    assert [s.schedule.cron for s in asyncio.run(weekly()).schedules] == ["0 3 * * 1"]
    keys = {k for (k,) in _sql("SELECT DISTINCT key FROM artifact WHERE key IS NOT NULL", db)}
    assert {"ingest-summary", "detection-report", "forecasting-report", "failure-report"} <= keys, keys
    # The mapped work (ingest's batches: one file here) ran on the Dask cluster the profile names; sequential
    # stages call their tasks in the flow run's own process.
    executed = _dask_executed(scale)
    assert len(executed) == 2 and sum(executed) >= 1, executed


def test_models_live_on_the_tracking_server_and_the_champion_is_served(scale):
    """MLflow over HTTP: registered and aliased models, their artifacts in S3 (moto), none on the local disk, and
    the scoring service the pipeline deployed answers with the champion it loaded from the server."""
    import httpx
    from mlflow import MlflowClient

    settings = scale["settings"]
    client = MlflowClient(tracking_uri=scale["mlflow"])
    champion = client.get_model_version_by_alias("cerebro-detector-ensemble", "champion")
    run = client.get_run(champion.run_id)
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.artifact_location.startswith("mlflow-artifacts:"), experiment.artifact_location
    # The champion's files are objects in the bucket: its mlflow-artifacts:/ location, under the server's
    # --artifacts-destination.
    source = champion.source
    if source.startswith("models:/"):  # a logged model: its own artifact location
        source = client.get_logged_model(source.split("/")[1]).artifact_location
    assert source.startswith("mlflow-artifacts:"), source
    prefix = "mlartifacts/" + urlparse(source).path.strip("/") + "/"
    keys = [o["Key"] for o in scale["s3"].list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]
    assert f"{prefix}MLmodel" in keys, keys[:20]
    assert not (settings.home / "mlartifacts").exists() and not (settings.home / "mlflow.db").exists()
    tables = {t for (t,) in _sql("SELECT tablename FROM pg_tables", scale["dbs"]["mlflow"])}
    assert {"registered_models", "model_versions", "registered_model_aliases"} <= tables
    aliased = _sql("SELECT name, alias FROM registered_model_aliases", scale["dbs"]["mlflow"])
    assert ("cerebro-detector-ensemble", "champion") in aliased

    from serving.auth import client_headers

    live = httpx.get(
        f"http://127.0.0.1:{settings.serving.port}/models", headers=client_headers(settings), timeout=10
    ).json()
    assert "cerebro-detector-ensemble" in json.dumps(live), live
    assert str(champion.version) in json.dumps(live), live


def test_online_features_equal_offline_features(scale):
    """Feast: the registry in PostgreSQL, the online store in Redis; for each service at its newest minute, the
    online read equals the point-in-time (offline) read."""
    import numpy as np
    import pandas as pd

    from features import repo
    from features.store import online_features, training_frame
    from features.transforms import ENTITY, TIMESTAMP

    settings = scale["settings"]
    assert scale["redis"].dbsize() > 0
    tables = {t for (t,) in _sql("SELECT tablename FROM pg_tables", scale["dbs"]["feast"])}
    assert "feature_views" in tables, tables
    assert (
        not (settings.feast_dir / "registry.db").exists()
        and not (settings.feast_dir / "online_store.db").exists()
    )

    source = pd.read_parquet(repo.source_path(settings), columns=[ENTITY, TIMESTAMP])
    newest = source.groupby(ENTITY)[TIMESTAMP].max().reset_index()
    online = online_features(settings, newest[ENTITY].tolist()).set_index(ENTITY)
    offline, report = training_frame(settings, newest, chunk_minutes=None)
    offline = offline.set_index(ENTITY)
    assert report.rows_out == len(newest) > 5
    columns = [c for c in online.columns if c in offline.columns]
    assert len(columns) > 20
    np.testing.assert_allclose(
        online.loc[newest[ENTITY], columns].to_numpy(dtype=float),
        offline.loc[newest[ENTITY], columns].to_numpy(dtype=float),
        rtol=0,
        atol=1e-9,
    )


def test_cerebro_run_from_the_command_line(scale):
    """`cerebro run -c <profile>` against the same services: the flow runs in the command's own process,
    recorded on the Prefect server, its mapped work on the Dask cluster, its models in the same registry."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=scale["mlflow"])
    before = {v.version for v in client.search_model_versions("name='cerebro-detector-ensemble'")}
    dask_before = sum(_dask_executed(scale))
    proc = subprocess.run(
        [str(BIN / "cerebro"), "run", "-c", str(scale["profile"]), "--json"],
        cwd=ROOT,
        env=scale["env"],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    start = re.search(r"^\{", proc.stdout, re.MULTILINE)  # the JSON document, after any log lines
    assert start, proc.stdout[-3000:]
    summary, _ = json.JSONDecoder().raw_decode(proc.stdout[start.start() :])
    assert summary["profile"] == str(scale["profile"])
    assert [s["stage"] for s in summary["stages"]][-1] == "investigations"
    # The same data and seeds retrain the same models: a new version of each, registered beside the first.
    after = {v.version for v in client.search_model_versions("name='cerebro-detector-ensemble'")}
    assert len(after) == len(before) + 1
    assert sum(_dask_executed(scale)) > dask_before

    async def runs():
        async with _client(scale) as c:
            return await c.read_flow_runs()

    # A top-level pipeline run that no deployment started: the command's own.
    own = [r for r in asyncio.run(runs()) if r.deployment_id is None and r.parent_task_run_id is None]
    assert len(own) == 1 and own[0].state.is_completed(), own
