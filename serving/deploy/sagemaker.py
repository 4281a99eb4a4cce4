"""A registered version on a SageMaker real-time endpoint, through boto3 (``deploy.sagemaker`` settings).

    deploy_sagemaker(settings, "cerebro-detector-ensemble", version="5")
    rollback_sagemaker(settings, "cerebro-detector-ensemble")     # traffic back to the other variant

The version's MLflow artifacts (``models:/NAME/V``) are packed as ``model.tar.gz`` (the MLmodel folder at its
root, what an MLflow pyfunc serving image expects under /opt/ml/model), uploaded to
``s3://<bucket>/<prefix>/<name>/<version>/`` and made a SageMaker model ``<name>-v<version>``.

The first deploy creates an endpoint config with one production variant, ``blue``, and the endpoint. Later
deploys, with ``strategy: variants`` (the default):

1. the new model goes to the idle variant: a new endpoint config keeps the live variant as it is (weight 1)
   and puts the new model in the other one (``blue`` / ``green``) at weight 0, applied with ``UpdateEndpoint``;
2. traffic moves with ``UpdateEndpointWeightsAndCapacities`` step by step (``traffic_steps``, e.g. 10 % then
   100 %); after each step ``DescribeEndpoint`` must show the weights, and between steps the CloudWatch
   ``alarms`` are watched for ``step_wait_seconds``: one in ALARM puts the weights back (rollback);
3. the old model stays in its variant at weight 0, so ``rollback_sagemaker`` is one weights call.

``strategy: canary`` lets SageMaker do it: ``UpdateEndpoint`` with a ``BlueGreenUpdatePolicy`` (canary traffic
routing) and an ``AutoRollbackConfiguration`` on the alarms; the deploy waits and reads which config won.

After every deploy and rollback, each variant gets an Application Auto Scaling target-tracking policy on
invocations per instance (``deploy.sagemaker.autoscaling``, ``serving/deploy/autoscaling.py``).

moto 5.2.5 answers HTTP 500 to ``UpdateEndpoint``, so step 1 and the canary strategy have not run against it
(docs/serving.md, Deploy, says what the tests run).
"""
from __future__ import annotations

import hashlib
import re
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from serving.deploy import DeployError, give_back, resolve

VARIANTS = ("blue", "green")
REQUIRED = ("execution_role_arn", "image_uri", "bucket")


def sagemaker_name(*parts, limit: int = 63) -> str:
    """A SageMaker resource name: letters, digits and single hyphens, at most ``limit`` characters."""
    raw = "-".join(str(p) for p in parts)
    name = re.sub(r"-{2,}", "-", re.sub(r"[^A-Za-z0-9-]+", "-", raw)).strip("-")
    if len(name) > limit:  # keep it unique: a digest of the whole name
        name = name[:limit - 9].rstrip("-") + "-" + hashlib.sha1(raw.encode()).hexdigest()[:8]
    if not name:
        raise DeployError(f"{raw!r} gives no valid SageMaker name")
    return name


def _config(settings):
    cfg = settings.deploy.sagemaker
    missing = [k for k in REQUIRED if not getattr(cfg, k)]
    if missing:
        raise DeployError("SageMaker deploy needs " + ", ".join(f"deploy.sagemaker.{k}" for k in missing)
                          + " (configs/default.yaml, or e.g. CEREBRO_DEPLOY__SAGEMAKER__"
                          + missing[0].upper() + ")")
    return cfg


def _clients(cfg) -> dict:
    import boto3

    session = boto3.session.Session(region_name=cfg.region)
    return {s: session.client(s, endpoint_url=cfg.endpoint_url)
            for s in ("sagemaker", "s3", "cloudwatch", "application-autoscaling")}


def _endpoint_name(cfg, name: str) -> str:
    return sagemaker_name(cfg.endpoint_name or name)


def _error_code(exc) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


