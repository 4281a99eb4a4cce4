"""The tool executor: allow-list, dry run, approval (only from the injected approver), audit, output budget;
the Kubernetes tools against a local apps/v1 server, AWS on moto, Ansible for real on localhost."""
from __future__ import annotations

import os
import textwrap

import pytest
from support.kube_api import FakeKubeApi

from agents.tools import Approval, AuditLog, Executor, Policy, Tool, ToolArgs, ToolError, ToolRegistry
from agents.tools.budget import cut_to_budget, estimate_tokens
from agents.tools.kubernetes_tools import RESTART_ANNOTATION, api_client, kubernetes_tools

EDGES = [("frontend", "checkout"), ("checkout", "payment"), ("mobile-api", "checkout")]


@pytest.fixture(scope="module")
def kube():
    with FakeKubeApi({"default/payment": 3, "default/checkout": 2}) as api:
        yield api


def k8s_executor(kube, tmp_path, approver=None, allow=("@read", "k8s_*")) -> Executor:
    registry = ToolRegistry()
    registry.extend(kubernetes_tools(lambda: api_client(host=kube.url)))
    return Executor(registry, Policy(list(allow)), AuditLog(tmp_path / "audit.db"), approver, edges=lambda: EDGES)


def replicas(kube, name="payment"):
    return kube.deployments[f"default/{name}"]["spec"]["replicas"]


def test_dry_run_is_the_default_and_kubernetes_stores_nothing(kube, tmp_path):
    asked = []
    ex = k8s_executor(kube, tmp_path, approver=lambda r: asked.append(r) or Approval(True, "t"))
    before = replicas(kube)
    out = ex.run("k8s_scale", {"deployment": "payment", "replicas": before + 4})
    assert out.outcome == "dry-run" and out.result["replicas"] == before + 4 and replicas(kube) == before
    assert kube.requests[-1][1].endswith("/payment/scale") and kube.requests[-1][2] is True  # dryRun=All sent
    assert asked == []  # a plan needs no approval
    # The assessment: everything that calls payment, directly or not, and the way back.
    assert out.assessment.blast_radius == ["checkout", "frontend", "mobile-api"]
    assert out.assessment.reversible and "back to its previous replicas" in out.assessment.rollback


def test_no_mutating_tool_runs_without_an_approval(kube, tmp_path):
    before = replicas(kube)
    no_one = k8s_executor(kube, tmp_path).run("k8s_scale", {"deployment": "payment", "replicas": 9}, dry_run=False)
    assert no_one.outcome == "refused" and "nobody can approve" in no_one.error
    rejected = k8s_executor(kube, tmp_path, approver=lambda r: Approval(False, "sre", "not now")).run(
        "k8s_scale", {"deployment": "payment", "replicas": 9}, dry_run=False)
    assert rejected.outcome == "rejected" and replicas(kube) == before
    # Text in the data cannot approve: an "approved" argument is refused, a truthy non-Approval answer raises.
    with pytest.raises(ToolError, match="approved"):
        k8s_executor(kube, tmp_path, approver=lambda r: Approval(True, "t")).run(
            "k8s_scale", {"deployment": "payment", "replicas": 9, "approved": True}, dry_run=False)
    with pytest.raises(ToolError, match="not an Approval"):
        k8s_executor(kube, tmp_path, approver=lambda r: "APPROVED: yes").run(
            "k8s_scale", {"deployment": "payment", "replicas": 9}, dry_run=False)
    assert replicas(kube) == before
    approved = k8s_executor(kube, tmp_path, approver=lambda r: Approval(True, "sre")).run(
        "k8s_scale", {"deployment": "payment", "replicas": 9}, dry_run=False)
    assert approved.outcome == "ok" and replicas(kube) == 9 and approved.result["replicas_before"] == before


def test_rollout_restart_patches_the_pod_template_annotation(kube, tmp_path):
    ex = k8s_executor(kube, tmp_path, approver=lambda r: Approval(True, "sre"))
    assert RESTART_ANNOTATION not in kube.deployments["default/checkout"]["spec"]["template"]["metadata"]["annotations"]
    out = ex.run("k8s_rollout_restart", {"deployment": "checkout"}, dry_run=False)
    assert out.outcome == "ok" and not out.assessment.reversible
    stamp = kube.deployments["default/checkout"]["spec"]["template"]["metadata"]["annotations"][RESTART_ANNOTATION]
    assert stamp == out.result["restarted_at"]
    missing = ex.run("k8s_rollout_restart", {"deployment": "nope"}, dry_run=False)
    assert missing.outcome == "failed" and "404" in missing.error


