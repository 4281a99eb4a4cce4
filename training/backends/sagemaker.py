"""The detector zoo fitted by a SageMaker training job (``training.backend: sagemaker``).

    splits, result, info = fit_detectors_on_sagemaker(settings, data, on_progress=..., on_log=...)

1. the training data is written as Parquet (``training.backends.payload``) and handed to the SDK's
   ``ModelTrainer`` as the ``train`` channel, which uploads it to
   ``s3://<bucket>/<prefix>/cerebro-detection/<job>/input/train``;
2. ``ModelTrainer.train(wait=False)`` creates the job: the configured ``image_uri`` runs
   ``python3 -m training.entrypoint`` (``SourceCode(command=...)``) with the detection settings as
   hyperparameters, on ``instance_type``, for at most ``max_runtime_seconds``;
3. ``DescribeTrainingJob`` is polled every ``poll_seconds`` (its secondary status is the progress; the job's
   CloudWatch log lines are passed on), for at most ``max_wait_seconds``, after which the job is stopped;
4. on ``Completed``, ``ModelArtifacts.S3ModelArtifacts`` (``model.tar.gz``) is downloaded, unpacked and loaded:
   the same ``(splits, result)`` a local fit returns, registered the same way.

A ``Failed`` job, a ``Stopped`` one and a missing or empty artifact are ``TrainingError``s that name the job
and SageMaker's ``FailureReason``. All AWS calls go through one boto3 session whose clients use
``training.sagemaker.endpoint_url`` when it is set (moto, LocalStack).
"""

from __future__ import annotations

import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import boto3

from training.backends import TrainingError

REQUIRED = ("image_uri", "role_arn", "bucket")
COMMAND = "python3 -m training.entrypoint"
BASE_JOB_NAME = "cerebro-detection"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
# The secondary statuses a job passes through, in order: what the progress bar counts.
STAGES = ("Starting", "Downloading", "Training", "Uploading", "Completed")
# The SDK's own usage telemetry (a request to AWS on each call) is off: a pipeline sends nothing it was not asked to.
SDK_CONFIG = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


class EndpointSession(boto3.session.Session):
    """A boto3 session whose clients and resources go to ``endpoint_url`` when one is set: the SDK creates
    its own clients from the session it is given, and this is how they reach moto or LocalStack too."""

    def __init__(self, endpoint_url: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self._endpoint_url = endpoint_url

    def client(self, *args, **kwargs):
        if self._endpoint_url:
            kwargs.setdefault("endpoint_url", self._endpoint_url)
        return super().client(*args, **kwargs)

    def resource(self, *args, **kwargs):
        if self._endpoint_url:
            kwargs.setdefault("endpoint_url", self._endpoint_url)
        return super().resource(*args, **kwargs)


def _config(settings):
    cfg = settings.training.sagemaker
    missing = [k for k in REQUIRED if not getattr(cfg, k)]
    if missing:
        raise TrainingError(
            "training.backend sagemaker needs "
            + ", ".join(f"training.sagemaker.{k}" for k in missing)
            + " (configs/default.yaml, or e.g. CEREBRO_TRAINING__SAGEMAKER__"
            + missing[0].upper()
            + ")"
        )
    return cfg


def hyperparameters(settings) -> dict[str, str]:
    """What ``training.entrypoint`` needs of the settings to fit as the pipeline would (all strings)."""
    return {
        "kind": "detection",
        "detection": settings.detection.model_dump_json(),
        "feature_window_minutes": str(settings.feast.window_minutes),
        "seed": str(settings.simulator.seed),
    }


def split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def failure_message(desc: dict) -> str:
    """Why the job ended without a model, in one line that names it."""
    name, status = desc["TrainingJobName"], desc["TrainingJobStatus"]
    reason = (desc.get("FailureReason") or "").strip()
    if status == "Failed":
        return f"SageMaker training job {name} failed: {reason or 'SageMaker gave no reason'}"
    secondary = desc.get("SecondaryStatus")
    why = (
        "it ran past training.sagemaker.max_runtime_seconds"
        if secondary == "MaxRuntimeExceeded"
        else "someone or something stopped it"
    )
    return f"SageMaker training job {name} was stopped ({secondary or status}: {reason or why}); no model to register"


class _LogTail:
    """The job's CloudWatch log lines, passed on as they arrive (none while the job has no log stream yet)."""

    def __init__(self, logs, job: str, on_log: Callable[[str], None]):
        self.logs, self.job, self.on_log, self.tokens = logs, job, on_log, {}

    def poll(self) -> None:
        from botocore.exceptions import ClientError

        try:
            streams = self.logs.describe_log_streams(
                logGroupName=LOG_GROUP, logStreamNamePrefix=f"{self.job}/"
            )
            for stream in streams.get("logStreams", []):
                name = stream["logStreamName"]
                kwargs = {"nextToken": self.tokens[name]} if name in self.tokens else {"startFromHead": True}
                page = self.logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=name, **kwargs)
                for event in page.get("events", []):
                    self.on_log(f"[{self.job}] {event['message'].rstrip()}")
                self.tokens[name] = page.get("nextForwardToken")
        except ClientError:  # no log group yet, or no permission to read it: the status lines still come
            return


