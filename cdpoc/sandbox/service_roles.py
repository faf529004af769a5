"""The roles the sandbox's simulated services act with, read from moto's IAM, and what each action needs.

When the sandbox acts as a service it acts as AWS does: with the role the customer gave that service.
CodePipeline assumes the pipeline's roleArn (trust: codepipeline.amazonaws.com) for its source and deploy
actions; CodeDeploy assumes the deployment group's service role (codedeploy.amazonaws.com) to find and
(de)register the instances; the CodeDeploy agent on an instance downloads the revision with the instance
profile's role (ec2.amazonaws.com); EventBridge assumes the target's RoleArn (events.amazonaws.com) to
start the pipeline. Each request is evaluated with cdpoc/sandbox/iam_evaluation.py against the role's
inline and attached managed policies (and its permissions boundary), the moment the service makes it.

The instances also act with their instance profile's role themselves, and where the sandbox simulates the
effect it asks the same questions: the bundle's AfterInstall hook reads SSM /<stack>/mongodb/host, the
deployed app reads the SecureString /<stack>/mongodb/app-password when it starts, and the MongoDB
instance's user data reads both passwords at boot (`instance_parameter_denial`). CodeDeploy completes the
Auto Scaling launch hook it installed with its service role (`lifecycle_completion_denied`).

The functions here answer "what would AWS report", as text in the shape AWS reports it, or None when the
service may go on. The callers (codepipeline.py, codedeploy.py) put that text where the botocore model
says AWS puts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from moto.autoscaling.models import autoscaling_backends
from moto.ec2.models import ec2_backends
from moto.elbv2.models import elbv2_backends
from moto.iam.models import IAMBackend, Role, iam_backends

from cdpoc.sandbox.iam_evaluation import Policy, Principal, Request, Verdict, first_denied, may_assume, not_authorized

PARTITION = "aws"
PIPELINE_SERVICE = "codepipeline.amazonaws.com"
CODEDEPLOY_SERVICE = "codedeploy.amazonaws.com"
EC2_SERVICE = "ec2.amazonaws.com"
EVENTS_SERVICE = "events.amazonaws.com"

# CodeCommit source action: what CodePipeline calls on the repository, in order (the action reference's
# service role permissions; CancelUploadArchive only when an execution is stopped, which the sandbox never does).
SOURCE_ACTIONS = (
    "codecommit:GetBranch",
    "codecommit:GetCommit",
    "codecommit:UploadArchive",
    "codecommit:GetUploadArchiveStatus",
)
# CodeDeploy in the IAM_ROLE_PERMISSIONS message names the service, not the action.
SERVICE_NAMES = {
    "autoscaling": "AmazonAutoScaling",
    "ec2": "AmazonEC2",
    "elasticloadbalancing": "AmazonElasticLoadBalancing",
}
AGENT_UNREACHABLE = (
    "CodeDeploy agent was not able to receive the lifecycle event. Check the CodeDeploy agent logs on your host "
    "and make sure the agent is running and can connect to the CodeDeploy server."
)


def _iam(account: str) -> IAMBackend:
    return iam_backends[account][PARTITION]


def _role(account: str, arn: str) -> Role | None:
    try:
        return _iam(account).get_role_by_arn(arn)
    except Exception:  # moto's IAMNotFoundException
        return None


def _managed_document(backend: IAMBackend, arn: str) -> str | None:
    policy = backend.managed_policies.get(arn)
    if policy is None:
        return None
    default = next((v for v in policy.versions if v.is_default_version), None)
    return default.document if default is not None else None


def principal_of(account: str, role: Role) -> Principal:
    """The role's inline policies and attached managed policies (their default versions), and its boundary."""
    backend = _iam(account)
    policies = [Policy.parse(f"inline {name}", document) for name, document in role.policies.items()]
    for arn, managed in role.managed_policies.items():
        document = _managed_document(backend, arn) or _managed_document(backend, managed.arn)
        if document:
            policies.append(Policy.parse(arn, document))
    boundary = None
    if role.permissions_boundary_arn:
        document = _managed_document(backend, role.permissions_boundary_arn)
        # a boundary that names no policy allows nothing
        boundary = Policy.parse(role.permissions_boundary_arn, document or {"Statement": []})
    return Principal(role.arn, tuple(policies), boundary)