# ------------------------------------------------------------------------------------------------ the model
def package(settings, name: str, version: str, workdir: Path) -> Path:
    """``models:/name/version``'s artifacts as ``workdir/model.tar.gz`` (MLmodel at the archive's root)."""
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}",
                                                     dst_path=str(workdir / "model"),
                                                     tracking_uri=settings.mlflow_tracking_uri))
    if not (local / "MLmodel").exists():
        raise DeployError(f"models:/{name}/{version} holds no MLmodel file; not an MLflow model")
    tarball = workdir / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for path in sorted(local.iterdir()):
            tar.add(path, arcname=path.name)
    return tarball


def upload(s3, cfg, name: str, version: str, tarball: Path) -> str:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=cfg.bucket)
    except ClientError as exc:
        raise DeployError(f"S3 bucket {cfg.bucket!r} (deploy.sagemaker.bucket) does not exist or cannot be reached: "
                          f"{exc}") from None
    key = f"{cfg.prefix.strip('/')}/{name}/{version}/model.tar.gz".lstrip("/")
    s3.upload_file(str(tarball), cfg.bucket, key)
    return f"s3://{cfg.bucket}/{key}"


def ensure_model(sm, cfg, model_name: str, data_url: str, name: str, version: str) -> str:
    """Create the SageMaker model for this version (kept when it exists: a redeploy of the same version)."""
    from botocore.exceptions import ClientError

    try:
        sm.describe_model(ModelName=model_name)
        return model_name
    except ClientError:
        pass
    sm.create_model(
        ModelName=model_name, ExecutionRoleArn=cfg.execution_role_arn,
        PrimaryContainer={"Image": cfg.image_uri, "ModelDataUrl": data_url,
                          "Environment": {"MLFLOW_DEPLOYMENT_FLAVOR_NAME": "python_function",
                                          "SERVING_ENVIRONMENT": "SageMaker",
                                          "CEREBRO_MODEL_NAME": name, "CEREBRO_MODEL_VERSION": version}},
        Tags=[{"Key": "cerebro.model", "Value": name}, {"Key": "cerebro.version", "Value": version}])
    return model_name


# ------------------------------------------------------------------------------------------------ the endpoint
def _variant(cfg, variant: str, model_name: str, weight: float) -> dict:
    return {"VariantName": variant, "ModelName": model_name, "InitialInstanceCount": cfg.instance_count,
            "InstanceType": cfg.instance_type, "InitialVariantWeight": weight}