def test_allow_list_and_bad_arguments(kube, tmp_path):
    ex = k8s_executor(kube, tmp_path, approver=lambda r: Approval(True, "t"), allow=["@read"])
    out = ex.run("k8s_scale", {"deployment": "payment", "replicas": 1})
    assert out.outcome == "refused" and "allow-list" in out.error
    with pytest.raises(ToolError, match="replicas"):
        k8s_executor(kube, tmp_path).run("k8s_scale", {"deployment": "payment", "replicas": -1})
    with pytest.raises(ToolError, match="did you mean k8s_scale"):
        k8s_executor(kube, tmp_path).run("k8s_scal", {})


def test_audit_records_every_call_and_renders_markdown(kube, tmp_path):
    from agents.tools.audit import markdown

    ex = k8s_executor(kube, tmp_path, approver=lambda r: Approval(False, "alice", "wrong service"))
    ex.run("k8s_scale", {"deployment": "checkout", "replicas": 3})
    ex.run("k8s_scale", {"deployment": "checkout", "replicas": 3}, dry_run=False)
    rows = ex.audit.recent(limit=2)
    assert [r["outcome"] for r in rows] == ["rejected", "dry-run"]
    assert rows[0]["approved_by"] == "alice" and not rows[0]["approved"] and '"replicas": 3' in rows[0]["arguments"]
    text = markdown(rows)
    assert "| k8s_scale |" in text and "alice" in text and "None" not in text and "nan" not in text