def _session(cfg):
    from sagemaker.core.helper.session_helper import Session

    boto_session = EndpointSession(endpoint_url=cfg.endpoint_url, region_name=cfg.region)
    return Session(
        boto_session=boto_session,
        default_bucket=cfg.bucket,
        default_bucket_prefix=cfg.prefix.strip("/") or None,
        sagemaker_config=SDK_CONFIG,
    )


def _check_bucket(session, cfg) -> None:
    from botocore.exceptions import ClientError

    try:
        session.s3_client.head_bucket(Bucket=cfg.bucket)
    except ClientError as exc:
        raise TrainingError(
            f"S3 bucket {cfg.bucket!r} (training.sagemaker.bucket) does not exist or cannot be reached: {exc}"
        ) from None


def start_job(settings, session, cfg, train_dir: Path) -> str:
    """Create the training job through the SDK's ``ModelTrainer``; returns its name."""
    from botocore.exceptions import BotoCoreError, ClientError
    from sagemaker.core.helper.iam_role_resolver import RoleValidationError
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, InputData, OutputDataConfig, SourceCode, StoppingCondition

    output = f"s3://{cfg.bucket}/{'/'.join(p for p in (cfg.prefix.strip('/'), 'output') if p)}"
    try:
        trainer = ModelTrainer(
            training_image=cfg.image_uri,
            role=cfg.role_arn,
            sagemaker_session=session,
            base_job_name=BASE_JOB_NAME,
            source_code=SourceCode(command=COMMAND),
            compute=Compute(
                instance_type=cfg.instance_type, instance_count=1, volume_size_in_gb=cfg.volume_size_gb
            ),
            stopping_condition=StoppingCondition(max_runtime_in_seconds=cfg.max_runtime_seconds),
            output_data_config=OutputDataConfig(s3_output_path=output),
            hyperparameters=hyperparameters(settings),
            tags=[{"key": "cerebro.stage", "value": "detection"}],
        )
        trainer.train(
            input_data_config=[InputData(channel_name="train", data_source=str(train_dir))],
            wait=False,
            logs=False,
        )
    except (ClientError, BotoCoreError) as exc:
        raise TrainingError(f"could not create the SageMaker training job: {exc}") from None
    # the SDK's own checks: a role it finds lacking, settings it refuses
    except (RoleValidationError, ValueError) as exc:
        raise TrainingError(
            f"the SageMaker SDK refused the training job: {str(exc).splitlines()[0]}"
        ) from None
    return trainer._latest_training_job.training_job_name  # the SDK's handle on the job it created


