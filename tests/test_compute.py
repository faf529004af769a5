"""Instances, launch template and Auto Scaling group against moto, through the real planner and sweeper.

The compute and load balancing declarations run with the real handlers (and the network area's
Elastic IP handler for the bastion's address). What other areas provide (network, security groups,
instance profile, parameters, topic, web bucket) is made directly with boto3 and stands in the graph
as already existing.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from cdpoc_testing import Existing, numbered_context

from cdpoc.apply import apply_plan
from cdpoc.aws import compute as compute_handlers
from cdpoc.aws import loadbalancing as lb_handlers
from cdpoc.aws.handler import Handler
from cdpoc.aws.network import ElasticIpHandler
from cdpoc.context import Context
from cdpoc.cost import hourly_cost
from cdpoc.errors import ConfigError, ConflictError
from cdpoc.graph import Graph
from cdpoc.model import Action, Observed, Resource
from cdpoc.planner import make_plan
from cdpoc.sandbox.simulation import SIMULATION, Timing
from cdpoc.spec import Ref
from cdpoc.stack import compute, loadbalancing
from cdpoc.stack.names import StackNames
from cdpoc.stack.specs.compute import InstanceSpec, LaunchTemplateSpec
from cdpoc.sweeper import find_everything, leftovers, sweep
from cdpoc.userdata import AppInstanceScript

REGION = "us-east-1"
ZONES = ("us-east-1a", "us-east-1b")
ACCOUNT = "123456789012"
AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
PASSWORDS = {"param.mongodb.admin-password": "Adm1n-s3cr3t-value", "param.mongodb.app-password": "App-s3cr3t-value"}
# Dependencies only there for ordering: no handler of this area reads their ids.
ORDER_ONLY = ("rt.public", "rt.private.a", "rt.private.b", "nacl.bastion", "nacl.data", "nacl.app", "endpoint.s3")


@dataclass
class Stack:
    ctx: Context
    graph: Graph
    handlers: dict[str, Handler]
    existing: dict[str, Observed]
    calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    results: dict[str, Observed] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.ctx.settings.name

    def resource(self, key: str) -> Resource:
        return self.graph[key]

    def replace(self, key: str, **fields: Any) -> None:
        """Declare `key` with some spec fields changed, as a changed config would (same edges)."""
        res = self.graph[key]
        assert res.spec is not None
        spec = dataclasses.replace(res.spec, **fields)  # type: ignore[type-var]
        changed = dataclasses.replace(res, spec=spec)
        self.graph = Graph.of(changed if r.key == key else r for r in self.graph.resources.values())

    def up(self) -> dict[str, Observed]:
        return apply_plan(self.ctx.run, make_plan(self.ctx.run, self.graph, self.handlers), self.handlers)

    def plan_actions(self) -> dict[str, Action]:
        plan = make_plan(self.ctx.run, self.graph, self.handlers)
        return {s.resource.key: s.action for s in plan.steps if s.resource.kind != Existing.kind}

    def down(self) -> dict[str, str]:
        run = self.ctx.run
        return sweep(run, self.graph, self.handlers, find_everything(run, self.graph, self.handlers))

    def client(self, service: str) -> Any:
        return self.ctx.run.client(service)

    def event(self, kind: str, service: str, operation: str) -> str:
        return f"{kind}.{self.client(service).meta.service_model.service_id.hyphenize()}.{operation}"

    def record(
        self, service: str, operation: str, into: list[tuple[str, dict[str, Any]]] | None = None
    ) -> list[dict[str, Any]]:
        """Every request of `operation` from now on, as botocore validated it (also into `into`, if given)."""
        calls = self.calls.setdefault(operation, [])

        def keep(params: dict[str, Any], **_: Any) -> None:
            calls.append(dict(params))
            if into is not None:
                into.append((operation, dict(params)))

        self.client(service).meta.events.register(self.event("provide-client-params", service, operation), keep)
        return calls

    def answer(self, service: str, operation: str, replies: list[dict[str, Any]]) -> None:
        """Answer the next calls of `operation` with `replies` (an "Error" reply fails), then let calls through."""

        def reply(**_: Any) -> tuple[Any, dict[str, Any]] | None:
            if not replies:
                return None
            parsed = replies.pop(0)
            status = 400 if "Error" in parsed else 200
            return SimpleNamespace(status_code=status, headers={}), parsed

        self.client(service).meta.events.register(self.event("before-call", service, operation), reply)


def error(code: str, message: str) -> dict[str, Any]:
    return {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}


def web_origin(n: str) -> str:
    return f"http://{n}-web.s3-website-us-east-1.amazonaws.com"


def make_prerequisites(n: str) -> dict[str, Observed]:
    """What the other areas would have built for stack `n`, made with boto3."""
    ec2 = boto3.client("ec2", region_name=REGION)
    found: dict[str, Observed] = {}

    def add(key: str, physical_id: str, **attrs: Any) -> None:
        found[key] = Observed(key, Existing.kind, physical_id, attrs)

    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    add("vpc", vpc)
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    add("igw", igw)
    for key, cidr, zone in (
        ("subnet.public.a", "10.0.0.0/24", ZONES[0]),
        ("subnet.public.b", "10.0.1.0/24", ZONES[1]),
        ("subnet.app.a", "10.0.10.0/24", ZONES[0]),
        ("subnet.app.b", "10.0.11.0/24", ZONES[1]),
        ("subnet.data.a", "10.0.20.0/24", ZONES[0]),
        ("subnet.bastion", "10.0.30.0/24", ZONES[0]),
    ):
        add(key, ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"])
    for tier in ("alb", "app", "bastion", "data"):
        add(f"sg.{tier}", ec2.create_security_group(GroupName=f"{n}-{tier}", Description=tier, VpcId=vpc)["GroupId"])
    for key in ORDER_ONLY:
        add(key, f"{key}-id")

    iam = boto3.client("iam", region_name=REGION)
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
    )
    # the app hosts' profile ("instance") and the MongoDB host's own
    for purpose in ("instance", "mongodb"):
        name = f"{n}-{purpose}"
        iam.create_role(RoleName=name, Path=f"/cdpoc/{n}/", AssumeRolePolicyDocument=trust)
        profile = iam.create_instance_profile(InstanceProfileName=name, Path=f"/cdpoc/{n}/")["InstanceProfile"]
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
        add(f"profile.{purpose}", name, arn=profile["Arn"])

    ssm = boto3.client("ssm", region_name=REGION)
    for key, value in PASSWORDS.items():
        parameter = f"/{n}/mongodb/" + key.rsplit(".", 1)[1]
        ssm.put_parameter(Name=parameter, Value=value, Type="SecureString")
        add(key, parameter)
    topic = boto3.client("sns", region_name=REGION).create_topic(Name=f"{n}-alerts")["TopicArn"]
    add("topic.alerts", topic)
    add("bucket.web", f"{n}-web", website_url=web_origin(n) + "/")
    add("loggroup", f"/cdpoc/{n}")
    return found


def build_stack(ctx: Context) -> Stack:
    existing = make_prerequisites(ctx.settings.name)
    names = StackNames(ctx.settings, ZONES, ACCOUNT)
    declared = [*compute.declare(names), *loadbalancing.declare(names)]
    stand_ins = [Resource(key, Existing.kind, key) for key in existing]
    handlers: dict[str, Handler] = {h.kind: h for h in (*compute_handlers.HANDLERS, *lb_handlers.HANDLERS)}
    handlers["elastic_ip"] = ElasticIpHandler()
    handlers[Existing.kind] = Existing(existing)
    ctx.run.zones = ZONES
    return Stack(ctx, Graph.of([*stand_ins, *declared]), handlers, existing)


def new_context(directory: Path, settings: str = "") -> Context:
    return numbered_context(directory, "c", settings)


@pytest.fixture
def stack(moto_session: None, tmp_path: Path) -> Stack:
    return build_stack(new_context(tmp_path))


CREATES = (
    ("ec2", "RunInstances"),
    ("ec2", "CreateLaunchTemplate"),
    ("autoscaling", "CreateAutoScalingGroup"),
    ("autoscaling", "PutScalingPolicy"),
    ("autoscaling", "PutNotificationConfiguration"),
)


@pytest.fixture(scope="class")
def deployed(moto_session: None, tmp_path_factory: pytest.TempPathFactory) -> Stack:
    """One stack brought up once, for the tests that only look at it."""
    stack = build_stack(new_context(tmp_path_factory.mktemp("compute")))
    for service, operation in CREATES:
        stack.record(service, operation)
    stack.results = stack.up()
    return stack


def ec2() -> Any:
    return boto3.client("ec2", region_name=REGION)


def autoscaling() -> Any:
    return boto3.client("autoscaling", region_name=REGION)


def instance(instance_id: str) -> dict[str, Any]:
    return dict(ec2().describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0])


def tag_dict(tags: list[dict[str, Any]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags}


def run_call(stack: Stack, subnet_key: str) -> dict[str, Any]:
    [params] = [c for c in stack.calls["RunInstances"] if c["SubnetId"] == stack.existing[subnet_key].id]
    return params


# ---------------------------------------------------------------- one deployment, looked at


class TestDeployed:
    def test_mongodb_instance_is_launched_as_declared(self, deployed: Stack) -> None:
        n = deployed.name
        found = deployed.results["instance.mongodb"]
        mongodb = instance(found.id)
        assert (mongodb["InstanceType"], mongodb["State"]["Name"]) == ("t3.small", "running")
        assert mongodb["SubnetId"] == deployed.existing["subnet.data.a"].id
        assert [g["GroupId"] for g in mongodb["SecurityGroups"]] == [deployed.existing["sg.data"].id]
        assert mongodb["IamInstanceProfile"]["Arn"] == deployed.existing["profile.mongodb"].attrs["arn"]
        ami = boto3.client("ssm", region_name=REGION).get_parameter(Name=AMI_PARAMETER)["Parameter"]["Value"]
        assert mongodb["ImageId"] == ami
        assert found.attrs["private_ip"] == mongodb["PrivateIpAddress"]
        assert tag_dict(mongodb["Tags"]) == {
            "cdpoc:stack": f"{n}",
            "cdpoc:component": "instance.mongodb",
            "Name": f"{n}-mongodb",
        }

        params = run_call(deployed, "subnet.data.a")
        assert params["MetadataOptions"] == {
            "HttpTokens": "required",
            "HttpEndpoint": "enabled",
            "InstanceMetadataTags": "enabled",
        }
        specs = {s["ResourceType"]: tag_dict(s["Tags"]) for s in params["TagSpecifications"]}
        assert specs["instance"] == specs["volume"] == tag_dict(mongodb["Tags"])
        # Deterministic, and new after a teardown (the subnet id is part of it) or a new AMI (AWS refuses a
        # replayed token with other parameters: IdempotentParameterMismatch).
        assert params["ClientToken"] == deployed.ctx.run.client_token(
            deployed.resource("instance.mongodb"), deployed.existing["subnet.data.a"].id, params["ImageId"]
        )

    def test_mongodb_user_data_names_its_inputs_and_holds_no_secret(self, deployed: Stack) -> None:
        n = deployed.name
        script = run_call(deployed, "subnet.data.a")["UserData"]
        assert script.startswith("#!/bin/bash")
        for expected in (
            f"readonly STACK='{n}'",
            f"readonly ADMIN_PASSWORD_PARAMETER='/{n}/mongodb/admin-password'",
            f"readonly APP_PASSWORD_PARAMETER='/{n}/mongodb/app-password'",
            f'"bucket": "{n}-{ACCOUNT}-{REGION}-uploads"',
            f'"origins": ["{web_origin(n)}"]',
        ):
            assert expected in script
        assert not any(password in script for password in PASSWORDS.values())
        assert "@@" not in script

    def test_bastion_has_its_elastic_ip_and_no_profile(self, deployed: Stack) -> None:
        found = deployed.results["instance.bastion"]
        bastion = instance(found.id)
        assert (bastion["InstanceType"], bastion["SubnetId"]) == ("t3.micro", deployed.existing["subnet.bastion"].id)
        assert [g["GroupId"] for g in bastion["SecurityGroups"]] == [deployed.existing["sg.bastion"].id]
        assert "IamInstanceProfile" not in bastion
        [address] = ec2().describe_addresses(AllocationIds=[deployed.results["eip.bastion"].id])["Addresses"]
        assert address["InstanceId"] == found.id
        assert found.attrs["public_ip"] == address["PublicIp"] == bastion["PublicIpAddress"]
        params = run_call(deployed, "subnet.bastion")
        assert "UserData" not in params and "KeyName" not in params

    def test_launch_template_is_as_declared(self, deployed: Stack) -> None:
        n = deployed.name
        template = deployed.results["launch_template.app"]
        [version] = ec2().describe_launch_template_versions(LaunchTemplateId=template.id, Versions=["$Default"])[
            "LaunchTemplateVersions"
        ]
        data = version["LaunchTemplateData"]
        assert data["InstanceType"] == "t3.micro"
        assert data["IamInstanceProfile"] == {"Arn": deployed.existing["profile.instance"].attrs["arn"]}
        assert data["SecurityGroupIds"] == [deployed.existing["sg.app"].id]
        assert data["MetadataOptions"]["HttpTokens"] == "required"
        assert data["MetadataOptions"]["InstanceMetadataTags"] == "enabled"
        launched = {s["ResourceType"]: tag_dict(s["Tags"]) for s in data["TagSpecifications"]}
        expected = {"cdpoc:stack": f"{n}", "cdpoc:component": "asg.app", "Name": f"{n}-app"}
        assert launched["instance"] == launched["volume"] == expected
        script = base64.b64decode(data["UserData"]).decode()
        assert f"readonly LOG_GROUP='/cdpoc/{n}'" in script and "cdpoc-stub.service" in script

        [params] = deployed.calls["CreateLaunchTemplate"]
        assert params["ClientToken"] == deployed.ctx.run.client_token(
            deployed.resource("launch_template.app"), deployed.existing["sg.app"].id
        )
        assert params["TagSpecifications"][0]["ResourceType"] == "launch-template"
        assert tag_dict(params["TagSpecifications"][0]["Tags"])["cdpoc:component"] == "launch_template.app"

    def test_auto_scaling_group_is_as_declared(self, deployed: Stack) -> None:
        n = deployed.name
        [group] = autoscaling().describe_auto_scaling_groups(AutoScalingGroupNames=[f"{n}-app"])["AutoScalingGroups"]
        assert (group["MinSize"], group["DesiredCapacity"], group["MaxSize"]) == (2, 2, 4)
        app_subnets = {deployed.existing["subnet.app.a"].id, deployed.existing["subnet.app.b"].id}
        assert set(group["VPCZoneIdentifier"].split(",")) == app_subnets
        assert group["TargetGroupARNs"] == [deployed.results["tg.app"].id]
        assert group["HealthCheckType"] == "EC2"
        assert group["LaunchTemplate"]["LaunchTemplateId"] == deployed.results["launch_template.app"].id
        assert group["LaunchTemplate"]["Version"] == "$Default"
        assert [i["LifecycleState"] for i in group["Instances"]] == ["InService", "InService"]

        [params] = deployed.calls["CreateAutoScalingGroup"]
        tags = {t["Key"]: (t["Value"], t["PropagateAtLaunch"]) for t in params["Tags"]}
        assert tags == {
            "cdpoc:stack": (f"{n}", True),
            "cdpoc:component": ("asg.app", True),
            "Name": (f"{n}-app", True),
        }

    def test_scaling_policy_tracks_requests_per_target(self, deployed: Stack) -> None:
        n = deployed.name
        [policy] = autoscaling().describe_policies(AutoScalingGroupName=f"{n}-app")["ScalingPolicies"]
        assert (policy["PolicyName"], policy["PolicyType"]) == (f"{n}-requests-per-instance", "TargetTrackingScaling")
        config = policy["TargetTrackingConfiguration"]
        alb, tg = deployed.results["alb"].id, deployed.results["tg.app"].id
        label = f"{alb.split(':loadbalancer/')[1]}/{tg.split(':')[-1]}"
        assert config["PredefinedMetricSpecification"] == {
            "PredefinedMetricType": "ALBRequestCountPerTarget",
            "ResourceLabel": label,
        }
        assert label.startswith(f"app/{n}-alb/") and f"/targetgroup/{n}-app/" in label
        assert config["TargetValue"] == 1000.0

    def test_notifications_go_to_the_alerts_topic(self, deployed: Stack) -> None:
        n = deployed.name
        configs = autoscaling().describe_notification_configurations(AutoScalingGroupNames=[f"{n}-app"])
        assert {(c["TopicARN"], c["NotificationType"]) for c in configs["NotificationConfigurations"]} == {
            (deployed.existing["topic.alerts"].id, f"autoscaling:EC2_INSTANCE_{event}")
            for event in ("LAUNCH", "LAUNCH_ERROR", "TERMINATE", "TERMINATE_ERROR")
        }

    def test_second_up_makes_no_mutating_call_and_plan_is_clean(self, deployed: Stack) -> None:
        assert set(deployed.plan_actions().values()) == {Action.NONE}
        before = len(deployed.ctx.clients.mutating_calls())
        deployed.up()
        assert deployed.ctx.clients.mutating_calls()[before:] == []

    def test_a_plan_never_reads_an_instances_user_data(self, deployed: Stack) -> None:
        """User data runs at the first boot only: it is not compared, so no plan pays a call per instance."""
        reads = deployed.record("ec2", "DescribeInstanceAttribute")
        deployed.ctx.run.forget()
        make_plan(deployed.ctx.run, deployed.graph, deployed.handlers)
        assert reads == []

    def test_instance_scan_leaves_the_groups_instances_to_the_group(self, deployed: Stack) -> None:
        found = deployed.handlers["instance"].scan(deployed.ctx.run)
        assert set(found) == {"instance.bastion", "instance.mongodb"}

    def test_cost_counts_instances_by_type_and_the_groups_capacity(self, deployed: Stack) -> None:
        keys = ("instance.bastion", "instance.mongodb", "asg.app", "eip.bastion", "launch_template.app")
        # bastion t3.micro + MongoDB t3.small + 2 x t3.micro + the bastion's public IPv4
        assert hourly_cost(deployed.resource(k) for k in keys) == pytest.approx(0.0104 + 0.0208 + 2 * 0.0104 + 0.005)


def test_the_operators_key_pair_goes_to_the_bastion_and_the_app_instances(moto_session: None, tmp_path: Path) -> None:
    ec2().create_key_pair(KeyName="ops-key")
    stack = build_stack(new_context(tmp_path, "operator:\n  key_name: ops-key\n"))
    results = stack.up()
    assert instance(results["instance.bastion"].id)["KeyName"] == "ops-key"
    [version] = ec2().describe_launch_template_versions(
        LaunchTemplateId=results["launch_template.app"].id, Versions=["$Default"]
    )["LaunchTemplateVersions"]
    assert version["LaunchTemplateData"]["KeyName"] == "ops-key"
    assert set(stack.plan_actions().values()) == {Action.NONE}


# ---------------------------------------------------------------- eventual consistency and retries


def test_new_instance_profile_refused_for_a_while_is_retried(stack: Stack) -> None:
    n = stack.name
    stack.answer(
        "ec2",
        "RunInstances",
        [
            error(
                "InvalidParameterValue",
                f"Value ({n}-instance) for parameter iamInstanceProfile.name is invalid. "
                "Invalid IAM Instance Profile name",
            )
        ]
        * 2,
    )
    stack.answer("autoscaling", "CreateAutoScalingGroup", [error("ValidationError", "Invalid IAM Instance Profile")])
    attempts = stack.record("autoscaling", "CreateAutoScalingGroup")
    results = stack.up()
    assert instance(results["instance.mongodb"].id)["State"]["Name"] == "running"
    assert len(attempts) == 2
    assert autoscaling().describe_auto_scaling_groups(AutoScalingGroupNames=[f"{n}-app"])["AutoScalingGroups"]


def test_a_mongodb_host_with_the_shared_instance_profile_gets_its_own_in_place(stack: Stack) -> None:
    """A stack made by an earlier cdpoc gave the MongoDB host the app hosts' profile: `up` shows the profile
    change and replaces the instance's association in place (no new instance)."""
    results = stack.up()
    mongodb = results["instance.mongodb"].id
    shared, own = (stack.existing[f"profile.{p}"].attrs["arn"] for p in ("instance", "mongodb"))
    [association] = ec2().describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [mongodb]}]
    )["IamInstanceProfileAssociations"]
    ec2().replace_iam_instance_profile_association(
        IamInstanceProfile={"Arn": shared}, AssociationId=association["AssociationId"]
    )
    replaced = stack.record("ec2", "ReplaceIamInstanceProfileAssociation")
    launches = stack.record("ec2", "RunInstances")

    plan = make_plan(stack.ctx.run, stack.graph, stack.handlers)
    changes = {s.resource.key: [c.text for c in s.changes] for s in plan.steps if s.changes}
    assert changes == {"instance.mongodb": [f"profile: {shared} → {own}"]}
    apply_plan(stack.ctx.run, plan, stack.handlers)

    assert instance(mongodb)["IamInstanceProfile"]["Arn"] == own
    assert [c["IamInstanceProfile"] for c in replaced] == [{"Arn": own}] and launches == []
    assert stack.plan_actions()["instance.mongodb"] is Action.NONE


