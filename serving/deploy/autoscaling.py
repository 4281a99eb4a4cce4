"""Application Auto Scaling on a SageMaker endpoint's variants (``deploy.sagemaker.autoscaling``).

    apply(aas, cfg.autoscaling, "cerebro-detector-ensemble", ["blue", "green"])   # after a deploy or a rollback
    describe(aas, "cerebro-detector-ensemble", ["blue", "green"])                 # what `--status` shows

Each variant is a scalable target (``sagemaker:variant:DesiredInstanceCount`` between ``min_capacity`` and
``max_capacity``) with one target-tracking policy on ``SageMakerVariantInvocationsPerInstance``. Both calls
are upserts, so a redeploy applies changed settings. Every variant gets it, the idle one too: a rollback moves
traffic there, and without invocations target tracking holds it at ``min_capacity``.
"""

from __future__ import annotations

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRIC = "SageMakerVariantInvocationsPerInstance"


def resource_id(endpoint: str, variant: str) -> str:
    return f"endpoint/{endpoint}/variant/{variant}"


def policy_name(endpoint: str, variant: str) -> str:
    return f"{endpoint}-{variant}-invocations-per-instance"


def apply(aas, scaling, endpoint: str, variants: list[str]) -> dict[str, dict]:
    """Register every variant and put its policy; returns what ``describe`` then reads back."""
    for variant in variants:
        rid = resource_id(endpoint, variant)
        aas.register_scalable_target(
            ServiceNamespace=NAMESPACE,
            ResourceId=rid,
            ScalableDimension=DIMENSION,
            MinCapacity=scaling.min_capacity,
            MaxCapacity=scaling.max_capacity,
        )
        aas.put_scaling_policy(
            PolicyName=policy_name(endpoint, variant),
            ServiceNamespace=NAMESPACE,
            ResourceId=rid,
            ScalableDimension=DIMENSION,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": float(scaling.target_invocations_per_instance),
                "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
                "ScaleInCooldown": int(scaling.scale_in_cooldown_s),
                "ScaleOutCooldown": int(scaling.scale_out_cooldown_s),
            },
        )
    return describe(aas, endpoint, variants)


def describe(aas, endpoint: str, variants: list[str]) -> dict[str, dict]:
    """variant -> {min_capacity, max_capacity, target_invocations_per_instance, cool-downs, policy}; a variant
    that is not a scalable target is left out."""
    ids = [resource_id(endpoint, v) for v in variants]
    targets = aas.describe_scalable_targets(
        ServiceNamespace=NAMESPACE, ResourceIds=ids, ScalableDimension=DIMENSION
    ).get("ScalableTargets", [])
    out = {}
    for target in targets:
        variant = target["ResourceId"].rsplit("/", 1)[-1]
        row = {"min_capacity": target["MinCapacity"], "max_capacity": target["MaxCapacity"]}
        policies = aas.describe_scaling_policies(
            ServiceNamespace=NAMESPACE, ResourceId=target["ResourceId"], ScalableDimension=DIMENSION
        ).get("ScalingPolicies", [])
        for policy in policies:
            tracking = policy.get("TargetTrackingScalingPolicyConfiguration") or {}
            metric = (tracking.get("PredefinedMetricSpecification") or {}).get("PredefinedMetricType")
            if metric == METRIC:
                row.update(
                    policy=policy["PolicyName"],
                    target_invocations_per_instance=tracking.get("TargetValue"),
                    scale_in_cooldown_s=tracking.get("ScaleInCooldown"),
                    scale_out_cooldown_s=tracking.get("ScaleOutCooldown"),
                )
                break
        out[variant] = row
    return dict(sorted(out.items()))


def summary(rows: dict[str, dict]) -> list[str]:
    """One line per variant for people: ``blue: 1-4 instances, 100 invocations/instance/min, cool-downs ...``."""
    lines = []
    for variant, r in rows.items():
        line = f"{variant}: {r['min_capacity']}-{r['max_capacity']} instances"
        if r.get("policy"):
            line += (
                f", target {r['target_invocations_per_instance']:g} invocations per instance per minute, "
                f"cool-downs: in {r['scale_in_cooldown_s']} s, out {r['scale_out_cooldown_s']} s"
            )
        else:
            line += ", no invocations policy"
        lines.append(line)
    return lines
