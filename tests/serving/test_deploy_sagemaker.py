"""`cerebro deploy --target sagemaker` against moto in server mode (boto3 over HTTP through ``endpoint_url``).

moto 5.2.5 answers HTTP 500 to UpdateEndpoint. The one call that needs it (putting the new model in the idle
variant) is replaced here by ``_update_endpoint_on_moto``: the request is first validated against botocore's
UpdateEndpoint model, then the new endpoint config's variants are written into moto's endpoint record, which is
what UpdateEndpoint does. Every other call (S3 upload, CreateModel, CreateEndpointConfig, CreateEndpoint,
DescribeEndpoint, UpdateEndpointWeightsAndCapacities, CloudWatch DescribeAlarms) goes to the moto server.
"""
from __future__ import annotations

import io
import tarfile

import pytest

pytestmark = pytest.mark.filterwarnings("ignore")

NAME = "cerebro-detector-tiny_sm"
BUCKET = "cerebro-models"
ROLE = "arn:aws:iam::123456789012:role/cerebro-sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/cerebro-serve:latest"


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    """A moto server on a free port, a bucket, and three registered versions of a small pyfunc model."""
    import boto3
    import mlflow
    from moto.server import ThreadedMotoServer

    from configs.settings import load_settings
    from training.tracking import PYFUNC_FILE, use_experiment

    home = tmp_path_factory.mktemp("sagemaker-home")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": "us-east-1", "CEREBRO_HOME": str(home)}.items():
            mp.setenv(key, value)
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            mp.delenv(key, raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        try:
            boto3.client("s3", region_name="us-east-1", endpoint_url=url).create_bucket(Bucket=BUCKET)
            settings = load_settings()
            use_experiment(settings)
            for v in (1, 2, 3):
                artifact = home / f"bundle-{v}.joblib"
                artifact.write_text(f"version {v}")
                with mlflow.start_run(run_name=f"sagemaker-test-v{v}"):
                    mlflow.pyfunc.log_model(name="model", python_model=str(PYFUNC_FILE),
                                            artifacts={"bundle": str(artifact)}, registered_model_name=NAME,
                                            pip_requirements=["pandas"])
            yield url
        finally:
            server.stop()


def _settings(url, endpoint: str, **sagemaker):
    from configs.settings import load_settings

    settings = load_settings()
    cfg = settings.deploy.sagemaker
    cfg.endpoint_url, cfg.execution_role_arn, cfg.image_uri, cfg.bucket = url, ROLE, IMAGE, BUCKET
    cfg.endpoint_name, cfg.poll_seconds, cfg.step_wait_seconds = endpoint, 0.01, 0
    for key, value in sagemaker.items():
        setattr(cfg, key, value)
    return settings


def _client(service, url):
    import boto3

    return boto3.client(service, region_name="us-east-1", endpoint_url=url)


def _weights(url, endpoint) -> dict:
    desc = _client("sagemaker", url).describe_endpoint(EndpointName=endpoint)
    assert desc["EndpointStatus"] == "InService"
    return {v["VariantName"]: v.get("CurrentWeight", 0.0) for v in desc["ProductionVariants"]}


def _variant_models(url, endpoint) -> dict:
    sm = _client("sagemaker", url)
    config = sm.describe_endpoint_config(EndpointConfigName=sm.describe_endpoint(EndpointName=endpoint)
                                         ["EndpointConfigName"])
    return {v["VariantName"]: v["ModelName"] for v in config["ProductionVariants"]}


def _champion(settings) -> str | None:
    from mlflow import MlflowClient

    value = (MlflowClient(tracking_uri=settings.mlflow_tracking_uri).get_registered_model(NAME).aliases or {}).get(
        "champion")
    return None if value is None else str(value)


@pytest.fixture
def update_endpoint(monkeypatch):
    """Stands in for UpdateEndpoint (moto answers 500): validated request, then moto's record updated."""
    from botocore.validate import validate_parameters
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sagemaker.models import sagemaker_backends

    from serving.deploy import sagemaker

    calls = []

    def on_moto(sm, **request):
        validate_parameters(request, sm.meta.service_model.operation_model("UpdateEndpoint").input_shape)
        calls.append(request)
        backend = sagemaker_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
        endpoint = backend.endpoints[request["EndpointName"]]
        config = backend.describe_endpoint_config(request["EndpointConfigName"])
        endpoint.endpoint_config_name = request["EndpointConfigName"]
        endpoint.production_variants = endpoint._process_production_variants(config["ProductionVariants"])

    monkeypatch.setattr(sagemaker, "update_endpoint", on_moto)
    return calls


def test_first_deploy_uploads_the_model_and_creates_the_endpoint(aws):
    from serving.deploy.sagemaker import deploy_sagemaker

    settings = _settings(aws, "ep-first")
    result = deploy_sagemaker(settings, NAME, "1")
    assert result["action"] == "created" and result["live_variant"] == "blue"
    assert result["sagemaker_model"] == "cerebro-detector-tiny-sm-v1"
    model = _client("sagemaker", aws).describe_model(ModelName="cerebro-detector-tiny-sm-v1")
    assert model["ExecutionRoleArn"] == ROLE and model["PrimaryContainer"]["Image"] == IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"] == f"s3://{BUCKET}/cerebro/models/{NAME}/1/model.tar.gz"
    assert _variant_models(aws, "ep-first") == {"blue": "cerebro-detector-tiny-sm-v1"}
    assert _weights(aws, "ep-first") == {"blue": 1.0}
    body = _client("s3", aws).get_object(Bucket=BUCKET, Key=f"cerebro/models/{NAME}/1/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        names = tar.getnames()
        assert "MLmodel" in names
        assert tar.extractfile("artifacts/bundle-1.joblib").read() == b"version 1"
    assert _champion(settings) == "1"
    assert deploy_sagemaker(settings, NAME, "1")["action"] == "unchanged"


def test_a_new_version_takes_the_traffic_step_by_step_and_rolls_back(aws, update_endpoint):
    from serving.deploy.sagemaker import deploy_sagemaker, rollback_sagemaker, status_sagemaker

    _client("cloudwatch", aws).put_metric_alarm(
        AlarmName="ep-shift-errors", MetricName="Invocation5XXErrors", Namespace="AWS/SageMaker", Statistic="Sum",
        Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold")
    settings = _settings(aws, "ep-shift", traffic_steps=[10, 50, 100], alarms=["ep-shift-errors"])
    assert deploy_sagemaker(settings, NAME, "1")["action"] == "created"
    result = deploy_sagemaker(settings, NAME, "2")
    assert result["action"] == "shifted" and result["live_variant"] == "green"
    assert [s["weights"] for s in result["steps"]] == [{"green": 0.1, "blue": 0.9}, {"green": 0.5, "blue": 0.5},
                                                       {"green": 1.0, "blue": 0.0}]
    assert [c["RetainAllVariantProperties"] for c in update_endpoint] == [False]
    assert _variant_models(aws, "ep-shift") == {"blue": "cerebro-detector-tiny-sm-v1",
                                                "green": "cerebro-detector-tiny-sm-v2"}
    assert _weights(aws, "ep-shift") == {"blue": 0.0, "green": 1.0} and _champion(settings) == "2"

    back = rollback_sagemaker(settings, NAME)
    assert back["live_variant"] == "blue" and back["version"] == "1"
    assert _weights(aws, "ep-shift") == {"blue": 1.0, "green": 0.0} and _champion(settings) == "1"

    again = deploy_sagemaker(settings, NAME, "2")  # green still holds v2: only the weights move
    assert again["action"] == "shifted" and again["live_variant"] == "green" and len(update_endpoint) == 1
    assert _weights(aws, "ep-shift") == {"blue": 0.0, "green": 1.0}

    third = deploy_sagemaker(settings, NAME, "3")  # v3 goes to the idle variant (blue), replacing v1
    assert third["action"] == "shifted" and third["live_variant"] == "blue" and len(update_endpoint) == 2
    assert _variant_models(aws, "ep-shift") == {"blue": "cerebro-detector-tiny-sm-v3",
                                                "green": "cerebro-detector-tiny-sm-v2"}
    assert _weights(aws, "ep-shift") == {"blue": 1.0, "green": 0.0} and _champion(settings) == "3"
    status = status_sagemaker(settings, NAME)
    assert status["status"] == "InService" and status["variants"] == {
        "blue": {"model": "cerebro-detector-tiny-sm-v3", "weight": 1.0},
        "green": {"model": "cerebro-detector-tiny-sm-v2", "weight": 0.0}}
    assert status_sagemaker(_settings(aws, "ep-none"), NAME)["exists"] is False


def test_an_alarm_during_the_canary_step_puts_the_weights_back(aws, update_endpoint):
    from serving.deploy.sagemaker import deploy_sagemaker

    cw = _client("cloudwatch", aws)
    cw.put_metric_alarm(AlarmName="ep-alarm-latency", MetricName="ModelLatency", Namespace="AWS/SageMaker",
                        Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=1e6,
                        ComparisonOperator="GreaterThanThreshold")
    settings = _settings(aws, "ep-alarm", alarms=["ep-alarm-latency"])
    assert deploy_sagemaker(settings, NAME, "1")["action"] == "created"
    cw.set_alarm_state(AlarmName="ep-alarm-latency", StateValue="ALARM", StateReason="test")
    result = deploy_sagemaker(settings, NAME, "2")
    assert result["action"] == "rolled back" and result["live_variant"] == "blue"
    assert [s["percent"] for s in result["steps"]] == [10, 0] and result["steps"][-1]["rollback"] == [
        "ep-alarm-latency"]
    assert _weights(aws, "ep-alarm") == {"blue": 1.0, "green": 0.0}
    assert _champion(settings) == "1"  # the alias the deploy moved is given back


def test_missing_settings_and_names_are_clear_errors(aws):
    from serving.deploy import DeployError
    from serving.deploy.sagemaker import deploy_sagemaker

    settings = _settings(aws, "ep-errors", execution_role_arn=None, bucket=None)
    with pytest.raises(DeployError, match="deploy.sagemaker.execution_role_arn, deploy.sagemaker.bucket"):
        deploy_sagemaker(settings, NAME, "1")
    settings = _settings(aws, "ep-errors", bucket="no-such-bucket")
    before = _champion(settings)
    target = "3" if before != "3" else "2"
    with pytest.raises(DeployError, match="S3 bucket 'no-such-bucket' .* does not exist"):
        deploy_sagemaker(settings, NAME, target)
    assert _champion(settings) == before  # a failed deploy gives the alias back
    with pytest.raises(DeployError, match="no registered model 'cerebro-detector-nope'"):
        deploy_sagemaker(_settings(aws, "ep-errors"), "cerebro-detector-nope")
    with pytest.raises(DeployError, match="alarm.*ep-errors-missing.*do not exist"):
        deploy_sagemaker(_settings(aws, "ep-errors", alarms=["ep-errors-missing"]), NAME, before)


def test_the_canary_request_fits_the_update_endpoint_api():
    """The real-AWS path (never run against moto): the request botocore would send is valid."""
    import boto3
    from botocore.validate import validate_parameters

    from configs.settings import load_settings
    from serving.deploy.sagemaker import canary_request

    cfg = load_settings().deploy.sagemaker
    cfg.alarms, cfg.step_wait_seconds = ["latency-p95"], 600
    request = canary_request(cfg, "ep", "ep-v2-config")
    sm = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    validate_parameters(request, sm.meta.service_model.operation_model("UpdateEndpoint").input_shape)
    policy = request["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {"Type": "CANARY", "WaitIntervalInSeconds": 600,
                                                     "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}}
    assert request["DeploymentConfig"]["AutoRollbackConfiguration"] == {"Alarms": [{"AlarmName": "latency-p95"}]}


def test_sagemaker_names_follow_the_rules():
    import re

    from serving.deploy.sagemaker import sagemaker_name

    assert sagemaker_name("cerebro-forecaster-seasonal_naive", "v3") == "cerebro-forecaster-seasonal-naive-v3"
    long_a, long_b = sagemaker_name("x" * 80, "v1"), sagemaker_name("x" * 80, "v2")
    assert len(long_a) <= 63 and long_a != long_b
    assert all(re.fullmatch(r"[A-Za-z0-9](-?[A-Za-z0-9])*", n) for n in (long_a, sagemaker_name("__a__b__")))


@pytest.mark.e2e
def test_the_deploy_flow_deploys_with_settings_from_the_environment(aws, prefect_server, monkeypatch):
    from flows.deploy import deploy_flow

    for key, value in {"ENDPOINT_URL": aws, "EXECUTION_ROLE_ARN": ROLE, "IMAGE_URI": IMAGE, "BUCKET": BUCKET,
                       "ENDPOINT_NAME": "ep-flow"}.items():
        monkeypatch.setenv(f"CEREBRO_DEPLOY__SAGEMAKER__{key}", value)
    result = deploy_flow(NAME, version="2", target="sagemaker")
    assert result["action"] == "created" and result["endpoint"] == "ep-flow"
    assert _variant_models(aws, "ep-flow") == {"blue": "cerebro-detector-tiny-sm-v2"}


def test_every_variant_gets_a_target_tracking_policy_that_status_shows(aws, update_endpoint, monkeypatch, wide_console):
    import json

    from typer.testing import CliRunner

    from flows.cli import app
    from serving.deploy.sagemaker import deploy_sagemaker, rollback_sagemaker, status_sagemaker

    scaling = {"min_capacity": 1, "max_capacity": 3, "target_invocations_per_instance": 250.0,
               "scale_in_cooldown_s": 120, "scale_out_cooldown_s": 30}
    settings = _settings(aws, "ep-scale")
    for key, value in scaling.items():
        setattr(settings.deploy.sagemaker.autoscaling, key, value)
    first = deploy_sagemaker(settings, NAME, "1")
    row = {**scaling, "policy": "ep-scale-blue-invocations-per-instance"}
    assert first["action"] == "created" and first["autoscaling"] == {"blue": row}

    aas = _client("application-autoscaling", aws)  # what AWS holds, read back on its own
    (target,) = aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[
        "endpoint/ep-scale/variant/blue"])["ScalableTargets"]
    assert (target["ScalableDimension"], target["MinCapacity"], target["MaxCapacity"]) == (
        "sagemaker:variant:DesiredInstanceCount", 1, 3)
    (policy,) = aas.describe_scaling_policies(ServiceNamespace="sagemaker",
                                              ResourceId="endpoint/ep-scale/variant/blue")["ScalingPolicies"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["TargetTrackingScalingPolicyConfiguration"] == {
        "TargetValue": 250.0, "ScaleInCooldown": 120, "ScaleOutCooldown": 30,
        "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}}

    second = deploy_sagemaker(settings, NAME, "2")  # the new variant is scaled too, the idle one stays so
    assert second["action"] == "shifted" and set(second["autoscaling"]) == {"blue", "green"}
    settings.deploy.sagemaker.autoscaling.max_capacity = 5  # a changed setting reaches AWS on the next call
    back = rollback_sagemaker(settings, NAME)
    assert back["autoscaling"]["blue"]["max_capacity"] == 5 == back["autoscaling"]["green"]["max_capacity"]
    assert status_sagemaker(settings, NAME)["autoscaling"]["green"] == {
        **scaling, "max_capacity": 5, "policy": "ep-scale-green-invocations-per-instance"}

    for key, value in {"ENDPOINT_URL": aws, "EXECUTION_ROLE_ARN": ROLE, "IMAGE_URI": IMAGE, "BUCKET": BUCKET,
                       "ENDPOINT_NAME": "ep-scale"}.items():
        monkeypatch.setenv(f"CEREBRO_DEPLOY__SAGEMAKER__{key}", value)
    runner = CliRunner()
    shown = runner.invoke(app, ["deploy", NAME, "--target", "sagemaker", "--status", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["autoscaling"]["blue"]["target_invocations_per_instance"] == 250.0
    text = runner.invoke(app, ["deploy", NAME, "--target", "sagemaker", "--status"])
    assert text.exit_code == 0
    assert ("auto-scaling blue: 1-5 instances, target 250 invocations per instance per minute, cool-downs: in 120 s, "
            "out 30 s") in text.stdout

    settings = _settings(aws, "ep-noscale")
    settings.deploy.sagemaker.autoscaling.enabled = False
    assert "autoscaling" not in deploy_sagemaker(settings, NAME, "1")
    assert status_sagemaker(settings, NAME)["autoscaling"] == {}
    monkeypatch.setenv("CEREBRO_DEPLOY__SAGEMAKER__ENDPOINT_NAME", "ep-noscale")
    assert "auto-scaling none registered" in runner.invoke(app, ["deploy", NAME, "--target", "sagemaker",
                                                                 "--status"]).stdout


def test_bad_autoscaling_bounds_are_a_clear_settings_error():
    from configs.settings import ConfigError, load_settings

    with pytest.raises(ConfigError, match="max_capacity .1. must be at least min_capacity .2."):
        load_settings(**{"deploy.sagemaker.autoscaling": {"min_capacity": 2, "max_capacity": 1}})