def test_a_token_answered_with_a_terminated_instance_launches_anew(stack: Stack) -> None:
    # AWS answers a reused ClientToken with the instance it launched for it, even a terminated one.
    terminated = ec2().run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]
    ec2().terminate_instances(InstanceIds=[terminated["InstanceId"]])
    gone = instance(terminated["InstanceId"])
    stack.answer("ec2", "RunInstances", [{"Instances": [gone], "ReservationId": "r-0"}])
    launches = stack.record("ec2", "RunInstances")
    handler = stack.handlers["instance"]
    deps = {**stack.existing}
    found = handler.create(stack.ctx.run, stack.resource("instance.mongodb"), deps)
    assert found.id != terminated["InstanceId"]
    assert instance(found.id)["State"]["Name"] == "running"
    assert len({call["ClientToken"] for call in launches}) == 2


def test_the_fleet_wait_polls_until_the_targets_are_healthy(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    # the sandbox's targets healthy at once (AWS's durations x 0): only the two answers below are "initial"
    monkeypatch.setattr(SIMULATION, "timing", Timing.parse("0"))
    initial = {"TargetHealthDescriptions": [{"Target": {"Id": "i-x"}, "TargetHealth": {"State": "initial"}}]}
    stack.answer("elbv2", "DescribeTargetHealth", [initial, initial])
    polls = stack.record("elbv2", "DescribeTargetHealth")
    stack.up()
    assert len(polls) == 3


def test_the_fleet_wait_gives_up_with_a_message(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    n = stack.name
    never = {"TargetHealthDescriptions": []}
    stack.answer("elbv2", "DescribeTargetHealth", [never] * 1000)
    monkeypatch.setattr(stack.ctx.run.waits, "fleet", 0.0)  # the Waits object is shared by the module's tests
    with pytest.raises(Exception, match=f"the instances of Auto Scaling group {n}-app to be in service and healthy"):
        stack.up()


# ---------------------------------------------------------------- not ours, adopted


def test_auto_scaling_group_that_already_exists_is_adopted_if_ours_refused_if_not(stack: Stack) -> None:
    n = stack.name
    results = stack.up()
    lt = results["launch_template.app"].id
    handler, res, deps = stack.handlers["autoscaling_group"], stack.resource("asg.app"), {**stack.existing, **results}
    already = error(
        "AlreadyExists", f"AutoScalingGroup by this name already exists - A group with the name {n}-app already exists"
    )

    # Ours (an interrupted run): adopted, and its policy and notifications put back.
    autoscaling().delete_policy(AutoScalingGroupName=f"{n}-app", PolicyName=f"{n}-requests-per-instance")
    stack.answer("autoscaling", "CreateAutoScalingGroup", [already])
    adopted = handler.create(stack.ctx.run, res, deps)
    assert adopted.attrs["policies"][f"{n}-requests-per-instance"]["metric"] == "ALBRequestCountPerTarget"

    # Someone else's: refused.
    autoscaling().create_auto_scaling_group(
        AutoScalingGroupName=f"{n}-other",
        LaunchTemplate={"LaunchTemplateId": lt},
        MinSize=0,
        MaxSize=1,
        VPCZoneIdentifier=stack.existing["subnet.app.a"].id,
    )
    other = dataclasses.replace(res, name=f"{n}-other")
    stack.answer("autoscaling", "CreateAutoScalingGroup", [already])
    with pytest.raises(
        ConflictError, match=f"Auto Scaling group {n}-other already exists and belongs to nothing cdpoc"
    ):
        handler.create(stack.ctx.run, other, deps)


def test_launch_template_of_someone_else_is_refused(stack: Stack) -> None:
    n = stack.name
    ec2().create_launch_template(LaunchTemplateName=f"{n}-app", LaunchTemplateData={"InstanceType": "t3.nano"})
    handler, res = stack.handlers["launch_template"], stack.resource("launch_template.app")
    with pytest.raises(ConflictError, match=f"launch template {n}-app already exists"):
        handler.create(stack.ctx.run, res, stack.existing)


# ---------------------------------------------------------------- changes


def test_config_changes_converge_in_place(stack: Stack) -> None:
    n = stack.name
    results = stack.up()
    stack.replace("launch_template.app", instance_type="t3.small")
    stack.replace("asg.app", max_size=5, health_check_type="ELB")
    actions = stack.plan_actions()
    assert (actions["launch_template.app"], actions["asg.app"]) == (Action.UPDATE, Action.UPDATE)
    stack.up()

    template = results["launch_template.app"].id
    [version] = ec2().describe_launch_template_versions(LaunchTemplateId=template, Versions=["$Default"])[
        "LaunchTemplateVersions"
    ]
    assert (version["VersionNumber"], version["LaunchTemplateData"]["InstanceType"]) == (2, "t3.small")
    [group] = autoscaling().describe_auto_scaling_groups(AutoScalingGroupNames=[f"{n}-app"])["AutoScalingGroups"]
    assert (group["MaxSize"], group["HealthCheckType"], group["LaunchTemplate"]["Version"]) == (5, "ELB", "$Default")
    assert set(stack.plan_actions().values()) == {Action.NONE}


def test_what_the_scaling_policy_and_the_first_deployment_change_is_left_alone(stack: Stack) -> None:
    n = stack.name
    stack.up()
    # The scaling policy moves the desired capacity; the first good deployment switches to ELB health checks.
    autoscaling().set_desired_capacity(AutoScalingGroupName=f"{n}-app", DesiredCapacity=3)
    autoscaling().update_auto_scaling_group(AutoScalingGroupName=f"{n}-app", HealthCheckType="ELB")
    assert stack.plan_actions()["asg.app"] is Action.NONE

    updates = stack.record("autoscaling", "UpdateAutoScalingGroup")
    stack.replace("asg.app", max_size=6)
    stack.up()
    [update] = updates
    # Only the setting the plan listed: the health check type and the capacity are not touched.
    assert update == {"AutoScalingGroupName": f"{n}-app", "MaxSize": 6}
    [group] = autoscaling().describe_auto_scaling_groups(AutoScalingGroupNames=[f"{n}-app"])["AutoScalingGroups"]
    assert (group["DesiredCapacity"], group["HealthCheckType"]) == (3, "ELB")


def test_instance_drift_is_repaired_and_fixed_settings_are_conflicts(stack: Stack) -> None:
    results = stack.up()
    mongodb = results["instance.mongodb"].id
    ec2().stop_instances(InstanceIds=[mongodb])
    ec2().modify_instance_metadata_options(InstanceId=mongodb, HttpTokens="optional", InstanceMetadataTags="disabled")
    ec2().disassociate_address(
        AssociationId=ec2().describe_addresses(AllocationIds=[results["eip.bastion"].id])["Addresses"][0][
            "AssociationId"
        ]
    )
    actions = stack.plan_actions()
    assert (actions["instance.mongodb"], actions["instance.bastion"]) == (Action.UPDATE, Action.UPDATE)
    stack.up()
    repaired = instance(mongodb)
    assert repaired["State"]["Name"] == "running"
    assert (repaired["MetadataOptions"]["HttpTokens"], repaired["MetadataOptions"]["InstanceMetadataTags"]) == (
        "required",
        "enabled",
    )
    [address] = ec2().describe_addresses(AllocationIds=[results["eip.bastion"].id])["Addresses"]
    assert address["InstanceId"] == results["instance.bastion"].id

    stack.replace("instance.mongodb", instance_type="t3.medium")
    plan = make_plan(stack.ctx.run, stack.graph, stack.handlers)
    [step] = [s for s in plan.steps if s.resource.key == "instance.mongodb"]
    assert step.action is Action.CONFLICT


# ---------------------------------------------------------------- one diff: the plan's changes are what up applies


def step_changes(stack: Stack, key: str) -> list[tuple[str, Any, Any, bool]]:
    plan = make_plan(stack.ctx.run, stack.graph, stack.handlers)
    [step] = [s for s in plan.steps if s.resource.key == key]
    return [(c.field, c.old, c.new, c.in_place) for c in step.changes]


def step_texts(stack: Stack, key: str) -> list[str]:
    plan = make_plan(stack.ctx.run, stack.graph, stack.handlers)
    [step] = [s for s in plan.steps if s.resource.key == key]
    return [c.text for c in step.changes]


def test_the_plan_shows_both_values_of_each_changed_field_and_up_applies_exactly_those(stack: Stack) -> None:
    n = stack.name
    results = stack.up()
    stack.replace("launch_template.app", instance_type="t3.small")
    stack.replace("asg.app", max_size=5, health_check_grace_period=120)
    assert step_changes(stack, "launch_template.app") == [("instance_type", "t3.micro", "t3.small", True)]
    assert step_texts(stack, "launch_template.app") == ["instance_type: t3.micro → t3.small"]
    assert step_changes(stack, "asg.app") == [
        ("max_size", 4, 5, True),
        ("health_check_grace_period", 300, 120, True),
    ]
    assert step_texts(stack, "asg.app") == ["max_size: 4 → 5", "health_check_grace_period: 300 → 120"]

    updates = stack.record("autoscaling", "UpdateAutoScalingGroup")
    versions = stack.record("ec2", "CreateLaunchTemplateVersion")
    stack.up()
    assert updates == [{"AutoScalingGroupName": f"{n}-app", "MaxSize": 5, "HealthCheckGracePeriod": 120}]
    [version] = versions
    assert version["LaunchTemplateData"]["InstanceType"] == "t3.small"
    assert set(stack.plan_actions().values()) == {Action.NONE}

    # Planned while the target group was still to be created: the change holds its Ref, shown as what it
    # will be, and update() resolves it once the executor has created it.
    tg = results["tg.app"].id
    autoscaling().detach_load_balancer_target_groups(AutoScalingGroupName=f"{n}-app", TargetGroupARNs=[tg])
    handler, res = stack.handlers["autoscaling_group"], stack.resource("asg.app")
    deps = {**stack.existing, **results}
    stack.ctx.run.forget()
    found = handler.find(stack.ctx.run, res)
    assert found is not None
    planned = handler.changes(stack.ctx.run, res, found, {k: v for k, v in deps.items() if k != "tg.app"})
    [attach] = [c for c in planned if c.field.startswith("target_groups[")]
    assert (attach.old, attach.new) == (None, Ref("tg.app"))
    assert attach.text == "target_groups[(tg.app to be created)]: (none) → (tg.app to be created)"
    attaches = stack.record("autoscaling", "AttachLoadBalancerTargetGroups")
    handler.update(stack.ctx.run, res, found, deps, [attach])
    assert attaches == [{"AutoScalingGroupName": f"{n}-app", "TargetGroupARNs": [tg]}]
    assert set(stack.plan_actions().values()) == {Action.NONE}


def test_fields_aws_cannot_change_on_an_instance_are_conflicts(stack: Stack) -> None:
    results = stack.up()
    mongodb = stack.resource("instance.mongodb").spec
    assert isinstance(mongodb, InstanceSpec) and mongodb.user_data is not None
    # a newer script (a newer cdpoc) is for new instances: a running host is not refused for it
    stack.replace("instance.mongodb", user_data=dataclasses.replace(mongodb.user_data, uploads_bucket="other-bucket"))
    stack.replace("instance.bastion", subnet=Ref("subnet.public.a"), key_name="ops-key")
    actions = stack.plan_actions()
    assert (actions["instance.mongodb"], actions["instance.bastion"]) == (Action.NONE, Action.CONFLICT)

    bastion = instance(results["instance.bastion"].id)
    assert step_changes(stack, "instance.bastion") == [
        ("subnet", bastion["SubnetId"], stack.existing["subnet.public.a"].id, False),
        ("key_name", "", "ops-key", False),
    ]
    with pytest.raises(ConflictError):
        stack.up()


def test_stale_entries_of_the_groups_collections_are_removed(stack: Stack) -> None:
    n = stack.name
    results = stack.up()
    group, topic = f"{n}-app", stack.existing["topic.alerts"].id
    # By hand: a second target group, a third subnet, a test notification and another topic, another policy.
    stale_tg = boto3.client("elbv2", region_name=REGION).create_target_group(
        Name=f"{n}-stale", Protocol="HTTP", Port=80, VpcId=stack.existing["vpc"].id
    )["TargetGroups"][0]["TargetGroupArn"]
    autoscaling().attach_load_balancer_target_groups(AutoScalingGroupName=group, TargetGroupARNs=[stale_tg])
    app_subnets = tuple(sorted(stack.existing[k].id for k in ("subnet.app.a", "subnet.app.b")))
    data_subnet = stack.existing["subnet.data.a"].id
    autoscaling().update_auto_scaling_group(
        AutoScalingGroupName=group, VPCZoneIdentifier=",".join((*app_subnets, data_subnet))
    )
    autoscaling().put_notification_configuration(
        AutoScalingGroupName=group,
        TopicARN=topic,
        NotificationTypes=[*compute.ASG_NOTIFICATIONS, "autoscaling:TEST_NOTIFICATION"],
    )
    other_topic = boto3.client("sns", region_name=REGION).create_topic(Name=f"{n}-other")["TopicArn"]
    autoscaling().put_notification_configuration(
        AutoScalingGroupName=group, TopicARN=other_topic, NotificationTypes=["autoscaling:EC2_INSTANCE_LAUNCH"]
    )
    autoscaling().put_scaling_policy(
        AutoScalingGroupName=group, PolicyName="by-hand", PolicyType="SimpleScaling", ScalingAdjustment=1
    )

    changes = {field: (old, new) for field, old, new, _ in step_changes(stack, "asg.app")}
    assert changes == {
        "subnets": (tuple(sorted((*app_subnets, data_subnet))), app_subnets),
        f"target_groups[{stale_tg}]": (stale_tg, None),
        "scaling_policy[by-hand]": (changes["scaling_policy[by-hand]"][0], None),
        "notifications[autoscaling:EC2_INSTANCE_LAUNCH]": (other_topic, None),
        "notifications[autoscaling:TEST_NOTIFICATION]": (topic, None),
    }
    assert f"target_groups[{stale_tg}]: {stale_tg} → (none)" in step_texts(stack, "asg.app")

    stack.up()
    [after] = autoscaling().describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]
    assert after["TargetGroupARNs"] == [results["tg.app"].id]
    assert tuple(sorted(after["VPCZoneIdentifier"].split(","))) == app_subnets
    configs = autoscaling().describe_notification_configurations(AutoScalingGroupNames=[group])
    assert {(c["TopicARN"], c["NotificationType"]) for c in configs["NotificationConfigurations"]} == {
        (topic, kind) for kind in compute.ASG_NOTIFICATIONS
    }
    policies = autoscaling().describe_policies(AutoScalingGroupName=group)["ScalingPolicies"]
    assert [p["PolicyName"] for p in policies] == [f"{n}-requests-per-instance"]
    assert set(stack.plan_actions().values()) == {Action.NONE}


def test_stale_security_groups_of_an_instance_and_the_launch_template_are_removed(stack: Stack) -> None:
    results = stack.up()
    mongodb, template = results["instance.mongodb"].id, results["launch_template.app"].id
    data, app, alb = (stack.existing[k].id for k in ("sg.data", "sg.app", "sg.alb"))
    ec2().modify_instance_attribute(InstanceId=mongodb, Groups=[data, alb])
    [current] = ec2().describe_launch_template_versions(LaunchTemplateId=template, Versions=["$Default"])[
        "LaunchTemplateVersions"
    ]
    # The whole data (moto 5.2.5 ignores SourceVersion, which AWS would merge the new data into).
    by_hand = ec2().create_launch_template_version(
        LaunchTemplateId=template, LaunchTemplateData={**current["LaunchTemplateData"], "SecurityGroupIds": [app, alb]}
    )["LaunchTemplateVersion"]["VersionNumber"]
    ec2().modify_launch_template(LaunchTemplateId=template, DefaultVersion=str(by_hand))

    assert step_changes(stack, "instance.mongodb") == [("security_groups", tuple(sorted((data, alb))), (data,), True)]
    assert step_changes(stack, "launch_template.app") == [("security_groups", tuple(sorted((app, alb))), (app,), True)]
    stack.up()
    assert [g["GroupId"] for g in instance(mongodb)["SecurityGroups"]] == [data]
    [version] = ec2().describe_launch_template_versions(LaunchTemplateId=template, Versions=["$Default"])[
        "LaunchTemplateVersions"
    ]
    assert version["VersionNumber"] == by_hand + 1 and version["LaunchTemplateData"]["SecurityGroupIds"] == [app]
    assert set(stack.plan_actions().values()) == {Action.NONE}


def test_a_changed_launch_script_makes_a_new_default_version(stack: Stack) -> None:
    n = stack.name
    results = stack.up()
    template = stack.resource("launch_template.app").spec
    assert isinstance(template, LaunchTemplateSpec)
    stack.replace("launch_template.app", user_data=AppInstanceScript(stack=n, log_group=f"/cdpoc/{n}-other"))
    [(field, old, new, in_place)] = step_changes(stack, "launch_template.app")
    assert (field, in_place) == ("user_data", True)
    assert f"readonly LOG_GROUP='/cdpoc/{n}'" in old and f"readonly LOG_GROUP='/cdpoc/{n}-other'" in new
    stack.up()
    [version] = ec2().describe_launch_template_versions(
        LaunchTemplateId=results["launch_template.app"].id, Versions=["$Default"]
    )["LaunchTemplateVersions"]
    assert version["VersionNumber"] == 2
    assert (
        f"readonly LOG_GROUP='/cdpoc/{n}-other'" in base64.b64decode(version["LaunchTemplateData"]["UserData"]).decode()
    )
    assert set(stack.plan_actions().values()) == {Action.NONE}


# ---------------------------------------------------------------- down


def test_down_deletes_in_order_and_a_second_delete_is_fine(stack: Stack) -> None:
    n = stack.name
    results = stack.up()
    autoscaling().put_lifecycle_hook(
        AutoScalingGroupName=f"{n}-app",
        LifecycleHookName="CodeDeploy-managed-automatic-launch-deployment-hook",
        LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
    )
    order: list[tuple[str, dict[str, Any]]] = []
    for service, operation in (
        ("autoscaling", "DeleteLifecycleHook"),
        ("autoscaling", "DeleteAutoScalingGroup"),
        ("ec2", "DeleteLaunchTemplate"),
        ("ec2", "DisassociateAddress"),
        ("ec2", "ReleaseAddress"),
        ("ec2", "TerminateInstances"),
        ("elbv2", "DeleteLoadBalancer"),
        ("elbv2", "DeleteTargetGroup"),
    ):
        stack.record(service, operation, into=order)
    stack.down()

    ops = [op for op, _ in order]
    assert ops.index("DeleteLifecycleHook") < ops.index("DeleteAutoScalingGroup") < ops.index("DeleteLaunchTemplate")
    assert ops.index("DeleteAutoScalingGroup") < ops.index("DeleteTargetGroup")
    assert ops.index("DisassociateAddress") < ops.index("ReleaseAddress")
    [delete_group] = [params for op, params in order if op == "DeleteAutoScalingGroup"]
    assert delete_group["ForceDelete"] is True

    assert autoscaling().describe_auto_scaling_groups(AutoScalingGroupNames=[f"{n}-app"])["AutoScalingGroups"] == []
    ours = [{"Name": "tag:cdpoc:stack", "Values": [n]}]
    assert ec2().describe_launch_templates(Filters=ours)["LaunchTemplates"] == []
    for key in ("instance.mongodb", "instance.bastion"):
        assert instance(results[key].id)["State"]["Name"] == "terminated"
    assert ec2().describe_addresses(Filters=ours)["Addresses"] == []
    left = leftovers(stack.ctx.run, stack.graph, stack.handlers, lambda: [])
    assert [item for item in left if not item.startswith(Existing.label)] == []
    for key in ("asg.app", "launch_template.app", "instance.mongodb", "instance.bastion"):
        stack.handlers[results[key].kind].delete(stack.ctx.run, results[key])  # NotFound is success


# ---------------------------------------------------------------- declarations


def test_tag_keys_the_instance_metadata_cannot_show_are_refused(make_context: Callable[..., Context]) -> None:
    ctx = make_context(tags={"cost center": "x"})
    with pytest.raises(ConfigError, match="'cost center' cannot be an instance tag key"):
        compute.declare(StackNames(ctx.settings, ZONES, ACCOUNT))


def test_every_foreign_dependency_is_a_key_of_the_contract(make_context: Callable[..., Context]) -> None:
    ctx = make_context()
    declared = [
        *compute.declare(StackNames(ctx.settings, ZONES, ACCOUNT)),
        *loadbalancing.declare(StackNames(ctx.settings, ZONES, ACCOUNT)),
    ]
    keys = {r.key for r in declared}
    foreign = {d for r in declared for d in r.depends_on} - keys
    assert foreign == {
        "vpc",
        "igw",
        "subnet.public.a",
        "subnet.public.b",
        "subnet.app.a",
        "subnet.app.b",
        "subnet.data.a",
        "subnet.bastion",
        "sg.alb",
        "sg.app",
        "sg.bastion",
        "sg.data",
        "profile.instance",
        "profile.mongodb",
        "param.mongodb.admin-password",
        "param.mongodb.app-password",
        "bucket.web",
        "topic.alerts",
        "loggroup",
        *ORDER_ONLY,
    }
    assert keys == {
        "eip.bastion",
        "instance.bastion",
        "instance.mongodb",
        "launch_template.app",
        "asg.app",
        "tg.app",
        "alb",
        "listener.http",
    }
