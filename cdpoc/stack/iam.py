"""IAM: a role and profile per kind of host (the app hosts, the MongoDB host), and the CodeDeploy, CodePipeline
and EventBridge service roles.

Every policy is rendered here, as a dict, from the stack's deterministic names, and declared as its
canonical JSON text (cdpoc.stack.specs.iam.policy_text), so that `plan` can compare it (parsed) with
what IAM holds. Least privilege: named actions only, every resource an ARN of this stack (or of the
CodeDeploy agent's bucket), except the few actions AWS authorizes on no resource at all
(ACTIONS_WITHOUT_RESOURCE_LEVEL, each with its reference); no AWS managed policy but the ones
ALLOWED_MANAGED_POLICIES names (and says why). `policy_problems` checks that and a test keeps it so.

The bastion has no instance profile: nothing on it calls AWS (it is an SSH jump host), so it has no credentials
to lose.
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

# The app hosts' role and profile keep the key and name of the one instance role earlier versions gave every
# host ("<stack>-instance"), so that `up` on such a stack converges that role (its managed policies detached,
# its inline policy narrowed) instead of leaving it behind beside a new one.
APP_ROLE, APP_PROFILE, APP_PURPOSE = "role.instance", "profile.instance", "instance"
MONGODB_ROLE, MONGODB_PROFILE, MONGODB_PURPOSE = "role.mongodb", "profile.mongodb", "mongodb"

# AWS managed policies a role of the stack may have attached, and why. AWSCodeDeployRole stays: it is the
# service role policy AWS documents for EC2/Auto Scaling deployment groups and keeps current as CodeDeploy
# needs more (lifecycle hooks, ELB and ASG calls it makes on its own schedule); the describe calls it grants
# have no resource level anyway, and its writes (Auto Scaling hooks, ELB registration, tags) are what
# CodeDeploy needs on the group it manages. The instance roles have none: AmazonSSMManagedInstanceCore granted
# ssm:GetParameter(s) on every parameter of the account, CloudWatchAgentServerPolicy log writes on every group.
ALLOWED_MANAGED_POLICIES: Mapping[str, str] = {
    "arn:aws:iam::aws:policy/service-role/AWSCodeDeployRole": "CodeDeploy's documented service role policy",
}
CODEDEPLOY_MANAGED_POLICIES = ("arn:aws:iam::aws:policy/service-role/AWSCodeDeployRole",)

# Actions AWS authorizes on no resource (the Service Authorization Reference lists no resource type for them),
# so a statement granting them can only name "*". Nothing else may.
ACTIONS_WITHOUT_RESOURCE_LEVEL: Mapping[str, str] = {
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssystemsmanager.html and the
    # minimal instance profile of https://docs.aws.amazon.com/systems-manager/latest/userguide/
    # getting-started-create-iam-instance-profile.html (the SSM Agent's heartbeat)
    "ssm:UpdateInstanceInformation": "SSM Agent registration and heartbeat",
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonmessagegatewayservice.html
    "ssmmessages:CreateControlChannel": "Session Manager channel",
    "ssmmessages:CreateDataChannel": "Session Manager channel",
    "ssmmessages:OpenControlChannel": "Session Manager channel",
    "ssmmessages:OpenDataChannel": "Session Manager channel",
    # https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonmessagedeliveryservice.html
    "ec2messages:AcknowledgeMessage": "Run Command message delivery",
    "ec2messages:DeleteMessage": "Run Command message delivery",
    "ec2messages:FailMessage": "Run Command message delivery",
    "ec2messages:GetEndpoint": "Run Command message delivery",
    "ec2messages:GetMessages": "Run Command message delivery",
    "ec2messages:SendReply": "Run Command message delivery",
}
SESSION_MANAGER_ACTIONS = tuple(
    a for a in ACTIONS_WITHOUT_RESOURCE_LEVEL if a.startswith(("ssm:", "ssmmessages:", "ec2messages:"))
)

# Prefixes of the uploads bucket the application writes (its fileTypes documents name them).
UPLOAD_PREFIXES = ("books/", "files/images/")

# The stack's SSM parameters each kind of host reads: the app's AfterInstall hook reads the MongoDB host
# (bundle/scripts/after_install.sh) and the app its password (bundle/app/s3upload/services.py); the MongoDB
# user data reads both passwords (cdpoc/templates/mongodb.sh). The admin password is the MongoDB host's alone.
APP_PARAMETERS = ("mongodb/host", "mongodb/app-password")
MONGODB_PARAMETERS = ("mongodb/admin-password", "mongodb/app-password")


def trust(service: str, **condition: Any) -> dict[str, Any]:
    """A trust policy letting one AWS service assume the role (on the given condition)."""
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    if condition:
        statement["Condition"] = condition
    return {"Version": VERSION, "Statement": [statement]}


def service_trust(names: StackNames, service: str, source_arn: str | None = None) -> dict[str, Any]:
    """A service role's trust with the confused-deputy conditions: only on this account's behalf, and (where
    the service sends aws:SourceArn when it assumes the role) only for this stack's resource.

    IfExists: a key the service sends for another account or resource is refused, and a key it does not send
    at all does not lock it out. Whether each service sends them, and the SourceArn's exact form, could not be
    checked against AWS from here; without IfExists a wrong guess would fail every deployment of the first
    real `up`, with it the worst case is the protection of a trust without conditions."""
    condition: dict[str, Any] = {"StringEqualsIfExists": {"aws:SourceAccount": names.account}}
    if source_arn:
        condition["ArnLikeIfExists"] = {"aws:SourceArn": source_arn}
    return trust(service, **condition)


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


def parameter_arns(names: StackNames, paths: Iterable[str]) -> list[str]:
    return [names.arn("ssm", f"parameter{names.parameter(path)}") for path in paths]


def session_manager() -> dict[str, Any]:
    """What the SSM Agent needs for Session Manager and Run Command, instead of AmazonSSMManagedInstanceCore
    (which also grants ssm:GetParameter(s) on every parameter of the account)."""
    return allow("SessionManager", SESSION_MANAGER_ACTIONS, ["*"])


def read_parameters(names: StackNames, paths: Iterable[str]) -> dict[str, Any]:
    # SecureStrings use the AWS-managed aws/ssm key, whose key policy lets SSM decrypt for any principal of
    # the account allowed to read the parameter: no kms statement is needed.
    return allow("ReadOwnParameters", ["ssm:GetParameter"], parameter_arns(names, paths))


def app_policy(names: StackNames) -> dict[str, Any]:
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
        # The CloudWatch agent ships log files only (its configuration in cdpoc/templates/app-instance.sh has no
        # metrics section and no dimensions to look up): no cloudwatch:PutMetricData, no ec2:DescribeTags.
        # CreateLogStream is authorized on the group, PutLogEvents on its streams (the ":*" form).
        allow(
            "WriteLogs",
            ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            [log_group, f"{log_group}:*"],
        ),
        read_parameters(names, APP_PARAMETERS),
        session_manager(),
    )


def mongodb_policy(names: StackNames) -> dict[str, Any]:
    """The MongoDB host reads its two passwords at boot; nothing else on it calls AWS but the SSM Agent."""
    return document(read_parameters(names, MONGODB_PARAMETERS), session_manager())


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
            [role_arn(names, APP_PURPOSE)],
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
    names: StackNames,
    key: str,
    purpose: str,
    trusted: dict[str, Any],
    inline: dict[str, Any],
    managed: tuple[str, ...] = (),
) -> Resource:
    return declare_spec(
        key,
        role_name(names, purpose),
        RoleSpec(
            path=names.iam_path,
            description=f"cdpoc stack {names.name}: {purpose}",
            assume_role_policy=policy_text(trusted),
            inline_policies={f"{role_name(names, purpose)}-access": policy_text(inline)},
            managed_policies=managed,
        ),
    )


def profile(names: StackNames, key: str, purpose: str, role_key: str) -> Resource:
    return declare_spec(key, role_name(names, purpose), InstanceProfileSpec(path=names.iam_path, role=Ref(role_key)))


def declare(names: StackNames) -> list[Resource]:
    # EC2 documents no aws:SourceAccount / aws:SourceArn when it gets an instance profile's credentials: the
    # instance roles' trust names the service only (who may pass them is iam:PassRole's business).
    ec2 = trust("ec2.amazonaws.com")
    # CodeDeploy and EventBridge send the deployment group's and the rule's ARN as aws:SourceArn; for
    # CodePipeline cdpoc found no documented aws:SourceArn, so its role is held to the account only.
    # Any of the application's deployment groups: the form AWS's CodeDeploy examples use.
    group = names.arn("codedeploy", f"deploymentgroup:{names.codedeploy_application}/*")
    rule = names.arn("events", f"rule/{names.source_rule}")
    return [
        role(names, APP_ROLE, APP_PURPOSE, ec2, app_policy(names)),
        role(names, MONGODB_ROLE, MONGODB_PURPOSE, ec2, mongodb_policy(names)),
        role(
            names,
            "role.codedeploy",
            "codedeploy",
            service_trust(names, "codedeploy.amazonaws.com", group),
            codedeploy_policy(names),
            CODEDEPLOY_MANAGED_POLICIES,
        ),
        role(
            names,
            "role.pipeline",
            "pipeline",
            service_trust(names, "codepipeline.amazonaws.com"),
            pipeline_policy(names),
        ),
        role(names, "role.events", "events", service_trust(names, "events.amazonaws.com", rule), events_policy(names)),
        profile(names, APP_PROFILE, APP_PURPOSE, APP_ROLE),
        profile(names, MONGODB_PROFILE, MONGODB_PURPOSE, MONGODB_ROLE),
    ]


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def policy_problems(policy: Mapping[str, Any], label: str) -> list[str]:
    """Why a policy document is broader than least privilege: "*" in an action, Not*, a bare "*" resource for
    an action that has resource-level permissions (one not in ACTIONS_WITHOUT_RESOURCE_LEVEL). Deny statements
    grant nothing: a broad one (the buckets' TLS-only `s3:*` on every request) only takes more away."""
    problems = []
    for index, statement in enumerate(as_list(policy.get("Statement"))):
        if statement.get("Effect") == "Deny":
            continue
        where = f"{label} statement {statement.get('Sid', index)}"
        for negated in ("NotAction", "NotResource"):
            if negated in statement:
                problems.append(f"{where} uses {negated} (grants everything else)")
        problems.extend(f"{where} has a wildcard action {a!r}" for a in as_list(statement.get("Action")) if "*" in a)
        if "*" in as_list(statement.get("Resource")):
            scoped = [a for a in as_list(statement.get("Action")) if a not in ACTIONS_WITHOUT_RESOURCE_LEVEL]
            problems.extend(f"{where} applies {a} to every resource ('*')" for a in scoped)
    return problems


def managed_policy_problems(resources: Iterable[Resource]) -> list[str]:
    """Every attached AWS managed policy ALLOWED_MANAGED_POLICIES does not name."""
    return [
        f"{res.key} has AWS managed policy {arn} attached"
        for res in resources
        if isinstance(res.spec, RoleSpec)
        for arn in res.spec.managed_policies
        if arn not in ALLOWED_MANAGED_POLICIES
    ]


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
    """policy_problems over every policy of the given declarations, and their managed policies not allowed;
    empty when all are least privilege."""
    resources = list(resources)
    inline = [problem for label, policy in policies_of(resources) for problem in policy_problems(policy, label)]
    return [*inline, *managed_policy_problems(resources)]