def test_audit_log_on_postgresql(tmp_path):
    import psycopg

    dsn = "postgresql://postgres@127.0.0.1:5432/test"
    try:
        psycopg.connect(dsn, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 (user postgres, db test) is not reachable: {exc}")
    from agents.tools import AuditRecord

    log = AuditLog(dsn)
    marker = f"pg-{os.getpid()}-{tmp_path.name}"
    log.append(AuditRecord(who=marker, tool="k8s_scale", risk="high", arguments={"replicas": 2}, dry_run=False,
                           outcome="ok", approved=True, approved_by="bob", result={"replicas": 2}))
    row = next(r for r in log.recent(limit=50, tool="k8s_scale") if r["who"] == marker)
    assert row["approved"] is True and row["approved_by"] == "bob" and row["result"] == '{"replicas": 2}'


class EchoArgs(ToolArgs):
    n: int


def test_output_is_cut_to_the_token_budget_and_timeouts_are_outcomes(tmp_path):
    import time

    reg = ToolRegistry()
    reg.register(Tool("many", "rows", EchoArgs, lambda a: [{"row": i, "text": "x" * 40} for i in range(a.n)],
                      max_tokens=200))
    reg.register(Tool("slow", "sleeps", EchoArgs, lambda a: time.sleep(a.n), timeout_s=0.2))
    ex = Executor(reg, audit=AuditLog(tmp_path / "a.db"))
    small = ex.run("many", {"n": 2})
    assert not small.cut and len(small.result) == 2
    big = ex.run("many", {"n": 500})
    assert big.cut and estimate_tokens(str(big.result)) <= 260 and "of 500 items shown" in big.result["cut"]
    assert big.result["items"][0]["row"] == 0
    slow = ex.run("slow", {"n": 2})
    assert slow.outcome == "timed out" and "may still complete" not in slow.error
    # A change that timed out is abandoned, not stopped: the outcome must not suggest it did not happen.
    reg.register(Tool("slow_change", "sleeps, then changes", EchoArgs, lambda a, dry_run: time.sleep(a.n),
                      risk="low", timeout_s=0.2))
    change = Executor(reg, Policy(["slow_change"]), AuditLog(tmp_path / "b.db"), lambda r: Approval(True, "sre")).run(
        "slow_change", {"n": 2}, dry_run=False)
    assert change.outcome == "timed out" and "the change may still complete" in change.error
    text, cut = cut_to_budget("y" * 10_000, 100)
    assert cut and len(text) < 500 and "[cut:" in text


def test_aws_plans_describe_and_only_execute_calls_the_mutating_api(moto_url, tmp_path):
    import boto3

    from agents.tools.aws_tools import aws_tools

    def client(name):
        return boto3.client(name, region_name="us-east-1", endpoint_url=moto_url)

    ec2 = client("ec2")
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    asg = client("autoscaling")
    asg.create_launch_configuration(LaunchConfigurationName="lc", ImageId="ami-12c6146b", InstanceType="t3.micro")
    asg.create_auto_scaling_group(AutoScalingGroupName="web", LaunchConfigurationName="lc", MinSize=1, MaxSize=6,
                                  DesiredCapacity=2, VPCZoneIdentifier=subnet)
    client("dynamodb").create_table(TableName="checkout", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                                    AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                                    ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5})
    aas = client("application-autoscaling")
    dim = "dynamodb:table:WriteCapacityUnits"
    aas.register_scalable_target(ServiceNamespace="dynamodb", ResourceId="table/checkout", ScalableDimension=dim,
                                 MinCapacity=1, MaxCapacity=4)
    reg = ToolRegistry()
    reg.extend(aws_tools(client))
    ex = Executor(reg, Policy(["aws_*"]), AuditLog(tmp_path / "a.db"), lambda r: Approval(True, "sre"),
                  edges=lambda: EDGES)

    def desired():
        return asg.describe_auto_scaling_groups(AutoScalingGroupNames=["web"])["AutoScalingGroups"][0]["DesiredCapacity"]

    plan = ex.run("aws_asg_desired_capacity", {"group": "web", "desired_capacity": 5})
    assert plan.outcome == "dry-run" and "from 2 to 5" in plan.result["plan"] and desired() == 2
    assert ex.run("aws_asg_desired_capacity", {"group": "web", "desired_capacity": 5}, dry_run=False).ok
    assert desired() == 5
    outside = ex.run("aws_asg_desired_capacity", {"group": "web", "desired_capacity": 9}, dry_run=False)
    assert outside.outcome == "failed" and "outside the group's range 1..6" in outside.error and desired() == 5

    args = {"service_namespace": "dynamodb", "resource_id": "table/checkout", "scalable_dimension": dim,
            "min_capacity": 2, "max_capacity": 10}
    plan = ex.run("aws_scalable_target", args)
    assert plan.result["before"] == {"min_capacity": 1, "max_capacity": 4}
    assert plan.assessment.target == "checkout" and plan.assessment.blast_radius == ["frontend", "mobile-api"]
    assert ex.run("aws_scalable_target", args, dry_run=False).ok
    now = aas.describe_scalable_targets(ServiceNamespace="dynamodb", ResourceIds=["table/checkout"])["ScalableTargets"][0]
    assert (now["MinCapacity"], now["MaxCapacity"]) == (2, 10)


def test_ansible_playbook_check_mode_then_a_real_run_on_localhost(tmp_path):
    from agents.tools.ansible_tools import ansible_tools

    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "marker.yml").write_text(textwrap.dedent("""\
        - hosts: localhost
          gather_facts: false
          tasks:
            - name: write the marker
              ansible.builtin.copy:
                dest: "{{ marker }}"
                content: "restarted {{ service }}\\n"
        """))
    marker = tmp_path / "marker.txt"
    reg = ToolRegistry()
    reg.extend(ansible_tools(books))
    ex = Executor(reg, Policy(["ansible_playbook"]), AuditLog(tmp_path / "a.db"), lambda r: Approval(True, "sre"))
    args = {"playbook": "marker.yml", "extra_vars": {"marker": str(marker), "service": "payment"}}
    plan = ex.run("ansible_playbook", args)
    assert plan.outcome == "dry-run" and plan.result["check"] and plan.result["changed"] == 1 and not marker.exists()
    done = ex.run("ansible_playbook", args, dry_run=False)
    assert done.outcome == "ok" and marker.read_text() == "restarted payment\n"
    outside = ex.run("ansible_playbook", {"playbook": "other.yml"})
    assert outside.outcome == "failed" and "known: marker.yml" in outside.error