def stop_job(sm, name: str) -> str:
    """Ask SageMaker to stop the job; returns what happened, in words."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        sm.stop_training_job(TrainingJobName=name)
        return "it has been asked to stop"
    except (ClientError, BotoCoreError) as exc:
        return (
            f"it could not be stopped ({exc}): stop it yourself with `aws sagemaker stop-training-job "
            f"--training-job-name {name}`"
        )


def wait_for(sm, cfg, name: str, on_progress=None, on_log=None, logs=None) -> dict:
    """Poll the job until it completes; ``TrainingError`` when it fails, is stopped, or outlasts max_wait."""
    deadline = time.monotonic() + cfg.max_wait_seconds
    tail = _LogTail(logs, name, on_log) if logs is not None and on_log else None
    seen = None
    while True:
        desc = sm.describe_training_job(TrainingJobName=name)
        status, secondary = desc["TrainingJobStatus"], desc.get("SecondaryStatus", "")
        if tail:
            tail.poll()
        if secondary != seen:
            seen = secondary
            transitions = desc.get("SecondaryStatusTransitions") or []
            message = transitions[-1].get("StatusMessage", "") if transitions else ""
            if on_log:
                on_log(f"training job {name}: {status} / {secondary}" + (f" ({message})" if message else ""))
            if on_progress:
                stage = next((k for k, s in enumerate(STAGES) if secondary.startswith(s)), None)
                if stage is not None:
                    on_progress(secondary, stage, len(STAGES) - 1)
        if status == "Completed":
            return desc
        if status in ("Failed", "Stopped"):
            raise TrainingError(failure_message(desc))
        if time.monotonic() > deadline:
            raise TrainingError(
                f"SageMaker training job {name} is still {status} ({secondary}) after "
                f"{cfg.max_wait_seconds:g} s (training.sagemaker.max_wait_seconds); " + stop_job(sm, name)
            )
        time.sleep(cfg.poll_seconds)


def fetch_model(s3, desc: dict, workdir: Path):
    """Download and load the job's ``model.tar.gz``: ``(splits, result)``."""
    from botocore.exceptions import ClientError

    from training.backends.payload import read_model

    name = desc["TrainingJobName"]
    uri = (desc.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if not uri:
        raise TrainingError(
            f"SageMaker training job {name} completed without a model artifact (no ModelArtifacts)"
        )
    bucket, key = split_s3(uri)
    workdir.mkdir(parents=True, exist_ok=True)
    tarball = workdir / "model.tar.gz"
    try:
        s3.download_file(bucket, key, str(tarball))
    except ClientError as exc:
        raise TrainingError(
            f"SageMaker training job {name} completed but its model artifact {uri} cannot be read: {exc}"
        ) from None
    folder = workdir / "model"
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            tar.extractall(folder, filter="data")  # no paths outside the folder, no links out of it
        return read_model(folder)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise TrainingError(
            f"SageMaker training job {name}: model artifact {uri} is not a model written by "
            f"training.entrypoint ({exc})"
        ) from None


def fit_detectors_on_sagemaker(settings, data, on_progress=None, on_log=None):
    from training.backends.payload import write_training_data

    cfg = _config(settings)
    session = _session(cfg)
    _check_bucket(session, cfg)
    sm = session.sagemaker_client
    with tempfile.TemporaryDirectory(prefix="cerebro-training-") as tmp:
        write_training_data(data, Path(tmp) / "train")
        name = start_job(settings, session, cfg, Path(tmp) / "train")
    if on_log:
        on_log(f"training job {name} created ({cfg.instance_type}, image {cfg.image_uri})")
    desc = wait_for(sm, cfg, name, on_progress, on_log, session.boto_session.client("logs"))
    with tempfile.TemporaryDirectory(prefix="cerebro-model-") as tmp:
        splits, result = fetch_model(session.s3_client, desc, Path(tmp))
    channel = next(
        (
            c["DataSource"]["S3DataSource"]["S3Uri"]
            for c in desc.get("InputDataConfig", [])
            if c["ChannelName"] == "train"
        ),
        None,
    )
    info = {
        "backend": "sagemaker",
        "job": name,
        "job_arn": desc.get("TrainingJobArn"),
        "input": channel,
        "model_artifact": desc["ModelArtifacts"]["S3ModelArtifacts"],
        "billable_seconds": desc.get("BillableTimeInSeconds"),
    }
    return splits, result, info