def session_arn(account: str, role: Role, session: str) -> str:
    """How AWS names the caller in a denial: the assumed-role session, not the role."""
    return f"arn:aws:sts::{account}:assumed-role/{role.name}/{session}"


def _assumed(account: str, role_arn: str, service: str, source_arn: str | None = None) -> Role | None:
    """The role, when it exists and its trust policy lets `service` assume it.

    source_arn: the resource on whose behalf the service assumes the role; the service then sends it as
    aws:SourceArn and its account as aws:SourceAccount (CodeDeploy: the deployment group, EventBridge: the rule,
    CodePipeline: the pipeline). None: the service sends neither (EC2 delivering an instance profile's
    credentials)."""
    role = _role(account, role_arn)
    if role is None:
        return None
    source = {"aws:SourceAccount": account, "aws:SourceArn": source_arn} if source_arn else None
    if not may_assume(role.assume_role_policy_document, service, source=source):
        return None
    return role


def pipeline_arn(region: str, account: str, pipeline: str) -> str:
    return _arn("codepipeline", region, account, pipeline)


def deployment_group_arn(region: str, account: str, group: Any) -> str:
    application = group.application.application_name
    return _arn("codedeploy", region, account, f"deploymentgroup:{application}/{group.deployment_group_name}")


def _first_denial(account: str, role: Role, requests: Sequence[Request]) -> Verdict | None:
    return first_denied(principal_of(account, role), requests)


# ---- CodePipeline


def _arn(service: str, region: str, account: str, resource: str) -> str:
    return f"arn:aws:{service}:{region}:{account}:{resource}"


def source_denial(account: str, region: str, role_arn: str, repository: str, session: str, pipeline: str) -> str | None:
    """Why the CodeCommit source action fails for lack of permissions, in CodePipeline's words, or None."""
    role = _assumed(account, role_arn, PIPELINE_SERVICE, pipeline)
    if role is None:
        return _not_assumed(role_arn)
    repository_arn = _arn("codecommit", region, account, repository)
    verdict = _first_denial(account, role, [Request(action, repository_arn) for action in SOURCE_ACTIONS])
    if verdict is None:
        return None
    return (
        "The service role or action role doesn\u2019t have the permissions required to access the AWS CodeCommit "
        f"repository named {repository}. Update the IAM role permissions, and then try again. "
        f"Error: {not_authorized(session_arn(account, role, session), verdict)}"
    )


def artifact_denial(
    account: str, role_arn: str, requests: Sequence[tuple[str, str]], session: str, pipeline: str
) -> str | None:
    """Why the pipeline role may not read a source object or write the artifact store, or None."""
    role = _assumed(account, role_arn, PIPELINE_SERVICE, pipeline)
    if role is None:
        return _not_assumed(role_arn)
    return _insufficient(account, role, [Request(action, resource) for action, resource in requests], session)


def _not_assumed(role_arn: str) -> str:
    return f"CodePipeline is not authorized to perform AssumeRole on role {role_arn}"


def _insufficient(account: str, role: Role, requests: Sequence[Request], session: str) -> str | None:
    verdict = _first_denial(account, role, requests)
    if verdict is None:
        return None
    return (
        "Insufficient permissions The provided role does not have permissions to perform this action. "
        f"Underlying error: {not_authorized(session_arn(account, role, session), verdict)}"
    )


def deploy_action_denial(
    account: str,
    region: str,
    role_arn: str,
    application: str,
    group: str,
    config: str,
    session: str,
    pipeline: str,
) -> str | None:
    """Why the CodeDeploy deploy action fails for lack of permissions, or None: the calls it makes, in order."""
    role = _assumed(account, role_arn, PIPELINE_SERVICE, pipeline)
    if role is None:
        return _not_assumed(role_arn)
    application_arn = _arn("codedeploy", region, account, f"application:{application}")
    group_arn = _arn("codedeploy", region, account, f"deploymentgroup:{application}/{group}")
    config_arn = _arn("codedeploy", region, account, f"deploymentconfig:{config}")
    requests = [
        Request("codedeploy:GetApplication", application_arn),
        Request("codedeploy:RegisterApplicationRevision", application_arn),
        Request("codedeploy:GetDeploymentConfig", config_arn),
        Request("codedeploy:CreateDeployment", group_arn),
        Request("codedeploy:GetApplicationRevision", application_arn),
        Request("codedeploy:GetDeployment", group_arn),
    ]
    return _insufficient(account, role, requests, session)