def _new_config(sm, endpoint: str, variants: list[dict], tag: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
    config_name = sagemaker_name(endpoint, tag, stamp)
    sm.create_endpoint_config(EndpointConfigName=config_name, ProductionVariants=variants)
    return config_name


def describe(sm, endpoint: str) -> dict | None:
    from botocore.exceptions import ClientError

    try:
        return sm.describe_endpoint(EndpointName=endpoint)
    except ClientError as exc:
        if _error_code(exc) == "ValidationException" and "Could not find" in str(exc):
            return None
        raise


def variants_of(sm, desc: dict) -> dict[str, dict]:
    """variant -> {model, weight}: the model from the endpoint's config, the weight from the endpoint."""
    config = sm.describe_endpoint_config(EndpointConfigName=desc["EndpointConfigName"])
    models = {v["VariantName"]: v["ModelName"] for v in config["ProductionVariants"]}
    # moto leaves CurrentWeight out of a variant created at weight 0; AWS always reports it
    return {v["VariantName"]: {"model": models.get(v["VariantName"]), "weight": float(v.get("CurrentWeight", 0.0))}
            for v in desc["ProductionVariants"]}


def wait_in_service(sm, cfg, endpoint: str) -> dict:
    deadline = time.monotonic() + cfg.wait_timeout_seconds
    while True:
        desc = sm.describe_endpoint(EndpointName=endpoint)
        status = desc["EndpointStatus"]
        if status == "InService":
            return desc
        if status in ("Failed", "OutOfService", "Deleting"):
            raise DeployError(f"endpoint {endpoint} is {status}: {desc.get('FailureReason', 'no reason given')}")
        if time.monotonic() > deadline:
            raise DeployError(f"endpoint {endpoint} still {status} after {cfg.wait_timeout_seconds:g} s "
                              "(deploy.sagemaker.wait_timeout_seconds)")
        time.sleep(cfg.poll_seconds)


def update_endpoint(sm, **request) -> None:
    """``UpdateEndpoint`` (one place, so that tests can stand in for it: moto 5.2.5 answers 500)."""
    sm.update_endpoint(**request)


def canary_request(cfg, endpoint: str, config_name: str) -> dict:
    """``UpdateEndpoint`` with SageMaker's own blue/green canary and alarm rollback (real AWS)."""
    policy = {"TrafficRoutingConfiguration": {
                  "Type": "CANARY", "WaitIntervalInSeconds": int(min(cfg.step_wait_seconds, 3600)),
                  "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": int(cfg.canary_percent)}},
              "TerminationWaitInSeconds": int(min(cfg.termination_wait_seconds, 3600)),
              "MaximumExecutionTimeoutInSeconds": int(min(max(cfg.wait_timeout_seconds, 600), 28800))}
    deployment = {"BlueGreenUpdatePolicy": policy}
    if cfg.alarms:
        deployment["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in cfg.alarms]}
    return {"EndpointName": endpoint, "EndpointConfigName": config_name, "DeploymentConfig": deployment}


def _check_alarms(cw, cfg) -> None:
    if not cfg.alarms:
        return
    found = cw.describe_alarms(AlarmNames=list(cfg.alarms))
    known = {a["AlarmName"] for a in found.get("MetricAlarms", []) + found.get("CompositeAlarms", [])}
    missing = [a for a in cfg.alarms if a not in known]
    if missing:
        raise DeployError(f"CloudWatch alarm(s) {', '.join(missing)} (deploy.sagemaker.alarms) do not exist")


def watch_alarms(cw, cfg, seconds: float) -> list[str]:
    """The configured alarms in ALARM, watched for ``seconds`` (checked at least once)."""
    if not cfg.alarms:
        time.sleep(seconds)
        return []
    deadline = time.monotonic() + seconds
    while True:
        found = cw.describe_alarms(AlarmNames=list(cfg.alarms))  # the state filtered here: moto ignores StateValue
        firing = [a["AlarmName"] for a in found.get("MetricAlarms", []) + found.get("CompositeAlarms", [])
                  if a.get("StateValue") == "ALARM"]
        left = deadline - time.monotonic()
        if firing or left <= 0:
            return firing
        time.sleep(min(cfg.poll_seconds, left))


def set_weights(sm, cfg, endpoint: str, weights: dict[str, float]) -> dict[str, float]:
    """Move the traffic; returns the weights ``DescribeEndpoint`` reports once InService (checked)."""
    sm.update_endpoint_weights_and_capacities(
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[{"VariantName": v, "DesiredWeight": w} for v, w in weights.items()])
    desc = wait_in_service(sm, cfg, endpoint)
    got = {v["VariantName"]: float(v.get("CurrentWeight", 0.0)) for v in desc["ProductionVariants"]}
    wrong = {v: (w, got.get(v)) for v, w in weights.items() if got.get(v) is None or abs(got[v] - w) > 1e-6}
    if wrong:
        raise DeployError(f"endpoint {endpoint}: weights not applied (wanted, reported): {wrong}")
    return got


def _shift(sm, cw, cfg, endpoint: str, new: str, old: str) -> tuple[list[dict], list[str]]:
    """Traffic to ``new`` in ``traffic_steps``; back to ``old`` when an alarm fires between steps."""
    steps = []
    for pct in cfg.traffic_steps:
        share = pct / 100.0
        steps.append({"percent": pct, "weights": set_weights(sm, cfg, endpoint, {new: share, old: 1.0 - share})})
        if pct < 100:
            firing = watch_alarms(cw, cfg, cfg.step_wait_seconds)
            if firing:
                steps.append({"percent": 0, "weights": set_weights(sm, cfg, endpoint, {new: 0.0, old: 1.0}),
                              "rollback": firing})
                return steps, firing
    return steps, []


def deploy_sagemaker(settings, name: str, version: str | int | None = None, kind: str | None = None) -> dict:
    """Deploy ``name`` (``version`` or its champion) to its endpoint: create it, or blue-green onto it."""
    cfg = _config(settings)
    target = resolve(settings, name, version, kind)
    try:
        result = _deploy(settings, cfg, target)
    except Exception:
        give_back(settings, target)
        raise
    return _autoscale(cfg, result)


def _autoscale(cfg, result: dict) -> dict:
    """The auto-scaling policy on every variant of the endpoint. The traffic has moved by now: a refusal here
    (e.g. no permission) is a note on a deploy that stands, not a failed deploy."""
    from botocore.exceptions import BotoCoreError, ClientError

    from serving.deploy import autoscaling

    if not cfg.autoscaling.enabled:
        return result
    clients = _clients(cfg)
    try:
        desc = clients["sagemaker"].describe_endpoint(EndpointName=result["endpoint"])
        variants = [v["VariantName"] for v in desc["ProductionVariants"]]
        result["autoscaling"] = autoscaling.apply(clients["application-autoscaling"], cfg.autoscaling,
                                                  result["endpoint"], variants)
    except (ClientError, BotoCoreError) as exc:
        result.setdefault("notes", []).append(f"auto-scaling not applied to {result['endpoint']}: {exc}")
    return result


def _deploy(settings, cfg, target) -> dict:
    name, version = target.name, target.version
    clients = _clients(cfg)
    sm, cw = clients["sagemaker"], clients["cloudwatch"]
    endpoint = _endpoint_name(cfg, name)
    _check_alarms(cw, cfg)
    with tempfile.TemporaryDirectory(prefix="cerebro-sagemaker-") as tmp:
        data_url = upload(clients["s3"], cfg, name, version, package(settings, name, version, Path(tmp)))
    model = ensure_model(sm, cfg, sagemaker_name(name, f"v{version}"), data_url, name, version)
    out = {"target": "sagemaker", "model": name, "version": version, "endpoint": endpoint, "sagemaker_model": model,
           "model_data": data_url, "strategy": cfg.strategy, "steps": [], "notes": []}
    desc = describe(sm, endpoint)
    if desc is None:
        config_name = _new_config(sm, endpoint, [_variant(cfg, VARIANTS[0], model, 1.0)], f"v{version}")
        sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config_name,
                           Tags=[{"Key": "cerebro.model", "Value": name}])
        desc = wait_in_service(sm, cfg, endpoint)
        return {**out, "action": "created", "endpoint_config": config_name, "live_variant": VARIANTS[0],
                "weights": {v["VariantName"]: v.get("CurrentWeight") for v in desc["ProductionVariants"]}}
    if desc["EndpointStatus"] != "InService":
        raise DeployError(f"endpoint {endpoint} is {desc['EndpointStatus']}; deploy again once it is InService")
    variants = variants_of(sm, desc)
    live = max(variants, key=lambda v: variants[v]["weight"])
    if variants[live]["model"] == model and variants[live]["weight"] >= 1.0 - 1e-9:
        return {**out, "action": "unchanged", "live_variant": live, "endpoint_config": desc["EndpointConfigName"]}
    if cfg.strategy == "canary":
        return {**out, **_canary(sm, cfg, endpoint, live, model, version)}
    if set(variants) - set(VARIANTS):
        raise DeployError(f"endpoint {endpoint} has variants {sorted(variants)}; the variants strategy uses "
                          f"{' and '.join(VARIANTS)} (set deploy.sagemaker.endpoint_name to deploy beside it)")
    config_name = desc["EndpointConfigName"]
    new = next((v for v in VARIANTS if variants.get(v, {}).get("model") == model), None)
    if new is None:  # stage the new model in the idle variant at weight 0; the live one keeps its traffic
        new = VARIANTS[1] if live == VARIANTS[0] else VARIANTS[0]
        config_name = _new_config(sm, endpoint, [_variant(cfg, live, variants[live]["model"], 1.0),
                                                 _variant(cfg, new, model, 0.0)], f"v{version}")
        update_endpoint(sm, EndpointName=endpoint, EndpointConfigName=config_name, RetainAllVariantProperties=False)
        wait_in_service(sm, cfg, endpoint)
    live = next(v for v in VARIANTS if v != new)  # the variant the traffic leaves
    steps, firing = _shift(sm, cw, cfg, endpoint, new, live)
    out.update(endpoint_config=config_name, steps=steps, previous_variant=live, previous_model=variants[live]["model"])
    if firing:
        back = give_back(settings, target)
        out["notes"].append(f"alarm(s) {', '.join(firing)} fired: traffic is back on {live} "
                            f"({variants[live]['model']})" + (f"; champion is back on v{back}" if back else ""))
        return {**out, "action": "rolled back", "live_variant": live, "reason": f"alarm(s) {', '.join(firing)}"}
    return {**out, "action": "shifted", "live_variant": new}


