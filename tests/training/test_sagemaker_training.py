"""``training.backend: sagemaker``: the entry point under SageMaker's container contract, and the backend
against moto in server mode (the SDK's ModelTrainer and boto3 over HTTP).

moto 5.2.5 records a training job and reports it ``Completed`` at once, with
``ModelArtifacts.S3ModelArtifacts`` = ``<S3OutputPath>/<job>/output/model.tar.gz``, but runs no container,
so the artifact is never written. ``_container`` plays SageMaker's part between the job's creation and the
backend's polling: it downloads the job's input channels and hyperparameters from what moto recorded, runs
the job's command (``python3 -m training.entrypoint``) in a subprocess with SageMaker's folders, sends its
output to the job's CloudWatch log stream, and uploads ``model.tar.gz`` to the key moto reports.

moto has no StopTrainingJob and never fails a job: the failed and stopped states are written into moto's
training-job record (status, secondary status, FailureReason), which DescribeTrainingJob then returns over
HTTP. The SDK's IAM role check (iam:SimulatePrincipalPolicy, not in moto) is switched off with its own
``SAGEMAKER_VALIDATE_ROLE=false``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "cerebro-training"
ROLE = "arn:aws:iam::123456789012:role/cerebro-training"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/cerebro-train:latest"
INCLUDE = ["zscore", "pca"]


@pytest.fixture(autouse=True)
def _no_iam_simulation(monkeypatch):
    monkeypatch.setenv("SAGEMAKER_VALIDATE_ROLE", "false")


@pytest.fixture(scope="module")
def tiny():
    """Two simulated days as the detection stage's training data (a labelled dataset), and the local fit."""
    from configs.settings import load_settings
    from telemetry.simulator import FleetSimulator
    from training.detectors.stage import TrainingData, run_zoo

    sim = FleetSimulator(days=2, seed=5, end="2026-11-20T00:00Z", incidents_per_day=4).run()
    wide = sim.telemetry.pivot_table(
        index=["service", "timestamp"], columns="metric", values="value", observed=True
    )
    wide.columns = [str(c) for c in wide.columns]
    data = TrainingData(
        frame=wide,
        incidents=sim.incidents,
        edges=[("frontend", "cart")],
        dataset=sim.dataset,
        data_version=f"{sim.dataset}@test",
        feature_report={"join": {"rows_dropped_ttl": 0}},
    )
    # No serving-cost measurement: it times the service on this machine, and under the suite's load the job's
    # fit and the local one can read the same composition either side of the latency target; what is compared
    # here is the two fits, exactly.
    settings = load_settings(
        **{"detection.include": INCLUDE, "detection.ensemble_size": 2, "detection.serving_cost": False}
    )
    return data, settings, run_zoo(data, settings)


@pytest.fixture(scope="module")
def bucket(moto_url):
    import boto3

    boto3.client("s3", region_name="us-east-1", endpoint_url=moto_url).create_bucket(Bucket=BUCKET)
    return moto_url


def _settings(base, url, **sagemaker):
    settings = base.model_copy(deep=True)
    cfg = settings.training.sagemaker
    settings.training.backend = "sagemaker"
    cfg.endpoint_url, cfg.image_uri, cfg.role_arn, cfg.bucket = url, IMAGE, ROLE, BUCKET
    cfg.poll_seconds = 0.01
    for key, value in sagemaker.items():
        setattr(cfg, key, value)
    return settings


def _client(service, url):
    import boto3

    return boto3.client(service, region_name="us-east-1", endpoint_url=url)