# ---- EventBridge


def events_may_start(account: str, role_arn: str | None, target_arn: str, rule_arn: str) -> bool:
    """Whether EventBridge, with the target's role, may start the pipeline (else the invocation fails)."""
    if not role_arn:
        return False  # a CodePipeline target needs a role: EventBridge has no other credentials for it
    role = _assumed(account, role_arn, EVENTS_SERVICE, rule_arn)
    if role is None:
        return False
    return _first_denial(account, role, [Request("codepipeline:StartPipelineExecution", target_arn)]) is None


# ---- CodeDeploy (the service)


def deployment_denial(account: str, region: str, group: Any) -> tuple[str, str] | None:
    """(errorInformation code, message) when the deployment group's service role stops the deployment."""
    role_arn = str(group.service_role_arn or "")
    role = _role(account, role_arn)
    if role is None:
        return "IAM_ROLE_MISSING", f"The IAM role {role_arn} does not exist."
    if _assumed(account, role_arn, CODEDEPLOY_SERVICE, deployment_group_arn(region, account, group)) is None:
        return (
            "IAM_ROLE_PERMISSIONS",
            f"CodeDeploy does not have the permissions required to assume the role {role_arn}.",
        )
    verdict = _first_denial(account, role, _deployment_requests(account, region, group))
    if verdict is None:
        return None
    service = SERVICE_NAMES.get(verdict.request.action.split(":", 1)[0], verdict.request.action.split(":", 1)[0])
    return "IAM_ROLE_PERMISSIONS", (
        f"The IAM role {role_arn} does not give you permission to perform operations in the following AWS service: "
        f"{service}. Contact your AWS administrator if you need help. If you are an AWS administrator, you can grant "
        "permissions to your users or groups by creating IAM policies."
    )


def _deployment_requests(account: str, region: str, group: Any) -> list[Request]:
    """What CodeDeploy calls with the service role for an in-place deployment, in order."""
    requests = []
    if group.auto_scaling_groups:
        requests.append(Request("autoscaling:DescribeAutoScalingGroups", "*"))
    requests.append(Request("ec2:DescribeInstances", "*"))
    with_traffic = (group.deployment_style or {}).get("deploymentOption") == "WITH_TRAFFIC_CONTROL"
    if with_traffic:
        requests.append(Request("elasticloadbalancing:DescribeTargetGroups", "*"))
        requests.append(Request("elasticloadbalancing:DescribeTargetHealth", "*"))
        for arn in _target_group_arns(account, region, group):
            requests.append(Request("elasticloadbalancing:DeregisterTargets", arn))
            requests.append(Request("elasticloadbalancing:RegisterTargets", arn))
    return requests


def _target_group_arns(account: str, region: str, group: Any) -> list[str]:
    names = [t.get("name") for t in ((group.load_balancer_info or {}).get("targetGroupInfoList") or [])]
    groups = elbv2_backends[account][region].target_groups.values()
    return [tg.arn for tg in groups if tg.name in names]


# ---- the agent on an instance


def agent_denial(account: str, region: str, instance_id: str, revision: dict[str, Any]) -> tuple[str, str] | None:
    """(lifecycle event, message) where the agent on the instance fails for lack of credentials or permissions.

    Without an instance profile the agent has no credentials at all and never receives the first event;
    with one, DownloadBundle reads the S3 revision with the profile's role (the session is the instance id).
    """
    role_arn = instance_role_arn(account, region, instance_id)
    role = _assumed(account, role_arn, EC2_SERVICE) if role_arn else None
    if role is None:
        return "", AGENT_UNREACHABLE
    if revision.get("revisionType") != "S3":
        return None
    location = revision.get("s3Location") or {}
    resource = f"arn:aws:s3:::{location.get('bucket', '')}/{location.get('key', '')}"
    action = "s3:GetObjectVersion" if location.get("version") else "s3:GetObject"
    verdict = _first_denial(account, role, [Request(action, resource)])
    if verdict is None:
        return None
    request = verdict.request
    caller = session_arn(account, role, instance_id)
    # S3 quotes the resource in its AccessDenied message
    return "DownloadBundle", (
        f'User: {caller} is not authorized to perform: {request.action} on resource: "{request.resource}" '
        f"{verdict.reason()}"
    )