def _canary(sm, cfg, endpoint: str, live: str, model: str, version: str) -> dict:
    """Real AWS only: SageMaker's blue/green deployment with canary traffic and alarm rollback."""
    config_name = _new_config(sm, endpoint, [_variant(cfg, live, model, 1.0)], f"v{version}")
    update_endpoint(sm, **canary_request(cfg, endpoint, config_name))
    time.sleep(cfg.poll_seconds)  # let the status leave InService before it is read
    desc = wait_in_service(sm, cfg, endpoint)
    if desc["EndpointConfigName"] != config_name:
        return {"action": "rolled back", "endpoint_config": desc["EndpointConfigName"], "live_variant": live,
                "reason": desc.get("FailureReason", "SageMaker rolled the deployment back (alarm)")}
    return {"action": "deployed", "endpoint_config": config_name, "live_variant": live}


def _existing(settings, name: str):
    """(settings section, SageMaker client, endpoint name, DescribeEndpoint or None) of NAME's endpoint."""
    cfg = settings.deploy.sagemaker
    sm = _clients(cfg)["sagemaker"]
    endpoint = _endpoint_name(cfg, name)
    return cfg, sm, endpoint, describe(sm, endpoint)


def rollback_sagemaker(settings, name: str) -> dict:
    """All traffic back to the other variant (the previous model, still in place); the champion follows."""
    cfg, sm, endpoint, desc = _existing(settings, name)
    if desc is None:
        raise DeployError(f"no endpoint {endpoint} to roll back")
    variants = variants_of(sm, desc)
    if len(variants) != 2:
        raise DeployError(f"endpoint {endpoint} has one variant ({', '.join(variants)}): nothing to roll back to")
    live = max(variants, key=lambda v: variants[v]["weight"])
    back = next(v for v in variants if v != live)
    weights = set_weights(sm, cfg, endpoint, {back: 1.0, live: 0.0})
    out = {"target": "sagemaker", "model": name, "endpoint": endpoint, "action": "rolled back",
           "live_variant": back, "sagemaker_model": variants[back]["model"], "weights": weights, "notes": []}
    env = sm.describe_model(ModelName=variants[back]["model"]).get("PrimaryContainer", {}).get("Environment", {})
    version = env.get("CEREBRO_MODEL_VERSION")
    if version and env.get("CEREBRO_MODEL_NAME") == name:
        from serving.registry import client_for, set_champion

        set_champion(client_for(settings), name, version)
        out.update(version=version)
        out["notes"].append(f"champion is back on v{version}")
    return _autoscale(cfg, out)


def status_sagemaker(settings, name: str) -> dict:
    from serving.deploy import autoscaling

    cfg, sm, endpoint, desc = _existing(settings, name)
    if desc is None:
        return {"target": "sagemaker", "endpoint": endpoint, "exists": False}
    variants = variants_of(sm, desc)
    scaling = autoscaling.describe(_clients(cfg)["application-autoscaling"], endpoint, list(variants))
    return {"target": "sagemaker", "endpoint": endpoint, "exists": True, "status": desc["EndpointStatus"],
            "endpoint_config": desc["EndpointConfigName"], "variants": variants, "autoscaling": scaling}