def _job_record(name):
    """moto's own record of the job (the server runs in this process)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].training_jobs[name]


def _download_prefix(s3, uri: str, folder: Path) -> None:
    bucket, _, prefix = uri[5:].partition("/")
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix.rstrip("/") + "/").get("Contents", []):
        target = folder / obj["Key"][len(prefix.rstrip("/")) + 1 :]
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, obj["Key"], str(target))


def _container(url, name, opt_ml: Path) -> subprocess.CompletedProcess:
    """What SageMaker does for the job: channels and hyperparameters into /opt/ml, the job's command, its
    output to CloudWatch Logs, /opt/ml/model packed as model.tar.gz to ModelArtifacts."""
    from training.backends.sagemaker import COMMAND, LOG_GROUP

    sm, s3, logs = _client("sagemaker", url), _client("s3", url), _client("logs", url)
    desc = sm.describe_training_job(TrainingJobName=name)
    for channel in desc["InputDataConfig"]:
        _download_prefix(
            s3,
            channel["DataSource"]["S3DataSource"]["S3Uri"],
            opt_ml / "input" / "data" / channel["ChannelName"],
        )
    (opt_ml / "input" / "config").mkdir(parents=True)
    (opt_ml / "input" / "config" / "hyperparameters.json").write_text(json.dumps(desc["HyperParameters"]))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SM_INPUT_CONFIG_DIR": str(opt_ml / "input" / "config"),
        "SM_CHANNEL_TRAIN": str(opt_ml / "input" / "data" / "train"),
        "SM_MODEL_DIR": str(opt_ml / "model"),
        "SM_OUTPUT_DIR": str(opt_ml / "output"),
    }
    command = [sys.executable if part == "python3" else part for part in COMMAND.split()]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    stream = f"{name}/algo-1-{int(time.time())}"
    try:
        logs.create_log_group(logGroupName=LOG_GROUP)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=stream,
        logEvents=[{"timestamp": int(time.time() * 1000), "message": line} for line in lines],
    )
    if done.returncode == 0:
        body = io.BytesIO()
        with tarfile.open(fileobj=body, mode="w:gz") as tar:
            for path in sorted((opt_ml / "model").iterdir()):
                tar.add(path, arcname=path.name)
        bucket, _, key = desc["ModelArtifacts"]["S3ModelArtifacts"][5:].partition("/")
        s3.put_object(Bucket=bucket, Key=key, Body=body.getvalue())
    return done


@pytest.fixture
def jobs(monkeypatch, tmp_path):
    """Runs ``before(name)`` for each job between its creation and the backend's polling (the real
    ``wait_for`` then polls moto); the jobs' names in order."""
    from training.backends import sagemaker

    real, names, hooks = sagemaker.wait_for, [], []

    def wait_for(sm, cfg, name, *args, **kwargs):
        names.append(name)
        for hook in hooks:
            hook(name)
        return real(sm, cfg, name, *args, **kwargs)

    monkeypatch.setattr(sagemaker, "wait_for", wait_for)
    return names, hooks


def test_the_entry_point_follows_the_container_contract_and_fits_as_the_pipeline_does(
    tiny, tmp_path, monkeypatch
):
    from training import entrypoint
    from training.backends.payload import SUMMARY_FILE, read_model, write_training_data
    from training.backends.sagemaker import hyperparameters

    data, settings, (local_splits, local) = tiny
    opt_ml = tmp_path / "opt" / "ml"
    write_training_data(data, opt_ml / "input" / "data" / "train")
    (opt_ml / "input" / "config").mkdir(parents=True)
    (opt_ml / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters(settings)))
    for key, sub in {
        "SM_INPUT_CONFIG_DIR": "input/config",
        "SM_CHANNEL_TRAIN": "input/data/train",
        "SM_MODEL_DIR": "model",
        "SM_OUTPUT_DIR": "output",
    }.items():
        monkeypatch.setenv(key, str(opt_ml / sub))
    assert entrypoint.main() == 0
    assert not (opt_ml / "output" / "failure").exists()
    splits, result = read_model(opt_ml / "model")
    assert set(result.models) == {*INCLUDE, "ensemble"} == set(local.models)
    assert result.best == local.best and result.ensemble_members == local.ensemble_members
    for name in result.models:  # the same fit as in the pipeline's own process
        np.testing.assert_allclose(result.scores[name], local.scores[name])
        assert result.models[name].threshold_ == pytest.approx(local.models[name].threshold_)
    assert list(splits.frame.columns) == list(local_splits.frame.columns)
    assert json.loads((opt_ml / "model" / SUMMARY_FILE).read_text())["best"] == local.best

    # a failure goes where SageMaker reads FailureReason from, and the exit code says so
    (opt_ml / "input" / "config" / "hyperparameters.json").write_text(json.dumps({"kind": "forecast"}))
    assert entrypoint.main() == 1
    assert (opt_ml / "output" / "failure").read_text() == (
        "ValueError: hyperparameter kind='forecast': expected detection"
    )


def test_the_training_data_round_trips_through_parquet(tiny, small_fleet, tmp_path):
    import pandas as pd

    from training.backends.payload import read_training_data, write_training_data

    data, _, _ = tiny
    data = type(data)(**{**data.__dict__, "telemetry": small_fleet.telemetry, "events": small_fleet.events})
    write_training_data(data, tmp_path)
    back = read_training_data(tmp_path)
    for name in ("frame", "incidents", "telemetry", "events"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(data, name))
    assert (
        back.edges == data.edges and back.data_version == data.data_version and back.dataset == data.dataset
    )
    with pytest.raises(FileNotFoundError, match="meta.json: missing"):
        read_training_data(tmp_path / "nothing")