def instance_role_arn(account: str, region: str, instance_id: str) -> str | None:
    """The role of the instance's profile: its association, else its Auto Scaling group's launch template's
    profile (AWS gives launched instances the template's profile; moto 5.2.5 does not)."""
    ec2 = ec2_backends[account][region]
    association = ec2.iam_instance_profile_associations.get(instance_id)
    profile = association.iam_instance_profile if association is not None else None
    if profile is None:
        profile = _template_profile(account, region, instance_id)
    roles = list(getattr(profile, "roles", []) or [])
    return str(roles[0].arn) if roles else None


def _template_profile(account: str, region: str, instance_id: str) -> Any:
    for group in autoscaling_backends[account][region].autoscaling_groups.values():
        if not any(state.instance.id == instance_id for state in group.instance_states):
            continue
        template = group.ec2_launch_template
        if template is None:
            return None
        data = template.get_version(group.launch_template_version).data
        spec = data.get("IamInstanceProfile") or {}
        iam = _iam(account)
        try:
            if spec.get("Arn"):
                return iam.get_instance_profile_by_arn(spec["Arn"])
            if spec.get("Name"):
                return iam.get_instance_profile(spec["Name"])
        except Exception:  # moto's IAMNotFoundException: the profile is gone
            return None
    return None


# ---- what the instances do with their own role (the bundle's scripts, the app, the MongoDB user data)


def instance_parameter_denial(account: str, region: str, instance_id: str, name: str) -> str | None:
    """What SSM answers when the instance reads parameter `name` (GetParameter, as `aws ssm get-parameter` and
    boto3's get_parameter call it) with its instance profile's role, or None when it may.

    The text is the AWS CLI's and botocore's: `An error occurred (AccessDeniedException) when calling the
    GetParameter operation: User: arn:aws:sts::A:assumed-role/ROLE/i-... is not authorized to perform:
    ssm:GetParameter on resource: arn:aws:ssm:R:A:parameter/... because ...`. Without a profile the instance
    has no credentials at all, and the CLI says so. SecureStrings under the AWS-managed aws/ssm key need no
    kms:Decrypt grant (its key policy lets SSM decrypt for the account's principals; key policies are not
    evaluated here)."""
    role_arn = instance_role_arn(account, region, instance_id)
    role = _assumed(account, role_arn, EC2_SERVICE) if role_arn else None
    if role is None:
        return 'Unable to locate credentials. You can configure credentials by running "aws configure".'
    instance_arn = _arn("ec2", region, account, f"instance/{instance_id}")
    resource = _arn("ssm", region, account, f"parameter/{name.lstrip('/')}")
    # credentials delivered to an instance carry the instance's ARN (policies may hold it in a condition)
    request = Request("ssm:GetParameter", resource, {"ec2:SourceInstanceARN": instance_arn})
    verdict = _first_denial(account, role, [request])
    if verdict is None:
        return None
    return (
        "An error occurred (AccessDeniedException) when calling the GetParameter operation: "
        f"{not_authorized(session_arn(account, role, instance_id), verdict)}"
    )


# ---- CodeDeploy completing its Auto Scaling launch hook


def lifecycle_completion_denied(account: str, region: str, group: Any, asg_arn: str) -> bool:
    """Whether the deployment group's service role may not call autoscaling:CompleteLifecycleAction on the
    Auto Scaling group (a role that is gone or that CodeDeploy may not assume may not either)."""
    role = _assumed(
        account, str(group.service_role_arn or ""), CODEDEPLOY_SERVICE, deployment_group_arn(region, account, group)
    )
    if role is None:
        return True
    return _first_denial(account, role, [Request("autoscaling:CompleteLifecycleAction", asg_arn)]) is not None
