"""AWS capacity changes with boto3: an Application Auto Scaling target's capacity range, and an EC2 Auto
Scaling group's desired capacity. A dry run only describes the current state and the change (AWS has no
dry-run for these calls), so nothing mutating is called.
"""
from __future__ import annotations

from collections.abc import Callable

from pydantic import Field, model_validator

from agents.tools.registry import Tool, ToolArgs, ToolError


class ScalableTargetArgs(ToolArgs):
    service_namespace: str = Field(description="e.g. ecs, dynamodb, sagemaker, lambda")
    resource_id: str = Field(description="e.g. service/cluster-name/service-name")
    scalable_dimension: str = Field(description="e.g. ecs:service:DesiredCount")
    min_capacity: int = Field(ge=0)
    max_capacity: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self):
        if self.max_capacity < self.min_capacity:
            raise ValueError(f"max_capacity {self.max_capacity} is below min_capacity {self.min_capacity}")
        return self


class AsgCapacityArgs(ToolArgs):
    group: str = Field(min_length=1, description="the Auto Scaling group's name")
    desired_capacity: int = Field(ge=0)


def aws_tools(make_client: Callable[[str], object]) -> list[Tool]:
    """``make_client(service_name)`` returns a boto3 client (region and endpoint from configuration)."""

    def scalable_target(args: ScalableTargetArgs, dry_run: bool) -> dict:
        aas = make_client("application-autoscaling")
        found = aas.describe_scalable_targets(ServiceNamespace=args.service_namespace,
                                              ResourceIds=[args.resource_id],
                                              ScalableDimension=args.scalable_dimension)["ScalableTargets"]
        before = ({"min_capacity": found[0]["MinCapacity"], "max_capacity": found[0]["MaxCapacity"]}
                  if found else None)
        plan = (f"set {args.service_namespace} {args.resource_id} ({args.scalable_dimension}) capacity to "
                f"{args.min_capacity}..{args.max_capacity}" + (f", from {before['min_capacity']}.."
                                                              f"{before['max_capacity']}" if before else
                                                              " (a new scalable target)"))
        if not dry_run:
            aas.register_scalable_target(ServiceNamespace=args.service_namespace, ResourceId=args.resource_id,
                                         ScalableDimension=args.scalable_dimension,
                                         MinCapacity=args.min_capacity, MaxCapacity=args.max_capacity)
        return {"plan": plan, "dry_run": dry_run, "before": before,
                "after": {"min_capacity": args.min_capacity, "max_capacity": args.max_capacity}}

    def asg_capacity(args: AsgCapacityArgs, dry_run: bool) -> dict:
        asg = make_client("autoscaling")
        groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[args.group])["AutoScalingGroups"]
        if not groups:
            raise ToolError(f"no Auto Scaling group named {args.group!r}")
        g = groups[0]
        if not g["MinSize"] <= args.desired_capacity <= g["MaxSize"]:
            raise ToolError(f"desired_capacity {args.desired_capacity} is outside the group's range "
                            f"{g['MinSize']}..{g['MaxSize']}")
        if not dry_run:
            asg.set_desired_capacity(AutoScalingGroupName=args.group, DesiredCapacity=args.desired_capacity,
                                     HonorCooldown=False)
        return {"plan": f"set Auto Scaling group {args.group} desired capacity from {g['DesiredCapacity']} to "
                        f"{args.desired_capacity}", "dry_run": dry_run, "before": g["DesiredCapacity"],
                "after": args.desired_capacity}

    return [
        Tool("aws_scalable_target", "Set the min/max capacity of an Application Auto Scaling target (ECS "
             "service, DynamoDB table, SageMaker variant ...).", ScalableTargetArgs, scalable_target, risk="high",
             reversible=True, timeout_s=30,
             rollback=lambda a: "register the target again with the previous min/max (shown as before in the plan)",
             target=lambda a: a.resource_id.rstrip("/").rsplit("/", 1)[-1]),
        Tool("aws_asg_desired_capacity", "Set an EC2 Auto Scaling group's desired capacity.", AsgCapacityArgs,
             asg_capacity, risk="high", reversible=True, timeout_s=30,
             rollback=lambda a: f"set {a.group}'s desired capacity back to its previous value (before in the plan)",
             target=lambda a: a.group),
    ]