def test_a_training_job_fits_the_zoo_as_the_pipeline_would(tiny, bucket, jobs, tmp_path):
    from training.backends import fit_detectors

    data, base, (local_splits, local) = tiny
    names, hooks = jobs
    runs = []
    hooks.append(lambda name: runs.append(_container(bucket, name, tmp_path / name)))
    settings = _settings(base, bucket)
    lines, steps = [], []
    splits, result, info = fit_detectors(
        settings, data, on_progress=lambda *a: steps.append(a), on_log=lines.append
    )
    (name,) = names
    assert runs[0].returncode == 0, runs[0].stderr[-2000:]
    assert info["backend"] == "sagemaker" and info["job"] == name and name.startswith("cerebro-detection-")
    assert info["model_artifact"] == f"s3://{BUCKET}/cerebro/training/output/{name}/output/model.tar.gz"
    assert info["input"] == f"s3://{BUCKET}/cerebro/training/cerebro-detection/{name}/input/train"
    assert result.best == local.best and set(result.models) == set(local.models)
    np.testing.assert_allclose(result.scores["ensemble"], local.scores["ensemble"])
    assert list(splits.frame.columns) == list(local_splits.frame.columns)

    desc = _client("sagemaker", bucket).describe_training_job(TrainingJobName=name)
    assert desc["AlgorithmSpecification"]["TrainingImage"] == IMAGE and desc["RoleArn"] == ROLE
    assert desc["ResourceConfig"]["InstanceType"] == settings.training.sagemaker.instance_type
    assert desc["StoppingCondition"]["MaxRuntimeInSeconds"] == settings.training.sagemaker.max_runtime_seconds
    assert json.loads(desc["HyperParameters"]["detection"])["include"] == INCLUDE
    # the SDK runs the command through its drivers channel: the command it was given is the entry point
    drivers = next(c for c in desc["InputDataConfig"] if c["ChannelName"] == "sm_drivers")
    _download_prefix(
        _client("s3", bucket), drivers["DataSource"]["S3DataSource"]["S3Uri"], tmp_path / "drivers"
    )
    assert "python3 -m training.entrypoint" in (tmp_path / "drivers" / "sm_train.sh").read_text()
    assert any(f"training job {name}: Completed" in line for line in lines)
    assert any(line == f"[{name}] training zscore (1/3)" for line in lines)  # the job's own log, passed on
    assert steps[-1] == ("Completed", 4, 4)


@pytest.mark.parametrize(
    "state, expected",
    [
        (
            {
                "training_job_status": "Failed",
                "secondary_status": "Failed",
                "failure_reason": "AlgorithmError: ValueError: no rows to train on",
            },
            "SageMaker training job {name} failed: AlgorithmError: ValueError: no rows to train on",
        ),
        (
            {"training_job_status": "Stopped", "secondary_status": "MaxRuntimeExceeded"},
            (
                "SageMaker training job {name} was stopped (MaxRuntimeExceeded: it ran past "
                "training.sagemaker.max_runtime_seconds); no model to register"
            ),
        ),
    ],
)
def test_a_failed_or_stopped_job_is_an_error_with_its_reason(tiny, bucket, jobs, state, expected):
    from training.backends import TrainingError, fit_detectors

    names, hooks = jobs
    hooks.append(lambda name: [setattr(_job_record(name), k, v) for k, v in state.items()])
    with pytest.raises(TrainingError) as caught:
        fit_detectors(_settings(tiny[1], bucket), tiny[0])
    assert str(caught.value) == expected.format(name=names[0])


def test_the_reasons_read_from_describe_training_job():
    from training.backends.sagemaker import failure_message

    assert (
        failure_message(
            {"TrainingJobName": "j", "TrainingJobStatus": "Stopped", "SecondaryStatus": "Stopped"}
        )
        == "SageMaker training job j was stopped (Stopped: someone or something stopped it); no model to register"
    )
    assert (
        failure_message({"TrainingJobName": "j", "TrainingJobStatus": "Failed", "FailureReason": " "})
        == "SageMaker training job j failed: SageMaker gave no reason"
    )


