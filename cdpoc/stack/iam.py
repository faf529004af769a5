"""IAM: the instance role and profile, and the CodeDeploy, CodePipeline and EventBridge service roles.

Every policy is rendered here, as a dict, from the stack's deterministic names, and declared as its
canonical JSON text (cdpoc.stack.specs.iam.policy_text), so that `plan` can compare it (parsed) with
what IAM holds. Least privilege: named actions only, every resource an ARN
of this stack (or of the CodeDeploy agent's bucket); `policy_problems` checks that and a test keeps
it so.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from cdpoc.model import Resource
from cdpoc.spec import Ref
from cdpoc.spec import declare as declare_spec
from cdpoc.stack.names import StackNames
from cdpoc.stack.specs.iam import InstanceProfileSpec, RoleSpec, policy_document, policy_text
from cdpoc.stack.specs.storage import BucketSpec

VERSION = "2012-10-17"

# What the CloudWatch agent and SSM Session Manager need on the instances (AWS-managed, kept current by AWS).
INSTANCE_MANAGED_POLICIES = (
    "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy",
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
)
CODEDEPLOY_MANAGED_POLICIES = ("arn:aws:iam::aws:policy/service-role/AWSCodeDeployRole",)

# Prefixes of the uploads bucket the application writes (its fileTypes documents name them).
UPLOAD_PREFIXES = ("books/", "files/images/")

# (policy label, statement Sid) pairs allowed a bare "*" Resource because the action has no
# resource-level permissions. None: every action granted here can be scoped to an ARN.
BARE_RESOURCE_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset()


def trust(service: str) -> dict[str, Any]:
    """A trust policy letting one AWS service assume the role."""
    return {
        "Version": VERSION,
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }


def allow(sid: str, actions: Iterable[str], resources: Iterable[str], **condition: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": list(resources)}
    if condition:
        statement["Condition"] = condition
    return statement


def document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": list(statements)}


def bucket_arn(bucket: str, key: str = "") -> str:
    return f"arn:aws:s3:::{bucket}{'/' + key if key else ''}"


def role_name(names: StackNames, role: str) -> str:
    return f"{names.name}-{role}"


def role_arn(names: StackNames, role: str) -> str:
    return names.arn("iam", f"role{names.iam_path}{role_name(names, role)}", region=False)


def instance_policy(names: StackNames) -> dict[str, Any]:
    artifacts, uploads = names.bucket("artifacts"), names.bucket("uploads")
    agent_bucket = f"aws-codedeploy-{names.region}"
    log_group = names.arn("logs", f"log-group:{names.log_group}")
    return document(
        # The CodeDeploy agent downloads revisions from the artifact bucket, and itself from AWS's bucket.
        allow(
            "ReadRevisions",
            ["s3:GetObject", "s3:GetObjectVersion"],
            [bucket_arn(artifacts, "*"), bucket_arn(agent_bucket, "*")],
        ),
        allow(
            "ReadWriteUploads",
            ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            [bucket_arn(uploads, f"{prefix}*") for prefix in UPLOAD_PREFIXES],
        ),
        # CreateLogStream is authorized on the group, PutLogEvents on its streams (the ":*" form).
        allow(
            "WriteLogs",
            ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            [log_group, f"{log_group}:*"],
        ),
        # SecureStrings use the AWS-managed aws/ssm key, whose key policy lets SSM decrypt for any
        # principal of the account allowed to read the parameter: no kms statement is needed.
        allow(
            "ReadOwnParameters",
            ["ssm:GetParameter", "ssm:GetParameters"],
            [names.arn("ssm", f"parameter{names.ssm_prefix}*")],
        ),
        # The instance may tag only itself: aws:ARN (the resource acted on) must be the calling instance's
        # ARN. IAM refuses a policy variable as a whole Resource, so it goes into the condition.
        allow(
            "TagItself",
            ["ec2:CreateTags"],
            [names.arn("ec2", "instance/*")],
            StringEquals={"aws:ARN": "${ec2:SourceInstanceARN}"},
        ),
    )


def codedeploy_policy(names: StackNames) -> dict[str, Any]:
    """What AWSCodeDeployRole lacks for Auto Scaling groups with launch templates."""
    # The resource types a RunInstances from a launch template touches, not every EC2 resource.
    launched = [
        names.arn("ec2", f"{kind}/*")
        for kind in (
            "instance",
            "volume",
            "network-interface",
            "subnet",
            "security-group",
            "launch-template",
            "key-pair",
        )
    ]
    return document(
        allow("LaunchFromTemplate", ["ec2:RunInstances"], [*launched, names.arn("ec2", "image/*", account=False)]),
        allow(
            "TagLaunched",
            ["ec2:CreateTags"],
            [names.arn("ec2", "instance/*"), names.arn("ec2", "volume/*"), names.arn("ec2", "network-interface/*")],
        ),
        allow(
            "PassInstanceRole",
            ["iam:PassRole"],
            [role_arn(names, "instance")],
            StringEquals={"iam:PassedToService": "ec2.amazonaws.com"},
        ),
    )


def pipeline_policy(names: StackNames) -> dict[str, Any]:
    artifacts = names.bucket("artifacts")
    application = names.codedeploy_application
    return document(
        allow(
            "SourceFromRepository",
            [
                "codecommit:GetBranch",
                "codecommit:GetCommit",
                "codecommit:UploadArchive",
                "codecommit:GetUploadArchiveStatus",
                "codecommit:CancelUploadArchive",
            ],
            [names.arn("codecommit", names.repository)],
        ),
        allow(
            "DeployToGroup",
            ["codedeploy:CreateDeployment", "codedeploy:GetDeployment"],
            [names.arn("codedeploy", f"deploymentgroup:{application}/{names.deployment_group}")],
        ),
        # GetApplication: the CodeDeploy action reads the application before it registers the revision.
        allow(
            "RegisterRevisions",
            [
                "codedeploy:GetApplication",
                "codedeploy:GetApplicationRevision",
                "codedeploy:RegisterApplicationRevision",
            ],
            [names.arn("codedeploy", f"application:{application}")],
        ),
        allow(
            "ReadDeploymentConfig",
            ["codedeploy:GetDeploymentConfig"],
            [names.arn("codedeploy", f"deploymentconfig:{names.settings.pipeline.deployment_config}")],
        ),
        # Artifact store, and the S3 source (one versioned zip) when CodeCommit is not used.
        allow(
            "ArtifactObjects",
            ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
            [bucket_arn(artifacts, "*")],
        ),
        # AWS's documented minimum for a pipeline's artifact store also reads the bucket's ACL.
        allow(
            "ArtifactBucket",
            ["s3:GetBucketVersioning", "s3:GetBucketLocation", "s3:GetBucketAcl"],
            [bucket_arn(artifacts)],
        ),
    )


def events_policy(names: StackNames) -> dict[str, Any]:
    return document(
        allow("StartPipeline", ["codepipeline:StartPipelineExecution"], [names.arn("codepipeline", names.pipeline)])
    )


def role(
    names: StackNames, key: str, purpose: str, service: str, inline: dict[str, Any], managed: tuple[str, ...] = ()
) -> Resource:
    return declare_spec(
        key,
        role_name(names, purpose),
        RoleSpec(
            path=names.iam_path,
            description=f"cdpoc stack {names.name}: {purpose}",
            assume_role_policy=policy_text(trust(service)),
            inline_policies={f"{role_name(names, purpose)}-access": policy_text(inline)},
            managed_policies=managed,
        ),
    )


def declare(names: StackNames) -> list[Resource]:
    return [
        role(
            names, "role.instance", "instance", "ec2.amazonaws.com", instance_policy(names), INSTANCE_MANAGED_POLICIES
        ),
        role(
            names,
            "role.codedeploy",
            "codedeploy",
            "codedeploy.amazonaws.com",
            codedeploy_policy(names),
            CODEDEPLOY_MANAGED_POLICIES,
        ),
        role(names, "role.pipeline", "pipeline", "codepipeline.amazonaws.com", pipeline_policy(names)),
        role(names, "role.events", "events", "events.amazonaws.com", events_policy(names)),
        declare_spec(
            "profile.instance",
            role_name(names, "instance"),
            InstanceProfileSpec(path=names.iam_path, role=Ref("role.instance")),
        ),
    ]


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def policy_problems(policy: Mapping[str, Any], label: str) -> list[str]:
    """Why a policy document is broader than least privilege: "*" in an action, a bare "*" resource, Not*."""
    problems = []
    for index, statement in enumerate(as_list(policy.get("Statement"))):
        where = f"{label} statement {statement.get('Sid', index)}"
        for negated in ("NotAction", "NotResource"):
            if negated in statement:
                problems.append(f"{where} uses {negated} (grants everything else)")
        problems.extend(f"{where} has a wildcard action {a!r}" for a in as_list(statement.get("Action")) if "*" in a)
        if (label, str(statement.get("Sid", ""))) not in BARE_RESOURCE_EXCEPTIONS:
            problems.extend(
                f"{where} applies to every resource ('*')" for r in as_list(statement.get("Resource")) if r == "*"
            )
    return problems


def policies_of(resources: Iterable[Resource]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every policy document the declarations carry: trust, inline and bucket policies, with a label."""
    for res in resources:
        spec = res.spec
        if isinstance(spec, RoleSpec):
            yield f"{res.key} trust policy", policy_document(spec.assume_role_policy)
            for name, policy in spec.inline_policies.items():
                yield f"{res.key} policy {name}", policy_document(policy)
        elif isinstance(spec, BucketSpec) and spec.policy:
            yield f"{res.key} bucket policy", policy_document(spec.policy)


def least_privilege_problems(resources: Iterable[Resource]) -> list[str]:
    """policy_problems over every policy of the given declarations; empty when all are least privilege."""
    return [problem for label, policy in policies_of(resources) for problem in policy_problems(policy, label)]