def test_a_missing_or_foreign_artifact_is_an_error_that_names_it(tiny, bucket, jobs, tmp_path):
    from training.backends import TrainingError, fit_detectors
    from training.backends.sagemaker import fetch_model

    names, _ = jobs
    with pytest.raises(
        TrainingError,
        match=r"SageMaker training job cerebro-detection-\S+ completed but its model "
        r"artifact s3://cerebro-training/cerebro/training/output/\S+/output/"
        r"model.tar.gz cannot be read",
    ):
        fit_detectors(_settings(tiny[1], bucket), tiny[0])  # moto's job completes without writing anything
    desc = _client("sagemaker", bucket).describe_training_job(TrainingJobName=names[0])
    bucket_name, _, key = desc["ModelArtifacts"]["S3ModelArtifacts"][5:].partition("/")
    s3 = _client("s3", bucket)
    s3.put_object(Bucket=bucket_name, Key=key, Body=b"not a tarball")
    with pytest.raises(TrainingError, match="is not a model written by training.entrypoint"):
        fetch_model(s3, desc, tmp_path)
    body = io.BytesIO()  # a tarball without the zoo in it
    with tarfile.open(fileobj=body, mode="w:gz") as tar:
        info = tarfile.TarInfo("other.txt")
        tar.addfile(info, io.BytesIO(b""))
    s3.put_object(Bucket=bucket_name, Key=key, Body=body.getvalue())
    with pytest.raises(TrainingError, match="zoo.joblib is not in the model artifact"):
        fetch_model(s3, desc, tmp_path / "again")


def test_a_job_that_outlasts_max_wait_is_stopped_or_said_to_need_stopping(tiny, bucket, jobs):
    from training.backends import TrainingError, fit_detectors

    names, hooks = jobs
    hooks.append(
        lambda name: [
            setattr(_job_record(name), k, v)
            for k, v in {"training_job_status": "InProgress", "secondary_status": "Training"}.items()
        ]
    )
    with pytest.raises(TrainingError) as caught:
        fit_detectors(_settings(tiny[1], bucket, max_wait_seconds=0.05), tiny[0])
    message = str(caught.value)
    assert message.startswith(
        f"SageMaker training job {names[0]} is still InProgress (Training) after 0.05 s "
        "(training.sagemaker.max_wait_seconds); "
    )
    # moto has no StopTrainingJob: the message says how to stop it by hand
    assert f"aws sagemaker stop-training-job --training-job-name {names[0]}" in message


def test_missing_settings_and_a_missing_bucket_are_clear_errors(tiny, bucket):
    from training.backends import TrainingError, fit_detectors

    settings = _settings(tiny[1], bucket, image_uri=None, role_arn=None)
    with pytest.raises(
        TrainingError,
        match=r"^training.backend sagemaker needs training.sagemaker.image_uri, "
        r"training.sagemaker.role_arn \(.*CEREBRO_TRAINING__SAGEMAKER__IMAGE_URI\)$",
    ):
        fit_detectors(settings, tiny[0])
    with pytest.raises(
        TrainingError, match="S3 bucket 'no-such-bucket' .training.sagemaker.bucket. does not exist"
    ):
        fit_detectors(_settings(tiny[1], bucket, bucket="no-such-bucket"), tiny[0])


@pytest.mark.e2e
def test_the_detection_flow_s_training_step_runs_the_job_and_registers_its_model(
    tiny, bucket, jobs, tmp_path, prefect_server
):
    """The Prefect tasks of flows/detection.py, as the pipeline runs them, with ``training.backend: sagemaker``."""
    from mlflow import MlflowClient
    from prefect import flow

    from flows import progress
    from flows.detection import register, train_and_evaluate

    data, base, (_, local) = tiny
    names, hooks = jobs
    runs = []
    hooks.append(lambda name: runs.append(_container(bucket, name, tmp_path / name)))
    settings = _settings(base, bucket)
    plot = tmp_path / "scores.png"
    plot.write_bytes(b"\x89PNG stand-in")  # the scores plot is not what is tested here

    @flow(name="sagemaker-training-step")
    def training_step():
        splits, result, trained = train_and_evaluate(settings, data)
        registered = register(settings, result, splits, data, "report", str(plot), None, trained)
        return result.best, trained, registered

    seen = []
    with progress.listen(lambda stage, done, total, detail: seen.append((stage, detail, done, total))):
        best, trained, registered = training_step()
    assert runs and runs[0].returncode == 0, runs[0].stderr[-2000:] if runs else "no job"
    assert best == local.best and trained["job"] == names[0]
    assert ("train detectors", "Completed", 4, 4) in seen
    tags = MlflowClient(tracking_uri=settings.mlflow_tracking_uri).get_run(registered["run_id"]).data.tags
    assert set(registered["versions"]) == {*INCLUDE, "ensemble"}  # registered as a local fit is
    assert tags["cerebro.training_backend"] == "sagemaker" and tags["cerebro.training_job"] == names[0]
    assert tags["cerebro.training_artifact"] == trained["model_artifact"]
